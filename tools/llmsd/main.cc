// llmsd: the LLM system service. Loads one model, keeps every app's contexts (text and KV)
// under one memory budget and on flash, and serves the native protocol (docs/protocol.md) on a
// Unix socket. SIGTERM or SIGINT drains running calls, writes every dirty chunk and exits; the
// next start brings every context back.
#include <signal.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "memory/kv_manager.h"
#include "service/http_server.h"
#include "service/service.h"
#include "service/unix_server.h"
#include "spdlog/spdlog.h"
#include "tools/common/model_options.h"

namespace llms {
namespace {

struct DaemonOptions {
  cli::ModelOptions model;
  std::string data_dir;
  std::string socket;
  size_t budget_mib = 256;
  std::string policy = "llms";
  ServiceLimits limits;
  ServerOptions server;
  uint32_t max_request_bytes = wire::kDefaultMaxFrameBytes;
  std::string log_level = "info";
  std::string full_context = "reject";
  std::string http;                              // host:port of the HTTP listener, empty: off
  std::string app_tokens_file;                   // NAME=TOKEN lines
  std::string metrics_token_file;                // one token
  std::vector<std::string> app_token_arguments;  // refused: a token in argv shows in ps
};

std::string DefaultDataDir() {
  if (const char* env = std::getenv("LLMS_DATA_DIR"); env != nullptr && *env != '\0') return env;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/llms";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::string(home) + "/.local/share/llms";
  }
  return "/var/lib/llms";
}

void AddOptions(CLI::App& app, DaemonOptions* o) {
  cli::AddModelOptions(&app, &o->model);
  o->data_dir = DefaultDataDir();
  o->socket = wire::DefaultSocketPath();
  app.add_option("-d,--data-dir", o->data_dir, "where contexts and KV chunks are stored")
      ->capture_default_str();
  app.add_option("-s,--socket", o->socket,
                 "Unix socket to listen on (ignored under systemd "
                 "socket activation)")
      ->capture_default_str();
  app.add_option("-b,--budget-mib", o->budget_mib,
                 "KV memory budget of all contexts together, MiB (never exceeded)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--policy", o->policy, "memory policy: llms (default), or a baseline/ablation")
      ->check(CLI::IsMember(Policy::Names()))
      ->capture_default_str();
  app.add_option("--max-contexts", o->limits.max_contexts_per_app, "contexts per app")
      ->capture_default_str();
  app.add_option("--max-prompt-tokens", o->limits.max_prompt_tokens, "prompt tokens per call")
      ->capture_default_str();
  app.add_option("--context-window", o->limits.context_window,
                 "tokens one context may hold (0: the model's declared window; stories260K "
                 "declares 2048 but was trained on 512)")
      ->capture_default_str();
  app.add_option("--full-context", o->full_context,
                 "at the window: 'reject' the call with an error, or 'slide' (keep the first "
                 "chunk and the recent half of the room, recompute them; StreamingLLM)")
      ->check(CLI::IsMember({"reject", "slide"}))
      ->capture_default_str();
  app.add_option("--max-queued", o->limits.max_queued, "calls waiting, all apps together")
      ->capture_default_str();
  app.add_option("--max-queued-per-app", o->limits.max_queued_per_app, "calls waiting, per app")
      ->capture_default_str();
  app.add_option("--queue-timeout", o->limits.queue_timeout_seconds,
                 "seconds a call may wait before it fails")
      ->capture_default_str();
  app.add_option("--max-request-bytes", o->max_request_bytes, "size of one request message")
      ->check(CLI::Range(1024u, 64u << 20))
      ->capture_default_str();
  app.add_option("--max-connections-per-uid", o->server.max_connections_per_uid,
                 "open connections one local user may hold (more are refused with a message)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  app.add_option("--frame-timeout", o->server.frame_timeout_seconds,
                 "seconds a native frame may take to arrive once it began")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--http-request-timeout", o->server.http.request_timeout_seconds,
                 "seconds an HTTP request may take to arrive once it began")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--http-idle-timeout", o->server.http.idle_timeout_seconds,
                 "seconds an idle HTTP keep-alive connection stays open")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  app.add_option("--http", o->http,
                 "also serve the OpenAI-compatible HTTP API on this loopback address "
                 "(127.0.0.1:8080); clients authenticate with tokens from --app-tokens-file");
  app.add_option("--app-tokens-file", o->app_tokens_file,
                 "file of NAME=TOKEN lines (mode 0600): an app that may use the HTTP port with "
                 "'Authorization: Bearer TOKEN'. Also read from $LLMS_APP_TOKENS (same lines)");
  app.add_option("--metrics-token-file", o->metrics_token_file,
                 "file holding the token that may read /metrics over TCP (mode 0600). Also "
                 "$LLMS_METRICS_TOKEN. On the Unix socket /metrics is for llmsd's user and root");
  app.add_option("--app-token", o->app_token_arguments,
                 "no longer accepted: a token on the command line shows in ps; use "
                 "--app-tokens-file or $LLMS_APP_TOKENS")
      ->group("");
  app.add_option("--log-level", o->log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.set_config("--config", "", "read options from this TOML/INI file (flags override it)");
}

// The whole of a secret file, refusing one that other users may read.
StatusOr<std::string> ReadSecretFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Status::FromErrno("stat " + path, errno);
  if ((st.st_mode & 077) != 0) {
    return Status::InvalidArgument(path + " is readable by other users (mode " +
                                   fmt::format("{:o}", st.st_mode & 0777) +
                                   "): tokens must be private; chmod 600 " + path);
  }
  std::ifstream in(path);
  if (!in) return Status::FromErrno("open " + path, errno);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// NAME=TOKEN lines (blank lines and # comments skipped) into `tokens`.
Status ParseTokenLines(const std::string& text, const std::string& source,
                       std::map<std::string, std::string>* tokens) {
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    line.erase(0, line.find_first_not_of(" \t\r"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == line.size()) {
      return Status::InvalidArgument(source + " line " + std::to_string(number) +
                                     ": expected NAME=TOKEN");
    }
    (*tokens)[line.substr(eq + 1)] = line.substr(0, eq);
  }
  return Status::Ok();
}

StatusOr<HttpOptions> ParseHttpOptions(const DaemonOptions& o) {
  if (!o.app_token_arguments.empty()) {
    return Status::InvalidArgument(
        "--app-token is no longer accepted: a token on the command line is visible to every "
        "local user in ps. Put NAME=TOKEN lines in a file of mode 0600 and pass "
        "--app-tokens-file FILE, or set LLMS_APP_TOKENS");
  }
  HttpOptions http = o.server.http;
  http.max_body_bytes = o.max_request_bytes;
  if (const char* env = std::getenv("LLMS_APP_TOKENS"); env != nullptr) {
    LLMS_RETURN_IF_ERROR(ParseTokenLines(env, "$LLMS_APP_TOKENS", &http.tokens));
  }
  if (!o.app_tokens_file.empty()) {
    LLMS_ASSIGN_OR_RETURN(std::string text, ReadSecretFile(o.app_tokens_file));
    LLMS_RETURN_IF_ERROR(ParseTokenLines(text, o.app_tokens_file, &http.tokens));
  }
  if (const char* env = std::getenv("LLMS_METRICS_TOKEN"); env != nullptr) {
    http.metrics_token = env;
  }
  if (!o.metrics_token_file.empty()) {
    LLMS_ASSIGN_OR_RETURN(std::string text, ReadSecretFile(o.metrics_token_file));
    http.metrics_token = text.substr(0, text.find_first_of("\r\n"));
  }
  return http;
}

// The data directory holds every app's conversations: it and everything in it must be private
// to llmsd's user. Creates it (0700) when missing; refuses one that others may read.
Status CheckPrivateDataDir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::IOError("cannot create the data directory " + dir + ": " + ec.message());
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  }
  std::vector<std::string> wide;
  auto check = [&](const std::filesystem::path& p) {
    struct stat st {};
    if (lstat(p.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      wide.push_back(p.string() + " (" + fmt::format("{:o}", st.st_mode & 0777) + ")");
    }
  };
  check(dir);
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) check(entry.path());
  if (wide.empty()) return Status::Ok();
  std::string list;
  for (const std::string& w : wide) list += (list.empty() ? "" : ", ") + w;
  return Status::InvalidArgument(
      "the data directory holds every app's conversations, but other users may read " + list +
      ": run chmod 700 " + dir + " && chmod 600 " + dir + "/*");
}

// Blocks the shutdown signals in every thread (threads inherit the mask) and waits for one on
// a thread of its own, which stops the server.
std::thread StartSignalWatcher(std::vector<UnixServer*> servers, sigset_t* set) {
  return std::thread([servers, set] {
    int sig = 0;
    sigwait(set, &sig);
    spdlog::info("event=shutdown signal={} action=draining", strsignal(sig));
    sd_notify(0, "STOPPING=1");
    for (UnixServer* server : servers) server->Stop();
  });
}

int Run(const DaemonOptions& o) {
  spdlog::set_level(spdlog::level::from_str(o.log_level));
  // Every file llmsd creates is its user's alone (SQLite's included), and a peer that hangs up
  // is an error value on its socket, never a signal that ends the daemon.
  umask(077);
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  auto fail = [](const char* what, const Status& s) {
    spdlog::error("event=fatal step={} error=\"{}\"", what, s.ToString());
    return 1;
  };
  StatusOr<HttpOptions> http = ParseHttpOptions(o);
  if (!http.ok()) return fail("http_options", http.status());
  StatusOr<cli::LoadedModel> loaded = cli::LoadModel(o.model);
  if (!loaded.ok()) return fail("load_model", loaded.status());
  if (Status s = CheckPrivateDataDir(o.data_dir); !s.ok()) return fail("data_dir", s);
  auto store = ChunkStore::Open(Env::Default(), o.data_dir, ChunkStore::Options{});
  if (!store.ok()) return fail("open_store", store.status());
  for (const auto& d : (*store)->recovery().dropped) {
    spdlog::warn("event=chunk_dropped context={} chunk={} reason=\"{}\"", d.context_id,
                 d.chunk_index, d.reason);
  }
  KvManagerOptions mo;
  mo.budget_bytes = o.budget_mib << 20;
  mo.policy = *Policy::ByName(o.policy);
  mo.measure_reads_with_scratch = false;  // start-up writes nothing: it must work on a full disk
  auto manager = KvManager::Open(loaded->engine.get(), store->get(), mo);
  if (!manager.ok()) return fail("open_contexts", manager.status());
  const std::string model_name = std::filesystem::path(o.model.model).stem().string();
  ServiceLimits limits = o.limits;
  limits.slide_full_contexts = o.full_context == "slide";
  Service service(manager->get(), loaded->model.get(), model_name, limits);
  for (const ContextInfo& info : service.DamagedContexts()) {
    spdlog::error("event=context_damaged context={} app={} reason=\"{}\" action=set_aside", info.id,
                  info.app, info.damage);
  }
  service.set_call_observer([](const wire::Json& call) {
    std::string fields;
    for (const auto& [key, value] : call.items()) fields += " " + key + "=" + value.dump();
    if (call.contains("chunks_damaged")) {
      spdlog::warn("event=call{}", fields);  // stored chunks failed their checksums
    } else {
      spdlog::info("event=call{}", fields);
    }
  });

  ServerOptions unix_options = o.server;
  unix_options.max_frame_bytes = o.max_request_bytes;
  unix_options.http = *http;
  unix_options.http.tokens.clear();  // the Unix socket knows its peers by uid
  unix_options.http.metrics_token.clear();
  ServerOptions tcp_options = unix_options;
  tcp_options.http = *http;
  const bool activated = sd_listen_fds(0) >= 1;
  StatusOr<std::unique_ptr<UnixServer>> server =
      activated ? UnixServer::Adopt(SD_LISTEN_FDS_START, &service, unix_options)
                : UnixServer::Listen(o.socket, &service, unix_options);
  if (!server.ok()) return fail("listen", server.status());
  std::unique_ptr<UnixServer> tcp;
  std::thread tcp_thread;
  if (!o.http.empty()) {
    const size_t colon = o.http.rfind(':');
    const int port = colon == std::string::npos ? -1 : std::atoi(o.http.c_str() + colon + 1);
    if (port < 0 || port > 65535) {
      return fail("http", Status::InvalidArgument("--http '" + o.http + "': expected HOST:PORT"));
    }
    auto listening = UnixServer::ListenTcp(o.http.substr(0, colon), static_cast<uint16_t>(port),
                                           &service, tcp_options);
    if (!listening.ok()) return fail("http", listening.status());
    tcp = std::move(listening).value();
    spdlog::info("event=http_ready address={}:{} apps={}", o.http.substr(0, colon), tcp->port(),
                 http->tokens.size());
    tcp_thread = std::thread([&tcp] { tcp->Serve(); });
  }
  std::vector<UnixServer*> servers = {server->get()};
  if (tcp) servers.push_back(tcp.get());
  std::thread watcher = StartSignalWatcher(servers, &set);
  spdlog::info("event=ready socket={} model={} data_dir={} budget_mib={} policy={} contexts={}",
               activated ? std::string("(from systemd)") : o.socket, o.model.model, o.data_dir,
               o.budget_mib, o.policy,
               (*store)->ListContexts().ok() ? (*store)->ListContexts()->size() : 0);
  sd_notify(0, "READY=1\nSTATUS=serving");
  (*server)->Serve();
  if (tcp_thread.joinable()) tcp_thread.join();
  service.Drain();  // calls already accepted finish and stream to their clients
  (*server)->Disconnect();
  if (tcp) tcp->Disconnect();
  Status flushed = (*manager)->Flush();
  if (!flushed.ok()) spdlog::error("event=flush_failed error=\"{}\"", flushed.ToString());
  watcher.join();
  server->reset();
  tcp.reset();
  spdlog::info("event=stopped flushed={}", flushed.ok());
  return flushed.ok() ? 0 : 1;
}

}  // namespace
}  // namespace llms

int main(int argc, char** argv) {
  CLI::App app{"llmsd: the LLM system service (one model, many apps' persistent contexts)"};
  app.set_version_flag("--version", "llmsd 0.1.0");
  llms::DaemonOptions options;
  llms::AddOptions(app, &options);
  CLI11_PARSE(app, argc, argv);
  try {
    return llms::Run(options);
  } catch (const std::exception& e) {
    spdlog::critical("event=internal_error error=\"{}\"", e.what());
    return 2;
  }
}
