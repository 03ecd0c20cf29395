#include "engine/generate.h"

#include <algorithm>
#include <optional>

#include "base/clock.h"
#include "model/tokenizer.h"

namespace llms {
namespace {}  // namespace

std::string StopMatcher::Push(std::string_view text, bool* stopped) {
  pending_ += text;
  *stopped = false;
  size_t first = std::string::npos;
  for (const std::string& s : stop_) {
    if (s.empty()) continue;
    first = std::min(first, pending_.find(s));
  }
  if (first != std::string::npos) {
    *stopped = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  // Keep the longest tail that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stop_) {
    for (size_t len = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); len > hold;
         --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopMatcher::Flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

StatusOr<GenerateResult> Generate(Engine* engine, KvCache* cache,
                                  std::vector<int32_t>* context_tokens,
                                  std::span<const int32_t> prompt_tokens,
                                  const GenerateOptions& options,
                                  const std::function<bool(std::string_view)>& on_text) {
  if (std::string why = options.sampling.Validate(); !why.empty()) {
    return Status::InvalidArgument(why);
  }
  const Tokenizer& tok = engine->model().tokenizer();
  GenerateResult result;
  std::optional<GenerationState> own;
  GenerationState* state = options.state;
  if (state == nullptr) state = &own.emplace(&tok, options);
  Sampler& sampler = state->sampler;
  StreamingDecoder& decoder = state->decoder;
  StopMatcher& matcher = state->matcher;
  const size_t yield_at = options.yield_after == 0 ? SIZE_MAX : options.yield_after;
  std::vector<float> logits;

  const size_t before = context_tokens->size();
  context_tokens->insert(context_tokens->end(), prompt_tokens.begin(), prompt_tokens.end());
  if (context_tokens->size() == cache->num_tokens()) {
    context_tokens->resize(before);
    return Status::InvalidArgument("empty prompt on a context with nothing pending");
  }
  result.prompt_tokens = context_tokens->size() - cache->num_tokens();
  Stopwatch timer;
  ForwardOptions prefill = options.prefill;
  prefill.logits = options.return_prompt_logits ? LogitsMode::kAll : LogitsMode::kLast;
  Status s = engine->Forward(cache, *context_tokens, prefill, &logits);
  if (!s.ok()) {
    context_tokens->resize(before);
    return s;
  }
  if (options.return_prompt_logits) {
    const size_t vocab = engine->config().vocab_size;
    result.prompt_logits = logits;
    logits.erase(logits.begin(), logits.end() - static_cast<std::ptrdiff_t>(vocab));
  }
  result.prefill_seconds = timer.Seconds();
  timer.Restart();

  auto emit = [&](const std::string& text) {
    result.text += text;
    return text.empty() || !on_text || on_text(text);
  };
  result.stop_reason = "length";
  while (state->generated < options.max_tokens) {
    const int32_t next = sampler.Sample(logits, *context_tokens);
    context_tokens->push_back(next);
    result.tokens.push_back(next);
    ++state->generated;
    if (options.stop_at_eos && next == tok.eos()) {
      result.stop_reason = "eos";
      break;
    }
    bool stopped = false;
    if (!emit(matcher.Push(decoder.Push(next), &stopped))) {
      result.stop_reason = "cancelled";
      break;
    }
    if (stopped) {
      result.stop_reason = "stop";
      break;
    }
    if (state->generated == options.max_tokens) break;
    if (result.tokens.size() == yield_at) {
      // Resumed later: the last token stays pending (its KV is the next pass's first row) and
      // held-back text stays held.
      result.stop_reason = "yield";
      break;
    }
    s = engine->Forward(cache, *context_tokens, ForwardOptions{}, &logits);
    if (!s.ok()) return s;
  }
  if (result.stop_reason == "length" || result.stop_reason == "eos") {
    bool stopped = false;
    emit(matcher.Push(decoder.Flush(), &stopped));
    emit(matcher.Flush());
  }
  result.decode_seconds = timer.Seconds();
  return result;
}

}  // namespace llms
