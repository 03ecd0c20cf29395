// `llms report --quick` (scripts/report's smoke run) end to end: every section of the report is
// written, a cell that cannot run says why, and the per-call records are named by budget and chunk
// size, one file per measured cell. No number is asserted (the machine is shared).
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "testutil/daemon.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

TEST(ReportTest, QuickRunWritesEverySectionAndNamesEveryCell) {
  testing::TempDir dir;
  auto [rc, out] = testing::RunCommand(
      std::string(LLMS_BINARY_DIR) + "/tools/llms report --quick -t 1 -o " + dir.path() + " 2>&1");
  ASSERT_EQ(rc, 0) << out;
  std::ifstream in(dir.File("report.md"));
  std::stringstream text;
  text << in.rdbuf();
  const std::string report = text.str();
  for (const char* section :
       {"## Headline: time to ready and extra time to first token", "## Every headline cell",
        "## Repetitions", "## Flash classes", "## Ablation", "## Switching patterns",
        "## Active contexts under a time-to-ready limit", "## Chunk size",
        "## Accuracy under KV compression", "## Traces"}) {
    EXPECT_NE(report.find(section), std::string::npos) << section << "\n" << report;
  }
  // The quick run's tightest budget cannot hold the largest context for the int8 baselines:
  // those cells say so instead of vanishing.
  EXPECT_NE(report.find("does not fit: its largest context needs"), std::string::npos);
  size_t csvs = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.File("data"))) {
    const std::string name = e.path().filename().string();
    EXPECT_NE(name.find("-budget"), std::string::npos) << name;
    EXPECT_NE(name.find("-chunk"), std::string::npos) << name;
    ++csvs;
  }
  EXPECT_GE(csvs, 15u);  // distinct names: one file per measured cell
}

}  // namespace
}  // namespace llms
