// scripts/demo, the README's first command, shows the service rather than a generation (issue
// 11, case 10): two apps hold a conversation each, llmsd is killed with SIGKILL and started
// again, both conversations continue from their stored contexts, and llmsd stops cleanly.
#include <regex>
#include <string>

#include "testutil/daemon.h"

namespace llms {
namespace {

TEST(DemoTest, BothConversationsContinueAfterAKillAndTheDaemonStopsCleanly) {
  auto [rc, out] = testing::RunCommand("LLMS_DEMO_BIN=" + std::string(LLMS_BINARY_DIR) + "/tools " +
                                       LLMS_SOURCE_DIR + "/scripts/demo 2>&1");
  ASSERT_EQ(rc, 0) << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(\[context (\d+) \|)"))) << out;
  const std::string app1_context = m[1];
  const size_t restart = out.find("== Both conversations continue");
  ASSERT_NE(restart, std::string::npos) << out;
  const std::string after = out.substr(restart);
  // App 1 calls its old context by id, and the daemon answers from it.
  EXPECT_NE(after.find("$ llms call -c " + app1_context), std::string::npos) << after;
  EXPECT_NE(after.find("[context " + app1_context + " |"), std::string::npos) << after;
  // App 2 resends its conversation; all but the new message comes from the stored context.
  ASSERT_TRUE(std::regex_search(after, m, std::regex(R"((\d+) of them from the stored context)")))
      << after;
  EXPECT_GT(std::stoul(m[1]), 0u) << after;
  EXPECT_NE(after.find("llmsd exited with code 0"), std::string::npos) << after;
}

}  // namespace
}  // namespace llms
