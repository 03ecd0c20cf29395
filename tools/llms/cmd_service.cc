// The service subcommands of `llms`, talking to a running llmsd: `new` (create a context),
// `call` (one-shot), `chat` (a REPL on a context), `list`, `delete` and `stats`.
#include <cstdio>
#include <iostream>
#include <memory>

#include "client/client.h"
#include "tools/llms/commands.h"

namespace llms::cli {
namespace {

struct ServiceFlags {
  std::string socket = wire::DefaultSocketPath();
  uint64_t context = 0;
  std::string text;  // prompt, or system prompt for `new`
  CallOptions call;
};

void AddSocketOption(CLI::App* cmd, ServiceFlags* f) {
  cmd->add_option("-s,--socket", f->socket, "llmsd's Unix socket")->capture_default_str();
}

void AddCallOptions(CLI::App* cmd, ServiceFlags* f) {
  cmd->add_option("-n,--max-tokens", f->call.max_tokens, "tokens to generate at most")
      ->capture_default_str();
  cmd->add_option("--temp", f->call.temperature, "temperature; 0 is greedy")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  cmd->add_option("--seed", f->call.seed, "sampling seed")->capture_default_str();
  cmd->add_option("--stop", f->call.stop, "stop before this text (repeatable)");
}

StatusOr<std::unique_ptr<Client>> Connect(const ServiceFlags& f) {
  return Client::Connect(f.socket);
}

// Streams a call's text to stdout; prints the call's statistics to stderr.
Status StreamCall(Client* client, uint64_t context, const std::string& prompt,
                  const CallOptions& options) {
  LLMS_ASSIGN_OR_RETURN(CallReply reply,
                        client->Call(context, prompt, options, [](std::string_view text) {
                          std::fwrite(text.data(), 1, text.size(), stdout);
                          std::fflush(stdout);
                          return true;
                        }));
  std::fputc('\n', stdout);
  std::fflush(stdout);
  std::fprintf(stderr, "[%zu prompt + %zu generated tokens, stop: %s, switch %.1f ms]\n",
               reply.prompt_tokens, reply.completion_tokens, reply.stop_reason.c_str(),
               reply.stats.value("extra_first_token_ms", 0.0));
  return Status::Ok();
}

int RunNew(const ServiceFlags& f) {
  auto client = Connect(f);
  if (!client.ok()) return Fail("new", client.status());
  auto id = (*client)->NewContext(f.text);
  if (!id.ok()) return Fail("new", id.status());
  std::printf("%llu\n", static_cast<unsigned long long>(*id));
  return 0;
}

int RunCall(const ServiceFlags& f) {
  auto client = Connect(f);
  if (!client.ok()) return Fail("call", client.status());
  uint64_t id = f.context;
  if (id == 0) {  // a fresh context, printed so it can be continued
    auto created = (*client)->NewContext();
    if (!created.ok()) return Fail("call", created.status());
    id = *created;
    std::fprintf(stderr, "[context %llu]\n", static_cast<unsigned long long>(id));
  }
  const Status s = StreamCall(client->get(), id, f.text, f.call);
  return s.ok() ? 0 : Fail("call", s);
}

int RunChat(const ServiceFlags& f) {
  auto client = Connect(f);
  if (!client.ok()) return Fail("chat", client.status());
  uint64_t id = f.context;
  if (id == 0) {
    auto created = (*client)->NewContext(f.text);
    if (!created.ok()) return Fail("chat", created.status());
    id = *created;
  }
  std::fprintf(stderr, "context %llu on %s; an empty line or end of input quits\n",
               static_cast<unsigned long long>(id), (*client)->model().c_str());
  std::string line;
  while (std::fprintf(stderr, "> "), std::getline(std::cin, line) && !line.empty()) {
    const Status s = StreamCall(client->get(), id, line, f.call);
    if (!s.ok()) std::fprintf(stderr, "llms chat: %s\n", s.ToString().c_str());
  }
  return 0;
}

int RunList(const ServiceFlags& f) {
  auto client = Connect(f);
  if (!client.ok()) return Fail("list", client.status());
  auto contexts = (*client)->ListContexts();
  if (!contexts.ok()) return Fail("list", contexts.status());
  std::printf("%-8s %8s %8s %9s %7s\n", "context", "tokens", "chunks", "resident", "flash");
  for (const ContextSummary& c : *contexts) {
    std::printf("%-8llu %8zu %8zu %9zu %7zu%s\n", static_cast<unsigned long long>(c.id), c.tokens,
                c.chunks, c.resident_chunks, c.flash_chunks,
                c.damaged.empty() ? "" : ("  damaged: " + c.damaged + " (delete it)").c_str());
  }
  return 0;
}

int RunDelete(const ServiceFlags& f) {
  auto client = Connect(f);
  if (!client.ok()) return Fail("delete", client.status());
  const Status s = (*client)->DeleteContext(f.context);
  return s.ok() ? 0 : Fail("delete", s);
}

int RunStats(const ServiceFlags& f) {
  auto client = Connect(f);
  if (!client.ok()) return Fail("stats", client.status());
  auto stats = (*client)->Stats(f.context);
  if (!stats.ok()) return Fail("stats", stats.status());
  stats->erase("id");
  stats->erase("type");
  std::printf("%s\n", stats->dump(2).c_str());
  return 0;
}

}  // namespace

std::vector<std::pair<std::string, Runner>> AddServiceCommands(CLI::App& app) {
  std::vector<std::pair<std::string, Runner>> out;
  auto add = [&](const char* name, const char* help, int (*run)(const ServiceFlags&),
                 const std::function<void(CLI::App*, ServiceFlags*)>& options) {
    auto flags = std::make_shared<ServiceFlags>();
    CLI::App* cmd = app.add_subcommand(name, help);
    AddSocketOption(cmd, flags.get());
    options(cmd, flags.get());
    out.emplace_back(name, [flags, run] { return run(*flags); });
  };
  add("new", "create a context in llmsd and print its id", RunNew,
      [](CLI::App* c, ServiceFlags* f) {
        c->add_option("--system", f->text, "system prompt the context starts with");
      });
  add("call", "send one prompt to a context (a new one unless -c) and stream the reply", RunCall,
      [](CLI::App* c, ServiceFlags* f) {
        c->add_option("-c,--context", f->context, "context id (default: create one)");
        c->add_option("-p,--prompt", f->text, "prompt text")->required();
        AddCallOptions(c, f);
      });
  add("chat", "chat on a context, one line per turn", RunChat, [](CLI::App* c, ServiceFlags* f) {
    c->add_option("-c,--context", f->context, "context id (default: create one)");
    c->add_option("--system", f->text, "system prompt of a new context");
    AddCallOptions(c, f);
  });
  add("list", "list this app's contexts", RunList, [](CLI::App*, ServiceFlags*) {});
  add("delete", "delete a context, its text and KV", RunDelete, [](CLI::App* c, ServiceFlags* f) {
    c->add_option("context", f->context, "context id")->required();
  });
  add("stats", "print a context's statistics", RunStats, [](CLI::App* c, ServiceFlags* f) {
    c->add_option("context", f->context, "context id")->required();
  });
  return out;
}

}  // namespace llms::cli
