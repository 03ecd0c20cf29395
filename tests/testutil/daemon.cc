#include "testutil/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "client/client.h"
#include "testutil/testutil.h"

namespace llms::testing {

std::string ToolPath(const std::string& name) {
  if (const char* other = std::getenv("LLMS_TEST_LLMSD"); name == "llmsd" && other != nullptr) {
    return other;
  }
  return std::string(LLMS_BINARY_DIR) + "/tools/" + name;
}

int RawConnect(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

wire::Json ReadMessage(int fd) {
  auto frame = wire::ReadFrame(fd);
  if (!frame.ok()) return {{"type", "closed"}, {"message", frame.status().ToString()}};
  auto m = wire::ParseMessage(*frame);
  return m.ok() ? *m : wire::Json{{"type", "unparsable"}};
}

size_t ResidentBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) << 10;
  }
  return 0;
}

std::pair<int, std::string> CurlUnix(const std::string& socket, const std::string& path,
                                     const std::string& body, const std::string& extra) {
  std::string cmd =
      "curl -s -w '\\n%{http_code}' --unix-socket " + socket + " " + extra + " http://llmsd" + path;
  if (!body.empty()) {
    cmd = "printf '%s' '" + body + "' | " + cmd +
          " -H 'Content-Type: application/json' --data-binary @-";
  }
  auto [rc, out] = RunCommand(cmd);
  const size_t nl = out.rfind('\n');
  if (nl == std::string::npos) return {0, out};
  return {std::atoi(out.c_str() + nl + 1), out.substr(0, nl)};
}

std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  while (fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  const int rc = pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc), out};
}

namespace {

// Forks llmsd with `args`, its output appended to `log`.
pid_t Spawn(std::vector<std::string> args, const std::string& log) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  _exit(127);
}

std::vector<std::string> DaemonArgs(const std::string& dir,
                                    const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {
      ToolPath("llmsd"), "--model", DefaultModelPath(), "--socket", dir + "/llmsd.sock",
      "--threads",       "1"};
  // A --data-dir among the extra arguments wins (CLI11 refuses an option given twice).
  if (std::find(extra_args.begin(), extra_args.end(), "--data-dir") == extra_args.end()) {
    args.insert(args.end(), {"--data-dir", dir + "/data"});
  }
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  return args;
}

}  // namespace

std::pair<int, std::string> DaemonProcess::RunToExit(const std::string& dir,
                                                     const std::vector<std::string>& extra_args) {
  const std::string log = dir + "/llmsd.log";
  const pid_t pid = Spawn(DaemonArgs(dir, extra_args), log);
  if (pid < 0) return {-1, "fork failed"};
  DaemonProcess daemon(pid, dir + "/llmsd.sock", log);
  const int code = daemon.Wait();
  return {code, daemon.Log()};
}

StatusOr<std::unique_ptr<DaemonProcess>> DaemonProcess::Start(
    const std::string& dir, const std::vector<std::string>& extra_args) {
  const std::string socket = dir + "/llmsd.sock", log = dir + "/llmsd.log";
  const pid_t pid = Spawn(DaemonArgs(dir, extra_args), log);
  if (pid < 0) return Status::FromErrno("fork", errno);
  auto daemon = std::make_unique<DaemonProcess>(pid, socket, log);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      daemon->pid_ = -1;
      return Status::Unavailable("llmsd exited during startup; its log:\n" + daemon->Log());
    }
    if (Client::Connect(socket).ok()) return daemon;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::Unavailable("llmsd did not accept connections within 60 s; its log:\n" +
                             daemon->Log());
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) Kill();
}

int DaemonProcess::Wait() {
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int DaemonProcess::Terminate() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  return Wait();
}

void DaemonProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  Wait();
}

int DaemonProcess::HttpPort() const {
  const std::string key = "event=http_ready address=127.0.0.1:";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string log = Log();
    if (const size_t at = log.find(key); at != std::string::npos) {
      return std::atoi(log.c_str() + at + key.size());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

std::string DaemonProcess::Log() const {
  std::ifstream in(log_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void DaemonTest::Start(std::vector<std::string> args) {
  args_ = std::move(args);
  auto d = DaemonProcess::Start(dir_.path(), args_);
  ASSERT_OK(d);
  daemon_ = std::move(d).value();
  auto c = Client::Connect(daemon_->socket());
  ASSERT_OK(c);
  client_ = std::move(c).value();
}

bool DaemonTest::Alive() {
  int status = 0;
  return daemon_ != nullptr && daemon_->pid() > 0 && waitpid(daemon_->pid(), &status, WNOHANG) == 0;
}

void DaemonTest::Record(uint64_t context, const wire::Json& usage) {
  ledger_[context] = usage.value("cached_tokens", size_t{0}) +
                     usage.value("prompt_tokens", size_t{0}) +
                     usage.value("completion_tokens", size_t{0});
}

void DaemonTest::ExpectDoneCallsSurviveARestart() {
  client_.reset();
  daemon_->Kill();
  ASSERT_NO_FATAL_FAILURE(Start(args_));
  for (const auto& [context, tokens] : ledger_) {
    auto stats = client_->Stats(context);
    ASSERT_OK(stats);
    EXPECT_EQ(stats->value("tokens", size_t{0}), tokens) << "context " << context;
  }
}

}  // namespace llms::testing
