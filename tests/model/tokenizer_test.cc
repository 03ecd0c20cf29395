#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "env/env.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

const std::string kMark = "\xE2\x96\x81";  // U+2581
const std::string kFffd = "\xEF\xBF\xBD";  // U+FFFD
constexpr int32_t kFirstByte = 3;          // ids 3..258 are <0x00>..<0xFF> in these vocabs

// `s` with each ' ' written as U+2581, the way vocab pieces spell spaces.
std::string M(std::string_view s) {
  std::string out;
  for (char c : s) out += c == ' ' ? kMark : std::string(1, c);
  return out;
}

std::string Hex(int b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
  return buf;
}

// <unk>, <s>, </s>, the 256 byte tokens, then `pieces` (normal tokens) with their scores: the
// layout of the real llama vocabs.
VocabData MakeVocab(const std::vector<std::pair<std::string, float>>& pieces) {
  VocabData v;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {kTokenUnknown, kTokenControl, kTokenControl};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(Hex(b));
    v.types.push_back(kTokenByte);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  for (const auto& [piece, score] : pieces) {
    v.tokens.push_back(piece);
    v.scores.push_back(score);
    v.types.push_back(kTokenNormal);
  }
  return v;
}

std::unique_ptr<Tokenizer> MustCreate(VocabData v) {
  auto tok = Tokenizer::Create(std::move(v));
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

int32_t Id(const VocabData& v, const std::string& piece) {
  for (size_t i = v.tokens.size(); i-- > 0;) {
    if (v.tokens[i] == piece) return static_cast<int32_t>(i);
  }
  return -1;
}

// ---- The algorithm, on small in-memory vocabs ----

TEST(TokenizerTest, MergesHighestScoreFirst) {
  // "▁ab": ("a","b") scores -1 and ("▁","a") -2, so "ab" forms first and "▁a" never does.
  VocabData v = MakeVocab({{M(" "), -5}, {"a", -6}, {"b", -7}, {"ab", -1}, {M(" a"), -2}});
  auto tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("ab", false), (std::vector<int32_t>{Id(v, M(" ")), Id(v, "ab")}));
  // With "▁ab" in the vocab the two remaining symbols merge once more.
  v = MakeVocab({{M(" "), -5}, {"a", -6}, {"b", -7}, {"ab", -1}, {M(" a"), -2}, {M(" ab"), -9}});
  tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("ab", false), (std::vector<int32_t>{Id(v, M(" ab"))}));
}

TEST(TokenizerTest, EqualScoresMergeLeftmostFirst) {
  VocabData v = MakeVocab({{"a", -1}, {"aa", -1}});
  v.add_space_prefix = false;
  auto tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("aaa", false), (std::vector<int32_t>{Id(v, "aa"), Id(v, "a")}));
}

TEST(TokenizerTest, BosAndEmptyText) {
  VocabData v = MakeVocab({{M(" "), -1}, {"x", -2}});
  auto tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("", true), (std::vector<int32_t>{1}));
  EXPECT_TRUE(tok->Encode("", false).empty());  // no lone space prefix
  EXPECT_EQ(tok->Encode("x", true), (std::vector<int32_t>{1, Id(v, M(" ")), Id(v, "x")}));
  v.add_bos = false;  // the vocab's flag wins, as in llama.cpp
  tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->Encode("", true).empty());
  v.add_space_prefix = false;
  tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("x", true), (std::vector<int32_t>{Id(v, "x")}));
}

TEST(TokenizerTest, ByteFallbackForCharactersNotInVocab) {
  VocabData v = MakeVocab({{M(" "), -1}});
  auto tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  // "é" is C3 A9.
  EXPECT_EQ(
      tok->Encode("\xC3\xA9<", false),
      (std::vector<int32_t>{Id(v, kMark), kFirstByte + 0xC3, kFirstByte + 0xA9, kFirstByte + '<'}));
}

TEST(TokenizerTest, ByteFallbackWithoutByteTokensUsesSingleBytePiecesThenUnk) {
  VocabData v;
  v.tokens = {"<unk>", "<s>", "</s>", "a"};
  v.scores = {0, 0, 0, 0};
  v.types = {kTokenUnknown, kTokenControl, kTokenControl, kTokenNormal};
  v.add_space_prefix = false;
  auto tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("ab", false), (std::vector<int32_t>{3, 0}));
}

TEST(TokenizerTest, InvalidUtf8SplitsLikeLlamaCpp) {
  // llama.cpp sizes a character by its lead byte alone: E2 claims "E2 a b" as one symbol, which
  // is not a piece, so all three bytes fall back even though "ab" is a piece.
  VocabData v = MakeVocab({{"ab", -1}, {"a", -2}, {"b", -3}});
  v.add_space_prefix = false;
  auto tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("\xE2"
                        "ab",
                        false),
            (std::vector<int32_t>{kFirstByte + 0xE2, kFirstByte + 'a', kFirstByte + 'b'}));
  // A stray continuation byte is a symbol of its own.
  EXPECT_EQ(tok->Encode("\x80"
                        "ab",
                        false),
            (std::vector<int32_t>{kFirstByte + 0x80, Id(v, "ab")}));
  // A truncated lead byte at the end is cut to what is there.
  EXPECT_EQ(tok->Encode("ab\xF0", false), (std::vector<int32_t>{Id(v, "ab"), kFirstByte + 0xF0}));
}

TEST(TokenizerTest, UserDefinedTokensAreMatchedWhole) {
  VocabData v = MakeVocab({{M(" "), -1}, {"a", -2}, {"<|x|>", 0}, {"<|xy|>", 0}});
  v.types[Id(v, "<|x|>")] = kTokenUserDefined;
  v.types[Id(v, "<|xy|>")] = kTokenUserDefined;
  auto tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  const int32_t sp = Id(v, kMark), a = Id(v, "a"), x = Id(v, "<|x|>"), xy = Id(v, "<|xy|>");
  // Text after a user-defined token gets the space prefix again, as in llama.cpp.
  EXPECT_EQ(tok->Encode("a<|x|>a", false), (std::vector<int32_t>{sp, a, x, sp, a}));
  EXPECT_EQ(tok->Encode("<|xy|><|x|>", false), (std::vector<int32_t>{xy, x}));
  EXPECT_EQ(tok->TokenBytes(x), "<|x|>");
  EXPECT_EQ(tok->Decode(std::vector<int32_t>{sp, a, x, sp, a}), " a<|x|> a");
}

// The SentencePiece merge rule written the slow, obvious way: rescan every neighbouring pair
// and join the best-scoring one (leftmost on ties) until none is a piece.
std::vector<int32_t> ReferenceEncode(const VocabData& v, const std::string& text) {
  std::map<std::string, int32_t> index;
  for (size_t i = 0; i < v.tokens.size(); ++i) index[v.tokens[i]] = static_cast<int32_t>(i);
  std::string s = v.add_space_prefix && !text.empty() ? " " + text : text;
  s = M(s);
  std::vector<std::string> syms;
  for (size_t i = 0; i < s.size();) {
    const uint8_t b = static_cast<uint8_t>(s[i]);
    const size_t len = b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    syms.push_back(s.substr(i, len));
    i += len;
  }
  for (;;) {
    int best = -1;
    float best_score = 0;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      auto it = index.find(syms[i] + syms[i + 1]);
      if (it != index.end() && (best < 0 || v.scores[it->second] > best_score)) {
        best = static_cast<int>(i);
        best_score = v.scores[it->second];
      }
    }
    if (best < 0) break;
    syms[best] += syms[best + 1];
    syms.erase(syms.begin() + best + 1);
  }
  std::vector<int32_t> out;
  for (const std::string& sym : syms) {
    if (auto it = index.find(sym); it != index.end()) {
      out.push_back(it->second);
    } else {
      for (char c : sym) out.push_back(index.at(Hex(static_cast<uint8_t>(c))));
    }
  }
  return out;
}

TEST(TokenizerTest, MatchesQuadraticReferenceOnRandomVocabs) {
  std::mt19937 rng(1234);
  const std::vector<std::string> alphabet = {"a", "b", "c", kMark, "\xC3\xA9"};
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::pair<std::string, float>> pieces;
    for (const std::string& ch : alphabet) {
      if (rng() % 4 != 0) pieces.push_back({ch, -100.0f});
    }
    for (int i = 0; i < 25; ++i) {
      std::string piece;
      for (size_t len = 2 + rng() % 3; len > 0; --len) piece += alphabet[rng() % 4];
      pieces.push_back({piece, static_cast<float>(rng() % 5)});  // few values: many ties
    }
    VocabData v = MakeVocab(pieces);
    v.add_space_prefix = trial % 2 == 0;
    auto tok = MustCreate(v);
    ASSERT_NE(tok, nullptr);
    std::string text;
    for (size_t len = rng() % 40; len > 0; --len) {
      const std::string ch = alphabet[rng() % alphabet.size()];
      text += ch == kMark ? " " : ch;
    }
    ASSERT_EQ(tok->Encode(text, false), ReferenceEncode(v, text)) << "trial " << trial;
  }
}

// ---- Decoding ----

TEST(TokenizerTest, TokenBytes) {
  VocabData v = MakeVocab({{M(" a b"), -1}});
  v.tokens.push_back("unused");
  v.scores.push_back(0);
  v.types.push_back(kTokenUnused);
  auto tok = MustCreate(v);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->TokenBytes(Id(v, M(" a b"))), " a b");
  EXPECT_EQ(tok->TokenBytes(kFirstByte + 0xAB), "\xAB");
  EXPECT_EQ(tok->TokenBytes(kFirstByte + 0), std::string(1, '\0'));
  EXPECT_EQ(tok->TokenBytes(0), "");  // <unk>
  EXPECT_EQ(tok->TokenBytes(1), "");  // <s>
  EXPECT_EQ(tok->TokenBytes(Id(v, "unused")), "");
  EXPECT_EQ(tok->TokenBytes(-1), "");
  EXPECT_EQ(tok->TokenBytes(static_cast<int32_t>(v.tokens.size())), "");
  EXPECT_EQ(tok->Piece(1), "<s>");
  EXPECT_EQ(tok->Piece(-5), "");
  EXPECT_EQ(tok->vocab_size(), v.tokens.size());
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_EQ(tok->unk(), 0);
}

std::vector<int32_t> ByteIds(std::string_view bytes) {
  std::vector<int32_t> ids;
  for (char c : bytes) ids.push_back(kFirstByte + static_cast<uint8_t>(c));
  return ids;
}

TEST(TokenizerTest, DecodeReplacesEachInvalidSubpartWithReplacementCharacter) {
  auto tok = MustCreate(MakeVocab({}));
  ASSERT_NE(tok, nullptr);
  const std::pair<std::string, std::string> cases[] = {
      {"ok \xF0\x9F\x99\x82", "ok \xF0\x9F\x99\x82"},       // 🙂 is valid
      {"\x80", kFffd},                                      // lone continuation
      {"\xC0\x80", kFffd + kFffd},                          // overlong: C0 never starts anything
      {"\xE0\x80\x80", kFffd + kFffd + kFffd},              // overlong three-byte form
      {"\xED\xA0\x80", kFffd + kFffd + kFffd},              // a surrogate
      {"\xF4\x90\x80\x80", kFffd + kFffd + kFffd + kFffd},  // above U+10FFFF
      {"\xF0\x9F\x99x", kFffd + "x"},                       // truncated 4-byte sequence: one U+FFFD
      {"x\xE6\xBC", "x" + kFffd},                           // truncated at the end
      {"\xFF", kFffd},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(tok->Decode(ByteIds(in)), want);
}

// An independent UTF-8 check: shortest forms only, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const uint8_t b = static_cast<uint8_t>(s[i]);
    const size_t len = b < 0x80         ? 1
                       : (b >> 5) == 6  ? 2
                       : (b >> 4) == 14 ? 3
                       : (b >> 3) == 30 ? 4
                                        : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? b : b & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      const uint8_t c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = cp << 6 | (c & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

TEST(TokenizerTest, DecodeOfRandomBytesIsValidUtf8) {
  auto tok = MustCreate(MakeVocab({}));
  ASSERT_NE(tok, nullptr);
  std::mt19937 rng(5);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string s;
    for (size_t n = rng() % 16; n > 0; --n) s += static_cast<char>(0x70 + rng() % 0x90);
    const std::string text = tok->Decode(ByteIds(s));
    ASSERT_TRUE(IsValidUtf8(text)) << "trial " << trial;
    if (IsValidUtf8(s)) {
      ASSERT_EQ(text, s);
    }
  }
}

TEST(StreamingDecoderTest, HoldsBackSplitCharacters) {
  auto tok = MustCreate(MakeVocab({{M(" hi"), -1}}));
  ASSERT_NE(tok, nullptr);
  StreamingDecoder d(tok.get());
  const std::vector<int32_t> emoji = ByteIds("\xF0\x9F\x99\x82");
  EXPECT_EQ(d.Push(emoji[0]), "");
  EXPECT_EQ(d.Push(emoji[1]), "");
  EXPECT_EQ(d.Push(emoji[2]), "");
  EXPECT_EQ(d.Push(emoji[3]), "\xF0\x9F\x99\x82");
  EXPECT_EQ(d.Push(259), " hi");
  EXPECT_EQ(d.Push(1), "");  // <s> prints nothing
  EXPECT_EQ(d.Flush(), "");
}

TEST(StreamingDecoderTest, InvalidBytesBecomeReplacementCharacters) {
  auto tok = MustCreate(MakeVocab({{M(" hi"), -1}}));
  ASSERT_NE(tok, nullptr);
  StreamingDecoder d(tok.get());
  EXPECT_EQ(d.Push(kFirstByte + 0x80), kFffd);
  EXPECT_EQ(d.Push(kFirstByte + 0xE6), "");
  EXPECT_EQ(d.Push(259), kFffd + " hi");  // the sequence broke off
  EXPECT_EQ(d.Push(kFirstByte + 0xF0), "");
  EXPECT_EQ(d.Push(kFirstByte + 0x9F), "");
  EXPECT_EQ(d.Flush(), kFffd);  // dangling at the end
  EXPECT_EQ(d.Flush(), "");
}

TEST(StreamingDecoderTest, MatchesDecodeOnRandomIds) {
  auto tok = MustCreate(MakeVocab({{M(" hi"), -1}, {"\xC3\xA9", -2}}));
  ASSERT_NE(tok, nullptr);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<int32_t> ids;
    for (size_t n = rng() % 12; n > 0; --n) {
      ids.push_back(rng() % 3 == 0 ? 259 + static_cast<int32_t>(rng() % 2)
                                   : kFirstByte + 0x7F + static_cast<int32_t>(rng() % 0x80));
    }
    StreamingDecoder d(tok.get());
    std::string streamed;
    for (int32_t id : ids) {
      const std::string piece = d.Push(id);
      ASSERT_TRUE(IsValidUtf8(piece));
      streamed += piece;
    }
    streamed += d.Flush();
    ASSERT_EQ(streamed, tok->Decode(ids)) << "trial " << trial;
  }
}

// ---- Validation ----

void ExpectError(const StatusOr<std::unique_ptr<Tokenizer>>& tok, const std::string& what) {
  ASSERT_FALSE(tok.ok()) << what;
  EXPECT_EQ(tok.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(tok.status().message().find(what), std::string::npos) << tok.status().ToString();
}

void ExpectInvalid(const VocabData& v, const std::string& what) {
  ExpectError(Tokenizer::Create(v), what);
}

TEST(TokenizerTest, CreateRejectsMalformedVocabs) {
  const VocabData good = MakeVocab({{"a", -1}});
  VocabData v = good;
  v.scores.pop_back();
  ExpectInvalid(v, "scores");
  v = good;
  v.types.push_back(1);
  ExpectInvalid(v, "token types");
  v = good;
  v.bos = static_cast<int32_t>(v.tokens.size());
  ExpectInvalid(v, "bos id 260 is out of range");
  v = good;
  v.eos = -1;
  ExpectInvalid(v, "eos id -1");
  v = good;
  v.unk = 1000;
  ExpectInvalid(v, "unk id 1000");
  v = good;
  v.tokens[kFirstByte + 5] = "<0xZ5>";
  ExpectInvalid(v, "token 8 '<0xZ5>' has type byte but is not <0xHH>");
  v = good;
  v.types[259] = 9;
  ExpectInvalid(v, "token 259 'a' has type 9");
  v = good;
  v.scores[259] = std::nanf("");
  ExpectInvalid(v, "not finite");
  ExpectInvalid(VocabData{}, "no tokens");
}

// ---- FromGguf on small in-memory files ----

const std::vector<std::string> kTinyTokens = {"<unk>", "<s>", "</s>", kMark, "a", kMark + "a"};

// A GGUF with tokenizer model `model` (none if empty), kTinyTokens and what `add` writes.
StatusOr<std::unique_ptr<Tokenizer>> FromGguf(
    std::string_view model, const std::function<void(GgufWriter*)>& add = [](GgufWriter*) {}) {
  GgufWriter w;
  if (!model.empty()) w.AddString("tokenizer.ggml.model", model);
  w.AddStringArray("tokenizer.ggml.tokens", kTinyTokens);
  add(&w);
  LLMS_ASSIGN_OR_RETURN(std::string bytes, w.WriteToString());
  LLMS_ASSIGN_OR_RETURN(auto file, GgufFile::FromRegion(NewMemoryRegion(bytes), "mem.gguf"));
  return Tokenizer::FromGguf(*file);
}

TEST(TokenizerGgufTest, RejectsOtherTokenizerModels) {
  ExpectError(FromGguf("gpt2"), "mem.gguf: tokenizer model 'gpt2' is not supported (only 'llama')");
  ExpectError(FromGguf(""), "tokenizer.ggml.model is missing");
}

TEST(TokenizerGgufTest, OptionalKeysDefaultLikeLlamaCpp) {
  auto tok = FromGguf("llama");
  ASSERT_OK(tok);
  EXPECT_EQ((*tok)->vocab_size(), 6u);
  EXPECT_EQ((*tok)->bos(), 1);
  EXPECT_EQ((*tok)->eos(), 2);
  EXPECT_EQ((*tok)->unk(), 0);
  EXPECT_EQ((*tok)->Type(4), kTokenNormal);
  // Scores all 0: "▁a" still forms; "b" has no byte token and falls back to unk.
  EXPECT_EQ((*tok)->Encode("a b", true), (std::vector<int32_t>{1, 5, 3, 0}));
}

TEST(TokenizerGgufTest, ReadsEveryKey) {
  auto tok = FromGguf("llama", [](GgufWriter* w) {
    w->AddFloat32Array("tokenizer.ggml.scores", {0, 0, 0, -1, -2, -3});
    w->AddInt32Array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1});
    w->AddUint32("tokenizer.ggml.bos_token_id", 2);
    w->AddUint32("tokenizer.ggml.eos_token_id", 1);
    w->AddUint32("tokenizer.ggml.unknown_token_id", 0);
    w->AddBool("tokenizer.ggml.add_bos_token", true);
    w->AddBool("tokenizer.ggml.add_space_prefix", false);
  });
  ASSERT_OK(tok);
  EXPECT_EQ((*tok)->bos(), 2);
  EXPECT_EQ((*tok)->eos(), 1);
  EXPECT_EQ((*tok)->Type(1), kTokenControl);
  EXPECT_EQ((*tok)->Encode("a a", true), (std::vector<int32_t>{2, 4, 5}));
  tok = FromGguf("llama", [](GgufWriter* w) { w->AddBool("tokenizer.ggml.add_bos_token", false); });
  ASSERT_OK(tok);
  EXPECT_EQ((*tok)->Encode("a", true), (std::vector<int32_t>{5}));
}

TEST(TokenizerGgufTest, RejectsBadKeys) {
  // 0xFFFFFFFF is how some converters write "none".
  ExpectError(
      FromGguf("llama",
               [](GgufWriter* w) { w->AddUint32("tokenizer.ggml.bos_token_id", 0xFFFFFFFFu); }),
      "tokenizer.ggml.bos_token_id = 4294967295 is out of range");
  ExpectError(
      FromGguf("llama", [](GgufWriter* w) { w->AddUint32("tokenizer.ggml.eos_token_id", 6); }),
      "mem.gguf: eos id 6 is out of range");
  ExpectError(FromGguf("llama",
                       [](GgufWriter* w) {
                         w->AddFloat32Array("tokenizer.ggml.scores", {0, 0, 0});
                       }),
              "6 tokens but 3 scores");
  ExpectError(
      FromGguf("llama",
               [](GgufWriter* w) { w->AddStringArray("tokenizer.ggml.token_type", kTinyTokens); }),
      "tokenizer.ggml.token_type");
}

// ---- Golden: stories260K.gguf (../shared/golden/stories260K.md) ----

// The stories260K tokenizer, loaded once for the suite.
struct Golden {
  std::unique_ptr<Tokenizer> tok;
  std::string error;  // why tok is null
};

const Golden& LoadGolden() {
  static const Golden golden = [] {
    Golden g;
    auto file = GgufFile::Open(Env::Default(), testing::DefaultModelPath());
    if (!file.ok()) {
      g.error = file.status().ToString();
      return g;
    }
    auto tok = Tokenizer::FromGguf(**file);  // copies what it needs: the file may close
    if (!tok.ok()) {
      g.error = tok.status().ToString();
      return g;
    }
    g.tok = std::move(tok).value();
    return g;
  }();
  return golden;
}

class GoldenTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(LoadGolden().tok, nullptr) << LoadGolden().error; }
  const Tokenizer& tok() const { return *LoadGolden().tok; }
};

std::vector<int32_t> ParseIds(const std::string& s) {
  std::vector<int32_t> ids;
  std::istringstream in(s);
  for (int32_t id; in >> id;) ids.push_back(id);
  return ids;
}

const char kGreedyIds[] =
    "403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 "
    "292 411 322 265 282 295 433 426 385 328 432 358 394 261 370 432 352 266 268 388 426 338 391 "
    "266 267 337 335 312 432 398 312 286 267 414 270 333 415 426 13 438 310";
const char kGreedyText[] =
    " Once upon a time, there was a little girl named Lily. She loved to play outside in the "
    "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily";

TEST_F(GoldenTokenizerTest, VocabShape) {
  EXPECT_EQ(tok().vocab_size(), 512u);
  EXPECT_EQ(tok().bos(), 1);
  EXPECT_EQ(tok().eos(), 2);
  EXPECT_EQ(tok().unk(), 0);
  EXPECT_EQ(tok().Piece(13), "<0x0A>");
  EXPECT_EQ(tok().TokenBytes(13), "\n");
}

TEST_F(GoldenTokenizerTest, EncodesPrompts) {
  EXPECT_EQ(tok().Encode("Once upon a time", true), (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok().Encode("", true), (std::vector<int32_t>{1}));
}

TEST_F(GoldenTokenizerTest, EncodesTinyStories) {
  const std::string text = testing::ReadSharedText("data/tinystories-valid.txt");
  ASSERT_FALSE(text.empty());
  const auto start = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = tok().Encode(text, false);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("tinystories-valid.txt: %zu bytes -> %zu tokens in %.3f s\n", text.size(), ids.size(),
              secs);
  // Not in the golden file: the count (and the whole stream) agree with a separate Python port
  // of llama.cpp's spm session; pinned here so a change in tokenization cannot pass unnoticed.
  EXPECT_EQ(ids.size(), 393018u);
  ASSERT_GE(ids.size(), 39u);
  ids.insert(ids.begin(), tok().bos());
  ids.resize(40);
  EXPECT_EQ(ids, ParseIds("1 301 427 309 426 301 427 309 394 265 262 415 271 422 280 295 269 336 "
                          "432 313 448 327 432 410 462 362 422 432 364 420 280 295 410 293 384 "
                          "268 325 428 415 413"));
}

TEST_F(GoldenTokenizerTest, DecodesGreedyOutput) {
  std::vector<int32_t> ids = ParseIds(kGreedyIds);
  EXPECT_EQ(tok().Decode(ids), kGreedyText);
  ids.insert(ids.begin(), 1);  // with the prompt's BOS, which prints nothing
  EXPECT_EQ(tok().Decode(ids), kGreedyText);
  // The second golden run: prompt "Once upon a time" and 64 tokens of continuation.
  ids = ParseIds(
      "1 403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 "
      "419 292 411 322 265 282 295 433 426 385 328 432 358 394 261 370 432 352 266 268 388 426 338 "
      "391 266 267 337 335 312 432 398 312 286 267 414 270 333 415 426 13 438 310 439 419 357 336");
  EXPECT_EQ(tok().Decode(ids), std::string(kGreedyText) + "'s mom said");
  // Streaming gives the same text.
  StreamingDecoder d(&tok());
  std::string streamed;
  for (int32_t id : ids) streamed += d.Push(id);
  EXPECT_EQ(streamed + d.Flush(), std::string(kGreedyText) + "'s mom said");
}

TEST_F(GoldenTokenizerTest, RoundTrips) {
  const std::string cases[] = {
      "Once upon a time",
      "hello  world",
      "  leading and trailing  ",
      "line one\nline two\n\ttabbed",
      "caf\xC3\xA9 cr\xC3\xA8me br\xC3\xBBl\xC3\xA9"
      "e",
      "\xE6\xBC\xA2\xE5\xAD\x97",                          // 漢字
      "smile \xF0\x9F\x99\x82 and wave \xF0\x9F\x91\x8B",  // 🙂 👋
      "<s> is text here, and so is </s> and <0x41>x",
      "punctuation: \"quotes\", (parens) [brackets] {braces}!?",
  };
  for (const std::string& s : cases) {
    EXPECT_EQ(tok().Decode(tok().Encode(s, true)), " " + s) << s;
  }
}

TEST_F(GoldenTokenizerTest, RandomBytesDecodeToValidUtf8) {
  std::mt19937 rng(99);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s;
    for (size_t n = rng() % 64; n > 0; --n) s += static_cast<char>(rng() % 256);
    const std::vector<int32_t> ids = tok().Encode(s, false);
    for (int32_t id : ids) ASSERT_NE(id, tok().unk());  // every byte has a byte token
    const std::string text = tok().Decode(ids);
    ASSERT_TRUE(IsValidUtf8(text)) << "trial " << trial;
    // Valid input comes back unchanged.
    if (IsValidUtf8(s)) {
      EXPECT_EQ(text, s.empty() ? "" : " " + s);
    }
  }
}

TEST_F(GoldenTokenizerTest, StreamsEmojiFromByteTokens) {
  const std::vector<int32_t> ids = tok().Encode("\xF0\x9F\x99\x82", false);
  // "▁" and then the emoji's four byte tokens: the 512-token vocab has no piece for it.
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(ids[1], 3 + 0xF0);
  StreamingDecoder d(&tok());
  EXPECT_EQ(d.Push(ids[0]), " ");
  EXPECT_EQ(d.Push(ids[1]), "");
  EXPECT_EQ(d.Push(ids[2]), "");
  EXPECT_EQ(d.Push(ids[3]), "");
  EXPECT_EQ(d.Push(ids[4]), "\xF0\x9F\x99\x82");
  EXPECT_EQ(d.Push(ids[1]), "");
  EXPECT_EQ(d.Flush(), kFffd);
}

}  // namespace
}  // namespace llms
