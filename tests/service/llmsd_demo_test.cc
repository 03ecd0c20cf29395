// scripts/demo, the README's first command, shows the service rather than a generation (issue
// 11, case 10): two apps hold a conversation each, llmsd is killed with SIGKILL and started
// again, both conversations continue from their stored contexts, and llmsd stops cleanly.
#include <cctype>
#include <string>

#include "testutil/daemon.h"

namespace llms {
namespace {

// The digits that end right before `suffix`'s first occurrence at or after `from`, or "".
std::string NumberBefore(const std::string& text, const std::string& suffix, size_t from = 0) {
  const size_t end = text.find(suffix, from);
  if (end == std::string::npos) return "";
  size_t begin = end;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(text[begin - 1]))) --begin;
  return text.substr(begin, end - begin);
}

// The digits right after `prefix`'s first occurrence, or "". (std::regex trips GCC 12's
// maybe-uninitialized warning under the sanitizers.)
std::string NumberAfter(const std::string& text, const std::string& prefix) {
  const size_t at = text.find(prefix);
  if (at == std::string::npos) return "";
  size_t end = at + prefix.size();
  while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
  return text.substr(at + prefix.size(), end - at - prefix.size());
}

TEST(DemoTest, BothConversationsContinueAfterAKillAndTheDaemonStopsCleanly) {
  auto [rc, out] = testing::RunCommand("LLMS_DEMO_BIN=" + std::string(LLMS_BINARY_DIR) + "/tools " +
                                       LLMS_SOURCE_DIR + "/scripts/demo 2>&1");
  ASSERT_EQ(rc, 0) << out;
  const std::string app1_context = NumberAfter(out, "[context ");
  ASSERT_FALSE(app1_context.empty()) << out;
  const size_t restart = out.find("== Both conversations continue");
  ASSERT_NE(restart, std::string::npos) << out;
  const std::string after = out.substr(restart);
  // App 1 calls its old context by id, and the daemon answers from it.
  EXPECT_NE(after.find("$ llms call -c " + app1_context), std::string::npos) << after;
  EXPECT_NE(after.find("[context " + app1_context + " |"), std::string::npos) << after;
  // App 2 resends its conversation; all but the new message comes from the stored context.
  const std::string cached = NumberBefore(after, " of them from the stored context");
  ASSERT_FALSE(cached.empty()) << after;
  EXPECT_GT(std::stoul(cached), 0u) << after;
  EXPECT_NE(after.find("llmsd exited with code 0"), std::string::npos) << after;
}

}  // namespace
}  // namespace llms
