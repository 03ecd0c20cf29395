// Tokenizer: the SentencePiece-style "llama" vocabulary of a GGUF file, encoding and decoding
// exactly as llama.cpp's llm_tokenizer_spm does (score-ordered pair merges, byte fallback), plus
// a StreamingDecoder that turns generated ids into complete UTF-8 text piece by piece.
//
// Goals: token-for-token parity with llama.cpp on every input (including invalid UTF-8), O(n log n)
// encoding so whole evaluation corpora can be encoded at once, and decoding that only ever
// returns valid UTF-8. Non-goals: the BPE ("gpt2") vocabularies, parsing control tokens written
// in the text (such as "<s>"), and Unicode normalization (llama.cpp does none for this vocab).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "model/gguf.h"

namespace llms {

// A vocabulary as GGUF stores it, one entry per token id in each vector.
struct VocabData {
  std::vector<std::string> tokens;  // the pieces, with U+2581 standing for a space
  std::vector<float> scores;        // merge priority: the higher-scoring pair merges first
  // GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
  // ("<0xHH>"); 0 (undefined) is accepted and decodes to nothing, as in llama.cpp.
  std::vector<int32_t> types;
  int32_t bos = 1, eos = 2, unk = 0;
  bool add_bos = true;           // whether Encode(text, true) puts bos first
  bool add_space_prefix = true;  // whether Encode puts a space before the text
};

// GGUF token types (the values of tokenizer.ggml.token_type).
enum TokenType : int32_t {
  kTokenUndefined = 0,
  kTokenNormal = 1,
  kTokenUnknown = 2,
  kTokenControl = 3,
  kTokenUserDefined = 4,
  kTokenUnused = 5,
  kTokenByte = 6,
};

// Thread safety: immutable after creation; safe to use from any number of threads.
class Tokenizer {
  // Only Create can make a Key, so only it can call the (public, for make_unique) constructor.
  struct Key {
    explicit Key() = default;
  };

 public:
  // Checks the vocabulary and indexes it. InvalidArgument naming the problem when it is empty,
  // when scores/types are not one per token, when bos/eos/unk is out of range, when a type is
  // not 0..6, when a score is not finite, or when a byte-type token is not "<0xHH>".
  static StatusOr<std::unique_ptr<Tokenizer>> Create(VocabData vocab);
  // Reads tokenizer.ggml.{model,tokens,scores,token_type,bos_token_id,eos_token_id,
  // unknown_token_id,add_bos_token,add_space_prefix}. Only model and tokens are required; the
  // rest default to llama.cpp's defaults (scores 0, type normal, ids 1/2/0, both flags true).
  // InvalidArgument for a model other than "llama" or a key of the wrong type or range.
  static StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const GgufFile& file);

  // Text to ids as llama.cpp's llama_tokenize(text, add_special = add_bos, parse_special =
  // false): bos first when add_bos and the vocab's add_bos flag are both set; user-defined tokens
  // written in the text are matched as whole tokens; each remaining run of text gets the space
  // prefix when it starts the text or follows such a token. Empty text gives no text tokens.
  // With `continuation` the text continues earlier text: no space prefix at its start.
  std::vector<int32_t> Encode(std::string_view text, bool add_bos, bool continuation = false) const;
  // The raw bytes a token stands for: U+2581 becomes ' ' in normal tokens, "<0xAB>" byte tokens
  // the byte 0xAB, user-defined tokens their text; control, unknown, unused and undefined tokens
  // and ids out of range give "". The bytes need not be valid UTF-8 on their own.
  std::string TokenBytes(int32_t id) const;
  // The concatenated TokenBytes, with every invalid UTF-8 sequence replaced by U+FFFD.
  std::string Decode(std::span<const int32_t> ids) const;

  int32_t bos() const { return vocab_.bos; }
  int32_t eos() const { return vocab_.eos; }
  int32_t unk() const { return vocab_.unk; }
  bool add_bos() const { return vocab_.add_bos; }
  size_t vocab_size() const { return vocab_.tokens.size(); }
  // The raw vocab string of `id`; "" when out of range.
  std::string_view Piece(int32_t id) const;
  // The GGUF token type of `id`; kTokenUndefined when out of range.
  int32_t Type(int32_t id) const;

  // Use Create or FromGguf.
  Tokenizer(Key, VocabData vocab);

 private:
  // Hashes std::string and std::string_view alike, so lookups need no temporary strings.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  void BuildIndex();
  // The id whose piece is exactly `piece`, or -1. Duplicated pieces map to the last id.
  int32_t FindToken(std::string_view piece) const;
  // llm_tokenizer_spm_session::tokenize on one run of text without user-defined tokens.
  void EncodeRun(std::string_view run, bool space_prefix, std::vector<int32_t>* out) const;

  VocabData vocab_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> index_;
  std::vector<std::string> bytes_;         // TokenBytes of each id
  std::array<int32_t, 256> byte_token_{};  // byte fallback id of each byte value
  std::vector<int32_t> user_defined_;      // user-defined ids, longest piece first
};

// Turns generated ids into text as they arrive. Each Push returns only whole, valid UTF-8: a
// multi-byte character split across byte tokens is held back until its last byte arrives, and
// bytes that cannot become a valid character come out as U+FFFD. The concatenation of every
// Push and a final Flush equals Tokenizer::Decode of all the ids.
// Thread safety: none; one generation stream per decoder.
class StreamingDecoder {
 public:
  // `tok` must outlive the decoder.
  explicit StreamingDecoder(const Tokenizer* tok) : tok_(tok) {}

  std::string Push(int32_t id);
  // Returns what is held back (an unfinished character becomes U+FFFD) and resets the decoder.
  std::string Flush();

 private:
  const Tokenizer* tok_;
  std::string pending_;  // at most 3 bytes: a valid but unfinished UTF-8 sequence
};

}  // namespace llms
