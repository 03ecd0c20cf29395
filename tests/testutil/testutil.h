// Shared test helpers (STYLE rule 19): status assertions, seeded random data, temporary
// directories and paths to ../shared material.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/engine.h"
#include "model/llama_model.h"

#define ASSERT_OK(expr)                                             \
  do {                                                              \
    const ::llms::Status llms_s_ = ::llms::testing::ToStatus(expr); \
    ASSERT_TRUE(llms_s_.ok()) << llms_s_.ToString();                \
  } while (0)
#define EXPECT_OK(expr)                                             \
  do {                                                              \
    const ::llms::Status llms_s_ = ::llms::testing::ToStatus(expr); \
    EXPECT_TRUE(llms_s_.ok()) << llms_s_.ToString();                \
  } while (0)

namespace llms::testing {

inline const Status& ToStatus(const Status& s) { return s; }
template <typename T>
const Status& ToStatus(const StatusOr<T>& s) {
  return s.status();
}

// `relative` inside ../shared (e.g. "models/stories260K.gguf").
std::string SharedPath(const std::string& relative);
// The whole text of a file inside ../shared ("data/tinystories-valid.txt"); empty if missing.
std::string ReadSharedText(const std::string& relative);
// The default model, ../shared/models/stories260K.gguf.
std::string DefaultModelPath();

// The default model with an engine over it (2 threads, 16-token chunks): the fixture most
// model-level tests share. The engine refers to the model; keep both.
struct DefaultEngine {
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Engine> engine;
};
StatusOr<DefaultEngine> LoadDefaultEngine();

// A test suite over the default model and engine, loaded once per suite into model_ and
// engine_. A suite with more to set up calls DefaultEngineTest::SetUpTestSuite() first and
// returns if engine_ is still null.
class DefaultEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = LoadDefaultEngine();
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    model_ = std::move(loaded->model);
    engine_ = std::move(loaded->engine);
  }
  static void TearDownTestSuite() {
    engine_.reset();
    model_.reset();
  }
  inline static std::unique_ptr<LlamaModel> model_;
  inline static std::unique_ptr<Engine> engine_;
};

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `text` to `path` (created or truncated).
Status WriteFile(const std::string& path, const std::string& text);

// Seeded random data: the same seed gives the same values on every run and machine.
std::vector<float> RandomFloats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);
// Seeded random bytes (chunk payloads in store tests): same seed, same bytes.
std::vector<uint8_t> RandomBytes(size_t n, uint64_t seed);

// Runs fn(target_name) once for every SIMD target this binary has and this CPU runs, with
// dynamic dispatch forced to that target, then restores the default. Kernels are checked on
// every target so the portable paths stay tested on x86 too.
void ForEachTarget(const std::function<void(const char* target)>& fn);

// Max |a-b| / max(max|b|, tiny): a relative error against the scale of the reference.
double MaxRelativeError(const float* a, const float* b, size_t n);

}  // namespace llms::testing
