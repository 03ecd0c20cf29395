// Service: running calls. A call starts (placed in a context if it came over HTTP, its prompt
// tokenized and checked against the window), runs in slices that go back to the queue in
// between, and ends once: with `done`, or with an error that leaves the context as the call
// found it (and deletes a context the call itself created).
#include <algorithm>

#include "base/clock.h"
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

// A call between its slices.
struct Service::CallProgress {
  CallRequest call;
  std::vector<int32_t> prompt;
  size_t prompt_done = 0;        // prompt tokens already computed
  size_t call_start_tokens = 0;  // the context's tokens when the call began
  bool created_context = false;  // an HTTP call that made its own context
  std::unique_ptr<GenerationState> state;
  std::string text;
  CallStats first;  // the first slice's: its restore is the call's switch
  size_t slices = 0, bytes_read = 0, bytes_written = 0, chunks_damaged = 0;
  std::string damage;
  double decode_seconds = 0;
};

void Service::Requeue(Job job) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string app = job.session->app();
  queues_[app].push_back(std::move(job));
  ++queued_;
  cv_.notify_one();
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

Status Service::StartCall(Session* session, const Job& job, CallProgress* p) {
  LLMS_ASSIGN_OR_RETURN(p->call, ParseCall(job.request, Window(), model_->config().vocab_size));
  if (job.placed != nullptr) LLMS_RETURN_IF_ERROR(Place(session, *job.placed, p));
  const CallRequest& c = p->call;
  std::vector<int32_t> have;
  if (c.context != 0 || job.placed == nullptr) {
    LLMS_ASSIGN_OR_RETURN(have, manager_->ContextTokens(session->app(), c.context));
  }
  p->prompt = c.has_tokens ? c.tokens : model_->tokenizer().Encode(c.prompt, have.empty());
  if (p->prompt.size() > limits_.max_prompt_tokens) {
    return Status::InvalidArgument("prompt of " + std::to_string(p->prompt.size()) +
                                   " tokens exceeds the limit of " +
                                   std::to_string(limits_.max_prompt_tokens) + " per call");
  }
  const size_t window = Window();
  const size_t need = p->prompt.size() + c.options.max_tokens;
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
        " prompt's " + std::to_string(p->prompt.size()) + " tokens and max_tokens " +
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
  p->state = std::make_unique<GenerationState>(&model_->tokenizer(), c.options);
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
    if (Status s = StartCall(session, job, job.progress.get()); !s.ok()) {
      return FinishCall(job, s, "");
    }
  }
  CallProgress& p = *job.progress;
  if (p.slices == 0 && !ClaimContext(session, rid, p.call.context)) {
    // Another call is running on this context: this one starts after it (from the top, so it
    // sees the text that call leaves).
    job.progress = nullptr;
    return Requeue(std::move(job));
  }
  if (session->cancelled(rid)) {
    // Cancelled between slices: what ran so far stays and is made durable now.
    Status s = p.slices == 0
                   ? Status::Ok()
                   : manager_->FinishCall(session->app(), p.call.context, p.call_start_tokens);
    return FinishCall(job, s, "cancelled");
  }
  GenerateOptions options = p.call.options;
  std::span<const int32_t> piece(p.prompt);
  piece = piece.subspan(p.prompt_done);
  const bool more_prompt = piece.size() > limits_.prefill_slice;
  if (more_prompt) {
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
  StatusOr<CallResult> r = manager_->Call(session->app(), p.call.context, piece, options, on_text,
                                          CallSlice{more_prompt, p.call_start_tokens});
  if (!r.ok()) return FinishCall(job, r.status(), "");
  p.prompt_done += piece.size();
  p.decode_seconds += r->generation.decode_seconds;
  if (p.slices++ == 0) p.first = r->stats;
  p.bytes_read += r->stats.bytes_read;
  p.bytes_written += r->stats.bytes_written;
  p.chunks_damaged += r->stats.chunks_damaged;
  if (p.damage.empty()) p.damage = r->stats.damage;
  const std::string reason = r->generation.stop_reason;
  if (reason != "cancelled" && (more_prompt || reason == "yield")) {
    return Requeue(std::move(job));  // other calls take their turn
  }
  FinishCall(job, Status::Ok(), reason);
}

void Service::FinishCall(Job& job, Status status, const std::string& stop_reason) {
  const uint64_t rid = job.request.value("id", uint64_t{0});
  Session* session = job.session.get();
  CallProgress* p = job.progress.get();
  session->Forget(rid);
  Deactivate(session, rid);
  const bool nothing_ran = p == nullptr || p->slices == 0;
  if (p != nullptr && p->created_context && (!status.ok() || nothing_ran)) {
    // A request that failed (or was cancelled before it ran) leaves no context of its own.
    (void)manager_->DeleteContext(session->app(), p->call.context);
  }
  if (!status.ok()) {
    metrics_.RecordCall(p != nullptr ? p->first : CallStats{}, 0, 0, 0, "error");
    session->Send(wire::ErrorMessage(rid, status));
    return;
  }
  CallStats stats = p->first;
  stats.bytes_read = p->bytes_read;
  stats.bytes_written = p->bytes_written;
  stats.chunks_damaged = p->chunks_damaged;
  stats.damage = p->damage;
  const size_t generated = p->state != nullptr ? p->state->generated : 0;
  metrics_.RecordCall(stats, p->prompt.size(), generated, p->decode_seconds,
                      stop_reason == "cancelled" ? "cancelled" : "ok");
  Json done{{"type", "done"},
            {"id", rid},
            {"context", p->call.context},
            {"text", p->text},
            {"stop_reason", stop_reason},
            {"usage",
             {{"prompt_tokens", p->prompt.size()},
              {"completion_tokens", generated},
              {"cached_tokens", p->call_start_tokens}}},
            {"stats", StatsJson(stats)}};
  if (call_observer_) {
    Json summary{{"app", session->app()},
                 {"context", p->call.context},
                 {"prompt_tokens", p->prompt.size()},
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
