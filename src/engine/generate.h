// Generate: the prefill-then-decode loop shared by the CLI and the service. It appends the
// prompt and every generated token to the context's text; the KV of the last sampled token is
// computed by the next call (the cache may trail the text by one token).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/engine.h"
#include "engine/sampler.h"

namespace llms {

class GenerationState;

struct GenerateOptions {
  SamplingOptions sampling;
  size_t max_tokens = 128;
  std::vector<std::string> stop;  // generation ends before the first of these in the text
  bool stop_at_eos = true;
  // Keep the prefill's logits of every new token in GenerateResult::prompt_logits (teacher-
  // forced scoring); otherwise only the last token's are computed.
  bool return_prompt_logits = false;
  // Options of the first pass (the prompt's prefill): a restore pipeline puts the chunks to
  // recompute and its per-layer hook here. Its `logits` field is ignored.
  ForwardOptions prefill;
  // Resumable generation (a service interleaving several calls): with `state`, sampling,
  // decoding and stop matching continue from it and max_tokens counts every token it has
  // generated; after `yield_after` more tokens (0: never) Generate returns with stop_reason
  // "yield", the text it holds back still held, to be resumed by another Generate with the same
  // state and an empty prompt. Tokens of one generation split this way are the same as unsplit.
  GenerationState* state = nullptr;
  size_t yield_after = 0;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (including a final EOS, if any)
  std::string text;             // generated text, cut before a stop string
  std::string stop_reason;      // "eos", "stop", "length" or "cancelled"
  size_t prompt_tokens = 0;     // tokens computed in the prefill (prompt plus any pending token)
  double prefill_seconds = 0;
  double decode_seconds = 0;
  // With return_prompt_logits: vocab_size floats per token of the prefill, in order.
  std::vector<float> prompt_logits;
};

// `on_text` receives the text as it becomes final (valid UTF-8, never part of a stop string)
// and returns false to cancel. Errors: the engine's (the context is left as it was before the
// failing step).
StatusOr<GenerateResult> Generate(Engine* engine, KvCache* cache,
                                  std::vector<int32_t>* context_tokens,
                                  std::span<const int32_t> prompt_tokens,
                                  const GenerateOptions& options,
                                  const std::function<bool(std::string_view)>& on_text);

// Holds back generated text that might be the start of a stop string.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stop) : stop_(std::move(stop)) {}
  // Adds text; returns what can be emitted now. Sets *stopped when a stop string appeared
  // (the returned text then ends right before it).
  std::string Push(std::string_view text, bool* stopped);
  std::string Flush();

 private:
  std::vector<std::string> stop_;
  std::string pending_;
};

// What a generation carries from one Generate to the next when it is resumed (see
// GenerateOptions::state). Create one per generation with the options it will use throughout.
class GenerationState {
 public:
  GenerationState(const Tokenizer* tok, const GenerateOptions& options)
      : sampler(options.sampling), decoder(tok), matcher(options.stop) {}
  Sampler sampler;
  StreamingDecoder decoder;
  StopMatcher matcher;
  size_t generated = 0;  // tokens generated so far, over every Generate of this state
};

}  // namespace llms
