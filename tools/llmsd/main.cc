// llmsd: the LLM system service. Loads one model, keeps every app's contexts (text and KV)
// under one memory budget and on flash, and serves the native protocol (docs/protocol.md) on a
// Unix socket. SIGTERM or SIGINT drains running calls, writes every dirty chunk and exits; the
// next start brings every context back.
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "client/client.h"
#include "memory/kv_manager.h"
#include "service/http_server.h"
#include "service/service.h"
#include "service/unix_server.h"
#include "spdlog/spdlog.h"
#include "tools/llms/commands.h"

namespace llms {
namespace {

struct DaemonOptions {
  cli::ModelOptions model;
  std::string data_dir;
  std::string socket;
  size_t budget_mib = 256;
  std::string policy = "llms";
  ServiceLimits limits;
  uint32_t max_request_bytes = wire::kDefaultMaxFrameBytes;
  std::string log_level = "info";
  std::string full_context = "reject";
  std::string http;                     // host:port of the HTTP listener, empty: off
  std::vector<std::string> app_tokens;  // NAME=TOKEN
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
  o->socket = DefaultSocketPath();
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
  app.add_option("--http", o->http,
                 "also serve the OpenAI-compatible HTTP API on this loopback address "
                 "(127.0.0.1:8080); clients authenticate with --app-token tokens");
  app.add_option("--app-token", o->app_tokens,
                 "NAME=TOKEN: an app that may use the HTTP port with 'Authorization: Bearer "
                 "TOKEN' (repeatable)");
  app.add_option("--log-level", o->log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.set_config("--config", "", "read options from this TOML/INI file (flags override it)");
}

StatusOr<HttpOptions> ParseHttpOptions(const DaemonOptions& o) {
  HttpOptions http;
  http.max_body_bytes = o.max_request_bytes;
  for (const std::string& entry : o.app_tokens) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == entry.size()) {
      return Status::InvalidArgument("--app-token '" + entry + "': expected NAME=TOKEN");
    }
    http.tokens[entry.substr(eq + 1)] = entry.substr(0, eq);
  }
  return http;
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
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  auto fail = [](const char* what, const Status& s) {
    spdlog::error("event=fatal step={} error=\"{}\"", what, s.ToString());
    return 1;
  };
  StatusOr<cli::LoadedModel> loaded = cli::LoadModel(o.model);
  if (!loaded.ok()) return fail("load_model", loaded.status());
  std::error_code ec;
  std::filesystem::create_directories(o.data_dir, ec);
  auto store = ChunkStore::Open(Env::Default(), o.data_dir, ChunkStore::Options{});
  if (!store.ok()) return fail("open_store", store.status());
  KvManagerOptions mo;
  mo.budget_bytes = o.budget_mib << 20;
  mo.policy = *Policy::ByName(o.policy);
  auto manager = KvManager::Open(loaded->engine.get(), store->get(), mo);
  if (!manager.ok()) return fail("open_contexts", manager.status());
  const std::string model_name = std::filesystem::path(o.model.model).stem().string();
  ServiceLimits limits = o.limits;
  limits.slide_full_contexts = o.full_context == "slide";
  Service service(manager->get(), loaded->model.get(), model_name, limits);
  service.set_call_observer([](const wire::Json& call) {
    std::string fields;
    for (const auto& [key, value] : call.items()) fields += " " + key + "=" + value.dump();
    spdlog::info("event=call{}", fields);
  });

  const bool activated = sd_listen_fds(0) >= 1;
  StatusOr<std::unique_ptr<UnixServer>> server =
      activated ? UnixServer::Adopt(SD_LISTEN_FDS_START, &service, o.max_request_bytes)
                : UnixServer::Listen(o.socket, &service, o.max_request_bytes);
  if (!server.ok()) return fail("listen", server.status());
  StatusOr<HttpOptions> http = ParseHttpOptions(o);
  if (!http.ok()) return fail("http_options", http.status());
  (*server)->set_http_options(HttpOptions{http->max_body_bytes, {}});
  std::unique_ptr<UnixServer> tcp;
  std::thread tcp_thread;
  if (!o.http.empty()) {
    const size_t colon = o.http.rfind(':');
    const int port = colon == std::string::npos ? -1 : std::atoi(o.http.c_str() + colon + 1);
    if (port < 0 || port > 65535) {
      return fail("http", Status::InvalidArgument("--http '" + o.http + "': expected HOST:PORT"));
    }
    auto listening = UnixServer::ListenTcp(o.http.substr(0, colon), static_cast<uint16_t>(port),
                                           &service, *http);
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
