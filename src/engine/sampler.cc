#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace llms {

std::string SamplingOptions::Validate() const {
  if (!(temperature >= 0) || temperature > 100) return "temperature must be between 0 and 100";
  if (top_k < 0) return "top_k must be >= 0 (0 turns it off)";
  if (!(top_p > 0) || top_p > 1) return "top_p must be in (0, 1]";
  if (!(repeat_penalty > 0) || repeat_penalty > 100) return "repeat_penalty must be in (0, 100]";
  if (repeat_last_n < 0) return "repeat_last_n must be >= 0";
  return {};
}

int32_t ArgMax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}

int32_t Sampler::Sample(std::span<float> logits, std::span<const int32_t> recent) {
  if (options_.repeat_penalty != 1.0f && options_.repeat_last_n > 0) {
    const size_t n = std::min(recent.size(), static_cast<size_t>(options_.repeat_last_n));
    std::unordered_set<int32_t> seen(recent.end() - static_cast<std::ptrdiff_t>(n), recent.end());
    for (int32_t t : seen) {
      if (t < 0 || static_cast<size_t>(t) >= logits.size()) continue;
      float& l = logits[static_cast<size_t>(t)];
      l = l > 0 ? l / options_.repeat_penalty : l * options_.repeat_penalty;
    }
  }
  if (options_.temperature == 0.0f) return ArgMax(logits);

  candidates_.clear();
  for (size_t i = 0; i < logits.size(); ++i) {
    candidates_.emplace_back(logits[i] / options_.temperature, static_cast<int32_t>(i));
  }
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first; };
  size_t keep = candidates_.size();
  if (options_.top_k > 0) keep = std::min(keep, static_cast<size_t>(options_.top_k));
  std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(keep),
                    candidates_.end(), by_logit);
  candidates_.resize(keep);
  // Softmax over the survivors, then the smallest prefix holding top_p of the mass.
  const float maxv = candidates_.front().first;
  double sum = 0;
  for (auto& c : candidates_) sum += (c.first = std::exp(c.first - maxv));
  double mass = 0;
  size_t cut = candidates_.size();
  for (size_t i = 0; i < candidates_.size(); ++i) {
    mass += candidates_[i].first / sum;
    if (mass >= options_.top_p) {
      cut = i + 1;
      break;
    }
  }
  candidates_.resize(cut);
  double total = 0;
  for (const auto& c : candidates_) total += c.first;
  std::uniform_real_distribution<double> dist(0.0, total);
  double r = dist(rng_);
  for (const auto& c : candidates_) {
    if ((r -= c.first) <= 0) return c.second;
  }
  return candidates_.back().second;
}

}  // namespace llms
