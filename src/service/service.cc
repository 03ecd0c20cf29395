#include "service/service.h"

#include <algorithm>

namespace llms {
namespace {

using wire::Json;

// A call request, validated.
struct CallRequest {
  uint64_t context = 0;
  std::string prompt;
  bool has_tokens = false;      // the prompt came as token ids
  std::vector<int32_t> tokens;  // then: these
  GenerateOptions options;
};

StatusOr<CallRequest> ParseCall(const Json& m, size_t window, size_t vocab) {
  CallRequest c;
  LLMS_ASSIGN_OR_RETURN(c.context, wire::GetUint(m, "context"));
  if (m.contains("prompt_tokens")) {
    const Json& ids = m["prompt_tokens"];
    if (!ids.is_array()) return Status::InvalidArgument("field 'prompt_tokens': expected an array");
    for (const Json& t : ids) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
          static_cast<uint64_t>(t.get<int64_t>()) >= vocab) {
        return Status::InvalidArgument("field 'prompt_tokens': expected token ids below " +
                                       std::to_string(vocab));
      }
      c.tokens.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    c.has_tokens = true;
  } else {
    LLMS_ASSIGN_OR_RETURN(c.prompt, wire::GetString(m, "prompt"));
  }
  LLMS_ASSIGN_OR_RETURN(uint64_t max_tokens, wire::GetUint(m, "max_tokens", 128));
  if (max_tokens > window) {
    return Status::InvalidArgument("max_tokens " + std::to_string(max_tokens) +
                                   " exceeds the model window of " + std::to_string(window));
  }
  c.options.max_tokens = max_tokens;
  SamplingOptions& s = c.options.sampling;
  LLMS_ASSIGN_OR_RETURN(double temperature, wire::GetNumber(m, "temperature", s.temperature));
  LLMS_ASSIGN_OR_RETURN(double top_p, wire::GetNumber(m, "top_p", s.top_p));
  LLMS_ASSIGN_OR_RETURN(uint64_t top_k, wire::GetUint(m, "top_k", static_cast<uint64_t>(s.top_k)));
  LLMS_ASSIGN_OR_RETURN(double repeat, wire::GetNumber(m, "repeat_penalty", s.repeat_penalty));
  LLMS_ASSIGN_OR_RETURN(s.seed, wire::GetUint(m, "seed", s.seed));
  s.temperature = static_cast<float>(temperature);
  s.top_p = static_cast<float>(top_p);
  s.top_k = static_cast<int>(std::min<uint64_t>(top_k, 1u << 20));
  s.repeat_penalty = static_cast<float>(repeat);
  if (std::string why = s.Validate(); !why.empty()) return Status::InvalidArgument(why);
  if (m.contains("stop") && !m["stop"].is_null()) {
    const Json& stop = m["stop"];
    if (stop.is_string()) {
      c.options.stop.push_back(stop.get<std::string>());
    } else if (stop.is_array() && stop.size() <= 16) {
      for (const Json& s1 : stop) {
        if (!s1.is_string() || s1.get<std::string>().empty()) {
          return Status::InvalidArgument("field 'stop': expected non-empty strings");
        }
        c.options.stop.push_back(s1.get<std::string>());
      }
    } else {
      return Status::InvalidArgument("field 'stop': expected a string or up to 16 strings");
    }
  }
  return c;
}

Json InfoJson(const ContextInfo& info) {
  Json levels = Json::object();
  const char* names[] = {"f16", "int8", "int4", "int2"};
  for (size_t l = 0; l < info.chunks_per_level.size() && l < 4; ++l) {
    levels[names[l]] = info.chunks_per_level[l];
  }
  return Json{{"context", info.id},
              {"tokens", info.tokens},
              {"chunks", info.chunks},
              {"resident_chunks", info.resident_chunks},
              {"flash_chunks", info.flash_chunks},
              {"resident_bytes", info.resident_bytes},
              {"chunks_per_level", levels}};
}

Json StatsJson(const CallStats& s) {
  return Json{{"chunks", s.chunks},
              {"chunks_resident", s.chunks_resident},
              {"chunks_loaded", s.chunks_loaded},
              {"chunks_recomputed", s.chunks_recomputed},
              {"bytes_read", s.bytes_read},
              {"bytes_written", s.bytes_written},
              {"ready_ms", 1e3 * s.ready_seconds},
              {"first_token_ms", 1e3 * s.first_token_seconds},
              {"extra_first_token_ms", 1e3 * s.extra_first_token_seconds}};
}

}  // namespace

// ---- Session ----------------------------------------------------------------------------------

bool Session::Send(const Json& message) {
  if (closed_) return false;
  std::lock_guard<std::mutex> lock(mu_);
  if (!sender_(message).ok()) closed_ = true;
  return !closed_;
}

void Session::Close() { closed_ = true; }

void Session::Cancel(uint64_t request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.insert(request_id);
}

bool Session::cancelled(uint64_t request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_ || cancelled_.count(request_id) > 0;
}

void Session::Forget(uint64_t request_id) {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.erase(request_id);
}

// ---- Service ----------------------------------------------------------------------------------

size_t Service::Window() const {
  const size_t model = model_->config().context_length;
  return limits_.context_window == 0 ? model : std::min(limits_.context_window, model);
}

Service::Service(KvManager* manager, const LlamaModel* model, std::string model_name,
                 const ServiceLimits& limits)
    : manager_(manager), model_(model), model_name_(std::move(model_name)), limits_(limits) {
  worker_ = std::thread([this] { WorkerLoop(); });
}

Service::~Service() { Drain(); }

void Service::Drain() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    draining_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

size_t Service::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_;
}

void Service::Handle(const std::shared_ptr<Session>& session, const Json& request) {
  const std::string type = request.value("type", "");
  StatusOr<uint64_t> rid = wire::GetUint(request, "id", 0);
  if (!rid.ok()) {
    session->Send(wire::ErrorMessage(0, rid.status()));
    return;
  }
  Status status;
  Json reply;
  if (type == "hello") {
    reply = Hello(*session, request, &status);
  } else if (type == "list") {
    StatusOr<Json> r = List(*session);
    status = r.status();
    if (r.ok()) reply = std::move(r).value();
  } else if (type == "stats") {
    StatusOr<Json> r = Stats(*session, request);
    status = r.status();
    if (r.ok()) reply = std::move(r).value();
  } else if (type == "cancel") {
    StatusOr<uint64_t> target = wire::GetUint(request, "target");
    status = target.status();
    if (target.ok()) {
      session->Cancel(*target);
      reply = Json{{"type", "cancelled"}, {"target", *target}};
    }
  } else if (type == "create" || type == "call" || type == "delete") {
    status = Enqueue(session, request);
    if (status.ok()) return;  // the worker replies
  } else {
    status = Status::InvalidArgument("unknown message type '" + type +
                                     "' (expected hello, create, call, cancel, delete, list or "
                                     "stats)");
  }
  if (!status.ok()) {
    session->Send(wire::ErrorMessage(*rid, status));
    return;
  }
  reply["id"] = *rid;
  session->Send(reply);
}

Json Service::Hello(const Session& session, const Json& request, Status* status) {
  StatusOr<uint64_t> version = wire::GetUint(request, "version", wire::kProtocolVersion);
  if (!version.ok()) {
    *status = version.status();
    return {};
  }
  if (*version != static_cast<uint64_t>(wire::kProtocolVersion)) {
    *status = Status::InvalidArgument("protocol version " + std::to_string(*version) +
                                      " is not supported; this llmsd speaks version " +
                                      std::to_string(wire::kProtocolVersion));
    return {};
  }
  return Json{{"type", "hello"},
              {"version", wire::kProtocolVersion},
              {"app", session.app()},
              {"model", model_name_},
              {"context_window", Window()},
              {"max_prompt_tokens", limits_.max_prompt_tokens},
              {"max_contexts", limits_.max_contexts_per_app}};
}

Status Service::Enqueue(const std::shared_ptr<Session>& session, const Json& request) {
  if (request.value("type", "") == "call") {
    LLMS_RETURN_IF_ERROR(ParseCall(request, Window(), model_->config().vocab_size).status());
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_) return Status::Unavailable("llmsd is shutting down; retry after it restarts");
  std::deque<Job>& q = queues_[session->app()];
  if (q.size() >= limits_.max_queued_per_app) {
    return Status::Unavailable("this app already has " + std::to_string(q.size()) +
                               " requests queued (the limit); wait for one to finish");
  }
  if (queued_ >= limits_.max_queued) {
    return Status::Unavailable("llmsd is busy: " + std::to_string(queued_) +
                               " requests queued (the limit); retry later");
  }
  q.push_back({session, request, std::chrono::steady_clock::now(), nullptr});
  ++queued_;
  cv_.notify_one();
  return Status::Ok();
}

// Takes the next job round-robin over apps. REQUIRES: mu_ held, queued_ > 0.
bool Service::PopNext(Job* job) {
  auto it = queues_.upper_bound(last_app_);
  for (size_t tried = 0; tried <= queues_.size(); ++tried) {
    if (it == queues_.end()) it = queues_.begin();
    if (!it->second.empty()) {
      *job = std::move(it->second.front());
      it->second.pop_front();
      last_app_ = it->first;
      --queued_;
      if (it->second.empty()) queues_.erase(it);
      return true;
    }
    ++it;
  }
  return false;
}

void Service::WorkerLoop() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return queued_ > 0 || draining_; });
      if (queued_ == 0) return;  // draining and nothing left
      if (!PopNext(&job)) continue;
    }
    Run(job);
  }
}

void Service::Run(const Job& job) {
  const uint64_t rid = job.request.value("id", uint64_t{0});
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - job.queued_at).count();
  Status status;
  Json reply;
  if (job.progress != nullptr) {
    return RunCallSlice(job);
  } else if (job.session->cancelled(rid)) {
    status = Status::Unavailable("cancelled before it started");
  } else if (waited > limits_.queue_timeout_seconds) {
    status = Status::Unavailable("timed out after " + std::to_string(static_cast<int>(waited)) +
                                 " s in the queue");
  } else if (job.request.value("type", "") == "call") {
    return RunCallSlice(job);
  } else {
    reply = Execute(job.session.get(), job.request, &status);
  }
  job.session->Forget(rid);
  if (!status.ok()) {
    job.session->Send(wire::ErrorMessage(rid, status));
    return;
  }
  reply["id"] = rid;
  job.session->Send(reply);
}

// A call between its slices.
struct Service::CallProgress {
  CallRequest call;
  std::vector<int32_t> prompt;
  size_t prompt_done = 0;  // prompt tokens already computed
  std::unique_ptr<GenerationState> state;
  std::string text, stop_reason;
  CallStats first;  // the first slice's: its restore is the call's switch
  size_t slices = 0, bytes_read = 0, bytes_written = 0;
  double decode_seconds = 0;
};

void Service::Requeue(Job job) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string app = job.session->app();
  queues_[app].push_back(std::move(job));
  ++queued_;
  cv_.notify_one();
}

void Service::RunCallSlice(Job job) {
  const uint64_t rid = job.request.value("id", uint64_t{0});
  Session* session = job.session.get();
  if (job.progress == nullptr) {
    StatusOr<std::shared_ptr<CallProgress>> started = StartCall(session, job.request);
    if (!started.ok()) {
      session->Forget(rid);
      metrics_.RecordCall(CallStats{}, 0, 0, 0, "error");
      session->Send(wire::ErrorMessage(rid, started.status()));
      return;
    }
    job.progress = std::move(started).value();
  }
  CallProgress& p = *job.progress;
  GenerateOptions options = p.call.options;
  std::span<const int32_t> piece(p.prompt);
  piece = piece.subspan(p.prompt_done);
  if (piece.size() > limits_.prefill_slice) {
    piece = piece.first(limits_.prefill_slice);  // more prompt first; nothing generated yet
    options.max_tokens = 0;
  } else {
    options.state = p.state.get();
    options.yield_after = limits_.decode_slice;
  }
  auto on_text = [&](std::string_view text) {
    if (session->cancelled(rid)) return false;
    p.text += text;
    return session->Send(Json{{"type", "token"}, {"id", rid}, {"text", std::string(text)}});
  };
  StatusOr<CallResult> r = session->cancelled(rid) ? StatusOr<CallResult>(CallResult{})
                                                   : manager_->Call(session->app(), p.call.context,
                                                                    piece, options, on_text);
  if (!r.ok()) {
    session->Forget(rid);
    metrics_.RecordCall(p.first, 0, 0, 0, "error");
    session->Send(wire::ErrorMessage(rid, r.status()));
    return;
  }
  p.prompt_done += piece.size();
  p.decode_seconds += r->generation.decode_seconds;
  if (p.slices++ == 0) p.first = r->stats;
  p.bytes_read += r->stats.bytes_read;
  p.bytes_written += r->stats.bytes_written;
  const std::string reason = session->cancelled(rid) ? "cancelled" : r->generation.stop_reason;
  if (reason != "cancelled" && (p.prompt_done < p.prompt.size() || reason == "yield")) {
    return Requeue(std::move(job));  // other calls take their turn
  }
  session->Forget(rid);
  CallStats stats = p.first;
  stats.bytes_read = p.bytes_read;
  stats.bytes_written = p.bytes_written;
  metrics_.RecordCall(stats, p.prompt.size(), p.state->generated, p.decode_seconds,
                      reason == "cancelled" ? "cancelled" : "ok");
  Json done{
      {"type", "done"},
      {"id", rid},
      {"context", p.call.context},
      {"text", p.text},
      {"stop_reason", reason},
      {"usage", {{"prompt_tokens", p.prompt.size()}, {"completion_tokens", p.state->generated}}},
      {"stats", StatsJson(stats)}};
  if (call_observer_) {
    call_observer_(Json{{"app", session->app()},
                        {"context", p.call.context},
                        {"prompt_tokens", p.prompt.size()},
                        {"completion_tokens", p.state->generated},
                        {"slices", p.slices},
                        {"switch_ms", 1e3 * stats.extra_first_token_seconds},
                        {"chunks_loaded", stats.chunks_loaded},
                        {"chunks_recomputed", stats.chunks_recomputed},
                        {"outcome", reason}});
  }
  session->Send(done);
}

Json Service::Execute(Session* session, const Json& request, Status* status) {
  const std::string type = request.value("type", "");
  StatusOr<Json> r = type == "create" ? Create(session, request) : Delete(session, request);
  *status = r.status();
  return r.ok() ? std::move(r).value() : Json();
}

StatusOr<Json> Service::Create(Session* session, const Json& request) {
  LLMS_ASSIGN_OR_RETURN(std::string system, wire::GetString(request, "system_prompt", ""));
  const size_t owned = manager_->ListContexts(session->app()).size();
  if (owned >= limits_.max_contexts_per_app) {
    return Status::ResourceExhausted("this app has " + std::to_string(owned) +
                                     " contexts, the limit; delete one first");
  }
  std::vector<int32_t> prefix;
  if (!system.empty()) prefix = model_->tokenizer().Encode(system, true);
  if (prefix.size() > limits_.max_prompt_tokens) {
    return Status::InvalidArgument("system prompt of " + std::to_string(prefix.size()) +
                                   " tokens exceeds the limit of " +
                                   std::to_string(limits_.max_prompt_tokens));
  }
  LLMS_ASSIGN_OR_RETURN(uint64_t id, manager_->CreateContext(session->app(), prefix));
  return Json{{"type", "created"}, {"context", id}, {"tokens", prefix.size()}};
}

StatusOr<std::shared_ptr<Service::CallProgress>> Service::StartCall(Session* session,
                                                                    const Json& request) {
  auto p = std::make_shared<CallProgress>();
  LLMS_ASSIGN_OR_RETURN(p->call, ParseCall(request, Window(), model_->config().vocab_size));
  const CallRequest& c = p->call;
  LLMS_ASSIGN_OR_RETURN(std::vector<int32_t> have,
                        manager_->ContextTokens(session->app(), c.context));
  p->prompt = c.has_tokens ? c.tokens : model_->tokenizer().Encode(c.prompt, have.empty());
  if (p->prompt.size() > limits_.max_prompt_tokens) {
    return Status::InvalidArgument("prompt of " + std::to_string(p->prompt.size()) +
                                   " tokens exceeds the limit of " +
                                   std::to_string(limits_.max_prompt_tokens) + " per call");
  }
  const size_t window = Window();
  const size_t need = p->prompt.size() + c.options.max_tokens;
  if (have.size() + need > window && limits_.slide_full_contexts &&
      need + 2 * kSinkTokens <= window) {
    // Keep half of what is left after the sink and this call, so the next turns fit too.
    LLMS_RETURN_IF_ERROR(
        manager_->SlideContext(session->app(), c.context, (window - kSinkTokens - need) / 2));
    LLMS_ASSIGN_OR_RETURN(have, manager_->ContextTokens(session->app(), c.context));
  }
  if (have.size() + need > window) {
    return Status::ResourceExhausted(
        "context " + std::to_string(c.context) + " holds " + std::to_string(have.size()) +
        " tokens; with this prompt's " + std::to_string(p->prompt.size()) + " and max_tokens " +
        std::to_string(c.options.max_tokens) + " it would exceed the model window of " +
        std::to_string(window) + " tokens: start a new context, ask for fewer tokens" +
        (limits_.slide_full_contexts ? "" : ", or run llmsd with --full-context slide"));
  }
  p->state = std::make_unique<GenerationState>(&model_->tokenizer(), c.options);
  return p;
}

StatusOr<Json> Service::Delete(Session* session, const Json& request) {
  LLMS_ASSIGN_OR_RETURN(uint64_t id, wire::GetUint(request, "context"));
  LLMS_RETURN_IF_ERROR(manager_->DeleteContext(session->app(), id));
  return Json{{"type", "deleted"}, {"context", id}};
}

StatusOr<Json> Service::List(const Session& session) {
  Json contexts = Json::array();
  for (const ContextInfo& info : manager_->ListContexts(session.app())) {
    contexts.push_back(InfoJson(info));
  }
  return Json{{"type", "contexts"}, {"contexts", contexts}};
}

StatusOr<Json> Service::Stats(const Session& session, const Json& request) {
  LLMS_ASSIGN_OR_RETURN(uint64_t id, wire::GetUint(request, "context"));
  LLMS_ASSIGN_OR_RETURN(ContextInfo info, manager_->GetContextInfo(session.app(), id));
  Json out = InfoJson(info);
  out["type"] = "stats";
  return out;
}

}  // namespace llms
