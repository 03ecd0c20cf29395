#include "service/service.h"

#include <algorithm>

#include "base/clock.h"
#include "formats/kv_format.h"
#include "service/call_request.h"
#include "spdlog/spdlog.h"

namespace llms {
namespace {

using wire::Json;

Json InfoJson(const ContextInfo& info) {
  Json levels = Json::object();
  for (size_t l = 0; l < info.chunks_per_level.size() && l < kNumKvLevels; ++l) {
    levels[KvLevelName(static_cast<KvLevel>(l))] = info.chunks_per_level[l];
  }
  Json out{{"context", info.id},
           {"origin", info.origin},
           {"tokens", info.tokens},
           {"chunks", info.chunks},
           {"resident_chunks", info.resident_chunks},
           {"flash_chunks", info.flash_chunks},
           {"resident_bytes", info.resident_bytes},
           {"chunks_per_level", levels},
           {"last_used_unix_ms", info.last_used_unix_ms}};
  if (!info.damage.empty()) out["damaged"] = info.damage;
  return out;
}

}  // namespace

// ---- Session ----------------------------------------------------------------------------------

bool Session::Send(const Json& message) {
  if (closed_) return false;
  MutexLock lock(&mu_);
  if (!sender_(message).ok()) closed_ = true;
  return !closed_;
}

void Session::Close() { closed_ = true; }

void Session::Cancel(uint64_t request_id) {
  MutexLock lock(&mu_);
  cancelled_.insert(request_id);
}

bool Session::cancelled(uint64_t request_id) {
  MutexLock lock(&mu_);
  return closed_ || cancelled_.count(request_id) > 0;
}

void Session::Forget(uint64_t request_id) {
  MutexLock lock(&mu_);
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
    MutexLock lock(&mu_);
    draining_ = true;
  }
  cv_.NotifyAll();
  if (worker_.joinable()) worker_.join();
}

size_t Service::queued() const {
  MutexLock lock(&mu_);
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
    reply = Cancel(session, request, &status);
  } else if (type == "create" || type == "call" || type == "delete") {
    status = Enqueue(Job{session, request, Clock::Real()->MonotonicSeconds(), nullptr, nullptr});
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

void Service::HandlePlaced(const std::shared_ptr<Session>& session, uint64_t id,
                           PlacedCall placed) {
  Json request = placed.call;
  request["type"] = "call";
  request["id"] = id;
  request["context"] = placed.context;
  request["prompt_tokens"] = Json::array();  // the worker's placement gives the prompt
  auto shared = std::make_shared<const PlacedCall>(std::move(placed));
  Status status =
      Enqueue(Job{session, request, Clock::Real()->MonotonicSeconds(), shared, nullptr});
  if (!status.ok()) session->Send(wire::ErrorMessage(id, status));
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

Status Service::Enqueue(Job job) {
  if (job.request.value("type", "") == "call") {
    // Validated now, so a bad field is answered at once rather than after the queue.
    LLMS_RETURN_IF_ERROR(ParseCall(job.request, Window(), model_->config().vocab_size).status());
  }
  MutexLock lock(&mu_);
  if (draining_) return Status::Unavailable("llmsd is shutting down; retry after it restarts");
  std::deque<Job>& q = queues_[job.session->app()];
  if (q.size() >= limits_.max_queued_per_app) {
    return Status::Unavailable("this app already has " + std::to_string(q.size()) +
                               " requests queued (the limit); wait for one to finish");
  }
  if (queued_ >= limits_.max_queued) {
    return Status::Unavailable("llmsd is busy: " + std::to_string(queued_) +
                               " requests queued (the limit); retry later");
  }
  if (job.request.value("type", "") == "call") Activate(job);
  q.push_back(std::move(job));
  ++queued_;
  cv_.NotifyOne();
  return Status::Ok();
}

// ---- Cancellation ------------------------------------------------------------------------------

// REQUIRES: mu_ held.
void Service::Activate(const Job& job) {
  active_.emplace(job.session->app(), ActiveCall{job.session, job.request.value("id", uint64_t{0}),
                                                 job.request.value("context", uint64_t{0})});
}

void Service::Deactivate(const Session* session, uint64_t id) {
  MutexLock lock(&mu_);
  auto [first, last] = active_.equal_range(session->app());
  for (auto it = first; it != last; ++it) {
    if (it->second.id == id && it->second.session.lock().get() == session) {
      active_.erase(it);
      return;
    }
  }
}

bool Service::ClaimContext(const Session* session, uint64_t id, uint64_t context) {
  MutexLock lock(&mu_);
  auto [first, last] = active_.equal_range(session->app());
  ActiveCall* self = nullptr;
  for (auto it = first; it != last; ++it) {
    const bool mine = it->second.id == id && it->second.session.lock().get() == session;
    if (mine) {
      self = &it->second;
    } else if (it->second.started && it->second.context == context) {
      return false;
    }
  }
  if (self != nullptr) {
    self->context = context;
    self->started = true;
  }
  return true;
}

bool Service::ContextBusy(const std::string& app, uint64_t context) const {
  MutexLock lock(&mu_);
  auto [first, last] = active_.equal_range(app);
  for (auto it = first; it != last; ++it) {
    if (it->second.started && it->second.context == context) return true;
  }
  return false;
}

// Cancels, by `target`, a call of this connection, or, by `context`, every call of this app on
// that context from any connection. Only calls queued or running are touched.
Json Service::Cancel(const std::shared_ptr<Session>& session, const Json& request, Status* status) {
  const bool by_context = request.contains("context");
  StatusOr<uint64_t> key = wire::GetUint(request, by_context ? "context" : "target");
  if (!key.ok()) {
    *status = key.status();
    return {};
  }
  size_t cancelled = 0;
  {
    MutexLock lock(&mu_);
    auto [first, last] = active_.equal_range(session->app());
    for (auto it = first; it != last; ++it) {
      std::shared_ptr<Session> owner = it->second.session.lock();
      const bool match =
          by_context ? it->second.context == *key : owner == session && it->second.id == *key;
      if (owner == nullptr || !match) continue;
      owner->Cancel(it->second.id);
      ++cancelled;
    }
  }
  if (cancelled == 0) {
    *status = Status::NotFound(by_context ? "no call on context " + std::to_string(*key) +
                                                " is queued or running"
                                          : "no call with id " + std::to_string(*key) +
                                                " is queued or running on this connection");
    return {};
  }
  Json reply{{"type", "cancelled"}, {"calls", cancelled}};
  reply[by_context ? "context" : "target"] = *key;
  return reply;
}

// ---- The worker
// -----------------------------------------------------------------------------------

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
      MutexLock lock(&mu_);
      while (queued_ == 0 && !draining_) cv_.Wait(&lock);
      if (queued_ == 0) return;  // draining and nothing left
      if (!PopNext(&job)) continue;
    }
    // The last line should a library throw after all: that request fails, the worker goes on.
    try {
      Run(job);
    } catch (const std::exception& e) {
      spdlog::error("event=internal_error app={} error=\"{}\"", job.session->app(), e.what());
      const uint64_t id = wire::UintOr(job.request, "id", 0);
      Deactivate(job.session.get(), id);
      job.session->Send(
          wire::ErrorMessage(id, Status::IOError(std::string("internal error: ") + e.what())));
    }
  }
}

void Service::Run(const Job& job) {
  const uint64_t rid = job.request.value("id", uint64_t{0});
  const std::string type = job.request.value("type", "");
  const double waited = Clock::Real()->MonotonicSeconds() - job.queued_at;
  Status status;
  Json reply;
  if (type == "call") return RunCallSlice(job);  // it checks cancellation and the queue time
  if (waited > limits_.queue_timeout_seconds) {
    status = Status::Unavailable("timed out after " + std::to_string(static_cast<int>(waited)) +
                                 " s in the queue");
  } else {
    reply = Execute(job.session.get(), job.request, &status);
  }
  if (!status.ok()) {
    job.session->Send(wire::ErrorMessage(rid, status));
    return;
  }
  reply["id"] = rid;
  job.session->Send(reply);
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

std::vector<ContextInfo> Service::DamagedContexts() const {
  std::vector<ContextInfo> out;
  for (const ContextInfo& info : manager_->ListAllContexts()) {
    if (!info.damage.empty()) out.push_back(info);
  }
  return out;
}

}  // namespace llms
