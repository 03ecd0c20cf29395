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
// HTTP requests are placed here too: which context an OpenAI request continues is decided by the
// worker, atomically with its call, so no other call can change the context in between.
// service.cc: sessions, queues and the plain requests; service_call.cc: running calls.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "base/status.h"
#include "base/thread_annotations.h"
#include "memory/kv_manager.h"
#include "model/llama_model.h"
#include "protocol/wire.h"
#include "service/metrics.h"

namespace llms {

struct ServiceLimits {
  size_t context_window = 0;           // tokens a context may hold (0: the model's declared window)
  bool slide_full_contexts = false;    // at the window: keep sink + recent tokens, or refuse
  size_t prefill_slice = 256;          // prompt tokens computed before other calls get a turn
  size_t decode_slice = 16;            // tokens generated before other calls get a turn
  size_t max_contexts_per_app = 64;    // the HTTP API retires its own least recently used ones
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
  // Marks a call of this session cancelled. Only the Service calls it, for a call it runs.
  void Cancel(uint64_t request_id);
  bool cancelled(uint64_t request_id);
  void Forget(uint64_t request_id);

 private:
  const std::string app_;
  const Sender sender_;
  Mutex mu_;
  std::atomic<bool> closed_{false};
  std::set<uint64_t> cancelled_ GUARDED_BY(mu_);
};

// An OpenAI request's call, before the worker has placed it in a context.
struct PlacedCall {
  std::string text;      // the whole conversation (chat, rendered) or prompt (completion)
  uint64_t context = 0;  // an explicit context, or 0: the app's context that the text extends
  wire::Json call;       // a native call message without "context" and "prompt" (sampling, stop)
};

class Service {
 public:
  // `manager` and `model` must outlive the service.
  Service(KvManager* manager, const LlamaModel* model, std::string model_name,
          const ServiceLimits& limits);
  ~Service();  // Drain()s

  // Handles one message; replies go to `session`. Never blocks on the engine.
  void Handle(const std::shared_ptr<Session>& session, const wire::Json& request);
  // Queues an OpenAI request's call under `id`: the worker finds or creates its context
  // (retiring the app's least recently used HTTP context at the limit), replies `placed` with
  // the context, then runs it as a call (replies as for a call). A request that fails leaves no
  // context it created behind.
  void HandlePlaced(const std::shared_ptr<Session>& session, uint64_t id, PlacedCall placed);

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
  // Contexts whose stored row is damaged (set aside at start), for the daemon's log.
  std::vector<ContextInfo> DamagedContexts() const;
  const LlamaModel& model() const { return *model_; }

 private:
  struct CallProgress;  // a call between its slices (service_call.cc)
  struct Job {
    std::shared_ptr<Session> session;
    wire::Json request;
    double queued_at = 0;  // Clock::Real()->MonotonicSeconds() when it was queued
    std::shared_ptr<const PlacedCall> placed;  // an HTTP call, to place before it starts
    std::shared_ptr<CallProgress> progress;    // set once the call has started
  };
  // A call queued or running, so that a cancel can find it.
  struct ActiveCall {
    std::weak_ptr<Session> session;
    uint64_t id = 0;
    uint64_t context = 0;  // 0 until an HTTP call is placed
    bool started = false;  // it has run a slice: its context is its own until it ends
  };

  Status Enqueue(Job job);
  void WorkerLoop();
  bool PopNext(Job* job) REQUIRES(mu_);
  void Run(const Job& job);
  wire::Json Execute(Session* session, const wire::Json& request, Status* status);
  StatusOr<wire::Json> Create(Session* session, const wire::Json& request);
  wire::Json Cancel(const std::shared_ptr<Session>& session, const wire::Json& request,
                    Status* status);
  void Activate(const Job& job) REQUIRES(mu_);
  void Deactivate(const Session* session, uint64_t id);
  // Makes `context` the call's own while it runs; false when another started call holds it
  // (the call then waits its turn: two calls' slices must not interleave in one context).
  bool ClaimContext(const Session* session, uint64_t id, uint64_t context);
  bool ContextBusy(const std::string& app, uint64_t context) const;

  // service_call.cc
  // Places (HTTP), checks and begins the call; *busy when another call holds its context.
  Status StartCall(Session* session, const Job& job, CallProgress* p, bool* busy);
  Status Place(Session* session, const PlacedCall& placed, CallProgress* p);
  StatusOr<uint64_t> CreateHttpContext(const std::string& app);
  void RunCallSlice(Job job);
  void FinishCall(Job& job, Status status, const std::string& stop_reason);
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

  mutable Mutex mu_;
  CondVar cv_;
  std::map<std::string, std::deque<Job>> queues_ GUARDED_BY(mu_);  // by app
  std::string last_app_ GUARDED_BY(mu_);                           // round-robin position
  size_t queued_ GUARDED_BY(mu_) = 0;
  bool draining_ GUARDED_BY(mu_) = false;
  std::multimap<std::string, ActiveCall> active_ GUARDED_BY(mu_);  // by app
  Metrics metrics_;
  std::function<void(const wire::Json&)> call_observer_;
  std::thread worker_;
};

}  // namespace llms
