// Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): messages of every type of
// docs/protocol.md and streams of frames, HTTP requests for every endpoint of docs/openai.md, and
// tiny GGUF files built with GgufWriter (models of each weight type that load, a vocabulary with
// every token type, metadata of every value type). Small valid inputs give the fuzzer the
// grammar; it finds the invalid ones itself. Usage: fuzz_seed_writer <corpus dir>; the output is
// deterministic, so rerunning it rewrites the committed seeds byte for byte (inputs added to the
// corpus by hand, such as fixed crashes, are left alone).
#include <cstdint>
#include <cstdio>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "env/env.h"
#include "formats/weight_ref.h"
#include "model/gguf_writer.h"
#include "model/llama_model.h"

namespace llms {
namespace {

// Writes <dir>/<name>, creating <dir> (whose parent must exist) if needed.
Status WriteSeed(const std::string& dir, const std::string& name, const std::string& bytes) {
  LLMS_RETURN_IF_ERROR(Env::Default()->CreateDir(dir));
  LLMS_ASSIGN_OR_RETURN(auto file, Env::Default()->NewWritableFile(dir + "/" + name));
  LLMS_RETURN_IF_ERROR(
      file->Append({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}));
  return file->Close();
}

// ---- Native protocol ----

// One frame: the payload's length as 4 bytes little-endian, then the payload.
std::string Frame(const std::string& payload) {
  const auto n = static_cast<uint32_t>(payload.size());
  std::string out = {static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 24)};
  return out + payload;
}

Status WriteWireSeeds(const std::string& dir) {
  // Requests and replies of docs/protocol.md, bare: wire_fuzzer also reads its input as the
  // payload of one frame.
  const std::vector<std::pair<std::string, std::string>> messages = {
      {"hello", R"({"type":"hello","id":1,"version":1})"},
      {"create", R"({"type":"create","id":2})"},
      {"create_system", R"({"type":"create","id":2,"system_prompt":"You are terse."})"},
      {"call", R"({"type":"call","id":3,"context":2,"prompt":"Once upon a time","max_tokens":8,)"
               R"("temperature":0})"},
      {"call_all_fields",
       R"({"type":"call","id":3,"context":2,"prompt":" The cat\n","max_tokens":128,)"
       R"("temperature":0.8,"top_k":40,"top_p":0.95,"repeat_penalty":1.1,"seed":42,)"
       R"("stop":"\n\n"})"},
      {"call_stop_array",
       R"({"type":"call","id":3,"context":2,"prompt":"\u00e9t\u00e9 \ud83d\ude00",)"
       R"("stop":["User:","\nAssistant:"],"temperature":null})"},
      {"call_prompt_tokens", R"({"type":"call","id":5,"context":7,"prompt_tokens":[1,300,2]})"},
      {"cancel", R"({"type":"cancel","id":4,"target":3})"},
      {"delete", R"({"type":"delete","id":6,"context":2})"},
      {"list", R"({"type":"list","id":7})"},
      {"stats", R"({"type":"stats","id":8,"context":2})"},
      {"reply_hello",
       R"({"type":"hello","id":1,"version":1,"app":"uid:1000","model":"stories260K",)"
       R"("context_window":512,"max_prompt_tokens":2048,"max_contexts":64})"},
      {"reply_created", R"({"type":"created","id":2,"context":2,"tokens":0})"},
      {"reply_token", R"({"type":"token","id":3,"text":" there"})"},
      {"reply_done",
       R"({"type":"done","id":3,"context":2,"text":", there was","stop_reason":"length",)"
       R"("usage":{"prompt_tokens":5,"completion_tokens":8},"stats":{"chunks":1,)"
       R"("chunks_loaded":0,"bytes_read":0,"ready_ms":0.25,"extra_first_token_ms":-0.5}})"},
      {"reply_stats",
       R"({"type":"stats","id":8,"context":2,"tokens":13,"chunks":1,"resident_chunks":1,)"
       R"("flash_chunks":0,"resident_bytes":4096,)"
       R"("chunks_per_level":{"f16":1,"int8":0,"int4":0,"int2":0}})"},
      {"reply_error",
       R"({"type":"error","id":7,"code":"not_found","message":"context 12 not found"})"},
  };
  for (const auto& [name, payload] : messages) {
    LLMS_RETURN_IF_ERROR(WriteSeed(dir, name, payload));
  }
  // Frame streams: a session's requests back to back, as one connection sends them, and frames
  // that must be refused (over the limit, cut short, not an object, no type).
  LLMS_RETURN_IF_ERROR(WriteSeed(dir, "session",
                                 Frame(messages[0].second) + Frame(messages[1].second) +
                                     Frame(messages[3].second) + Frame(messages[10].second) +
                                     Frame(messages[8].second)));
  LLMS_RETURN_IF_ERROR(WriteSeed(dir, "oversized", std::string("\xff\xff\xff\x7f{}", 6)));
  LLMS_RETURN_IF_ERROR(WriteSeed(dir, "truncated", Frame(messages[0].second).substr(0, 20)));
  return WriteSeed(dir, "not_an_object", Frame("[1,2]") + Frame(R"({"id":1})"));
}

// ---- HTTP ----

std::string Post(const std::string& path, const std::string& body,
                 const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer sk-123\r\n" +
         "Content-Type: application/json\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string Get(const std::string& path, const std::string& version = "1.1") {
  return "GET " + path + " HTTP/" + version + "\r\nHost: localhost\r\n\r\n";
}

Status WriteHttpSeeds(const std::string& dir) {
  const std::string chat =
      R"({"model":"stories260K","messages":[{"role":"system","content":"Be brief."},)"
      R"({"role":"user","content":"Once upon a time"}],"max_tokens":16,"temperature":0})";
  const std::string chat_stream =
      R"({"model":"m","messages":[{"role":"user","content":"Hi"},)"
      R"({"role":"assistant","content":" Hello."},{"role":"user","content":"More"}],)"
      R"("stream":true,"stream_options":{"include_usage":true},"stop":["\n","User:"]})";
  const std::string chat_parts =
      R"({"messages":[{"role":"developer","content":[{"type":"text","text":"Rules."}]},)"
      R"({"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},)"
      R"({"role":"tool","content":null}],"n":1,"seed":7,"max_completion_tokens":4,)"
      R"("top_p":0.5,"context":3})";
  // A part whose type is not a string once aborted llmsd (nlohmann's value() threw).
  const std::string chat_part_type_number =
      R"({"messages":[{"role":"user","content":[{"type":1},{"type":"text","text":2}]}]})";
  const std::string completion =
      R"({"model":"m","prompt":"Once upon a time","max_tokens":8,"stop":"\n"})";
  const std::string completion_stream =
      R"({"prompt":["The cat"],"stream":true,"temperature":1.5,"seed":1})";
  const std::vector<std::pair<std::string, std::string>> seeds = {
      {"chat", Post("/v1/chat/completions", chat)},
      {"chat_stream", Post("/v1/chat/completions", chat_stream)},
      {"chat_parts", Post("/v1/chat/completions", chat_parts, "X-Llms-Context: 3\r\n")},
      {"chat_part_type_number", Post("/v1/chat/completions", chat_part_type_number)},
      {"completion", Post("/v1/completions", completion)},
      {"completion_stream", Post("/v1/completions", completion_stream)},
      {"chat_chunked",
       "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "1a\r\n{\"messages\":[{\"role\":\"us\r\n12\r\ner\",\"content\":\"x\"}]}\r\n0\r\n\r\n"},
      {"models", Get("/v1/models")},
      {"health", Get("/health")},
      {"metrics", Get("/metrics")},
      {"not_found", Get("/v1/engines?x=1", "1.0")},
      {"pipelined", Get("/health") + Post("/v1/completions", completion) +
                        Post("/v1/chat/completions", chat, "Connection: close\r\n")},
      {"body_chat", chat},
      {"body_completion", completion},
  };
  for (const auto& [name, bytes] : seeds) LLMS_RETURN_IF_ERROR(WriteSeed(dir, name, bytes));
  return Status::Ok();
}

// ---- GGUF ----

// Deterministic values in [-1, 1): the weights only need to be well-formed, not meaningful.
float Value(uint64_t i) { return static_cast<float>((i * 2654435761u) % 2001) / 1000.0f - 1.0f; }

// A FillFn writing `rows` rows of `cols` values of `type`.
GgufWriter::FillFn Rows(WeightType type, size_t cols, size_t rows) {
  return [type, cols, rows](std::span<uint8_t> out) {
    std::vector<float> row(cols);
    const size_t row_bytes = RowBytes(type, cols);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < cols; ++c) row[c] = Value(r * cols + c);
      QuantizeRowRef(type, row.data(), out.data() + r * row_bytes, cols);
    }
  };
}

// A vocabulary with every token type (2 unknown, 3 control, 6 byte, 1 normal, 4 user-defined,
// 5 unused, 0 undefined) and merges whose scores prefer longer pieces.
void AddVocab(GgufWriter* w) {
  const std::string space = "\xE2\x96\x81";  // U+2581, SentencePiece's space
  const std::vector<std::string> tokens = {
      "<unk>",      "<s>",      "</s>", "<0x0A>",    "<0xC3>", "<0xA9>",     space,
      "a",          "b",        "c",    space + "a", "ab",     space + "ab", "<|im_start|>",
      "<|im_end|>", "[UNUSED]", "?"};
  const std::vector<int32_t> types = {2, 3, 3, 6, 6, 6, 1, 1, 1, 1, 1, 1, 1, 4, 4, 5, 0};
  std::vector<float> scores;
  for (const std::string& t : tokens) scores.push_back(static_cast<float>(t.size()) - 10.0f);
  w->AddString("tokenizer.ggml.model", "llama");
  w->AddStringArray("tokenizer.ggml.tokens", tokens);
  w->AddFloat32Array("tokenizer.ggml.scores", scores);
  w->AddInt32Array("tokenizer.ggml.token_type", types);
  w->AddUint32("tokenizer.ggml.bos_token_id", 1);
  w->AddUint32("tokenizer.ggml.eos_token_id", 2);
  w->AddUint32("tokenizer.ggml.unknown_token_id", 0);
}
constexpr size_t kVocab = 17;

// A Llama model small enough to seed a fuzzer: one or two layers of width 32.
struct TinyModel {
  size_t dim = 32, n_layers = 1, n_heads = 2, n_kv_heads = 1, ffn = 32;
  WeightType matrices = WeightType::kQ8_0;
  WeightType norms = WeightType::kF32;
  bool tie_output = true;
  std::function<void(GgufWriter*)> extra_keys;  // more metadata
};

StatusOr<std::string> BuildModel(const TinyModel& m) {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddUint32("llama.embedding_length", m.dim);
  w.AddUint32("llama.block_count", m.n_layers);
  w.AddUint32("llama.feed_forward_length", m.ffn);
  w.AddUint32("llama.attention.head_count", m.n_heads);
  w.AddUint32("llama.attention.head_count_kv", m.n_kv_heads);
  if (m.extra_keys) m.extra_keys(&w);
  AddVocab(&w);
  auto matrix = [&](const std::string& name, size_t cols, size_t rows) {
    w.AddTensor(name, m.matrices, {cols, rows}, Rows(m.matrices, cols, rows));
  };
  auto norm = [&](const std::string& name) {
    w.AddTensor(name, m.norms, {m.dim}, Rows(m.norms, m.dim, 1));
  };
  const size_t head_dim = m.dim / m.n_heads, q = m.n_heads * head_dim, kv = m.n_kv_heads * head_dim;
  matrix("token_embd.weight", m.dim, kVocab);
  for (size_t l = 0; l < m.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight");
    matrix(p + "attn_q.weight", m.dim, q);
    matrix(p + "attn_k.weight", m.dim, kv);
    matrix(p + "attn_v.weight", m.dim, kv);
    matrix(p + "attn_output.weight", q, m.dim);
    norm(p + "ffn_norm.weight");
    matrix(p + "ffn_gate.weight", m.dim, m.ffn);
    matrix(p + "ffn_up.weight", m.dim, m.ffn);
    matrix(p + "ffn_down.weight", m.ffn, m.dim);
  }
  norm("output_norm.weight");
  if (!m.tie_output) matrix("output.weight", m.dim, kVocab);
  LLMS_ASSIGN_OR_RETURN(std::string bytes, w.WriteToString());
  // A model seed that does not load would only seed the error paths: check it does.
  LLMS_ASSIGN_OR_RETURN(auto file, GgufFile::FromRegion(NewMemoryRegion(bytes), "seed.gguf"));
  LLMS_RETURN_IF_ERROR(LlamaModel::FromGguf(std::move(file)).status());
  return bytes;
}

// Metadata of every value type, scalar and array, including empty arrays; no tensors.
StatusOr<std::string> BuildMetadata() {
  GgufWriter w;
  w.AddUint32("general.alignment", 64);
  w.AddUint8("t.u8", 200);
  w.AddInt8("t.i8", -100);
  w.AddUint16("t.u16", 60000);
  w.AddInt16("t.i16", -30000);
  w.AddUint32("t.u32", 4000000000u);
  w.AddInt32("t.i32", -2000000000);
  w.AddUint64("t.u64", uint64_t{1} << 62);
  w.AddInt64("t.i64", -(int64_t{1} << 62));
  w.AddFloat32("t.f32", 1.5f);
  w.AddFloat64("t.f64", -2.25);
  w.AddBool("t.bool", true);
  w.AddString("t.string", "\xC3\xA9t\xC3\xA9");
  w.AddString("t.empty_string", "");
  w.AddStringArray("t.strings", {"a", "", "bc"});
  w.AddFloat32Array("t.f32s", {0.5f, -1.0f});
  w.AddInt32Array("t.i32s", {1, -2, 3});
  const uint8_t bools[] = {0, 1, 1};
  w.AddArray("t.bools", GgufType::kBool, 3, bools);
  const uint8_t u64s[16] = {1, 0, 0, 0, 0, 0, 0, 0, 2};
  w.AddArray("t.u64s", GgufType::kUint64, 2, u64s);
  const uint8_t f64s[8] = {0, 0, 0, 0, 0, 0, 0xf0, 0x3f};  // 1.0
  w.AddArray("t.f64s", GgufType::kFloat64, 1, f64s);
  w.AddArray("t.empty_u8s", GgufType::kUint8, 0, {});
  w.AddStringArray("t.empty_strings", {});
  return w.WriteToString();
}

// One tensor of each storage type, of several ranks, and a vocabulary without a model.
StatusOr<std::string> BuildTensors() {
  GgufWriter w;
  AddVocab(&w);
  w.AddBool("tokenizer.ggml.add_bos_token", false);
  w.AddBool("tokenizer.ggml.add_space_prefix", false);
  w.AddTensor("f32", WeightType::kF32, {4, 3}, Rows(WeightType::kF32, 4, 3));
  w.AddTensor("f16", WeightType::kF16, {2, 2, 2}, Rows(WeightType::kF16, 2, 4));
  w.AddTensor("bf16", WeightType::kBF16, {1, 1, 1, 3}, Rows(WeightType::kBF16, 1, 3));
  w.AddTensor("q8_0", WeightType::kQ8_0, {32, 2}, Rows(WeightType::kQ8_0, 32, 2));
  w.AddTensor("q4_0", WeightType::kQ4_0, {64}, Rows(WeightType::kQ4_0, 64, 1));
  w.AddTensor("q4_k", WeightType::kQ4_K, {256}, Rows(WeightType::kQ4_K, 256, 1));
  w.AddTensor("q6_k", WeightType::kQ6_K, {256, 2}, Rows(WeightType::kQ6_K, 256, 2));
  return w.WriteToString();
}

Status WriteGgufSeeds(const std::string& dir) {
  const std::vector<std::pair<std::string, TinyModel>> models = {
      {"llama_q8_0.gguf", {}},
      {"llama_f32_two_layers.gguf",
       {.dim = 16,
        .n_layers = 2,
        .n_heads = 2,
        .n_kv_heads = 1,
        .ffn = 16,
        .matrices = WeightType::kF32}},
      {"llama_f16_untied.gguf",
       {.n_heads = 4,
        .n_kv_heads = 4,
        .matrices = WeightType::kF16,
        .norms = WeightType::kF16,
        .tie_output = false,
        .extra_keys =
            [](GgufWriter* w) {
              w->AddUint32("general.alignment", 64);
              w->AddUint32("llama.context_length", 256);
              w->AddUint32("llama.rope.dimension_count", 8);
              w->AddFloat32("llama.rope.freq_base", 500000.0f);
              w->AddFloat32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
              w->AddString("llama.rope.scaling.type", "linear");
              w->AddFloat32("llama.rope.scaling.factor", 2.0f);
              w->AddString("tokenizer.chat_template",
                           "{% for m in messages %}<|im_start|>{{ m.role }}\n"
                           "{{ m.content }}<|im_end|>\n{% endfor %}");
            }}},
      {"llama_q4_0_bf16.gguf",
       {.dim = 64, .matrices = WeightType::kQ4_0, .norms = WeightType::kBF16}},
  };
  for (const auto& [name, model] : models) {
    LLMS_ASSIGN_OR_RETURN(std::string bytes, BuildModel(model));
    LLMS_RETURN_IF_ERROR(WriteSeed(dir, name, bytes));
  }
  LLMS_ASSIGN_OR_RETURN(std::string metadata, BuildMetadata());
  LLMS_RETURN_IF_ERROR(WriteSeed(dir, "metadata_all_types.gguf", metadata));
  LLMS_ASSIGN_OR_RETURN(std::string tensors, BuildTensors());
  LLMS_RETURN_IF_ERROR(WriteSeed(dir, "tensors_and_vocab.gguf", tensors));
  // GGUF v2 has the same layout as v3 for little-endian files: only the version differs.
  tensors[4] = 2;
  LLMS_RETURN_IF_ERROR(WriteSeed(dir, "tensors_and_vocab_v2.gguf", tensors));
  GgufWriter empty;
  LLMS_ASSIGN_OR_RETURN(std::string header, empty.WriteToString());
  return WriteSeed(dir, "empty.gguf", header);
}

}  // namespace
}  // namespace llms

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>  (writes <dir>/{wire,http,gguf}_fuzzer/*)\n",
                 argv[0]);
    return 2;
  }
  const std::string root = argv[1];
  if (llms::Status s = llms::Env::Default()->CreateDir(root); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  for (const auto& [target, write] :
       std::vector<std::pair<std::string, std::function<llms::Status(const std::string&)>>>{
           {"wire_fuzzer", llms::WriteWireSeeds},
           {"http_fuzzer", llms::WriteHttpSeeds},
           {"gguf_fuzzer", llms::WriteGgufSeeds}}) {
    if (llms::Status s = write(root + "/" + target); !s.ok()) {
      std::fprintf(stderr, "%s: %s\n", target.c_str(), s.ToString().c_str());
      return 1;
    }
  }
  return 0;
}
