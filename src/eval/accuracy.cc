#include "eval/accuracy.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "engine/perplexity.h"
#include "memory/kv_manager.h"

namespace llms {
namespace {

Policy Uniform(const char* name, KvLevel level) {
  Policy p = Policy::Llms();
  p.name = name;
  p.compression = CompressionMode::kUniform;
  p.uniform_level = level;
  return p;
}

Policy Tolerance(const char* name, double bits) {
  Policy p = Policy::Llms();
  p.name = name;
  p.target_bits = bits;
  return p;
}

// log-softmax of one row, in double (the KL of near-equal distributions is a small difference
// of large terms).
void LogSoftmax(std::span<const float> logits, std::vector<double>* out) {
  out->resize(logits.size());
  const double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float x : logits) sum += std::exp(x - max);
  const double log_z = max + std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i) (*out)[i] = logits[i] - log_z;
}

}  // namespace

std::vector<CompressionCase> CompressionCases() {
  return {
      {"f16", Uniform("f16", KvLevel::kF16)},
      {"int8", Uniform("int8", KvLevel::kInt8)},
      {"uniform int4", Uniform("int4", KvLevel::kInt4)},
      {"uniform int2", Uniform("int2", KvLevel::kInt2)},
      {"tolerance-aware 50% of int8", Tolerance("tolerance-4", 4.0)},
      {"tolerance-aware 25% of int8", Tolerance("tolerance-2", 2.0)},
  };
}

StatusOr<std::vector<std::vector<int32_t>>> SelectStories(const Tokenizer& tokenizer,
                                                          const std::string& text,
                                                          const AccuracyOptions& o) {
  const size_t need = o.turns * o.turn_tokens;
  std::vector<std::vector<int32_t>> stories;
  for (size_t start = 0; stories.size() < o.stories && start < text.size();) {
    size_t end = text.find("\n\n", start);
    if (end == std::string::npos) end = text.size();
    std::vector<int32_t> tokens = tokenizer.Encode(text.substr(start, end - start), true);
    if (tokens.size() >= need) {
      tokens.resize(need);
      stories.push_back(std::move(tokens));
    }
    start = end + 2;
  }
  if (stories.size() < o.stories) {
    return Status::InvalidArgument("accuracy: the text has only " + std::to_string(stories.size()) +
                                   " stories of " + std::to_string(need) +
                                   " tokens; ask for fewer or shorter");
  }
  return stories;
}

StatusOr<std::vector<AccuracyRow>> EvaluateAccuracy(
    Engine* engine, const std::vector<std::vector<int32_t>>& stories,
    const std::vector<CompressionCase>& cases, const AccuracyOptions& o) {
  const size_t vocab = engine->config().vocab_size;
  std::vector<float> reference;  // f16 logits of every scored position, [positions x vocab]
  std::vector<AccuracyRow> rows;
  std::vector<double> lp, lq;
  const size_t total = cases.size() * o.turns * stories.size();
  size_t done = 0;
  for (size_t k = 0; k < cases.size(); ++k) {
    KvManagerOptions mo;
    mo.policy = cases[k].policy;
    // Accuracy only: nothing is evicted or written, every chunk stays at its planned level.
    mo.policy.keep_on_flash = false;
    mo.policy.ahead_of_time_swap = false;
    mo.budget_bytes = size_t{1} << 30;
    mo.measure_cost = false;
    LLMS_ASSIGN_OR_RETURN(auto manager, KvManager::Open(engine, nullptr, mo));
    std::vector<uint64_t> ids;
    for (size_t s = 0; s < stories.size(); ++s) {
      LLMS_ASSIGN_OR_RETURN(uint64_t id, manager->CreateContext("eval", {}));
      ids.push_back(id);
    }
    AccuracyRow row;
    row.mode = cases[k].name;
    double nll = 0, kl = 0;
    size_t agree = 0, position = 0;
    // Turn-major, so a global planner ranks every context's chunks together.
    for (size_t turn = 0; turn < o.turns; ++turn) {
      for (size_t s = 0; s < stories.size(); ++s) {
        std::span<const int32_t> prompt(stories[s].data() + turn * o.turn_tokens, o.turn_tokens);
        GenerateOptions g;
        g.max_tokens = 0;
        g.return_prompt_logits = true;
        LLMS_ASSIGN_OR_RETURN(CallResult r, manager->Call("eval", ids[s], prompt, g, nullptr));
        if (o.progress) o.progress(++done, total);
        if (turn == 0) continue;
        const std::vector<float>& logits = r.generation.prompt_logits;
        for (size_t j = 0; j + 1 < prompt.size(); ++j, ++position) {
          std::span<const float> q(logits.data() + j * vocab, vocab);
          nll += NegativeLogLikelihood(q, prompt[j + 1]);
          if (k == 0) {
            reference.insert(reference.end(), q.begin(), q.end());
            continue;
          }
          std::span<const float> p(reference.data() + position * vocab, vocab);
          LogSoftmax(p, &lp);
          LogSoftmax(q, &lq);
          for (size_t v = 0; v < vocab; ++v) kl += std::exp(lp[v]) * (lp[v] - lq[v]);
          agree += std::max_element(p.begin(), p.end()) - p.begin() ==
                   std::max_element(q.begin(), q.end()) - q.begin();
        }
      }
    }
    row.scored = position;
    row.loss = nll / static_cast<double>(position);
    row.perplexity = std::exp(row.loss);
    row.kl_vs_f16 = k == 0 ? 0.0 : kl / static_cast<double>(position);
    row.agreement = k == 0 ? 1.0 : static_cast<double>(agree) / static_cast<double>(position);
    double bits = 0;
    size_t chunks = 0;
    for (uint64_t id : ids) {
      LLMS_ASSIGN_OR_RETURN(ContextInfo info, manager->GetContextInfo("eval", id));
      // The newest chunk stays f16 when partly filled; count the completed ones only.
      const size_t completed = info.tokens / engine->kv_layout().chunk_tokens;
      for (int l = 0; l < kNumKvLevels; ++l) {
        size_t n = static_cast<size_t>(info.chunks_per_level[static_cast<size_t>(l)]);
        if (l == 0 && info.chunks > completed) n -= std::min(n, info.chunks - completed);
        bits += static_cast<double>(n) * KvLevelBits(static_cast<KvLevel>(l));
        chunks += n;
      }
    }
    row.bits = chunks == 0 ? 0.0 : bits / static_cast<double>(chunks);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace llms
