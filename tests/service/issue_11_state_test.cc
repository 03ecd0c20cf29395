// Issue 11, what llmsd keeps: a full disk, damaged rows and chunks, HTTP apps at their context
// limit, OpenAI's usage conventions and the smaller cases (a repeated conversation, cancels),
// each replayed against a real llmsd. Every call answered `done` must be in its context after a
// SIGKILL and restart; every call that could not be made durable must say why.
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "client/client.h"
#include "protocol/wire.h"
#include "testutil/daemon.h"
#include "testutil/store_util.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

using testing::DaemonProcess;
using wire::Json;

CallOptions Greedy(size_t max_tokens) {
  CallOptions o;
  o.max_tokens = max_tokens;
  o.temperature = 0;
  return o;
}

uint64_t FreeBytes(const std::string& path) {
  struct statvfs st {};
  return statvfs(path.c_str(), &st) == 0 ? uint64_t{st.f_bavail} * st.f_frsize : 0;
}

class StateTest : public testing::DaemonTest {
 protected:
  // A native call; a done is recorded in the ledger.
  StatusOr<CallReply> Call(uint64_t context, const std::string& prompt, size_t max_tokens) {
    StatusOr<CallReply> r = client_->Call(context, prompt, Greedy(max_tokens));
    if (r.ok()) {
      Record(context, Json{{"cached_tokens", r->cached_tokens},
                           {"prompt_tokens", r->prompt_tokens},
                           {"completion_tokens", r->completion_tokens}});
      EXPECT_GE(r->stats.value("extra_first_token_ms", -1.0), 0.0);  // item 9: never negative
    }
    return r;
  }
  // An HTTP chat on the Unix socket: (status, body).
  std::pair<int, Json> Chat(const std::string& messages, const std::string& extra = "") {
    auto [status, body] = testing::CurlUnix(daemon_->socket(), "/v1/chat/completions",
                                            R"({"messages":)" + messages + extra + "}");
    Json j = Json::parse(body, nullptr, false);
    if (status == 200 && j.is_object()) {
      ledger_[j["llms"]["context"].get<uint64_t>()] = j["usage"]["total_tokens"].get<size_t>();
    }
    return {status, j};
  }
};

// Items 2 and 3: on a full disk, calls answered done while their text was lost (305 tokens
// after a restart instead of 445), and the daemon then refused to start. Now a call that cannot
// be made durable fails naming the cause, every done call survives a SIGKILL, the daemon starts
// on the full disk, and a delete frees space.
TEST_F(StateTest, OnAFullDiskEveryDoneCallIsDurableAndTheRestSayWhy) {
  ASSERT_EQ(geteuid(), 0u) << "mounting a 2 MiB tmpfs needs root";
  const std::string mnt = dir_.File("tmpfs");
  std::filesystem::create_directories(mnt);
  ASSERT_EQ(mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  ASSERT_NO_FATAL_FAILURE(Start({"--data-dir", mnt + "/data", "--budget-mib", "1"}));
  {  // Leave 512 KiB free: some dozens of calls' text and chunks.
    std::ofstream filler(mnt + "/filler", std::ios::binary);
    const std::string block(4096, 'x');
    while (FreeBytes(mnt) > (512u << 10)) filler.write(block.data(), block.size()), filler.flush();
  }
  std::vector<uint64_t> contexts;
  for (int i = 0; i < 4; ++i) contexts.push_back(*client_->NewContext());
  std::vector<std::string> errors;
  int done = 0;
  for (int call = 0; call < 400 && errors.size() < 8; ++call) {
    auto r = Call(contexts[call % 4], call < 4 ? "Once upon a time" : " And then", 40);
    if (!r.ok()) errors.push_back(r.status().ToString());
    done += r.ok();
  }
  ASSERT_FALSE(errors.empty()) << "the disk never filled";
  std::printf("%d calls done, %zu refused; the first: %s\n", done, errors.size(),
              errors[0].c_str());
  for (const std::string& e : errors) {
    EXPECT_NE(e.find("full"), std::string::npos) << e;  // names the cause
    EXPECT_NE(e.find("the context is back where the call began"), std::string::npos) << e;
  }
  ASSERT_NO_FATAL_FAILURE(ExpectDoneCallsSurviveARestart());  // starts on the full disk
  const uint64_t before = FreeBytes(mnt);
  ASSERT_OK(client_->DeleteContext(contexts[0]));
  ledger_.erase(contexts[0]);
  std::printf("free bytes: %llu before the delete, %llu after\n",
              static_cast<unsigned long long>(before),
              static_cast<unsigned long long>(FreeBytes(mnt)));
  EXPECT_GT(FreeBytes(mnt), before);
  std::filesystem::remove(mnt + "/filler");
  ASSERT_OK(Call(contexts[1], " The end", 8));
  ASSERT_NO_FATAL_FAILURE(ExpectDoneCallsSurviveARestart());
}

// Item 4 and the damaged-chunk part of item 9: one damaged row stopped the daemon for every app
// (error="stoull"), and chunks found damaged were recomputed without a trace.
TEST_F(StateTest, DamagedRowsAreSetAsideAndDamagedChunksReported) {
  // Load-then-run reads every chunk that has a current copy, so the damaged one is read.
  ASSERT_NO_FATAL_FAILURE(Start({"--policy", "llms-no-pipeline"}));
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(*client_->NewContext());
    ASSERT_OK(Call(ids.back(), "Once upon a time", 40));
  }
  ASSERT_EQ(daemon_->Terminate(), 0) << daemon_->Log();  // every chunk written
  const std::string db = dir_.File("data/meta.sqlite");
  testing::ExecSql(
      db, "UPDATE contexts SET kv_tokens = 'garbage' WHERE id = " + std::to_string(ids[0]));
  testing::ExecSql(
      db, "UPDATE contexts SET tokens = x'01020304050607' WHERE id = " + std::to_string(ids[1]));
  const int64_t offset = testing::QuerySqlInt(
      db, "SELECT extent_offset FROM chunks WHERE context_id = " + std::to_string(ids[2]) +
              " AND chunk_index = 0");
  ASSERT_GE(offset, 0);
  {
    std::fstream data(dir_.File("data/chunks.dat"),
                      std::ios::in | std::ios::out | std::ios::binary);
    data.seekp(offset + 10);
    data.put('\x5a').put('\xa5');
  }
  ASSERT_NO_FATAL_FAILURE(Start(args_));
  const std::string log = daemon_->Log();
  for (int i = 0; i < 2; ++i) {
    EXPECT_NE(log.find("event=context_damaged context=" + std::to_string(ids[i])),
              std::string::npos)
        << log;
  }
  auto list = client_->ListContexts();
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*list)[i].damaged.empty(), i == 2) << (*list)[i].damaged;
  }
  auto refused = client_->Call(ids[0], " Hi", Greedy(4));
  EXPECT_EQ(refused.status().code(), StatusCode::kCorruption);
  EXPECT_NE(refused.status().message().find("is damaged"), std::string::npos);
  auto recomputed = Call(ids[2], " One day", 8);
  ASSERT_OK(recomputed);
  EXPECT_EQ(recomputed->stats.value("chunks_damaged", 0), 1) << recomputed->stats.dump();
  EXPECT_NE(daemon_->Log().find("chunks_damaged=1"), std::string::npos);
  auto [status, metrics] = testing::CurlUnix(daemon_->socket(), "/metrics");
  EXPECT_NE(metrics.find("llms_chunks_damaged_total 1"), std::string::npos);
  for (int i = 0; i < 2; ++i) ASSERT_OK(client_->DeleteContext(ids[i]));
  ledger_.erase(ids[0]);
  ledger_.erase(ids[1]);
  ASSERT_NO_FATAL_FAILURE(ExpectDoneCallsSurviveARestart());
}

// Item 7: every new conversation and every failed request left a context behind, there was no
// HTTP route to delete one, and at --max-contexts every later conversation got 429 for good.
TEST_F(StateTest, HttpAppsNeverLockThemselvesOut) {
  ASSERT_NO_FATAL_FAILURE(Start({"--max-contexts", "3", "--context-window", "128"}));
  for (int i = 0; i < 6; ++i) {
    auto [status, body] =
        Chat(R"([{"role":"user","content":"Story )" + std::to_string(i) + R"("}])",
             R"(,"max_tokens":4,"temperature":0)");
    ASSERT_EQ(status, 200) << body.dump();
  }
  auto contexts = [&] {
    auto [status, body] = testing::CurlUnix(daemon_->socket(), "/v1/llms/contexts");
    EXPECT_EQ(status, 200) << body;
    Json ids = Json::array();
    const Json list = Json::parse(body, nullptr, false);
    for (const Json& c : list["contexts"]) {
      EXPECT_EQ(c["origin"], "http");
      ids.push_back(c["context"]);
    }
    return ids;
  };
  const Json held = contexts();
  ASSERT_EQ(held.size(), 3u) << held.dump();
  // Retired least recently used first: the three newest conversations are the ones kept (the
  // retired ones' clients resend their conversations, so nothing they were told is lost).
  EXPECT_EQ(held, Json::array({4, 5, 6}));
  for (uint64_t retired = 1; retired <= 3; ++retired) ledger_.erase(retired);
  // A request that fails after it would have been placed leaves nothing behind.
  auto [status, body] =
      Chat(R"([{"role":"user","content":"A new one"}])", R"(,"max_tokens":120,"temperature":0)");
  EXPECT_EQ(status, 429) << body.dump();
  EXPECT_EQ(contexts(), held);
  // An app lists and deletes its own contexts over HTTP.
  const std::string one = "/v1/llms/contexts/4";
  EXPECT_EQ(testing::CurlUnix(daemon_->socket(), one, "", "-X DELETE").first, 200);
  ledger_.erase(4);
  EXPECT_EQ(testing::CurlUnix(daemon_->socket(), one).first, 404);
  EXPECT_EQ(contexts().size(), 2u);
  // Native contexts are the app's own state: they are never retired.
  ASSERT_OK(client_->NewContext());
  EXPECT_EQ(client_->NewContext().status().code(), StatusCode::kResourceExhausted);
  ASSERT_NO_FATAL_FAILURE(ExpectDoneCallsSurviveARestart());
  std::tie(status, body) =
      Chat(R"([{"role":"user","content":"After the restart"}])", R"(,"max_tokens":4)");
  EXPECT_EQ(status, 200) << body.dump();
}

// Item 8: usage.prompt_tokens counted only the new tokens; OpenAI counts the whole prompt and
// the part served from a cache as prompt_tokens_details.cached_tokens.
TEST_F(StateTest, UsageCountsTheWholePromptAndTheCachedPart) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string first = R"([{"role":"user","content":"Tell me about the cat."}])";
  auto [status, one] = Chat(first, R"(,"max_tokens":12,"temperature":0)");
  ASSERT_EQ(status, 200) << one.dump();
  EXPECT_EQ(one["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  const std::string reply = one["choices"][0]["message"]["content"];
  const std::string second = R"([{"role":"user","content":"Tell me about the cat."},)"
                             R"({"role":"assistant","content":)" +
                             Json(reply).dump() + R"(},{"role":"user","content":"And then?"}])";
  auto [status2, two] = Chat(second, R"(,"max_tokens":6,"temperature":0)");
  ASSERT_EQ(status2, 200) << two.dump();
  const size_t cached = two["usage"]["prompt_tokens_details"]["cached_tokens"];
  EXPECT_EQ(cached, one["usage"]["total_tokens"].get<size_t>());
  EXPECT_GT(two["usage"]["prompt_tokens"].get<size_t>(), cached);
  EXPECT_EQ(two["usage"]["total_tokens"].get<size_t>(),
            two["usage"]["prompt_tokens"].get<size_t>() + 6);
  ASSERT_NO_FATAL_FAILURE(ExpectDoneCallsSurviveARestart());
}

// Item 9: an exactly repeated conversation after a zero-token reply got "400 empty prompt"
// every time; a cancel for an id not running poisoned the next call with that id, and a cancel
// from another connection replied "cancelled" but did nothing.
TEST_F(StateTest, RepeatsAndCancelsBehave) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string chat = R"([{"role":"user","content":"Once upon a time"}])";
  auto [status, zero] = Chat(chat, R"(,"max_tokens":0)");
  ASSERT_EQ(status, 200) << zero.dump();
  EXPECT_EQ(zero["choices"][0]["message"]["content"], "");
  auto [status2, again] = Chat(chat, R"(,"max_tokens":5,"temperature":0)");
  ASSERT_EQ(status2, 200) << again.dump();
  EXPECT_EQ(again["usage"]["completion_tokens"], 5);
  EXPECT_EQ(again["llms"]["context"], zero["llms"]["context"]);
  // A cancel names a call that is queued or running, or gets not_found.
  const int fd = testing::RawConnect(daemon_->socket());
  ASSERT_OK(wire::WriteFrame(fd, R"({"type":"create","id":1})"));
  const uint64_t context = testing::ReadMessage(fd).value("context", uint64_t{0});
  ASSERT_OK(wire::WriteFrame(fd, R"({"type":"cancel","id":2,"target":7})"));
  EXPECT_EQ(testing::ReadMessage(fd).value("code", ""), "not_found");
  const std::string call = R"({"type":"call","id":7,"prompt":"Once","temperature":0,"context":)" +
                           std::to_string(context);
  ASSERT_OK(wire::WriteFrame(fd, call + R"(,"max_tokens":4})"));
  Json m;
  do {
    m = testing::ReadMessage(fd);
  } while (m.value("type", "") == "token");
  EXPECT_EQ(m.value("stop_reason", ""), "length") << m.dump();  // not poisoned
  // From another connection, a cancel by context stops the running call.
  ASSERT_OK(wire::WriteFrame(fd, call + R"(,"max_tokens":2000})"));
  EXPECT_EQ(testing::ReadMessage(fd).value("type", ""), "token");
  const int other = testing::RawConnect(daemon_->socket());
  ASSERT_OK(wire::WriteFrame(
      other, R"({"type":"cancel","id":3,"context":)" + std::to_string(context) + "}"));
  const Json ack = testing::ReadMessage(other);
  EXPECT_EQ(ack.value("type", ""), "cancelled") << ack.dump();
  EXPECT_EQ(ack.value("calls", 0), 1);
  do {
    m = testing::ReadMessage(fd);
  } while (m.value("type", "") == "token");
  EXPECT_EQ(m.value("stop_reason", ""), "cancelled") << m.dump();
  EXPECT_LT(m["usage"].value("completion_tokens", 2000), 2000);
  Record(context, m["usage"]);
  close(fd);
  close(other);
  ASSERT_NO_FATAL_FAILURE(ExpectDoneCallsSurviveARestart());
}

}  // namespace
}  // namespace llms
