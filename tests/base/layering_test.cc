// Layering (STYLE rules 1 and 2): every `#include "<layer>/..."` in src/<layer>/ names a layer
// that layer may use. System headers (<...>), third-party headers (hwy/...) and same-layer
// files are always fine.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "testutil/testutil.h"

namespace llms {
namespace {

namespace fs = std::filesystem;

// The allowed DAG (STYLE rule 1): layer -> the layers it may include.
const std::map<std::string, std::set<std::string>>& AllowedDeps() {
  static const std::map<std::string, std::set<std::string>> deps = {
      {"base", {}},
      {"env", {"base"}},
      {"formats", {"base"}},
      {"kernels", {"formats", "base"}},
      {"store", {"env", "formats", "base"}},
      {"model", {"kernels", "formats", "env", "base"}},
      {"engine", {"model", "kernels", "formats", "base"}},
      {"memory", {"engine", "store", "formats", "base"}},
      {"eval", {"memory", "engine", "store", "model", "env", "base"}},
      {"protocol", {"base"}},
      {"service", {"memory", "engine", "model", "protocol", "formats", "base"}},
      {"client", {"protocol", "base"}},
  };
  return deps;
}

// The quoted path of an `#include "..."` line, or "" for any other line.
std::string QuotedInclude(const std::string& line) {
  size_t i = line.find_first_not_of(" \t");
  if (i == std::string::npos || line[i] != '#') return "";
  i = line.find_first_not_of(" \t", i + 1);
  if (i == std::string::npos || line.compare(i, 7, "include") != 0) return "";
  i = line.find_first_not_of(" \t", i + 7);
  if (i == std::string::npos || line[i] != '"') return "";
  const size_t end = line.find('"', i + 1);
  if (end == std::string::npos) return "";
  return line.substr(i + 1, end - i - 1);
}

struct Include {
  std::string file;  // relative to src/
  int line;
  std::string from_layer, to_layer, path;
};

// Every include of another layer's header under `src`, plus one entry with an empty to_layer
// for each folder that is not a known layer.
std::vector<Include> CrossLayerIncludes(const fs::path& src, std::vector<std::string>* unknown) {
  std::vector<Include> out;
  const auto& deps = AllowedDeps();
  for (const fs::directory_entry& dir : fs::directory_iterator(src)) {
    if (!dir.is_directory()) continue;
    const std::string layer = dir.path().filename().string();
    if (!deps.count(layer)) {
      unknown->push_back(layer);
      continue;
    }
    for (const fs::directory_entry& f : fs::recursive_directory_iterator(dir.path())) {
      const std::string ext = f.path().extension().string();
      if (!f.is_regular_file() || (ext != ".h" && ext != ".cc")) continue;
      std::ifstream in(f.path());
      int number = 0;
      for (std::string line; std::getline(in, line);) {
        ++number;
        const std::string path = QuotedInclude(line);
        const size_t slash = path.find('/');
        if (slash == std::string::npos) continue;  // same folder
        const std::string target = path.substr(0, slash);
        if (!deps.count(target) || target == layer) continue;  // third party or same layer
        out.push_back({fs::relative(f.path(), src).string(), number, layer, target, path});
      }
    }
  }
  return out;
}

std::string Describe(const Include& inc) {
  return "src/" + inc.file + ":" + std::to_string(inc.line) + ": #include \"" + inc.path + "\" (" +
         inc.from_layer + " may not use " + inc.to_layer + ")";
}

// Includes that break rule 1 but await the lead's decision (a rule change or a move of the
// header): reported by PendingDecisions, not failed. Each entry is {from layer, include path}.
const std::set<std::pair<std::string, std::string>>& PendingExceptions() {
  static const std::set<std::pair<std::string, std::string>> pending = {};
  return pending;
}

bool Allowed(const Include& inc) { return AllowedDeps().at(inc.from_layer).count(inc.to_layer); }

bool Pending(const Include& inc) { return PendingExceptions().count({inc.from_layer, inc.path}); }

std::vector<std::string> Violations(const std::vector<Include>& includes) {
  std::vector<std::string> out;
  for (const Include& inc : includes) {
    if (!Allowed(inc) && !Pending(inc)) out.push_back(Describe(inc));
  }
  return out;
}

// The repository's src/, from this file's path (tests/base/layering_test.cc).
fs::path SourceDir() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path() / "src";
}

std::string Join(const std::vector<std::string>& lines) {
  std::string s;
  for (const std::string& l : lines) s += "\n  " + l;
  return s;
}

TEST(LayeringTest, ParsesIncludeLines) {
  EXPECT_EQ(QuotedInclude("#include \"base/status.h\""), "base/status.h");
  EXPECT_EQ(QuotedInclude("  #  include   \"a/b.h\"  // why"), "a/b.h");
  EXPECT_EQ(QuotedInclude("#include <vector>"), "");
  EXPECT_EQ(QuotedInclude("// #include \"engine/engine.h\""), "");
  EXPECT_EQ(QuotedInclude("#define HWY_TARGET_INCLUDE \"kernels/ops-inl.h\""), "");
}

TEST(LayeringTest, DetectsAViolationInAFakeTree) {
  testing::TempDir dir;
  fs::create_directories(fs::path(dir.path()) / "base");
  fs::create_directories(fs::path(dir.path()) / "engine");
  std::ofstream(fs::path(dir.path()) / "base" / "a.h")
      << "#pragma once\n#include <vector>\n#include \"base/b.h\"\n#include \"engine/x.h\"\n";
  std::ofstream(fs::path(dir.path()) / "engine" / "x.cc")
      << "#include \"engine/x.h\"\n#include \"base/a.h\"\n#include \"hwy/highway.h\"\n";
  std::vector<std::string> unknown;
  const std::vector<std::string> v = Violations(CrossLayerIncludes(dir.path(), &unknown));
  ASSERT_EQ(v.size(), 1u) << Join(v);
  EXPECT_EQ(v[0], "src/base/a.h:4: #include \"engine/x.h\" (base may not use engine)");
  EXPECT_TRUE(unknown.empty());
}

TEST(LayeringTest, SourceIncludesFollowTheLayerDag) {
  const fs::path src = SourceDir();
  ASSERT_TRUE(fs::is_directory(src / "base")) << "no src/base under " << src;
  std::vector<std::string> unknown;
  const std::vector<Include> includes = CrossLayerIncludes(src, &unknown);
  EXPECT_FALSE(includes.empty()) << "found no cross-layer includes at all under " << src;
  const std::vector<std::string> v = Violations(includes);
  EXPECT_TRUE(v.empty()) << v.size() << " include(s) break STYLE rule 1:" << Join(v);
  EXPECT_TRUE(unknown.empty()) << "folders under src/ that are not layers:" << Join(unknown);
}

// Formats hold no SIMD code: Highway stays in kernels (gemma.cpp keeps compression formats apart
// from its ops the same way), so whatever names a layout or a level builds without it.
TEST(LayeringTest, FormatsHaveNoHighway) {
  std::vector<std::string> uses;
  for (const fs::directory_entry& f : fs::directory_iterator(SourceDir() / "formats")) {
    std::ifstream in(f.path());
    int number = 0;
    for (std::string line; std::getline(in, line);) {
      ++number;
      if (line.find("hwy/") != std::string::npos || line.find("HWY_") != std::string::npos) {
        uses.push_back(f.path().filename().string() + ":" + std::to_string(number));
      }
    }
  }
  EXPECT_TRUE(uses.empty()) << "Highway in src/formats:" << Join(uses);
}

// Rule-1 breaks listed in PendingExceptions: printed for the record while they exist.
TEST(LayeringTest, PendingDecisions) {
  std::vector<std::string> unknown;
  std::vector<std::string> pending;
  for (const Include& inc : CrossLayerIncludes(SourceDir(), &unknown)) {
    if (!Allowed(inc) && Pending(inc)) pending.push_back(Describe(inc));
  }
  if (!pending.empty()) {
    std::printf("rule-1 breaks awaiting a decision:%s\n", Join(pending).c_str());
  }
}

}  // namespace
}  // namespace llms
