#include "service/metrics.h"

#include <algorithm>
#include <cstdio>

#include "formats/kv_format.h"

namespace llms {
namespace {

std::string Number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

std::string Metric(const std::string& name, const std::string& type, const std::string& help,
                   const std::string& samples) {
  return "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + samples;
}

}  // namespace

void Metrics::Histogram::Observe(double v) {
  for (size_t i = 0; i < kBounds.size(); ++i) {
    if (v <= kBounds[i]) ++counts[i];
  }
  ++count;
  sum += v;
}

std::string Metrics::Histogram::Render(const std::string& name, const std::string& help) const {
  std::string s;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    s += name + "_bucket{le=\"" + Number(kBounds[i]) + "\"} " + std::to_string(counts[i]) + "\n";
  }
  s += name + "_bucket{le=\"+Inf\"} " + std::to_string(count) + "\n";
  s += name + "_sum " + Number(sum) + "\n" + name + "_count " + std::to_string(count) + "\n";
  return Metric(name, "histogram", help, s);
}

void Metrics::RecordCall(const CallStats& stats, size_t prompt_tokens, size_t completion_tokens,
                         double decode_seconds, const std::string& outcome) {
  MutexLock lock(&mu_);
  if (outcome == "error") {
    ++calls_error_;
    return;
  }
  ++(outcome == "cancelled" ? calls_cancelled_ : calls_ok_);
  switch_latency_.Observe(std::max(0.0, stats.extra_first_token_seconds));
  ready_.Observe(stats.ready_seconds);
  bytes_read_ += stats.bytes_read;
  bytes_written_ += stats.bytes_written;
  chunks_loaded_ += stats.chunks_loaded;
  chunks_recomputed_ += stats.chunks_recomputed;
  chunks_damaged_ += stats.chunks_damaged;
  prompt_tokens_ += prompt_tokens;
  completion_tokens_ += completion_tokens;
  decode_seconds_ += decode_seconds;
}

std::string Metrics::Render(KvManager* manager, size_t queue_depth) const {
  size_t resident = 0, flash = 0, contexts = 0;
  std::array<size_t, kNumKvLevels> per_level{};
  for (const ContextInfo& info : manager->ListAllContexts()) {
    ++contexts;
    resident += info.resident_chunks;
    flash += info.flash_chunks;
    for (size_t l = 0; l < per_level.size() && l < info.chunks_per_level.size(); ++l) {
      per_level[l] += static_cast<size_t>(info.chunks_per_level[l]);
    }
  }
  MutexLock lock(&mu_);
  std::string out;
  out += switch_latency_.Render(
      "llms_switch_latency_seconds",
      "extra time to first token of a call over the same prompt on a resident context");
  out += ready_.Render("llms_ready_seconds", "time until every chunk of the context is present");
  out +=
      Metric("llms_calls_total", "counter", "finished calls by outcome",
             "llms_calls_total{outcome=\"ok\"} " + std::to_string(calls_ok_) +
                 "\nllms_calls_total{outcome=\"cancelled\"} " + std::to_string(calls_cancelled_) +
                 "\nllms_calls_total{outcome=\"error\"} " + std::to_string(calls_error_) + "\n");
  out += Metric("llms_bytes_read_total", "counter", "KV bytes read from flash",
                "llms_bytes_read_total " + std::to_string(bytes_read_) + "\n");
  out += Metric("llms_bytes_written_total", "counter", "KV bytes written to flash by calls",
                "llms_bytes_written_total " + std::to_string(bytes_written_) + "\n");
  out += Metric("llms_chunks_restored_total", "counter", "chunks brought back, by how",
                "llms_chunks_restored_total{how=\"loaded\"} " + std::to_string(chunks_loaded_) +
                    "\nllms_chunks_restored_total{how=\"recomputed\"} " +
                    std::to_string(chunks_recomputed_) + "\n");
  out += Metric("llms_chunks_damaged_total", "counter",
                "stored chunks that failed their checksum or read and were recomputed",
                "llms_chunks_damaged_total " + std::to_string(chunks_damaged_) + "\n");
  out += Metric("llms_tokens_total", "counter", "tokens processed, by kind",
                "llms_tokens_total{kind=\"prompt\"} " + std::to_string(prompt_tokens_) +
                    "\nllms_tokens_total{kind=\"generated\"} " +
                    std::to_string(completion_tokens_) + "\n");
  out += Metric("llms_decode_seconds_total", "counter",
                "time spent generating (generated tokens / this = tokens per second)",
                "llms_decode_seconds_total " + Number(decode_seconds_) + "\n");
  std::string by_level;
  for (size_t l = 0; l < per_level.size(); ++l) {
    by_level += "llms_chunks_by_level{level=\"" +
                std::string(KvLevelName(static_cast<KvLevel>(l))) + "\"} " +
                std::to_string(per_level[l]) + "\n";
  }
  out += Metric("llms_chunks_by_level", "gauge", "KV chunks (resident or on flash) by level",
                by_level);
  out += Metric("llms_chunks", "gauge", "KV chunks by location",
                "llms_chunks{location=\"resident\"} " + std::to_string(resident) +
                    "\nllms_chunks{location=\"flash\"} " + std::to_string(flash) + "\n");
  out += Metric("llms_contexts", "gauge", "contexts of every app",
                "llms_contexts " + std::to_string(contexts) + "\n");
  out += Metric("llms_kv_budget_bytes", "gauge", "the KV memory budget",
                "llms_kv_budget_bytes " + std::to_string(manager->budget().limit()) + "\n");
  out += Metric("llms_kv_used_bytes", "gauge", "resident KV bytes now",
                "llms_kv_used_bytes " + std::to_string(manager->budget().used()) + "\n");
  out += Metric("llms_kv_peak_bytes", "gauge", "most resident KV bytes ever",
                "llms_kv_peak_bytes " + std::to_string(manager->budget().peak()) + "\n");
  out += Metric("llms_queue_depth", "gauge", "calls and slices waiting for the engine",
                "llms_queue_depth " + std::to_string(queue_depth) + "\n");
  return out;
}

}  // namespace llms
