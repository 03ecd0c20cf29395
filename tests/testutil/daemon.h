// A real llmsd process for integration tests (STYLE rule 19: helpers live here): started from
// the build tree on its own socket and data directory, with its log kept for failure messages.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "client/client.h"
#include "protocol/wire.h"
#include "testutil/testutil.h"

namespace llms::testing {

class DaemonProcess {
 public:
  // Starts llmsd with the default model, data in `dir`/data and the socket `dir`/llmsd.sock,
  // plus `extra_args`; returns once the socket accepts connections. The error names the
  // daemon's last log lines when it exits instead.
  static StatusOr<std::unique_ptr<DaemonProcess>> Start(
      const std::string& dir, const std::vector<std::string>& extra_args = {});
  // Runs llmsd as Start does (log in `dir`/llmsd.log) and waits for it to exit, for a start that
  // must fail: its exit code and log.
  static std::pair<int, std::string> RunToExit(const std::string& dir,
                                               const std::vector<std::string>& extra_args);
  ~DaemonProcess();  // kills the daemon if it still runs

  const std::string& socket() const { return socket_; }
  pid_t pid() const { return pid_; }
  // SIGTERM and wait: the exit code, or 128 + the signal that ended it.
  int Terminate();
  // SIGKILL and wait.
  void Kill();
  std::string Log() const;
  // The TCP port of `--http 127.0.0.1:0` (the kernel picks a free one; llmsd logs it), or -1
  // when none is logged within 60 s.
  int HttpPort() const;

  DaemonProcess(pid_t pid, std::string socket, std::string log)
      : pid_(pid), socket_(std::move(socket)), log_(std::move(log)) {}

 private:
  int Wait();

  pid_t pid_;
  std::string socket_, log_;
};

// A test with a real llmsd and a ledger of every call it answered `done`: after a SIGKILL and a
// restart, each of those contexts must hold what its last done said (issue 11).
class DaemonTest : public ::testing::Test {
 protected:
  // Starts llmsd with `args` (kept for restarts) and connects client_.
  void Start(std::vector<std::string> args = {});
  // True while the daemon runs.
  bool Alive();
  // Records a done call's context size (cached + prompt + completion tokens).
  void Record(uint64_t context, const wire::Json& usage);
  // SIGKILL, start again with the same arguments: every recorded context holds its tokens.
  void ExpectDoneCallsSurviveARestart();

  TempDir dir_;
  std::vector<std::string> args_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Client> client_;
  std::map<uint64_t, size_t> ledger_;  // context -> tokens after its last done
};

// Path of an executable of the build tree ("llmsd", "llms"). $LLMS_TEST_LLMSD, when set, names
// the llmsd to test instead (to run the suite against another build, an older one say).
std::string ToolPath(const std::string& name);

// A raw connection to a Unix socket (-1 on failure), for speaking the protocol by hand.
int RawConnect(const std::string& path);
// The next message on `fd`, or {"type":"closed","message":why} when the connection ended.
wire::Json ReadMessage(int fd);
// The resident memory of process `pid`, in bytes (0 when it is gone).
size_t ResidentBytes(pid_t pid);
// HTTP over the Unix socket with curl: (status, body). `body` empty: a GET (or `method`).
std::pair<int, std::string> CurlUnix(const std::string& socket, const std::string& path,
                                     const std::string& body = "", const std::string& extra = "");

// Runs `command` with /bin/sh; returns its exit code and standard output.
std::pair<int, std::string> RunCommand(const std::string& command);

}  // namespace llms::testing
