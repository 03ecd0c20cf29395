// llmsd's OpenAI-compatible HTTP API: the real `openai` npm client (run by Node) on the loopback
// TCP port, and plain HTTP (curl) on the Unix socket, where the peer's uid is the app.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "protocol/wire.h"
#include "testutil/daemon.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

using testing::DaemonProcess;
using wire::Json;

class LlmsdOpenAiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Tokens come from files of mode 0600, never the command line (where ps shows them).
    const std::string tokens = dir_.File("tokens"), metrics = dir_.File("metrics-token");
    ASSERT_OK(testing::WriteFile(tokens, "# app=token\nalice=sk-alice-test\nbob=sk-bob-test\n"));
    ASSERT_OK(testing::WriteFile(metrics, "sk-metrics-test\n"));
    chmod(tokens.c_str(), 0600);
    chmod(metrics.c_str(), 0600);
    auto d = DaemonProcess::Start(dir_.path(), {"--http", "127.0.0.1:0", "--app-tokens-file",
                                                tokens, "--metrics-token-file", metrics});
    ASSERT_OK(d);
    daemon_ = std::move(d).value();
    port_ = daemon_->HttpPort();  // the kernel's pick: no port can be taken in between
    ASSERT_GT(port_, 0) << daemon_->Log();
  }
  // curl on the Unix socket: (HTTP status, body).
  std::pair<int, std::string> Curl(const std::string& path, const std::string& body = "") {
    std::string cmd =
        "curl -s -w '\\n%{http_code}' --unix-socket " + daemon_->socket() + " http://llmsd" + path;
    if (!body.empty()) cmd += " -H 'Content-Type: application/json' --data-binary @-";
    cmd = "printf '%s' '" + body + "' | " + cmd;
    auto [rc, out] = testing::RunCommand(cmd);
    const size_t nl = out.rfind('\n');
    return {std::atoi(out.c_str() + nl + 1), out.substr(0, nl)};
  }

  testing::TempDir dir_;
  int port_ = 0;
  std::unique_ptr<DaemonProcess> daemon_;
};

TEST_F(LlmsdOpenAiTest, NodeOpenAiClientChatsAndItsSecondTurnReusesTheContext) {
  const std::string dir = std::string(LLMS_SOURCE_DIR) + "/tests/service/openai";
  ASSERT_TRUE(std::filesystem::exists(dir + "/node_modules/openai"))
      << "the openai npm package is missing: run `npm ci --prefix " << dir
      << "` (scripts/setup does it)";
  auto [rc, out] = testing::RunCommand(
      "cd " + dir + " && LLMS_BASE_URL=http://127.0.0.1:" + std::to_string(port_) +
      "/v1 LLMS_API_KEY=sk-alice-test node chat.mjs 2>&1");
  ASSERT_EQ(rc, 0) << out << "\ndaemon log:\n" << daemon_->Log();
  const Json r = Json::parse(out, nullptr, false);
  ASSERT_TRUE(r.is_object()) << out;
  EXPECT_FALSE(r["first_text"].get<std::string>().empty());
  EXPECT_EQ(r["first_finish"], "length");
  EXPECT_EQ(r["first_usage"]["completion_tokens"], 24);
  // The streamed second turn continued the first turn's context...
  EXPECT_EQ(r["second_context"], r["first_context"]) << out;
  EXPECT_EQ(r["second_chunks"], 16);
  EXPECT_EQ(r["second_usage"]["completion_tokens"], 16);
  EXPECT_EQ(r["second_finish"], "length");
  // ...so the whole first turn was served from the persistent context: OpenAI's usage counts it
  // in prompt_tokens and again as prompt_tokens_details.cached_tokens.
  const int first_total = r["first_usage"]["total_tokens"];
  EXPECT_EQ(r["first_usage"]["prompt_tokens_details"]["cached_tokens"], 0) << out;
  EXPECT_EQ(r["second_usage"]["prompt_tokens_details"]["cached_tokens"], first_total) << out;
  EXPECT_GT(r["second_usage"]["prompt_tokens"].get<int>(), first_total) << out;
  EXPECT_EQ(r["models"], Json::array({"stories260K"}));
}

TEST_F(LlmsdOpenAiTest, HttpOnTheUnixSocketActsForThePeersUid) {
  auto [status, body] = Curl("/v1/models");
  EXPECT_EQ(status, 200);
  EXPECT_NE(body.find("stories260K"), std::string::npos);
  std::tie(status, body) =
      Curl("/v1/completions", R"({"prompt":"Once upon a time","max_tokens":12,"temperature":0})");
  ASSERT_EQ(status, 200) << body;
  const Json completion = Json::parse(body, nullptr, false);
  EXPECT_EQ(completion["choices"][0]["text"].get<std::string>().rfind(", there was a little", 0),
            0u)
      << body;
  EXPECT_EQ(completion["usage"]["completion_tokens"], 12);
  // The completion made a context of this uid's app, visible to the native protocol too.
  auto [rc, list] =
      testing::RunCommand(testing::ToolPath("llms") + " list --socket " + daemon_->socket());
  EXPECT_EQ(rc, 0);
  EXPECT_NE(list.find(std::to_string(completion["llms"]["context"].get<uint64_t>()) + " "),
            std::string::npos)
      << list;
}

TEST_F(LlmsdOpenAiTest, MetricsAreExposedInPrometheusFormat) {
  ASSERT_EQ(Curl("/v1/completions", R"({"prompt":"Once","max_tokens":5,"temperature":0})").first,
            200);
  auto [status, body] = Curl("/metrics");
  ASSERT_EQ(status, 200);
  for (const char* line :
       {"# TYPE llms_switch_latency_seconds histogram", "llms_switch_latency_seconds_count 1",
        "llms_calls_total{outcome=\"ok\"} 1", "llms_tokens_total{kind=\"generated\"} 5",
        "# TYPE llms_bytes_read_total counter", "llms_chunks{location=\"resident\"} 1",
        "llms_contexts 1", "llms_kv_budget_bytes ", "llms_queue_depth 0"}) {
    EXPECT_NE(body.find(line), std::string::npos) << line << "\n" << body;
  }
  // Over TCP only the metrics token may scrape (every app's activity is in there): an app's
  // token, or none, gets 403.
  const std::string url = "http://127.0.0.1:" + std::to_string(port_) + "/metrics";
  auto [rc, out] =
      testing::RunCommand("curl -s " + url + " -H 'Authorization: Bearer " + "sk-metrics-test'");
  EXPECT_NE(out.find("llms_calls_total"), std::string::npos);
  for (const char* auth : {"", "-H 'Authorization: Bearer sk-alice-test'"}) {
    std::tie(rc, out) =
        testing::RunCommand("curl -s -o /dev/null -w '%{http_code}' " + url + " " + auth);
    EXPECT_EQ(out, "403") << auth;
  }
}

// Two tokens are two apps: bob can neither continue alice's context by id nor pick it up by
// resending her conversation.
TEST_F(LlmsdOpenAiTest, TokensSeparateAppsOnTcp) {
  auto post = [&](const std::string& token, const std::string& body,
                  const std::string& header = "") {
    return testing::RunCommand(
        "curl -s -w '\\n%{http_code}' http://127.0.0.1:" + std::to_string(port_) +
        "/v1/chat/completions -H 'Authorization: Bearer " + token + "' " + header + " -d '" + body +
        "'");
  };
  const std::string chat =
      R"({"messages":[{"role":"user","content":"Hello"}],"max_tokens":4,"temperature":0})";
  auto [rc, out] = post("sk-alice-test", chat);
  const Json alice = Json::parse(out.substr(0, out.rfind('\n')), nullptr, false);
  ASSERT_TRUE(alice.is_object()) << out;
  const uint64_t context = alice["llms"]["context"];
  std::tie(rc, out) =
      post("sk-bob-test", chat, "-H 'X-Llms-Context: " + std::to_string(context) + "'");
  EXPECT_EQ(out.substr(out.rfind('\n') + 1), "404") << out;
  std::tie(rc, out) = post("sk-bob-test", chat);
  const Json bob = Json::parse(out.substr(0, out.rfind('\n')), nullptr, false);
  ASSERT_TRUE(bob.is_object()) << out;
  EXPECT_NE(bob["llms"]["context"], context);
  EXPECT_EQ(bob["llms"]["reused_tokens"], 0);
}

TEST_F(LlmsdOpenAiTest, BadRequestsGetOpenAiStyleErrors) {
  auto [status, body] = Curl("/v1/chat/completions", "{not json");
  EXPECT_EQ(status, 400);
  EXPECT_NE(body.find("not valid JSON"), std::string::npos) << body;
  std::tie(status, body) = Curl("/v1/chat/completions", R"({"messages":[]})");
  EXPECT_EQ(status, 400);
  EXPECT_NE(body.find("'messages'"), std::string::npos) << body;
  std::tie(status, body) = Curl(
      "/v1/chat/completions", R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":"x"})");
  EXPECT_EQ(status, 400);
  EXPECT_NE(body.find("'max_tokens'"), std::string::npos) << body;
  // A content part whose type is not a string aborted the daemon (issue 11: a crash any client
  // could cause; nlohmann's value() threw).
  std::tie(status, body) =
      Curl("/v1/chat/completions", R"({"messages":[{"role":"user","content":[{"type":1}]}]})");
  EXPECT_EQ(status, 400);
  EXPECT_NE(body.find("only text parts"), std::string::npos) << body;
  std::tie(status, body) = Curl("/v2/anything");
  EXPECT_EQ(status, 404);
  // TCP without a known bearer token is refused.
  auto [rc, out] = testing::RunCommand(
      "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" + std::to_string(port_) +
      "/v1/models -H 'Authorization: Bearer wrong'");
  EXPECT_EQ(out, "401");
  // And the daemon still serves.
  std::tie(status, body) = Curl("/v1/models");
  EXPECT_EQ(status, 200);
}

}  // namespace
}  // namespace llms
