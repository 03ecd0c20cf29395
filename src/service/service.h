// Service: what llmsd does with a request, independent of the transport. Requests are JSON
// messages of the native protocol (docs/protocol.md) from an app whose identity the transport
// established (peer credentials); replies go back through the app's Session.
//
// The engine runs one pass at a time, so calls (and the requests that change contexts: create,
// delete) wait in bounded per-app queues served by one worker thread, taking apps in turn. A call
// runs in slices (a long prompt in pieces of kPrefillSlice tokens, then kDecodeSlice generated
// tokens at a time, resumed through GenerationState) and goes back to its queue between slices,
// so no call waits behind another's whole generation. Reads (list, stats) are answered at once.
// A full queue is a clear "unavailable" error, not a wait without end.
//
// Non-goal: StreamingLLM-style context shifting (a full context is a clear error).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "base/status.h"
#include "memory/kv_manager.h"
#include "model/llama_model.h"
#include "protocol/wire.h"
#include "service/metrics.h"

namespace llms {

struct ServiceLimits {
  size_t context_window = 0;         // tokens a context may hold (0: the model's declared window)
  bool slide_full_contexts = false;  // at the window: keep sink + recent tokens, or refuse
  size_t prefill_slice = 256;        // prompt tokens computed before other calls get a turn
  size_t decode_slice = 16;          // tokens generated before other calls get a turn
  size_t max_contexts_per_app = 64;
  size_t max_prompt_tokens = 2048;     // per call, after tokenization
  size_t max_queued_per_app = 32;      // calls waiting, per app
  size_t max_queued = 128;             // calls waiting, all apps
  double queue_timeout_seconds = 300;  // a call not started by then fails with unavailable
};

// One connected peer. The transport creates it with a sender; the service writes replies
// through Send (serialized) and marks calls cancelled when the peer asks or disconnects.
// Thread safety: all methods may be called from any thread.
class Session {
 public:
  using Sender = std::function<Status(const wire::Json&)>;
  Session(std::string app, Sender sender) : app_(std::move(app)), sender_(std::move(sender)) {}

  const std::string& app() const { return app_; }
  // False once the peer is gone (a failed send or Close).
  bool Send(const wire::Json& message);
  void Close();
  bool closed() const { return closed_; }
  void Cancel(uint64_t request_id);
  bool cancelled(uint64_t request_id);
  void Forget(uint64_t request_id);

 private:
  const std::string app_;
  const Sender sender_;
  std::mutex mu_;
  std::atomic<bool> closed_{false};
  std::set<uint64_t> cancelled_;  // guarded by mu_
};

class Service {
 public:
  // `manager` and `model` must outlive the service.
  Service(KvManager* manager, const LlamaModel* model, std::string model_name,
          const ServiceLimits& limits);
  ~Service();  // Drain()s

  // Handles one message; replies go to `session`. Never blocks on the engine.
  void Handle(const std::shared_ptr<Session>& session, const wire::Json& request);

  // Refuses new work, lets queued and running calls finish, stops the worker.
  void Drain();
  size_t queued() const;

  const std::string& model_name() const { return model_name_; }
  // Tokens a context may hold: the model's window or the smaller configured one.
  size_t Window() const;
  KvManager* manager() const { return manager_; }
  // Called with each finished call's summary (app, context, tokens, switch latency, outcome),
  // for the daemon's log. Set before serving.
  void set_call_observer(std::function<void(const wire::Json&)> observer) {
    call_observer_ = std::move(observer);
  }
  // The Prometheus text of /metrics.
  std::string RenderMetrics() const { return metrics_.Render(manager_, queued()); }
  const LlamaModel& model() const { return *model_; }

 private:
  struct CallProgress;  // a call between its slices (service.cc)
  struct Job {
    std::shared_ptr<Session> session;
    wire::Json request;
    std::chrono::steady_clock::time_point queued_at;
    std::shared_ptr<CallProgress> progress;  // set once the call has started
  };

  Status Enqueue(const std::shared_ptr<Session>& session, const wire::Json& request);
  void WorkerLoop();
  bool PopNext(Job* job);
  void Run(const Job& job);
  wire::Json Execute(Session* session, const wire::Json& request, Status* status);
  StatusOr<wire::Json> Create(Session* session, const wire::Json& request);
  StatusOr<std::shared_ptr<CallProgress>> StartCall(Session* session, const wire::Json& request);
  void RunCallSlice(Job job);
  void Requeue(Job job);
  StatusOr<wire::Json> Delete(Session* session, const wire::Json& request);
  StatusOr<wire::Json> List(const Session& session);
  StatusOr<wire::Json> Stats(const Session& session, const wire::Json& request);
  wire::Json Hello(const Session& session, const wire::Json& request, Status* status);

  static constexpr size_t kSinkTokens = 16;  // one chunk: StreamingLLM's attention sink
  KvManager* const manager_;
  const LlamaModel* const model_;
  const std::string model_name_;
  const ServiceLimits limits_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::deque<Job>> queues_;  // by app; guarded by mu_
  std::string last_app_;                           // round-robin position; guarded by mu_
  size_t queued_ = 0;                              // guarded by mu_
  bool draining_ = false;                          // guarded by mu_
  Metrics metrics_;
  std::function<void(const wire::Json&)> call_observer_;
  std::thread worker_;
};

}  // namespace llms
