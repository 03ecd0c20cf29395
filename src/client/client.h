// Client: the C++ library apps use to talk to llmsd over its Unix socket (docs/protocol.md),
// mirroring the paper's interface: bindLLMService (Connect), newLLMCtx (NewContext), callLLM
// (Call, tokens streamed to a callback), delLLMCtx (DeleteContext), plus list and stats. The
// C ABI for other languages is client/c_api.h.
//
// Thread safety: one Client per thread; a Client is one connection, one request at a time.
// Cancel may be called from another thread (or from the token callback) while Call runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "protocol/wire.h"

namespace llms {

struct CallOptions {
  size_t max_tokens = 128;
  double temperature = 0.8;
  int top_k = 40;
  double top_p = 0.95;
  uint64_t seed = 0;
  std::vector<std::string> stop;
};

struct CallReply {
  std::string text;
  std::string stop_reason;  // eos, stop, length or cancelled
  size_t prompt_tokens = 0, completion_tokens = 0;
  size_t cached_tokens = 0;  // tokens the context held before the call
  wire::Json stats;          // the daemon's per-call statistics (docs/protocol.md)
};

struct ContextSummary {
  uint64_t id = 0;
  size_t tokens = 0, chunks = 0, resident_chunks = 0, flash_chunks = 0;
  std::string damaged;  // why the context cannot be used (delete it), or empty
};

class Client {
 public:
  // Connects to llmsd at `socket_path` and checks the protocol version. Unavailable when no
  // daemon listens there (the message says how to start one).
  static StatusOr<std::unique_ptr<Client>> Connect(const std::string& socket_path);
  ~Client();

  // The app identity the daemon assigned to this connection ("uid:1000").
  const std::string& app() const { return app_; }
  const std::string& model() const { return model_; }

  StatusOr<uint64_t> NewContext(const std::string& system_prompt = "");
  // Appends `prompt` to the context and generates; `on_text` gets each piece of text as it
  // arrives and may return false to cancel.
  StatusOr<CallReply> Call(uint64_t context, const std::string& prompt, const CallOptions& options,
                           const std::function<bool(std::string_view)>& on_text = {});
  // Asks the daemon to stop the running Call (which then returns with stop_reason
  // "cancelled"). Safe from any thread.
  void Cancel();
  Status DeleteContext(uint64_t context);
  StatusOr<std::vector<ContextSummary>> ListContexts();
  StatusOr<wire::Json> Stats(uint64_t context);

 private:
  struct Key {
    explicit Key() = default;
  };

 public:
  Client(Key, int fd);

 private:
  // Sends `request` (an "id" is added) and returns the final reply; messages of type "token"
  // for it go to `on_token`. An error message becomes its Status.
  StatusOr<wire::Json> Request(wire::Json request,
                               const std::function<void(const wire::Json&)>& on_token = {});

  Status Write(const wire::Json& message);

  const int fd_;
  std::mutex write_mu_;               // a Cancel from another thread never splits a request's frame
  std::atomic<uint64_t> next_id_{1};  // Cancel takes one from another thread
  std::atomic<uint64_t> running_call_{0};
  std::atomic<bool> cancel_sent_{false};
  std::string app_, model_;
};

}  // namespace llms
