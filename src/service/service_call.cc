// Service: running calls. A call starts (placed in a context if it came over HTTP, its prompt
// tokenized and checked against the window), runs in slices that go back to the queue in
// between, and ends once: with `done`, or with an error that leaves the context as the call
// found it (and deletes a context the call itself created).
#include <algorithm>

#include "base/clock.h"
#include "memory/call_session.h"
#include "service/call_request.h"
#include "service/openai.h"
#include "service/service.h"

namespace llms {
namespace {

using wire::Json;

Json StatsJson(const CallStats& s) {
  return Json{{"chunks", s.chunks},
              {"chunks_resident", s.chunks_resident},
              {"chunks_loaded", s.chunks_loaded},
              {"chunks_recomputed", s.chunks_recomputed},
              {"chunks_damaged", s.chunks_damaged},
              {"bytes_read", s.bytes_read},
              {"bytes_written", s.bytes_written},
              {"ready_ms", 1e3 * s.ready_seconds},
              {"first_token_ms", 1e3 * s.first_token_seconds},
              {"extra_first_token_ms", 1e3 * s.extra_first_token_seconds}};
}

}  // namespace

// A call between its slices: its session holds the context and the restore state.
struct Service::CallProgress {
  CallRequest call;
  size_t prompt_tokens = 0;
  size_t call_start_tokens = 0;  // the context's tokens when the call began
  bool created_context = false;  // an HTTP call that made its own context
  std::unique_ptr<CallSession> session;
  std::string text;
  size_t slices = 0;
  double decode_seconds = 0;
};

void Service::Requeue(Job job) {
  MutexLock lock(&mu_);
  const std::string app = job.session->app();
  queues_[app].push_back(std::move(job));
  ++queued_;
  cv_.NotifyOne();
}

StatusOr<uint64_t> Service::CreateHttpContext(const std::string& app) {
  std::vector<ContextInfo> owned = manager_->ListContexts(app);
  if (owned.size() >= limits_.max_contexts_per_app) {
    // An HTTP client resends its whole conversation, so its contexts can go without loss: the
    // least recently used one that no call is using makes room.
    const ContextInfo* oldest = nullptr;
    for (const ContextInfo& info : owned) {
      if (info.origin != "http" || ContextBusy(app, info.id)) continue;
      if (oldest == nullptr || info.last_used_unix_ms < oldest->last_used_unix_ms) oldest = &info;
    }
    if (oldest == nullptr) {
      return Status::ResourceExhausted(
          "this app has " + std::to_string(owned.size()) +
          " contexts, the limit, and none made by the HTTP API is free to retire; delete one "
          "(DELETE /v1/llms/contexts/ID)");
    }
    LLMS_RETURN_IF_ERROR(manager_->DeleteContext(app, oldest->id));
  }
  return manager_->CreateContext(app, {}, "http");
}

Status Service::Place(Session* session, const PlacedCall& placed, CallProgress* p) {
  const std::string& app = session->app();
  LLMS_ASSIGN_OR_RETURN(
      openai::Placement where,
      openai::Place(manager_, model_->tokenizer(), app, placed.text, placed.context,
                    [&](uint64_t id) { return ContextBusy(app, id); }));
  p->call.context = where.context;  // 0: a new context, made once the call passes its checks
  p->call.has_tokens = true;
  p->call.tokens = std::move(where.prompt);
  return Status::Ok();
}

Status Service::StartCall(Session* session, const Job& job, CallProgress* p, bool* busy) {
  LLMS_ASSIGN_OR_RETURN(p->call, ParseCall(job.request, Window(), model_->config().vocab_size));
  if (job.placed != nullptr) LLMS_RETURN_IF_ERROR(Place(session, *job.placed, p));
  const CallRequest& c = p->call;
  std::vector<int32_t> have;
  if (c.context != 0 || job.placed == nullptr) {
    LLMS_ASSIGN_OR_RETURN(have, manager_->ContextTokens(session->app(), c.context));
  }
  std::vector<int32_t> prompt =
      c.has_tokens ? c.tokens : model_->tokenizer().Encode(c.prompt, have.empty());
  if (prompt.size() > limits_.max_prompt_tokens) {
    return Status::InvalidArgument("prompt of " + std::to_string(prompt.size()) +
                                   " tokens exceeds the limit of " +
                                   std::to_string(limits_.max_prompt_tokens) + " per call");
  }
  const size_t window = Window();
  const size_t need = prompt.size() + c.options.max_tokens;
  if (have.size() + need > window && limits_.slide_full_contexts && c.context != 0 &&
      need + 2 * kSinkTokens <= window) {
    // Keep half of what is left after the sink and this call, so the next turns fit too.
    LLMS_RETURN_IF_ERROR(
        manager_->SlideContext(session->app(), c.context, (window - kSinkTokens - need) / 2));
    LLMS_ASSIGN_OR_RETURN(have, manager_->ContextTokens(session->app(), c.context));
  }
  if (have.size() + need > window) {
    return Status::ResourceExhausted(
        (c.context != 0 ? "context " + std::to_string(c.context) + " holds " +
                              std::to_string(have.size()) + " tokens; with this"
                        : std::string("this")) +
        " prompt's " + std::to_string(prompt.size()) + " tokens and max_tokens " +
        std::to_string(c.options.max_tokens) + " it would exceed the model window of " +
        std::to_string(window) + " tokens: start a new context, ask for fewer tokens" +
        (limits_.slide_full_contexts ? "" : ", or run llmsd with --full-context slide"));
  }
  if (c.context == 0) {  // an HTTP call that continues none of the app's contexts
    LLMS_ASSIGN_OR_RETURN(p->call.context, CreateHttpContext(session->app()));
    p->created_context = true;
  }
  if (job.placed != nullptr) {
    // The HTTP front end sends its stream's headers (X-Llms-Context) with this.
    session->Send(Json{{"type", "placed"},
                       {"id", job.request.value("id", uint64_t{0})},
                       {"context", p->call.context}});
  }
  p->call_start_tokens = have.size();
  p->prompt_tokens = prompt.size();
  if (!ClaimContext(session, job.request.value("id", uint64_t{0}), p->call.context)) {
    *busy = true;  // another call is running on it: this one waits its turn
    return Status::Ok();
  }
  LLMS_ASSIGN_OR_RETURN(
      p->session, manager_->BeginCall(session->app(), p->call.context, std::move(prompt), c.options,
                                      StepLimits{limits_.prefill_slice, limits_.decode_slice}));
  return Status::Ok();
}

void Service::RunCallSlice(Job job) {
  const uint64_t rid = job.request.value("id", uint64_t{0});
  Session* session = job.session.get();
  if (job.progress == nullptr) {
    const double waited = Clock::Real()->MonotonicSeconds() - job.queued_at;
    if (session->cancelled(rid)) {
      return FinishCall(job, Status::Unavailable("cancelled before it started"), "");
    }
    if (waited > limits_.queue_timeout_seconds) {
      return FinishCall(
          job,
          Status::Unavailable("timed out after " + std::to_string(static_cast<int>(waited)) +
                              " s in the queue"),
          "");
    }
    job.progress = std::make_shared<CallProgress>();
    bool busy = false;
    if (Status s = StartCall(session, job, job.progress.get(), &busy); !s.ok()) {
      return FinishCall(job, s, "");
    }
    if (busy) {  // it starts after the other (from the top, to see the text that one leaves)
      job.progress = nullptr;
      return Requeue(std::move(job));
    }
  }
  CallProgress& p = *job.progress;
  if (session->cancelled(rid)) {  // between slices: what ran so far stays, made durable now
    return FinishCall(job, Status::Ok(), "cancelled");
  }
  auto on_text = [&](std::string_view text) {
    if (session->cancelled(rid)) return false;
    p.text += text;
    return session->Send(Json{{"type", "token"}, {"id", rid}, {"text", std::string(text)}});
  };
  StatusOr<GenerateResult> step = p.session->Step(on_text);
  if (!step.ok()) return FinishCall(job, step.status(), "");
  ++p.slices;
  p.decode_seconds += step->decode_seconds;
  if (!p.session->finished()) return Requeue(std::move(job));  // other calls take their turn
  FinishCall(job, Status::Ok(), step->stop_reason);
}

void Service::FinishCall(Job& job, Status status, const std::string& stop_reason) {
  const uint64_t rid = job.request.value("id", uint64_t{0});
  Session* session = job.session.get();
  CallProgress* p = job.progress.get();
  session->Forget(rid);
  Deactivate(session, rid);
  CallStats stats;
  size_t generated = 0;
  if (p != nullptr && p->session != nullptr) {
    generated = p->session->generated();
    if (status.ok()) {  // the call's text is committed here, once
      StatusOr<CallResult> ended = p->session->End();
      status = ended.status();
      if (ended.ok()) stats = ended->stats;
    }
    p->session.reset();  // a session not ended (a failure) puts the context back
  }
  const bool nothing_ran = p == nullptr || p->slices == 0;
  if (p != nullptr && p->created_context && (!status.ok() || nothing_ran)) {
    // A request that failed (or was cancelled before it ran) leaves no context of its own.
    (void)manager_->DeleteContext(session->app(), p->call.context);
  }
  if (!status.ok()) {
    metrics_.RecordCall(stats, 0, 0, 0, "error");
    session->Send(wire::ErrorMessage(rid, status));
    return;
  }
  metrics_.RecordCall(stats, p->prompt_tokens, generated, p->decode_seconds,
                      stop_reason == "cancelled" ? "cancelled" : "ok");
  Json done{{"type", "done"},
            {"id", rid},
            {"context", p->call.context},
            {"text", p->text},
            {"stop_reason", stop_reason},
            {"usage",
             {{"prompt_tokens", p->prompt_tokens},
              {"completion_tokens", generated},
              {"cached_tokens", p->call_start_tokens}}},
            {"stats", StatsJson(stats)}};
  if (call_observer_) {
    Json summary{{"app", session->app()},
                 {"context", p->call.context},
                 {"prompt_tokens", p->prompt_tokens},
                 {"cached_tokens", p->call_start_tokens},
                 {"completion_tokens", generated},
                 {"slices", p->slices},
                 {"switch_ms", 1e3 * stats.extra_first_token_seconds},
                 {"chunks_loaded", stats.chunks_loaded},
                 {"chunks_recomputed", stats.chunks_recomputed},
                 {"outcome", stop_reason}};
    if (stats.chunks_damaged > 0) {
      summary["chunks_damaged"] = stats.chunks_damaged;
      summary["damage"] = stats.damage;
    }
    call_observer_(summary);
  }
  session->Send(done);
}

}  // namespace llms
