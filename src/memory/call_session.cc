#include "memory/call_session.h"

#include <algorithm>

namespace llms {
namespace {

Status AnotherCallRuns() { return Status::Unavailable("another call is running"); }

void Append(GenerateResult* total, GenerateResult&& step) {
  total->prompt_tokens += step.prompt_tokens;
  total->prefill_seconds += step.prefill_seconds;
  total->decode_seconds += step.decode_seconds;
  total->prompt_logits.insert(total->prompt_logits.end(), step.prompt_logits.begin(),
                              step.prompt_logits.end());
  total->tokens.insert(total->tokens.end(), step.tokens.begin(), step.tokens.end());
  total->text += step.text;
  total->stop_reason = step.stop_reason;
}

}  // namespace

CallSession::CallSession(KvManager* manager, Context* ctx, std::vector<int32_t> prompt,
                         const GenerateOptions& options, const StepLimits& limits)
    : m_(manager),
      ctx_(ctx),
      prompt_(std::move(prompt)),
      options_(options),
      limits_(limits),
      call_(manager->options_.clock),
      state_(&manager->engine_->model().tokenizer(), options) {}

StatusOr<std::unique_ptr<CallSession>> CallSession::Begin(KvManager* m, const std::string& app,
                                                          uint64_t id, std::vector<int32_t> prompt,
                                                          const GenerateOptions& options,
                                                          const StepLimits& limits) {
  StepGuard guard(&m->stepping_);
  if (!guard.held()) return AnotherCallRuns();
  Context* ctx = nullptr;
  {
    MutexLock lock(&m->mu_);
    LLMS_ASSIGN_OR_RETURN(ctx, m->table_.Find(app, id));
    LLMS_RETURN_IF_ERROR(ContextTable::CheckUsable(*ctx));
    if (ctx->locked) {
      return Status::Unavailable("context " + std::to_string(id) + " is busy with another call");
    }
    ctx->locked_info = m->table_.Info(*ctx);
    ctx->locked_tokens = ctx->tokens;
    ctx->locked = true;
  }
  auto session = std::make_unique<CallSession>(m, ctx, std::move(prompt), options, limits);
  LLMS_RETURN_IF_ERROR(session->Admit());  // on failure the session's end unlocks the context
  return session;
}

CallSession::~CallSession() {
  if (!ended_) Abort();
}

// Before the restore: an empty prompt needs a token to compute (the logits of the next one), so
// when nothing is pending the last token's KV goes (its row in an f16 chunk, else its chunk).
Status CallSession::Admit() {
  if (m_->writer_ != nullptr) m_->writer_->ResetCallCounters();
  {
    MutexLock lock(&m_->mu_);
    call_start_tokens_ = ctx_->tokens.size();
    const size_t n = ctx_->tokens.size(), T = ctx_->cache->chunk_tokens();
    if (prompt_.empty() && n > 0 && ctx_->cache->num_tokens() >= n) {
      const KvChunk* last = ctx_->cache->chunk((n - 1) / T);
      const std::vector<int32_t> text = ctx_->tokens;
      m_->TruncateContext(
          ctx_, last != nullptr && last->level() == KvLevel::kF16 ? n - 1 : (n - 1) / T * T);
      ctx_->tokens = text;  // the text stays; only its KV is pending now
    }
  }
  PlanRestore();
  // Room for the chunks to read first, so that their dirty victims are written as one batch.
  (void)m_->MakeRoom(restorer_->load_bytes());
  return restorer_->Start(ctx_->cache.get(), call_);
}

void CallSession::PlanRestore() {
  MutexLock lock(&m_->mu_);
  const size_t T = ctx_->cache->chunk_tokens(), kv = ctx_->cache->num_tokens();
  begin_kv_ = kv;
  stats_ = CallStats{};
  stats_.chunks = ctx_->cache->num_chunks();
  ctx_->chunks.resize(stats_.chunks);
  std::vector<MissingChunkState> missing;
  for (size_t i = 0; i < stats_.chunks; ++i) {
    if (ctx_->cache->chunk(i) != nullptr) {
      ++stats_.chunks_resident;
      continue;
    }
    const ChunkState& s = ctx_->chunks[i];
    const size_t tokens = std::min(T, kv - i * T);
    missing.push_back({i, tokens, m_->table_.FlashCopyMatches(*ctx_, i, tokens), s.meta, s.prob_sum,
                       s.prob_count});
  }
  // The restore shares the first pass, which computes the pending tokens and the first piece.
  const size_t first_step = std::min(prompt_.size(), limits_.max_prompt_rows);
  const size_t first_rows = ctx_->tokens.size() - kv + PromptPieces(first_step).front();
  restorer_ = std::make_unique<Restorer>(m_->store_, m_->engine_->config().n_layers);
  restorer_->Plan(std::move(missing), first_rows, static_cast<double>(kv) / 2.0, m_->cost_,
                  m_->options_.policy.restore, m_->read_path_);
  ++m_->restore_plans_;
  stats_.chunks_recomputed = restorer_->recompute().size();
  stats_.chunks_loaded = restorer_->load().size();
  stats_.bulk_read = restorer_->bulk_read() && !restorer_->load().empty();
  stats_.bytes_read = restorer_->bytes_read();
}

StatusOr<GenerateResult> CallSession::Step(const std::function<bool(std::string_view)>& on_text) {
  if (finished_ || ended_) return Status::InvalidArgument("this call has no step left");
  StepGuard guard(&m_->stepping_);
  if (!guard.held()) return AnotherCallRuns();
  const size_t left = prompt_.size() - prompt_done_;
  const size_t take = std::min(left, limits_.max_prompt_rows);
  const bool more_prompt = take < left;
  GenerateOptions g = options_;
  if (more_prompt) {  // more prompt first; nothing generated yet
    g.max_tokens = 0;
    g.state = nullptr;
  } else {
    g.state = &state_;
    g.yield_after = limits_.max_new_tokens == SIZE_MAX ? 0 : limits_.max_new_tokens;
  }
  const std::span<const int32_t> piece = std::span(prompt_).subspan(prompt_done_, take);
  StatusOr<GenerateResult> r = GenerateResult{};
  if (steps_ == 0) {
    FirstPass first;
    do {  // the first step carries the restore; once more if stored chunks failed their reads
      g.prefill.recompute_chunks = restorer_->recompute();
      g.prefill.before_layer = restorer_->BeforeLayer(ctx_->cache.get());
      r = RunPieces(piece, g, on_text, &first);
      restorer_->Finish();
    } while (!r.ok() && RetryAfterFailedReads());
    if (r.ok()) RecordFirstStep(*r, first);
  } else {
    r = RunPieces(piece, g, on_text, nullptr);
  }
  if (!r.ok()) {
    Abort();
    return r.status();
  }
  restorer_.reset();  // every old chunk is present now
  prompt_done_ += take;
  ++steps_;
  AfterPass();
  if (more_prompt) r->stop_reason = "yield";
  finished_ = r->stop_reason != "yield";
  GenerateResult step = *r;
  Append(&total_, std::move(step));
  return r;
}

// Runs the prompt piece in passes that fit the budget (PromptPieces), making room before each
// pass so that nothing is written while it runs; the last pass generates.
StatusOr<GenerateResult> CallSession::RunPieces(
    std::span<const int32_t> piece, const GenerateOptions& g,
    const std::function<bool(std::string_view)>& on_text, FirstPass* first) {
  const std::vector<size_t> pieces = PromptPieces(piece.size());
  GenerateResult total;
  size_t done = 0;
  double between = 0;  // making room and compressing between the pieces
  for (size_t k = 0; k < pieces.size(); ++k) {
    const bool last = k + 1 == pieces.size();
    GenerateOptions gk = g;
    if (k > 0) gk.prefill = ForwardOptions{};  // the restore rides on the first pass only
    if (!last) {
      gk.max_tokens = 0;
      gk.state = nullptr;
      gk.yield_after = 0;
    }
    const size_t generated = gk.state != nullptr ? gk.state->generated : 0;
    const size_t decode = std::min(gk.max_tokens - std::min(gk.max_tokens, generated),
                                   gk.yield_after == 0 ? SIZE_MAX : gk.yield_after);
    const size_t pending = ctx_->tokens.size() - ctx_->cache->num_tokens();
    const double room_start = call_.Seconds();
    (void)m_->MakeRoom(PassBytes(pending + pieces[k] + decode, gk.prefill.recompute_chunks.size()));
    if (k > 0) between += call_.Seconds() - room_start;
    if (k == 0 && first != nullptr) {  // the room made for it counts before its pass
      first->start = call_.Seconds();
      first->writes = m_->writer_ != nullptr ? m_->writer_->call_write_seconds() : 0.0;
    }
    m_->in_pass_ = true;
    StatusOr<GenerateResult> r =
        Generate(m_->engine_, ctx_->cache.get(), &ctx_->tokens, piece.subspan(done, pieces[k]), gk,
                 last ? on_text : nullptr);
    m_->in_pass_ = false;
    if (!r.ok()) return r.status();
    if (k == 0 && first != nullptr) {
      first->prefill = r->prefill_seconds;
      first->rows = r->prompt_tokens;
    }
    done += pieces[k];
    Append(&total, std::move(r).value());
    if (!last) {  // compress the finished chunks before the next piece
      const double compress_start = call_.Seconds();
      AfterPass();
      between += call_.Seconds() - compress_start;
    }
  }
  if (first != nullptr) first->between = between;
  return total;
}

// A call's new chunks are f16 until it is compressed, so a long prompt can need more than the
// budget even when its context, compressed, fits easily. Then the prompt is computed in pieces
// of a few chunks, and after each piece the finished chunks are compressed to their planned
// levels. One piece (the whole prompt) when it fits at f16 or the policy does not compress.
std::vector<size_t> CallSession::PromptPieces(size_t prompt_size) const {
  const Policy& p = m_->options_.policy;
  const KvLayout& L = m_->engine_->kv_layout();
  const KvCache& cache = *ctx_->cache;
  const size_t T = L.chunk_tokens, f16_chunk = L.LayerBytes(KvLevel::kF16) * cache.num_layers();
  const size_t old_kv = cache.num_tokens(), limit = m_->budget_.limit();
  const size_t new_chunks = CeilDiv(ctx_->tokens.size() + prompt_size, T) - cache.num_chunks();
  size_t missing = 0;
  for (size_t i = 0; i < cache.num_chunks(); ++i) missing += cache.chunk(i) == nullptr;
  const bool compresses =
      p.compression != CompressionMode::kUniform || p.uniform_level != KvLevel::kF16;
  // Worst case: every missing chunk recomputed at f16.
  const size_t context_bytes = cache.ResidentBytes() + f16_chunk * missing;
  if (!compresses || context_bytes + f16_chunk * new_chunks <= limit || prompt_size == 0) {
    return {prompt_size};
  }
  // A piece's f16 chunks take at most a quarter of the budget, and at most half of what the
  // context leaves free: the rest is room for the chunks the pieces compress.
  const size_t free_bytes = limit > context_bytes ? limit - context_bytes : 0;
  const size_t piece_tokens =
      T * std::max<size_t>(1, std::min(limit / 4, free_bytes / 2) / f16_chunk);
  const size_t pending = ctx_->tokens.size() - old_kv;  // computed with the first piece
  std::vector<size_t> pieces;
  size_t end = (old_kv / T) * T + piece_tokens;  // KV position where the first piece ends
  for (size_t done = 0; done < prompt_size; end += piece_tokens) {
    const size_t rows_so_far = done + pending, target = end - old_kv;
    const size_t room = target > rows_so_far ? target - rows_so_far : 0;
    pieces.push_back(std::min(prompt_size - done, std::max<size_t>(1, room)));
    done += pieces.back();
  }
  return pieces;
}

// An upper bound of the budget a pass of `new_rows` rows takes: an f16 chunk for each chunk it
// starts or recomputes, and the way back to f16 of a compressed chunk it extends.
size_t CallSession::PassBytes(size_t new_rows, size_t recomputed) const {
  const KvCache& cache = *ctx_->cache;
  const KvLayout& L = m_->engine_->kv_layout();
  const size_t T = L.chunk_tokens, f16_chunk = L.LayerBytes(KvLevel::kF16) * cache.num_layers();
  size_t bytes = recomputed * f16_chunk;
  if (new_rows == 0) return bytes;
  const size_t kv = cache.num_tokens();
  for (size_t c = kv / T; c <= (kv + new_rows - 1) / T; ++c) {
    const KvChunk* chunk = cache.chunk(c);
    bytes += chunk == nullptr ? f16_chunk : f16_chunk - std::min(f16_chunk, chunk->bytes());
  }
  return bytes;
}

void CallSession::AfterPass() {
  MutexLock lock(&m_->mu_);
  m_->AfterPass(ctx_);
}

void CallSession::RecordFirstStep(const GenerateResult& r, const FirstPass& first) {
  const size_t T = ctx_->cache->chunk_tokens(), old_kv = begin_kv_;
  // Everything until the first token: the passes, and the room made and the compression between
  // prompt pieces (the manager's clock times the rest, the engine's the passes).
  stats_.first_token_seconds = first.start + r.prefill_seconds + first.between;
  const double setup = first.start;
  // Ready: every old chunk present. Loaded ones arrive with the reads; recomputed ones with the
  // end of the first pass.
  stats_.ready_seconds = restorer_->ready_seconds();
  if (!restorer_->recompute().empty()) {
    stats_.ready_seconds = std::max(stats_.ready_seconds, stats_.first_token_seconds);
  }
  stats_.prompt_tokens = r.prompt_tokens;
  size_t recomputed_rows = 0;
  for (size_t c : restorer_->recompute())
    recomputed_rows += std::min(T, old_kv - std::min(old_kv, c * T));
  const double io_wait = restorer_->io_wait_seconds();
  // The recomputed rows' share of the first pass, whose other rows are its prompt piece's.
  const double compute = std::max(0.0, first.prefill - io_wait);
  stats_.recompute_seconds = compute * static_cast<double>(recomputed_rows) /
                             static_cast<double>(std::max<size_t>(1, recomputed_rows + first.rows));
  stats_.restore_seconds = setup + io_wait + stats_.recompute_seconds;
  stats_.read_seconds = restorer_->bulk_read_seconds() + io_wait;
  stats_.write_seconds = first.writes;
  stats_.other_seconds = std::max(0.0, stats_.restore_seconds - stats_.read_seconds -
                                           stats_.write_seconds - stats_.recompute_seconds);
  // An estimate (the cost model's time for the same rows on a resident context), so it is
  // clamped: a pass faster than the model predicts is not a negative switch.
  const size_t new_rows = r.prompt_tokens;
  stats_.extra_first_token_seconds = std::max(
      0.0, stats_.first_token_seconds -
               m_->cost_.ComputeSeconds(new_rows, static_cast<double>(old_kv) + new_rows / 2.0));
}

// The first pass failed because stored chunks failed their reads (a checksum, say): those are
// forgotten and recomputed instead, once.
bool CallSession::RetryAfterFailedReads() {
  const std::vector<size_t> failed = restorer_->failed();
  if (failed.empty() || stats_.chunks_damaged > 0) return false;
  restorer_->DropLoaded(ctx_->cache.get());
  const size_t damaged = failed.size();
  const std::string damage = restorer_->status().ToString();
  {
    MutexLock lock(&m_->mu_);
    for (size_t c : failed) {
      ctx_->chunks[c].on_flash = false;
      ctx_->chunks[c].dirty = true;
    }
  }
  if (m_->store_ != nullptr) {
    for (size_t c : failed) (void)m_->store_->DeleteChunk(ctx_->id, static_cast<uint32_t>(c));
  }
  PlanRestore();
  stats_.chunks_damaged = damaged;
  stats_.damage = damage;
  return restorer_->Start(ctx_->cache.get(), call_).ok();
}

void CallSession::Abort() {
  if (restorer_ != nullptr) {  // the restore never completed: what it read may be partial
    restorer_->Finish();
    restorer_->DropLoaded(ctx_->cache.get());
  }
  MutexLock lock(&m_->mu_);
  m_->TruncateContext(ctx_, call_start_tokens_);
  ctx_->locked = false;
  ended_ = finished_ = true;
}

StatusOr<CallResult> CallSession::End() {
  if (ended_) return Status::InvalidArgument("this call has ended");
  StepGuard guard(&m_->stepping_);
  if (!guard.held()) return AnotherCallRuns();
  if (steps_ == 0) {  // no step ran (cancelled before it started): nothing to keep
    Abort();
    return CallResult{total_, stats_};
  }
  ended_ = finished_ = true;
  // The context is this session's: its text cannot change under the commit.
  Status s = m_->store_ != nullptr
                 ? m_->store_->UpdateContext(ctx_->id, ctx_->tokens, ctx_->cache->num_tokens())
                 : Status::Ok();
  MutexLock lock(&m_->mu_);
  if (!s.ok()) {
    m_->TruncateContext(ctx_, call_start_tokens_);
    ctx_->locked = false;
    return s.WithContext("context " + std::to_string(ctx_->id) +
                         ": the call's text could not be saved, so the context is back where the "
                         "call began");
  }
  m_->ReleaseAfterCall(ctx_);
  if (m_->writer_ != nullptr) stats_.bytes_written = m_->writer_->call_bytes_written();
  return CallResult{total_, stats_};
}

}  // namespace llms
