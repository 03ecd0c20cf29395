// `llms trace`: writes one trace file (docs/trace_format.md) for `llms report` or anyone else
// to replay: a generated pattern, or a StudentLife user's real app order.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "eval/trace.h"
#include "tools/llms/commands.h"

namespace llms::cli {
namespace {

struct TraceFlags {
  TraceOptions trace;
  std::string pattern = "markov";
  std::string out;
  std::string text;      // prompts from this text, tokenized by --model's tokenizer
  std::string model;     // for --text
  size_t vocab = 32000;  // random ids without --text (TinyLlama and Llama-2 vocabularies)
  std::string studentlife;
  std::string user = "u02";
};

Status RunTrace(TraceFlags f) {
  LLMS_ASSIGN_OR_RETURN(f.trace.pattern, ParseSwitchPattern(f.pattern));
  std::vector<int32_t> corpus;
  if (!f.text.empty()) {
    ModelOptions mo;
    mo.model = f.model;
    LLMS_ASSIGN_OR_RETURN(LoadedModel m, LoadModel(mo));
    LLMS_ASSIGN_OR_RETURN(std::string text, ReadTextFile(f.text));
    corpus = m.model->tokenizer().Encode(text, false);
    f.vocab = m.model->config().vocab_size;
  }
  Trace t;
  if (f.trace.pattern == SwitchPattern::kStudentLife) {
    LLMS_ASSIGN_OR_RETURN(auto switches, ReadStudentLifeSwitches(Env::Default(), f.studentlife));
    LLMS_ASSIGN_OR_RETURN(t, StudentLifeTrace(f.trace, switches, f.user, corpus, f.vocab));
  } else {
    LLMS_ASSIGN_OR_RETURN(t, GenerateTrace(f.trace, corpus, f.vocab));
  }
  if (f.out.empty()) f.out = t.name + ".trace";
  LLMS_RETURN_IF_ERROR(WriteTrace(Env::Default(), f.out, t));
  std::printf("wrote %s: %zu calls over %zu contexts\n", f.out.c_str(), t.calls.size(), t.contexts);
  return Status::Ok();
}

}  // namespace

Runner AddTrace(CLI::App& app) {
  auto f = std::make_shared<TraceFlags>();
  f->model = DefaultModelPath();
  f->studentlife = std::filesystem::path(f->model).parent_path().parent_path().string() +
                   "/data/studentlife-foreground-switches.csv";
  CLI::App* cmd = app.add_subcommand("trace", "write a call trace (docs/trace_format.md)");
  TraceOptions& o = f->trace;
  cmd->add_option("-o,--output", f->out, "trace file (default: NAME.trace here)");
  cmd->add_option("--pattern", f->pattern, "random, markov, gaussian or studentlife")
      ->capture_default_str();
  cmd->add_option("--contexts", o.contexts, "contexts (the paper: 2 to 16)")->capture_default_str();
  cmd->add_option("--calls", o.calls, "measured calls after one warm-up call per context")
      ->capture_default_str();
  cmd->add_option("--gap", o.mean_gap_seconds, "mean seconds between calls (Poisson)")
      ->capture_default_str();
  cmd->add_option("--dataset", o.dataset,
                  "prompt lengths: agnews, xsum, samsum, cnndm, wmt17, sst2 or mix")
      ->capture_default_str();
  cmd->add_option("--length-scale", o.length_scale, "multiplies the dataset's prompt lengths")
      ->capture_default_str();
  cmd->add_option("--warmup-tokens", o.warmup_tokens, "history per context")->capture_default_str();
  cmd->add_option("--max-tokens", o.max_tokens, "tokens generated per call")->capture_default_str();
  cmd->add_option("--markov-decay", o.markov_decay, "Markov: weight ratio of recency ranks")
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "the same seed writes the same trace")->capture_default_str();
  cmd->add_option("--text", f->text, "draw prompts from this text (tokenized by --model)");
  cmd->add_option("-m,--model", f->model, "tokenizer for --text")->capture_default_str();
  cmd->add_option("--vocab", f->vocab, "without --text: random ids below this")
      ->capture_default_str();
  cmd->add_option("--studentlife", f->studentlife, "StudentLife switches CSV")
      ->capture_default_str();
  cmd->add_option("--user", f->user, "StudentLife user")->capture_default_str();
  return [f] {
    Status s = RunTrace(*f);
    return s.ok() ? 0 : Fail("trace", s);
  };
}

}  // namespace llms::cli
