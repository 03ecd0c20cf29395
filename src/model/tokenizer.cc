#include "model/tokenizer.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <limits>
#include <queue>
#include <utility>

namespace llms {
namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";    // U+2581, SentencePiece's space
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr size_t kNone = std::numeric_limits<size_t>::max();

// ---- UTF-8 ----

// Bytes in the character a byte starts, from its high nibble alone, as llama.cpp's
// unicode_len_utf8: continuation bytes count 1 and a lead byte claims its full length even when
// the bytes after it do not continue it. Encode splits text this way so that it matches
// llama.cpp token for token on invalid UTF-8 too.
size_t SymbolLength(char c) {
  static constexpr size_t kByHighNibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kByHighNibble[static_cast<uint8_t>(c) >> 4];
}

enum class Utf8Scan { kValid, kInvalid, kIncomplete };

// Classifies the sequence starting at s[0] (REQUIRES: !s.empty()) and sets *len to its length:
// a whole character, a maximal invalid subpart (Unicode's rule for U+FFFD substitution: each
// one becomes a single U+FFFD), or a valid but unfinished prefix that runs to the end of `s`.
// Overlong forms, surrogates and code points above U+10FFFF are invalid.
Utf8Scan ScanUtf8(std::string_view s, size_t* len) {
  const uint8_t b0 = static_cast<uint8_t>(s[0]);
  *len = 1;
  if (b0 < 0x80) return Utf8Scan::kValid;
  size_t need = 0;               // continuation bytes
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    if (b0 == 0xE0) lo = 0xA0;  // below is overlong
    if (b0 == 0xED) hi = 0x9F;  // above is a surrogate
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    if (b0 == 0xF0) lo = 0x90;  // below is overlong
    if (b0 == 0xF4) hi = 0x8F;  // above is past U+10FFFF
  } else {
    return Utf8Scan::kInvalid;
  }
  for (size_t k = 1; k <= need; ++k) {
    *len = k;
    if (k >= s.size()) return Utf8Scan::kIncomplete;
    const uint8_t b = static_cast<uint8_t>(s[k]);
    if (b < lo || b > hi) return Utf8Scan::kInvalid;
    lo = 0x80;
    hi = 0xBF;
  }
  *len = need + 1;
  return Utf8Scan::kValid;
}

// Appends `in` to `out` with each invalid subpart replaced by U+FFFD. Unless `final`, a valid
// but unfinished sequence at the end is left for later. Returns the bytes of `in` consumed.
size_t AppendValidUtf8(std::string_view in, bool final, std::string* out) {
  size_t i = 0;
  while (i < in.size()) {
    size_t len = 0;
    const Utf8Scan scan = ScanUtf8(in.substr(i), &len);
    if (scan == Utf8Scan::kIncomplete && !final) break;
    out->append(scan == Utf8Scan::kValid ? in.substr(i, len) : kReplacement);
    i += len;
  }
  return i;
}

// ---- Vocabulary checks ----

std::string HexPiece(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
  return buf;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The byte of a "<0xHH>" piece, or -1 when it is not of that form.
int ParseBytePiece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  const int hi = HexDigit(piece[3]), lo = HexDigit(piece[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// A token for error messages: its id and (the start of) its piece.
std::string Describe(const VocabData& v, size_t id) {
  std::string_view piece = v.tokens[id];
  return "token " + std::to_string(id) + " '" + std::string(piece.substr(0, 32)) +
         (piece.size() > 32 ? "...'" : "'");
}

Status CheckSizes(const VocabData& v) {
  const size_t n = v.tokens.size();
  if (n == 0) return Status::InvalidArgument("vocab has no tokens");
  if (n > static_cast<size_t>(INT32_MAX)) {
    return Status::InvalidArgument("vocab has " + std::to_string(n) +
                                   " tokens, more than ids hold");
  }
  if (v.scores.size() != n || v.types.size() != n) {
    return Status::InvalidArgument("vocab has " + std::to_string(n) + " tokens but " +
                                   std::to_string(v.scores.size()) + " scores and " +
                                   std::to_string(v.types.size()) + " token types");
  }
  const std::pair<const char*, int32_t> ids[] = {{"bos", v.bos}, {"eos", v.eos}, {"unk", v.unk}};
  for (const auto& [name, id] : ids) {
    if (id < 0 || static_cast<size_t>(id) >= n) {
      return Status::InvalidArgument(std::string(name) + " id " + std::to_string(id) +
                                     " is out of range (vocab size " + std::to_string(n) + ")");
    }
  }
  return Status::Ok();
}

Status CheckTokens(const VocabData& v) {
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] < kTokenUndefined || v.types[i] > kTokenByte) {
      return Status::InvalidArgument(Describe(v, i) + " has type " + std::to_string(v.types[i]) +
                                     " (GGUF token types are 0..6)");
    }
    // A NaN would break the merge queue's ordering.
    if (!std::isfinite(v.scores[i])) {
      return Status::InvalidArgument(Describe(v, i) + " has a score that is not finite");
    }
    if (v.types[i] == kTokenByte && ParseBytePiece(v.tokens[i]) < 0) {
      return Status::InvalidArgument(Describe(v, i) + " has type byte but is not <0xHH>");
    }
  }
  return Status::Ok();
}

// What a piece prints as, like llama.cpp's token_to_piece without special tokens.
std::string PieceBytes(std::string_view piece, int32_t type) {
  std::string out;
  switch (type) {
    case kTokenNormal:
      for (size_t p = 0; p < piece.size();) {
        const bool mark = piece.substr(p, kSpaceMark.size()) == kSpaceMark;
        out += mark ? ' ' : piece[p];
        p += mark ? kSpaceMark.size() : 1;
      }
      break;
    case kTokenUserDefined:
      out = piece;
      break;
    case kTokenByte:
      out = std::string(1, static_cast<char>(ParseBytePiece(piece)));
      break;
    default:  // control, unknown, unused and undefined tokens print nothing
      break;
  }
  return out;
}

// ---- Encoding ----

// A run of the text to encode, or a user-defined token matched in it (token >= 0).
struct Fragment {
  size_t offset, length;
  int32_t token;
};

// Cuts every occurrence of the user-defined tokens out of `text` as llama.cpp's
// tokenizer_st_partition does: longest piece first, leftmost non-overlapping matches, and only
// inside runs no longer piece has claimed. `ids` is longest first; every piece is non-empty.
std::vector<Fragment> Partition(std::string_view text, const std::vector<int32_t>& ids,
                                const std::vector<std::string>& pieces) {
  std::vector<Fragment> frags = {{0, text.size(), -1}};
  for (const int32_t id : ids) {
    const std::string_view piece = pieces[id];
    std::vector<Fragment> next;
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      const size_t end = f.offset + f.length;
      size_t pos = f.offset;
      for (size_t hit; (hit = text.substr(0, end).find(piece, pos)) != std::string_view::npos;) {
        if (hit > pos) next.push_back({pos, hit - pos, -1});
        next.push_back({hit, piece.size(), id});
        pos = hit + piece.size();
      }
      if (pos < end) next.push_back({pos, end - pos, -1});
    }
    frags = std::move(next);
  }
  return frags;
}

// One piece of text during merging; symbols form a linked chain in text order.
struct Symbol {
  size_t prev, next;  // neighbours in the chain, kNone at the ends
  size_t start, n;    // the bytes text[start, start + n); n == 0 once merged into its left
};

// A candidate merge of two neighbouring symbols.
struct Bigram {
  float score;
  size_t left, right;
  size_t size;  // bytes of the pair when queued; a later mismatch means the entry is stale
};

// llama.cpp's llm_bigram_spm::comparator: the highest score on top of the max-heap, and among
// equal scores the leftmost pair.
struct BigramLess {
  bool operator()(const Bigram& l, const Bigram& r) const {
    return l.score < r.score || (l.score == r.score && l.left > r.left);
  }
};

// The merge loop of llama.cpp's llm_tokenizer_spm_session: repeatedly joins the neighbouring
// pair whose concatenation is the best-scoring vocab piece. Merges that a previous merge made
// impossible stay in the queue and are skipped when popped (lazy invalidation), which keeps the
// whole loop O(n log n). `find` maps a piece to its id or -1.
template <typename FindFn>
class SpmMerger {
 public:
  SpmMerger(std::string_view text, const FindFn& find, std::span<const float> scores)
      : text_(text), find_(find), scores_(scores) {}

  // The final symbols in text order, as views into the text.
  std::vector<std::string_view> Run() {
    Split();
    for (size_t i = 1; i < symbols_.size(); ++i) TryAdd(i - 1, i);
    Merge();
    std::vector<std::string_view> out;
    if (symbols_.empty()) return out;
    for (size_t i = 0; i != kNone; i = symbols_[i].next) {
      out.push_back(text_.substr(symbols_[i].start, symbols_[i].n));
    }
    return out;
  }

 private:
  void Split() {
    symbols_.reserve(text_.size());
    for (size_t off = 0; off < text_.size();) {
      const size_t n = std::min(SymbolLength(text_[off]), text_.size() - off);
      const size_t idx = symbols_.size();
      symbols_.push_back(
          {idx == 0 ? kNone : idx - 1, off + n == text_.size() ? kNone : idx + 1, off, n});
      off += n;
    }
  }

  void TryAdd(size_t left, size_t right) {
    if (left == kNone || right == kNone) return;
    const size_t size = symbols_[left].n + symbols_[right].n;
    const int32_t id = find_(text_.substr(symbols_[left].start, size));
    if (id >= 0) queue_.push({scores_[id], left, right, size});
  }

  void Merge() {
    while (!queue_.empty()) {
      const Bigram b = queue_.top();
      queue_.pop();
      Symbol& l = symbols_[b.left];
      Symbol& r = symbols_[b.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next != kNone) symbols_[r.next].prev = b.left;
      TryAdd(l.prev, b.left);
      TryAdd(b.left, l.next);
    }
  }

  std::string_view text_;
  const FindFn& find_;
  std::span<const float> scores_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramLess> queue_;
};

// ---- GGUF ----

// The getters' errors already name the file and the key, so they are passed on as they are.
// An optional integer key that must fit `lo..hi`; `fallback` when absent.
StatusOr<int64_t> GetIntOr(const GgufFile& f, std::string_view key, int64_t fallback, int64_t lo,
                           int64_t hi) {
  if (!f.Has(key)) return fallback;
  LLMS_ASSIGN_OR_RETURN(const int64_t v, f.GetInt(key));
  if (v < lo || v > hi) {
    return Status::InvalidArgument(f.name() + ": " + std::string(key) + " = " + std::to_string(v) +
                                   " is out of range");
  }
  return v;
}

Status ReadTokens(const GgufFile& f, VocabData* v) {
  constexpr std::string_view kModel = "tokenizer.ggml.model", kTokens = "tokenizer.ggml.tokens";
  if (!f.Has(kModel)) {
    return Status::InvalidArgument(f.name() + ": " + std::string(kModel) + " is missing");
  }
  LLMS_ASSIGN_OR_RETURN(const std::string_view model, f.GetString(kModel));
  if (model != "llama") {
    return Status::InvalidArgument(f.name() + ": tokenizer model '" + std::string(model) +
                                   "' is not supported (only 'llama')");
  }
  LLMS_ASSIGN_OR_RETURN(const std::vector<std::string_view> tokens, f.GetStringArray(kTokens));
  v->tokens.assign(tokens.begin(), tokens.end());
  return Status::Ok();
}

Status ReadScoresAndTypes(const GgufFile& f, VocabData* v) {
  constexpr std::string_view kScores = "tokenizer.ggml.scores",
                             kTypes = "tokenizer.ggml.token_type";
  v->scores.assign(v->tokens.size(), 0.0f);
  if (f.Has(kScores)) {
    LLMS_ASSIGN_OR_RETURN(v->scores, f.GetFloatArray(kScores));
  }
  v->types.assign(v->tokens.size(), kTokenNormal);
  if (f.Has(kTypes)) {
    LLMS_ASSIGN_OR_RETURN(const std::vector<int64_t> types, f.GetIntArray(kTypes));
    v->types.resize(types.size());
    for (size_t i = 0; i < types.size(); ++i) {
      // Values outside int32 are out of 0..6 anyway; Create reports them.
      v->types[i] = static_cast<int32_t>(std::clamp<int64_t>(types[i], -1, INT32_MAX));
    }
  }
  return Status::Ok();
}

Status ReadSpecials(const GgufFile& f, VocabData* v) {
  LLMS_ASSIGN_OR_RETURN(const int64_t bos,
                        GetIntOr(f, "tokenizer.ggml.bos_token_id", 1, 0, INT32_MAX));
  LLMS_ASSIGN_OR_RETURN(const int64_t eos,
                        GetIntOr(f, "tokenizer.ggml.eos_token_id", 2, 0, INT32_MAX));
  LLMS_ASSIGN_OR_RETURN(const int64_t unk,
                        GetIntOr(f, "tokenizer.ggml.unknown_token_id", 0, 0, INT32_MAX));
  LLMS_ASSIGN_OR_RETURN(const int64_t add_bos,
                        GetIntOr(f, "tokenizer.ggml.add_bos_token", 1, INT64_MIN, INT64_MAX));
  LLMS_ASSIGN_OR_RETURN(const int64_t add_space,
                        GetIntOr(f, "tokenizer.ggml.add_space_prefix", 1, INT64_MIN, INT64_MAX));
  v->bos = static_cast<int32_t>(bos);
  v->eos = static_cast<int32_t>(eos);
  v->unk = static_cast<int32_t>(unk);
  v->add_bos = add_bos != 0;
  v->add_space_prefix = add_space != 0;
  return Status::Ok();
}

}  // namespace

// ---- Tokenizer ----

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Create(VocabData vocab) {
  LLMS_RETURN_IF_ERROR(CheckSizes(vocab));
  LLMS_RETURN_IF_ERROR(CheckTokens(vocab));
  return std::make_unique<Tokenizer>(Key(), std::move(vocab));
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& file) {
  VocabData vocab;
  LLMS_RETURN_IF_ERROR(ReadTokens(file, &vocab));
  LLMS_RETURN_IF_ERROR(ReadScoresAndTypes(file, &vocab));
  LLMS_RETURN_IF_ERROR(ReadSpecials(file, &vocab));
  auto tok = Create(std::move(vocab));
  if (!tok.ok()) return tok.status().WithContext(file.name());
  return tok;
}

Tokenizer::Tokenizer(Key, VocabData vocab) : vocab_(std::move(vocab)) { BuildIndex(); }

void Tokenizer::BuildIndex() {
  const size_t n = vocab_.tokens.size();
  index_.reserve(n);
  bytes_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& piece = vocab_.tokens[i];
    index_.insert_or_assign(piece, static_cast<int32_t>(i));  // the last duplicate wins
    bytes_[i] = PieceBytes(piece, vocab_.types[i]);
    if (vocab_.types[i] == kTokenUserDefined && !piece.empty()) {
      user_defined_.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(user_defined_.begin(), user_defined_.end(), [this](int32_t a, int32_t b) {
    return vocab_.tokens[a].size() > vocab_.tokens[b].size();
  });
  // Byte fallback as llama.cpp's byte_to_token: "<0xHH>", else the byte as a one-byte piece
  // (where llama.cpp would throw, unk).
  for (int b = 0; b < 256; ++b) {
    int32_t id = FindToken(HexPiece(static_cast<uint8_t>(b)));
    if (id < 0) id = FindToken(std::string(1, static_cast<char>(b)));
    byte_token_[b] = id >= 0 ? id : vocab_.unk;
  }
}

int32_t Tokenizer::FindToken(std::string_view piece) const {
  const auto it = index_.find(piece);
  return it == index_.end() ? -1 : it->second;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_bos,
                                       bool continuation) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 2 + 2);  // a guess: small vocabs average about 2 bytes a token
  if (add_bos && vocab_.add_bos) out.push_back(vocab_.bos);
  if (text.empty()) return out;
  bool after_special = !continuation;  // a start counts as following a special token
  for (const Fragment& f : Partition(text, user_defined_, vocab_.tokens)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    EncodeRun(text.substr(f.offset, f.length), vocab_.add_space_prefix && after_special, &out);
    after_special = false;
  }
  return out;
}

void Tokenizer::EncodeRun(std::string_view run, bool space_prefix,
                          std::vector<int32_t>* out) const {
  std::string text;
  text.reserve(run.size() + run.size() / 2 + kSpaceMark.size());
  if (space_prefix) text += kSpaceMark;
  for (const char c : run) {
    if (c == ' ') {
      text += kSpaceMark;
    } else {
      text += c;
    }
  }
  const auto find = [this](std::string_view piece) { return FindToken(piece); };
  SpmMerger<decltype(find)> merger(text, find, vocab_.scores);
  // Every merged symbol is a vocab piece, so only unmerged characters can miss: llama.cpp's
  // resegment() then finds no recorded merge for them either and falls back to bytes.
  for (const std::string_view piece : merger.Run()) {
    const int32_t id = FindToken(piece);
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    for (const char c : piece) out->push_back(byte_token_[static_cast<uint8_t>(c)]);
  }
}

std::string Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= bytes_.size()) return "";
  return bytes_[id];
}

std::string Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::string raw;
  for (const int32_t id : ids) {
    if (id >= 0 && static_cast<size_t>(id) < bytes_.size()) raw += bytes_[id];
  }
  std::string out;
  out.reserve(raw.size());
  AppendValidUtf8(raw, /*final=*/true, &out);
  return out;
}

std::string_view Tokenizer::Piece(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_.tokens.size()) return "";
  return vocab_.tokens[id];
}

int32_t Tokenizer::Type(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_.types.size()) return kTokenUndefined;
  return vocab_.types[id];
}

// ---- StreamingDecoder ----

std::string StreamingDecoder::Push(int32_t id) {
  pending_ += tok_->TokenBytes(id);
  std::string out;
  pending_.erase(0, AppendValidUtf8(pending_, /*final=*/false, &out));
  return out;
}

std::string StreamingDecoder::Flush() {
  std::string out;
  AppendValidUtf8(pending_, /*final=*/true, &out);
  pending_.clear();
  return out;
}

}  // namespace llms
