// Issue 11, what peers can do: each case a client or a hostile local user caused against a real
// llmsd (it died of SIGPIPE, held memory without bound, read others' data), replayed. After each
// case the daemon still serves a normal call, and every call answered `done` is in its context
// after a SIGKILL and restart.
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "client/client.h"
#include "protocol/wire.h"
#include "testutil/daemon.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

using testing::DaemonProcess;
using wire::Json;

constexpr uid_t kOtherUid = 65534;  // nobody

int TcpConnect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

// Closes with a TCP reset instead of a FIN (SO_LINGER 0).
void Reset(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

void SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

// Bounds every blocking read on `fd`, so a test never hangs on a daemon that does not answer.
void ReadTimeout(int fd, int seconds) {
  timeval tv{seconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

std::string HttpPost(const std::string& path, const std::string& body,
                     const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: llmsd\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

class PeersTest : public testing::DaemonTest {
 protected:
  // A normal call on a new context, recorded in the ledger.
  void ExpectServes() {
    ASSERT_TRUE(Alive()) << daemon_->Log();
    auto id = client_->NewContext();
    ASSERT_OK(id);
    CallOptions o;
    o.max_tokens = 8;
    o.temperature = 0;
    auto reply = client_->Call(*id, "Once upon a time", o);
    ASSERT_OK(reply);
    EXPECT_EQ(reply->text.rfind(", there was", 0), 0u) << reply->text;
    Record(*id, Json{{"cached_tokens", reply->cached_tokens},
                     {"prompt_tokens", reply->prompt_tokens},
                     {"completion_tokens", reply->completion_tokens}});
  }
};

// Item 1: every early hang-up used to be a SIGPIPE that ended the daemon (exit 141).
TEST_F(PeersTest, ClientsThatLeaveEarlyDoNotStopTheDaemon) {
  const std::string tokens = dir_.File("tokens");
  ASSERT_OK(testing::WriteFile(tokens, "app=sk-test\n"));
  chmod(tokens.c_str(), 0600);
  ASSERT_NO_FATAL_FAILURE(Start({"--http", "127.0.0.1:0", "--app-tokens-file", tokens}));
  const int port = daemon_->HttpPort();
  ASSERT_GT(port, 0) << daemon_->Log();
  const std::string stream =
      R"({"prompt":"Once upon a time","max_tokens":1500,"temperature":0,"stream":true})";
  // Two bytes of an HTTP method, then gone.
  for (int i = 0; i < 20; ++i) {
    const int fd = testing::RawConnect(daemon_->socket());
    SendAll(fd, "GE");
    close(fd);
  }
  // curl giving up on a streamed completion.
  testing::RunCommand("curl -s -m 0.3 --unix-socket " + daemon_->socket() +
                      " http://llmsd/v1/completions -d '" + stream + "' > /dev/null");
  // A streamed completion whose reader leaves after the first bytes, on the socket and on TCP.
  for (const bool tcp : {false, true}) {
    const int fd = tcp ? TcpConnect(port) : testing::RawConnect(daemon_->socket());
    ReadTimeout(fd, 30);
    SendAll(fd,
            HttpPost("/v1/completions", stream, tcp ? "Authorization: Bearer sk-test\r\n" : ""));
    char head[64];
    EXPECT_GT(read(fd, head, sizeof(head)), 0);
    tcp ? Reset(fd) : static_cast<void>(close(fd));
  }
  // A TCP reset in the middle of a request.
  const int half = TcpConnect(port);
  SendAll(half, "POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"pro");
  Reset(half);
  // A native client that leaves while its call streams.
  const int quitter = testing::RawConnect(daemon_->socket());
  ReadTimeout(quitter, 30);
  SendAll(quitter, wire::EncodeFrame(R"({"type":"create","id":1})"));
  const uint64_t context = testing::ReadMessage(quitter).value("context", uint64_t{0});
  SendAll(quitter, wire::EncodeFrame(R"({"type":"call","id":2,"prompt":"Once","max_tokens":1500,)"
                                     R"("context":)" +
                                     std::to_string(context) + "}"));
  EXPECT_EQ(testing::ReadMessage(quitter).value("type", ""), "token");
  close(quitter);
  // The real OpenAI client breaking out of a stream.
  const std::string node_dir = std::string(LLMS_SOURCE_DIR) + "/tests/service/openai";
  auto [rc, out] = testing::RunCommand(
      "cd " + node_dir + " && LLMS_BASE_URL=http://127.0.0.1:" + std::to_string(port) +
      "/v1 LLMS_API_KEY=sk-test node break_stream.mjs 2>&1");
  EXPECT_EQ(rc, 0) << out;
  ASSERT_NO_FATAL_FAILURE(ExpectServes());
  EXPECT_TRUE(Alive()) << daemon_->Log();
  ASSERT_NO_FATAL_FAILURE(ExpectDoneCallsSurviveARestart());
}

// Item 6: 1,000 connections of one uid, each announcing a 1 MiB frame and sending a byte (some
// sending 1 MiB of nested brackets), raised RSS from 20 to 227 MB and more. Now a uid holds at
// most 16 connections, frames take memory only as bytes arrive, JSON nesting is capped, and a
// started frame must finish in time; another uid is served meanwhile.
TEST_F(PeersTest, OneUidCannotExhaustMemory) {
  ASSERT_EQ(geteuid(), 0u) << "the flood runs as another uid, which needs root";
  chmod(dir_.path().c_str(), 0755);  // the other uid reaches the socket (the data stays 0700)
  ASSERT_NO_FATAL_FAILURE(Start({"--frame-timeout", "2"}));
  ASSERT_NO_FATAL_FAILURE(ExpectServes());
  const size_t rss_before = testing::ResidentBytes(daemon_->pid());
  int ready[2], go[2], report[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(report), 0);
  const std::string socket = daemon_->socket();
  const pid_t flood = fork();
  if (flood == 0) {
    rlimit files{4096, 4096};
    setrlimit(RLIMIT_NOFILE, &files);
    if (setgid(kOtherUid) != 0 || setuid(kOtherUid) != 0) _exit(2);
    std::vector<int> fds;
    const std::string announce = std::string("\x00\x00\x10\x00", 4) + "{";  // 1 MiB, 1 byte
    const std::string nested = wire::EncodeFrame(std::string((1 << 20) - 64, '['));
    for (int i = 0; i < 1000; ++i) {
      const int fd = testing::RawConnect(socket);
      if (fd < 0) continue;
      fds.push_back(fd);
      SendAll(fd, i < 4 ? nested : announce);
    }
    char c = 1;
    (void)!write(ready[1], &c, 1);
    (void)!read(go[0], &c, 1);
    int refused = 0, nesting = 0, timed_out = 0;
    for (int fd : fds) {
      ReadTimeout(fd, 30);
      const std::string message = testing::ReadMessage(fd).value("message", "");
      refused += message.find("most connections") != std::string::npos;
      nesting += message.find("nests deeper than 32") != std::string::npos;
      timed_out += message.find("was not complete 2 s after it began") != std::string::npos;
    }
    const int counts[3] = {refused, nesting, timed_out};
    (void)!write(report[1], counts, sizeof(counts));
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  // The most resident memory seen while the flood's connections are open.
  size_t rss_flooded = testing::ResidentBytes(daemon_->pid());
  ASSERT_NO_FATAL_FAILURE(ExpectServes());  // this uid (root) is served while the other one floods
  rss_flooded = std::max(rss_flooded, testing::ResidentBytes(daemon_->pid()));
  ASSERT_EQ(write(go[1], &c, 1), 1);
  int counts[3] = {};
  ASSERT_EQ(read(report[0], counts, sizeof(counts)), static_cast<ssize_t>(sizeof(counts)));
  rss_flooded = std::max(rss_flooded, testing::ResidentBytes(daemon_->pid()));
  int status = 0;
  waitpid(flood, &status, 0);
  const double rise_mib =
      (static_cast<double>(rss_flooded) - static_cast<double>(rss_before)) / (1 << 20);
  std::printf(
      "RSS %.1f MiB before, %.1f MiB with 1000 connections of one uid (+%.1f MiB); "
      "refused %d, nesting refused %d, incomplete frames timed out %d\n",
      static_cast<double>(rss_before) / (1 << 20), static_cast<double>(rss_flooded) / (1 << 20),
      rise_mib, counts[0], counts[1], counts[2]);
  EXPECT_LT(rise_mib, 64.0);
  EXPECT_EQ(counts[0], 1000 - 16);
  EXPECT_EQ(counts[1], 4);
  EXPECT_EQ(counts[2], 12);
  ASSERT_NO_FATAL_FAILURE(ExpectServes());
  ASSERT_NO_FATAL_FAILURE(ExpectDoneCallsSurviveARestart());
}

// Item 6: a started frame or request must finish, and an idle HTTP connection is closed, so a
// peer cannot hold a connection half-open for ever.
TEST_F(PeersTest, StalledFramesAndIdleHttpConnectionsAreClosed) {
  ASSERT_NO_FATAL_FAILURE(Start({"--frame-timeout", "1", "--http-request-timeout", "1", "--http-idle-timeout", "1"}));
  const int frame = testing::RawConnect(daemon_->socket());
  ReadTimeout(frame, 30);
  SendAll(frame, std::string("\x40\x00\x00\x00{\"ty", 8));  // 64 bytes announced, 4 sent
  Json m = testing::ReadMessage(frame);
  EXPECT_NE(m.value("message", "").find("was not complete 1 s after it began"), std::string::npos)
      << m.dump();
  EXPECT_EQ(testing::ReadMessage(frame).value("type", ""), "closed");
  close(frame);
  const int request = testing::RawConnect(daemon_->socket());
  ReadTimeout(request, 30);
  SendAll(request, "GET /health HTTP/1.1\r\nHost: llmsd\r\n");  // the headers never end
  char buf[4096];
  ssize_t n = read(request, buf, sizeof(buf));
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 408", 0), 0u);
  close(request);
  const int idle = testing::RawConnect(daemon_->socket());
  ReadTimeout(idle, 30);
  SendAll(idle, "GET /health HTTP/1.1\r\nHost: llmsd\r\n\r\n");
  n = read(idle, buf, sizeof(buf));
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(read(idle, buf, sizeof(buf)), 0);  // then the daemon closes it (our read waits 30 s)
  close(idle);
  ASSERT_NO_FATAL_FAILURE(ExpectServes());
  ASSERT_NO_FATAL_FAILURE(ExpectDoneCallsSurviveARestart());
}

// Item 5: conversations were readable by every local user (data dir 0755, files 0644) and app
// tokens showed in ps.
TEST_F(PeersTest, DataIsPrivateAndTokensStayOutOfTheCommandLine) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(ExpectServes());
  ASSERT_EQ(daemon_->Terminate(), 0) << daemon_->Log();
  const std::string data = dir_.File("data");
  auto mode = [](const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 ? st.st_mode & 0777 : 01000;
  };
  EXPECT_EQ(mode(data), 0700u);
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(data)) {
    EXPECT_EQ(mode(entry.path()), 0600u) << entry.path();
    ++files;
  }
  EXPECT_GE(files, 3u);  // meta.sqlite, chunks.dat, reserve (and the WAL)
  // A data directory others may read is refused at start, with the fix in the message.
  chmod(data.c_str(), 0755);
  auto [code, log] = DaemonProcess::RunToExit(dir_.path(), {});
  EXPECT_NE(code, 0);
  EXPECT_NE(log.find("chmod 700 " + data), std::string::npos) << log;
  chmod(data.c_str(), 0700);
  chmod((data + "/meta.sqlite").c_str(), 0644);
  std::tie(code, log) = DaemonProcess::RunToExit(dir_.path(), {});
  EXPECT_NE(code, 0);
  EXPECT_NE(log.find(data + "/meta.sqlite (644)"), std::string::npos) << log;
  chmod((data + "/meta.sqlite").c_str(), 0600);
  // A token on the command line is refused; a token file others may read too.
  std::tie(code, log) = DaemonProcess::RunToExit(dir_.path(), {"--app-token", "a=sk-1"});
  EXPECT_NE(code, 0);
  EXPECT_NE(log.find("visible to every local user in ps"), std::string::npos) << log;
  const std::string tokens = dir_.File("tokens");
  ASSERT_OK(testing::WriteFile(tokens, "notes=sk-from-env-file\n"));
  chmod(tokens.c_str(), 0644);
  std::tie(code, log) = DaemonProcess::RunToExit(dir_.path(), {"--app-tokens-file", tokens});
  EXPECT_NE(code, 0);
  EXPECT_NE(log.find("chmod 600 " + tokens), std::string::npos) << log;
  // From the environment, a token works.
  setenv("LLMS_APP_TOKENS", "notes=sk-from-env", 1);
  ASSERT_NO_FATAL_FAILURE(Start({"--http", "127.0.0.1:0"}));
  unsetenv("LLMS_APP_TOKENS");
  const int port = daemon_->HttpPort();
  auto [rc, out] = testing::RunCommand(
      "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" + std::to_string(port) +
      "/v1/models -H 'Authorization: Bearer sk-from-env'");
  EXPECT_EQ(out, "200");
  ASSERT_NO_FATAL_FAILURE(ExpectServes());
  ASSERT_NO_FATAL_FAILURE(ExpectDoneCallsSurviveARestart());
}

// Item 9: /metrics answered any local user with every app's activity; HEAD /health got 401.
TEST_F(PeersTest, MetricsAreForTheDaemonsUserAndHeadHealthAnswers) {
  ASSERT_EQ(geteuid(), 0u) << "the other user's request runs as another uid, which needs root";
  chmod(dir_.path().c_str(), 0755);  // the other uid reaches the socket (the data stays 0700)
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(ExpectServes());
  auto [status, body] = testing::CurlUnix(daemon_->socket(), "/metrics");
  EXPECT_EQ(status, 200);
  EXPECT_NE(body.find("llms_calls_total{outcome=\"ok\"} 1"), std::string::npos) << body;
  auto [rc, out] = testing::RunCommand(
      "setpriv --reuid=" + std::to_string(kOtherUid) + " --regid=" + std::to_string(kOtherUid) +
      " --clear-groups curl -s -o /dev/null -w '%{http_code}' --unix-socket " + daemon_->socket() +
      " http://llmsd/metrics");
  EXPECT_EQ(out, "403");
  std::tie(status, body) = testing::CurlUnix(daemon_->socket(), "/health", "", "-I");
  EXPECT_EQ(status, 200) << body;
  ASSERT_NO_FATAL_FAILURE(ExpectDoneCallsSurviveARestart());
}

}  // namespace
}  // namespace llms
