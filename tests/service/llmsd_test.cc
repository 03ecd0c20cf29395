// llmsd end to end: the real daemon on a temporary socket and data directory, driven through
// the client library, the C ABI, the `llms` command line and raw protocol bytes. Covers app
// isolation (two uids), persistence across SIGKILL, a draining SIGTERM, bad input and many
// concurrent clients.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <thread>

#include "client/c_api.h"
#include "client/client.h"
#include "protocol/wire.h"
#include "testutil/daemon.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

using testing::DaemonProcess;
using wire::Json;

constexpr char kGoldenStart[] = ", there was a little girl named Lily.";

CallOptions Greedy(size_t max_tokens) {
  CallOptions o;
  o.max_tokens = max_tokens;
  o.temperature = 0;
  return o;
}

class LlmsdTest : public ::testing::Test {
 protected:
  void StartDaemon(const std::vector<std::string>& args = {}) {
    auto d = DaemonProcess::Start(dir_.path(), args);
    ASSERT_OK(d);
    daemon_ = std::move(d).value();
  }
  std::unique_ptr<Client> Connect() {
    auto c = Client::Connect(daemon_->socket());
    EXPECT_OK(c);
    return c.ok() ? std::move(c).value() : nullptr;
  }

  testing::TempDir dir_;
  std::unique_ptr<DaemonProcess> daemon_;
};

int RawConnect(const std::string& path) {
  const int fd = testing::RawConnect(path);
  EXPECT_GE(fd, 0);
  return fd;
}

Json Reply(int fd) { return testing::ReadMessage(fd); }

TEST_F(LlmsdTest, ClientLibraryCreatesCallsListsAndDeletes) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->app(), "uid:" + std::to_string(getuid()));
  auto id = client->NewContext();
  ASSERT_OK(id);
  std::string streamed;
  auto reply = client->Call(*id, "Once upon a time", Greedy(24), [&](std::string_view t) {
    streamed += t;
    return true;
  });
  ASSERT_OK(reply);
  EXPECT_EQ(reply->text.rfind(kGoldenStart, 0), 0u) << reply->text;
  EXPECT_EQ(streamed, reply->text);
  EXPECT_EQ(reply->stop_reason, "length");
  EXPECT_EQ(reply->completion_tokens, 24u);
  // The second turn continues the same context: its KV is still resident.
  auto second = client->Call(*id, " She", Greedy(8));
  ASSERT_OK(second);
  EXPECT_EQ(second->stats.value("chunks_recomputed", -1), 0);
  auto list = client->ListContexts();
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].tokens, 5u + 24 + reply->prompt_tokens * 0 + second->prompt_tokens + 8);
  auto stats = client->Stats(*id);
  ASSERT_OK(stats);
  EXPECT_GT(stats->value("chunks", 0), 0);
  ASSERT_OK(client->DeleteContext(*id));
  EXPECT_EQ(client->DeleteContext(*id).code(), StatusCode::kNotFound);
  EXPECT_EQ(client->Call(*id, "x", Greedy(1)).status().code(), StatusCode::kNotFound);
}

TEST_F(LlmsdTest, CAbiMirrorsThePapersInterface) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  llms_handle* h = nullptr;
  ASSERT_EQ(llms_bind(daemon_->socket().c_str(), &h), LLMS_OK) << llms_last_error();
  uint64_t ctx = 0;
  ASSERT_EQ(llms_new_ctx(h, nullptr, &ctx), LLMS_OK) << llms_last_error();
  llms_call_options o{16, 0.0f, 0};
  char* text = nullptr;
  std::string streamed;
  auto on_text = [](void* user, const char* t, size_t n) {
    static_cast<std::string*>(user)->append(t, n);
    return 1;
  };
  ASSERT_EQ(llms_call(h, ctx, "Once upon a time", &o, on_text, &streamed, &text), LLMS_OK)
      << llms_last_error();
  EXPECT_EQ(std::string(text).rfind(kGoldenStart, 0), 0u) << text;
  EXPECT_EQ(streamed, text);
  llms_free(text);
  ASSERT_EQ(llms_del_ctx(h, ctx), LLMS_OK);
  EXPECT_EQ(llms_del_ctx(h, ctx), LLMS_E_NOT_FOUND);
  EXPECT_NE(std::string(llms_last_error()).find("not found"), std::string::npos);
  EXPECT_EQ(llms_new_ctx(nullptr, nullptr, &ctx), LLMS_E_INVALID_ARGUMENT);
  llms_unbind(h);
  llms_handle* none = nullptr;
  EXPECT_EQ(llms_bind((dir_.path() + "/no.sock").c_str(), &none), LLMS_E_UNAVAILABLE);
}

#ifdef __SANITIZE_ADDRESS__
// An ASan-built library loads into an uninstrumented python only after the ASan runtime it links.
const std::string kPython = "LD_PRELOAD=$(ldd " + std::string(LLMS_BINARY_DIR) +
                            "/libllms_client.so | awk '/libasan/ {print $3}') "
                            "ASAN_OPTIONS=detect_leaks=0 python3 ";
#else
const std::string kPython = "python3 ";
#endif

// The shared library exports the C ABI for bindings; Python's ctypes drives it here.
TEST_F(LlmsdTest, PythonThroughCtypesUsesTheSharedLibrary) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const std::string lib = std::string(LLMS_BINARY_DIR) + "/libllms_client.so";
  auto [rc, out] =
      testing::RunCommand(kPython + std::string(LLMS_SOURCE_DIR) + "/tests/service/c_abi.py " +
                          lib + " " + daemon_->socket() + " 2>&1");
  ASSERT_EQ(rc, 0) << out;
  const size_t nl = out.find('\n');
  ASSERT_NE(nl, std::string::npos) << out;
  EXPECT_EQ(out.rfind(kGoldenStart, 0), 0u) << out;                 // streamed
  EXPECT_EQ(out.substr(nl + 1).rfind(kGoldenStart, 0), 0u) << out;  // returned whole
}

TEST_F(LlmsdTest, CommandLineTalksToTheDaemon) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  auto run = [](const std::string& cmd) { return testing::RunCommand(cmd + " 2>/dev/null"); };
  // `--socket` belongs to the subcommand.
  const std::string sock = " --socket " + daemon_->socket();
  auto [rc_new, id] = run(testing::ToolPath("llms") + " new" + sock);
  ASSERT_EQ(rc_new, 0);
  while (!id.empty() && id.back() == '\n') id.pop_back();
  auto [rc_call, text] = run(testing::ToolPath("llms") + " call" + sock + " -c " + id +
                             " -p 'Once upon a time' -n 16 --temp 0");
  EXPECT_EQ(rc_call, 0);
  EXPECT_EQ(text.rfind(kGoldenStart, 0), 0u) << text;
  auto [rc_list, table] = run(testing::ToolPath("llms") + " list" + sock);
  EXPECT_EQ(rc_list, 0);
  EXPECT_NE(table.find("\n" + id + " "), std::string::npos) << table;
  auto [rc_stats, stats] = run(testing::ToolPath("llms") + " stats" + sock + " " + id);
  EXPECT_EQ(rc_stats, 0);
  EXPECT_NE(stats.find("\"tokens\""), std::string::npos) << stats;
  EXPECT_EQ(run(testing::ToolPath("llms") + " delete" + sock + " " + id).first, 0);
  EXPECT_NE(run(testing::ToolPath("llms") + " delete" + sock + " " + id).first, 0);
}

// Two apps are two uids: the second one runs in a child process that drops root.
TEST_F(LlmsdTest, AppsCannotSeeCallOrDeleteEachOthersContexts) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run a second uid";
  chmod(dir_.path().c_str(), 0755);
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  auto owner = Connect();
  auto id = owner->NewContext();
  ASSERT_OK(id);
  ASSERT_OK(owner->Call(*id, "Once upon a time", Greedy(4)));
  const pid_t child = fork();
  if (child == 0) {
    // Exit codes name the first check that failed (gtest macros do not cross fork).
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    auto other = Client::Connect(daemon_->socket());
    if (!other.ok()) _exit(11);
    if ((*other)->app() != "uid:65534") _exit(12);
    auto list = (*other)->ListContexts();
    if (!list.ok() || !list->empty()) _exit(13);
    if ((*other)->Call(*id, "hi", Greedy(2)).status().code() != StatusCode::kNotFound) _exit(14);
    if ((*other)->Stats(*id).status().code() != StatusCode::kNotFound) _exit(15);
    if ((*other)->DeleteContext(*id).code() != StatusCode::kNotFound) _exit(16);
    auto own = (*other)->NewContext();
    if (!own.ok()) _exit(17);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "first failed check in the child";
  auto list = owner->ListContexts();
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 1u);  // the child's context is not ours
  EXPECT_EQ((*list)[0].id, *id);
  ASSERT_OK(owner->Call(*id, " The", Greedy(2)));  // untouched by the other app
}

// SIGKILL at any moment after a call returned and its chunks reached flash loses nothing: the
// restarted daemon continues the context from its stored chunks, exactly as an uninterrupted
// one does.
TEST_F(LlmsdTest, ContextSurvivesSigkillAndContinuesFromFlash) {
  // Load-then-run reads every chunk that is on flash. The default policy may recompute instead
  // when its cost model says that is faster, which for stories260K's tiny chunks depends on the
  // machine's load, so it would not show the KV coming back deterministically.
  const std::vector<std::string> load_from_flash = {"--policy", "llms-no-pipeline"};
  ASSERT_NO_FATAL_FAILURE(StartDaemon(load_from_flash));
  auto client = Connect();
  auto id = client->NewContext();
  ASSERT_OK(id);
  auto first = client->Call(*id, "Once upon a time", Greedy(40));
  ASSERT_OK(first);
  // The background writer stores the call's chunks (written once per call, so flash_chunks,
  // which counts current copies only, reaches chunks once they are all stored). 60 s: generous.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto stats = client->Stats(*id);
    ASSERT_OK(stats);
    if (stats->value("flash_chunks", 0) == stats->value("chunks", -1)) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "not on flash: " << stats->dump();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  daemon_->Kill();
  client.reset();
  ASSERT_NO_FATAL_FAILURE(StartDaemon(load_from_flash));
  client = Connect();
  auto stats = client->Stats(*id);
  ASSERT_OK(stats);
  EXPECT_EQ(stats->value("tokens", 0u), 5u + 40);
  auto second = client->Call(*id, " One day", Greedy(16));
  ASSERT_OK(second);
  EXPECT_GT(second->stats.value("chunks_loaded", 0), 0);
  EXPECT_EQ(second->stats.value("chunks_recomputed", -1), 0);  // no full recompute

  // The same two calls on a daemon that was never killed give the same text.
  testing::TempDir other_dir;
  auto reference = DaemonProcess::Start(other_dir.path());
  ASSERT_OK(reference);
  auto ref_client = Client::Connect((*reference)->socket());
  ASSERT_OK(ref_client);
  auto ref_id = (*ref_client)->NewContext();
  ASSERT_OK(ref_id);
  ASSERT_OK((*ref_client)->Call(*ref_id, "Once upon a time", Greedy(40)));
  auto ref_second = (*ref_client)->Call(*ref_id, " One day", Greedy(16));
  ASSERT_OK(ref_second);
  EXPECT_EQ(second->text, ref_second->text);
}

TEST_F(LlmsdTest, SigtermDrainsTheRunningCallAndExitsCleanly) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  auto client = Connect();
  auto id = client->NewContext();
  ASSERT_OK(id);
  bool signalled = false;
  auto reply = client->Call(*id, "Once upon a time", Greedy(200), [&](std::string_view) {
    if (!signalled) kill(daemon_->pid(), SIGTERM);
    signalled = true;
    return true;
  });
  ASSERT_OK(reply);  // finished, not cut off
  EXPECT_NE(reply->stop_reason, "cancelled");
  EXPECT_EQ(daemon_->Terminate(), 0) << daemon_->Log();
  ASSERT_NO_FATAL_FAILURE(StartDaemon());  // and the context is back
  auto again = Connect();
  auto stats = again->Stats(*id);
  ASSERT_OK(stats);
  EXPECT_EQ(stats->value("tokens", 0u), 5u + reply->completion_tokens);
}

TEST_F(LlmsdTest, BadInputGetsAClearErrorAndTheDaemonKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(
      StartDaemon({"--max-prompt-tokens", "64", "--max-request-bytes", "4096"}));
  auto client = Connect();
  auto id = client->NewContext();
  ASSERT_OK(id);
  const int fd = RawConnect(daemon_->socket());
  auto send = [&](std::string_view payload) { ASSERT_OK(wire::WriteFrame(fd, payload)); };
  send("{not json");
  Json r = Reply(fd);
  EXPECT_EQ(r.value("code", ""), "invalid_argument");
  EXPECT_NE(r.value("message", "").find("not valid JSON"), std::string::npos);
  send("{\"type\":\"call\",\"context\":1,\"prompt\":\"\xff\xfe\"}");  // invalid UTF-8
  EXPECT_EQ(Reply(fd).value("code", ""), "invalid_argument");
  send(R"({"type":"call","id":3,"context":)" + std::to_string(*id) +
       R"(,"prompt":"hi","max_tokens":"many"})");
  r = Reply(fd);
  EXPECT_EQ(r.value("id", 0), 3);
  EXPECT_NE(r.value("message", "").find("'max_tokens'"), std::string::npos) << r.dump();
  send(R"({"type":"call","id":4,"context":987654,"prompt":"hi"})");
  EXPECT_EQ(Reply(fd).value("code", ""), "not_found");
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += " word";
  send(R"({"type":"call","id":5,"context":)" + std::to_string(*id) + R"(,"prompt":")" +
       long_prompt + R"("})");
  r = Reply(fd);
  EXPECT_NE(r.value("message", "").find("exceeds the limit of 64"), std::string::npos) << r.dump();
  send(R"({"type":"teleport"})");
  EXPECT_NE(Reply(fd).value("message", "").find("unknown message type"), std::string::npos);
  send(R"([1,2,3])");
  EXPECT_EQ(Reply(fd).value("code", ""), "invalid_argument");
  // A frame over the request limit cannot be skipped safely: an error, then the hang-up.
  (void)wire::WriteFrame(fd, std::string(5000, 'x'));  // the daemon may hang up mid-frame
  EXPECT_NE(Reply(fd).value("message", "").find("exceeds the limit"), std::string::npos);
  EXPECT_EQ(Reply(fd).value("type", ""), "closed");
  close(fd);
  // Random bytes.
  const int noise = RawConnect(daemon_->socket());
  std::vector<uint8_t> bytes = testing::RandomBytes(3000, 7);
  ASSERT_EQ(write(noise, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  close(noise);
  // A client that disconnects in the middle of a streamed reply.
  const int quitter = RawConnect(daemon_->socket());
  ASSERT_OK(wire::WriteFrame(quitter, R"({"type":"create","id":1})"));
  const uint64_t quitter_ctx = Reply(quitter).value("context", uint64_t{0});
  ASSERT_OK(wire::WriteFrame(quitter, R"({"type":"call","id":2,"context":)" +
                                          std::to_string(quitter_ctx) +
                                          R"(,"prompt":"Once","max_tokens":300})"));
  EXPECT_EQ(Reply(quitter).value("type", ""), "token");
  close(quitter);
  // Everyone else is still served.
  auto reply = client->Call(*id, "Once upon a time", Greedy(8));
  ASSERT_OK(reply);
  EXPECT_EQ(reply->text.rfind(", there was", 0), 0u);
  EXPECT_EQ(daemon_->Terminate(), 0) << daemon_->Log();
}

TEST_F(LlmsdTest, SixteenConcurrentClientsAllComplete) {
  // The per-uid cap is raised above 16: the readiness probe's closed connection may still count
  // for a moment (its thread has not yet read EOF), and this test is about calls, not the cap.
  ASSERT_NO_FATAL_FAILURE(StartDaemon({"--max-queued", "32", "--max-connections-per-uid", "32"}));
  std::vector<std::thread> threads;
  std::vector<Status> results(16);
  std::vector<std::string> texts(16);
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      auto c = Client::Connect(daemon_->socket());
      if (!c.ok()) {
        results[i] = c.status();
        return;
      }
      auto id = (*c)->NewContext();
      if (!id.ok()) {
        results[i] = id.status();
        return;
      }
      auto r = (*c)->Call(*id, "Once upon a time", Greedy(12));
      results[i] = r.status();
      if (r.ok()) texts[i] = r->text;
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 16; ++i) {
    EXPECT_OK(results[i]);
    EXPECT_EQ(texts[i], texts[0]) << "client " << i;  // greedy, same prompt, same text
  }
  auto client = Connect();
  auto list = client->ListContexts();
  ASSERT_OK(list);
  EXPECT_EQ(list->size(), 16u);
}

// Calls run in slices: a short call sent right after a long one finishes first, while the long
// one is still generating (with whole-call scheduling it would wait for all of it). Asserted on
// the order of messages, not on speed: the long call's 1500 tokens outlast any scheduling delay
// of the short one's arrival, and once the short one starts it runs alone (one slice).
TEST_F(LlmsdTest, AShortCallDoesNotWaitBehindALongGeneration) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const int fd = RawConnect(daemon_->socket());
  ASSERT_OK(wire::WriteFrame(fd, R"({"type":"create","id":1})"));
  const uint64_t a = Reply(fd).value("context", uint64_t{0});
  ASSERT_OK(wire::WriteFrame(fd, R"({"type":"create","id":2})"));
  const uint64_t b = Reply(fd).value("context", uint64_t{0});
  // Both calls in one write: the short one is queued while the long one runs.
  std::string both;
  for (const std::string& m :
       {R"({"type":"call","id":10,"context":)" + std::to_string(a) +
            R"(,"prompt":"Once upon a time","max_tokens":1500,"temperature":0})",
        R"({"type":"call","id":11,"context":)" + std::to_string(b) +
            R"(,"prompt":"The dog","max_tokens":8,"temperature":0})"}) {
    const uint32_t n = static_cast<uint32_t>(m.size());
    both += std::string{static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                        static_cast<char>(n >> 24)} +
            m;
  }
  ASSERT_EQ(write(fd, both.data(), both.size()), static_cast<ssize_t>(both.size()));
  std::vector<uint64_t> done_order;
  bool short_started = false;
  size_t long_tokens_inside_short = 0;
  while (done_order.size() < 2) {
    const Json m = Reply(fd);
    ASSERT_NE(m.value("type", ""), "closed");
    ASSERT_NE(m.value("type", ""), "error") << m.dump();
    const uint64_t id = m.value("id", uint64_t{0});
    const std::string type = m.value("type", "");
    if (type == "token" && id == 11) short_started = true;
    if (type == "token" && id == 10 && short_started && done_order.empty()) {
      ++long_tokens_inside_short;
    }
    if (type == "done") {
      done_order.push_back(id);
      if (id == 10) {
        EXPECT_EQ(m["usage"].value("completion_tokens", 0), 1500);
      }
    }
  }
  EXPECT_EQ(done_order, (std::vector<uint64_t>{11, 10}));
  EXPECT_EQ(long_tokens_inside_short, 0u);
  close(fd);
}

// At the window a call is refused by default, and with --full-context slide it goes on from the
// attention sink and the recent tokens.
TEST_F(LlmsdTest, FullContextIsRefusedOrSlidPerSetting) {
  for (const char* mode : {"reject", "slide"}) {
    SCOPED_TRACE(mode);
    if (daemon_) daemon_->Terminate();
    testing::TempDir dir;
    auto d = DaemonProcess::Start(dir.path(), {"--context-window", "128", "--full-context", mode});
    ASSERT_OK(d);
    auto client = Client::Connect((*d)->socket());
    ASSERT_OK(client);
    auto id = (*client)->NewContext();
    ASSERT_OK(id);
    ASSERT_OK((*client)->Call(*id, "Once upon a time", Greedy(100)));
    auto more = (*client)->Call(*id, " The end", Greedy(40));
    if (std::string(mode) == "reject") {
      EXPECT_EQ(more.status().code(), StatusCode::kResourceExhausted);
      EXPECT_NE(more.status().message().find("--full-context slide"), std::string::npos);
      continue;
    }
    ASSERT_OK(more);
    EXPECT_EQ(more->completion_tokens, 40u);
    auto stats = (*client)->Stats(*id);
    ASSERT_OK(stats);
    EXPECT_LE(stats->value("tokens", 0u), 128u);
    // And it keeps working turn after turn.
    for (int turn = 0; turn < 3; ++turn) ASSERT_OK((*client)->Call(*id, " Then", Greedy(40)));
  }
}

// Under systemd: the listening socket is inherited (socket activation, fd 3) and readiness and
// stopping are reported on $NOTIFY_SOCKET.
TEST_F(LlmsdTest, SocketActivationAndReadinessNotification) {
  const std::string listen_path = dir_.File("activated.sock"), notify_path = dir_.File("notify");
  const int listener = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, listen_path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 8), 0);
  const int notify = socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un naddr{};
  naddr.sun_family = AF_UNIX;
  std::strncpy(naddr.sun_path, notify_path.c_str(), sizeof(naddr.sun_path) - 1);
  ASSERT_EQ(bind(notify, reinterpret_cast<sockaddr*>(&naddr), sizeof(naddr)), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(listener, 3);
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
    setenv("NOTIFY_SOCKET", notify_path.c_str(), 1);
    const std::string model = testing::DefaultModelPath(), data = dir_.File("data");
    execl(testing::ToolPath("llmsd").c_str(), "llmsd", "--model", model.c_str(), "--data-dir",
          data.c_str(), "--socket", "/nonexistent/ignored.sock", "--log-level", "warn",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(listener);
  timeval bound{60, 0};  // a daemon that dies never notifies: fail rather than hang
  ASSERT_EQ(setsockopt(notify, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof(bound)), 0);
  char buf[256] = {};
  const ssize_t n = recv(notify, buf, sizeof(buf) - 1, 0);  // blocks until llmsd is ready
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buf).find("READY=1"), std::string::npos) << buf;
  {
    auto client = Client::Connect(listen_path);
    ASSERT_OK(client);
    auto id = (*client)->NewContext();
    ASSERT_OK(id);
    auto reply = (*client)->Call(*id, "Once upon a time", Greedy(8));
    ASSERT_OK(reply);
    EXPECT_EQ(reply->text.rfind(", there was", 0), 0u);
  }
  kill(pid, SIGTERM);
  std::memset(buf, 0, sizeof(buf));
  ASSERT_GT(recv(notify, buf, sizeof(buf) - 1, 0), 0);
  EXPECT_NE(std::string(buf).find("STOPPING=1"), std::string::npos) << buf;
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(notify);
}

TEST_F(LlmsdTest, CancelStopsTheRunningCall) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  auto client = Connect();
  auto id = client->NewContext();
  ASSERT_OK(id);
  int pieces = 0;
  // The daemon generates on while the cancel travels (no bound on how far is asserted), but a
  // window's worth of tokens takes far longer than one message.
  auto reply = client->Call(*id, "Once upon a time", Greedy(2000), [&](std::string_view) {
    return ++pieces < 3;  // cancel after the third piece
  });
  ASSERT_OK(reply);
  EXPECT_EQ(reply->stop_reason, "cancelled");
  EXPECT_LT(reply->completion_tokens, 2000u);
  // The context keeps what was generated before the cancel, and serves the next call.
  auto stats = client->Stats(*id);
  ASSERT_OK(stats);
  EXPECT_EQ(stats->value("tokens", 0u), 5u + reply->completion_tokens);
}

}  // namespace
}  // namespace llms
