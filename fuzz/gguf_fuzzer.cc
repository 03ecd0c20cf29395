// libFuzzer target for the GGUF reader (src/model/gguf.h) and what is built on it: the input is
// a model file. It is opened from memory, every metadata value is read through each typed
// getter and every tensor's bytes are touched and its first row decoded; then the tokenizer
// (src/model/tokenizer.h) and the Llama binding (src/model/llama_model.h) are built from it and,
// when they are, used a little. Bad bytes from a file must be an error, never a crash: any
// crash, leak or sanitizer report is a bug, and so is a broken invariant (an abort below).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "env/env.h"
#include "formats/weight_ref.h"
#include "formats/weight_types.h"
#include "model/gguf.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"

namespace {

using llms::GgufFile;
using llms::GgufTensorInfo;
using llms::GgufType;
using llms::GgufValue;
using llms::StatusOr;
using llms::Tokenizer;

// Rows longer than this are not decoded: 4096 values is a real model's row (Llama-2-7B's width)
// and keeps each input's work and the one reused buffer small.
constexpr size_t kMaxDecodedRow = 4096;
// Texts encoded with every vocabulary: spaces, a byte-fallback character, ChatML markers and
// control-token spellings (which are never parsed as special), invalid UTF-8.
constexpr std::string_view kTexts[] = {
    "Once upon a time",     " a  b\n",      "\xC3\xA9t\xC3\xA9 \xF0\x9F\x99\x82",
    "<|im_start|>user\nhi", "<s></s><unk>", "\xFF\xC0\x80 \xED\xA0\x80\xE2\x82"};

// Reads of file bytes go here so that the compiler cannot drop them.
volatile uint8_t touched;
void Touch(uint8_t byte) { touched = byte; }

// Reads each value through every getter: the one of its type must succeed, the others must fail
// cleanly.
void WalkMetadata(const GgufFile& file) {
  for (const std::string& key : file.keys()) {
    const GgufValue* value = file.FindOrNull(key);
    if (value == nullptr) std::abort();  // every listed key can be found
    (void)file.GetInt(key);
    (void)file.GetFloat(key);
    StatusOr<std::string_view> s = file.GetString(key);
    if (s.ok() && !s->empty()) Touch(static_cast<uint8_t>(s->back()));
    StatusOr<std::vector<std::string_view>> strings = file.GetStringArray(key);
    if (strings.ok()) {
      for (std::string_view e : *strings) {
        if (!e.empty()) Touch(static_cast<uint8_t>(e.back()));
      }
    }
    (void)file.GetFloatArray(key);
    (void)file.GetIntArray(key);
  }
  (void)file.GetInt("no.such.key");
}

// Checks each tensor's placement and touches its first and last byte (ASan checks they lie in
// the input), then decodes its first row as the model binding decodes norm vectors.
void WalkTensors(const GgufFile& file) {
  static std::vector<float> row(kMaxDecodedRow);
  for (const GgufTensorInfo& t : file.tensors()) {
    if (file.FindTensorOrNull(t.name) == nullptr) std::abort();
    const uint64_t row_bytes = llms::RowBytes(t.type, t.dims[0]);
    if (row_bytes == 0 || row_bytes * t.rows() != t.size_bytes) std::abort();
    if (t.num_elements() != t.dims[0] * t.rows()) std::abort();
    Touch(t.data[0]);
    Touch(t.data[t.size_bytes - 1]);
    if (t.dims[0] <= kMaxDecodedRow) llms::DequantizeRowRef(t.type, t.data, row.data(), t.dims[0]);
  }
  (void)file.FindTensorOrNull("no.such.tensor");
}

// Encodes and decodes with the vocabulary: the streaming decoder must agree with Decode (its
// documented contract), and every id must map to bytes.
void UseTokenizer(const Tokenizer& tok, std::string_view input) {
  std::vector<std::string_view> texts(std::begin(kTexts), std::end(kTexts));
  texts.push_back(input.substr(input.size() - std::min<size_t>(input.size(), 64)));
  for (std::string_view text : texts) {
    for (const bool continuation : {false, true}) {
      const std::vector<int32_t> ids = tok.Encode(text, /*add_bos=*/true, continuation);
      for (const int32_t id : ids) {
        if (id < 0 || static_cast<size_t>(id) >= tok.vocab_size()) std::abort();
      }
      const std::string decoded = tok.Decode(ids);
      llms::StreamingDecoder stream(&tok);
      std::string streamed;
      for (const int32_t id : ids) streamed += stream.Push(id);
      streamed += stream.Flush();
      if (streamed != decoded) std::abort();
    }
  }
  const int32_t n = static_cast<int32_t>(std::min<size_t>(tok.vocab_size(), 512));
  for (int32_t id = -1; id <= n; ++id) {
    (void)tok.TokenBytes(id);
    (void)tok.Piece(id);
    (void)tok.Type(id);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  StatusOr<std::unique_ptr<GgufFile>> file =
      GgufFile::FromRegion(llms::NewMemoryRegion(std::string(input)), "fuzz.gguf");
  if (!file.ok()) return 0;
  WalkMetadata(**file);
  WalkTensors(**file);
  StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromGguf(**file);
  if (tok.ok()) UseTokenizer(**tok, input);
  StatusOr<std::unique_ptr<llms::LlamaModel>> model =
      llms::LlamaModel::FromGguf(std::move(file).value());
  if (!model.ok()) return 0;
  const llms::ModelConfig& c = (*model)->config();
  if (c.head_dim * c.n_heads != c.dim || c.n_heads % c.n_kv_heads != 0) std::abort();
  if ((*model)->weights().layers.size() != c.n_layers) std::abort();
  if ((*model)->tokenizer().vocab_size() != c.vocab_size) std::abort();
  (void)(*model)->WeightBytes();
  return 0;
}
