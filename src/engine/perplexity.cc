#include "engine/perplexity.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace llms {

double NegativeLogLikelihood(std::span<const float> logits, int32_t target) {
  const float maxv = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - maxv);
  return std::log(sum) - (static_cast<double>(logits[static_cast<size_t>(target)]) - maxv);
}

namespace {

// Scores one window (BOS + tokens): returns the sum of NLLs of its predictions.
StatusOr<double> WindowLoss(Engine* engine, std::span<const int32_t> window, KvLevel level) {
  const size_t vocab = engine->config().vocab_size;
  const size_t step = level == KvLevel::kF16 ? window.size() : engine->kv_layout().chunk_tokens;
  auto cache = engine->NewCache();
  std::vector<float> logits;
  ForwardOptions options;
  options.logits = LogitsMode::kAll;
  options.collect_attention_stats = false;
  double nll = 0;
  for (size_t begin = 0; begin < window.size(); begin += step) {
    const size_t end = std::min(window.size(), begin + step);
    LLMS_RETURN_IF_ERROR(engine->Forward(cache.get(), window.first(end), options, &logits));
    for (size_t p = begin; p < end; ++p) {
      if (p + 1 >= window.size()) break;  // the last token has nothing to predict
      nll += NegativeLogLikelihood(std::span(logits).subspan((p - begin) * vocab, vocab),
                                   window[p + 1]);
    }
    if (level != KvLevel::kF16) {
      for (size_t c = 0; c < cache->num_chunks(); ++c) {
        KvChunk* chunk = cache->chunk(c);
        if (chunk->full()) LLMS_RETURN_IF_ERROR(chunk->ConvertTo(level));
      }
    }
  }
  return nll;
}

}  // namespace

StatusOr<LossResult> EvaluateLoss(Engine* engine, std::span<const int32_t> stream,
                                  const LossOptions& options) {
  if (options.window < 2) return Status::InvalidArgument("window must be at least 2 tokens");
  const size_t per_window = options.window - 1;
  size_t windows = stream.size() / per_window;
  if (options.max_windows > 0) windows = std::min(windows, options.max_windows);
  if (windows == 0) {
    return Status::InvalidArgument("the text has " + std::to_string(stream.size()) +
                                   " tokens, fewer than one window of " +
                                   std::to_string(per_window));
  }
  const int32_t bos = engine->model().tokenizer().bos();
  LossResult result;
  double total = 0;
  std::vector<int32_t> window(options.window);
  for (size_t w = 0; w < windows; ++w) {
    window[0] = bos;
    std::copy_n(stream.begin() + static_cast<std::ptrdiff_t>(w * per_window), per_window,
                window.begin() + 1);
    LLMS_ASSIGN_OR_RETURN(double nll, WindowLoss(engine, window, options.kv_level));
    total += nll;
    result.scored_tokens += per_window;
    if (options.progress) options.progress(w + 1, windows);
  }
  result.windows = windows;
  result.mean_nll = total / static_cast<double>(result.scored_tokens);
  result.perplexity = std::exp(result.mean_nll);
  return result;
}

}  // namespace llms
