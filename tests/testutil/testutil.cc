#include "testutil/testutil.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "hwy/targets.h"

namespace llms::testing {

std::string SharedPath(const std::string& relative) {
  return std::string(LLMS_SHARED_DIR) + "/" + relative;
}

std::string ReadSharedText(const std::string& relative) {
  std::ifstream in(SharedPath(relative), std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  return out ? Status::Ok() : Status::IOError("cannot write " + path);
}

std::string DefaultModelPath() { return SharedPath("models/stories260K.gguf"); }

StatusOr<DefaultEngine> LoadDefaultEngine() {
  DefaultEngine out;
  LLMS_ASSIGN_OR_RETURN(out.model, LlamaModel::Load(Env::Default(), DefaultModelPath()));
  LLMS_ASSIGN_OR_RETURN(out.engine, Engine::Create(out.model.get(), EngineOptions{2, 16}));
  return out;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base ? base : "/tmp") + "/llms_test_XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  const char* made = mkdtemp(buf.data());
  if (made == nullptr) {
    ADD_FAILURE() << "mkdtemp failed for " << pattern;
    return;
  }
  path_ = made;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<float> RandomFloats(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(n);
  for (float& v : out) v = dist(rng);
  return out;
}

std::vector<uint8_t> RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(n);
  for (uint8_t& b : out) b = static_cast<uint8_t>(rng() >> 56);
  return out;
}

void ForEachTarget(const std::function<void(const char* target)>& fn) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    fn(hwy::TargetName(target));
  }
  hwy::SetSupportedTargetsForTest(0);
}

double MaxRelativeError(const float* a, const float* b, size_t n) {
  double scale = 1e-30, err = 0;
  for (size_t i = 0; i < n; ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
    err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
  }
  return err / scale;
}

}  // namespace llms::testing
