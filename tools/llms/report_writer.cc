// Writes report.md and its figures (gnuplot SVG) from the numbers `llms report` measured.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "tools/llms/report.h"

namespace llms::cli {
namespace {

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}
std::string Ms(double seconds) { return Fmt(seconds < 0.1 ? "%.2f" : "%.0f", seconds * 1e3); }
std::string Mib(size_t bytes) { return Fmt("%.1f", static_cast<double>(bytes) / 1048576.0); }
std::string Ratio(double a, double b) { return b > 0 ? Fmt("%.1fx", a / b) : "inf"; }

const RunRow* Find(const ReportData& d, const std::string& model, const std::string& pattern,
                   const std::string& system) {
  for (const RunRow& r : d.runs) {
    if (r.model == model && r.pattern == pattern && r.summary.system == system) return &r;
  }
  return nullptr;
}

// Runs gnuplot on `script` in `dir`; false when gnuplot is missing or fails.
bool Plot(const std::string& dir, const std::string& script) {
  const std::string cmd = "cd '" + dir + "' && gnuplot '" + script + "' 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// Figure 1 (the paper's Fig. 13 counterpart): mean switch latency per system and pattern.
std::string LatencyFigure(const ReportData& d, const std::string& dir) {
  const std::vector<std::string> systems = {"llms", "vllm-sq", "swap", "lmk"};
  std::ostringstream dat;
  dat << "pattern";
  for (const auto& s : systems) dat << ' ' << s;
  dat << '\n';
  for (const char* p : {"markov", "random", "gaussian", "studentlife"}) {
    dat << p;
    for (const auto& s : systems) {
      const RunRow* r = Find(d, d.main_model, p, s);
      dat << ' ' << (r ? std::max(1e-2, r->summary.switch_latency.mean * 1e3) : 0.0);
    }
    dat << '\n';
  }
  WriteFile(dir + "/latency.dat", dat.str());
  WriteFile(dir + "/latency.gp",
            "set terminal svg size 760,400 font 'sans,12'\nset output 'latency.svg'\n"
            "set style data histogram\nset style histogram cluster gap 1\n"
            "set style fill solid 0.85 border -1\nset logscale y\nset key top left\n"
            "set ylabel 'mean switch latency (ms, log)'\nset grid ytics\n"
            "set title '" +
                d.main_model + ", " + std::to_string(d.settings.contexts) +
                " contexts, budget = " + Fmt("%.2f", d.settings.budget_fraction) +
                " of their f16 KV'\n"
                "plot 'latency.dat' using 2:xtic(1) title columnhead, '' using 3 title columnhead, "
                "'' using 4 title columnhead, '' using 5 title columnhead\n");
  return Plot(dir, "latency.gp") ? "latency.svg" : "";
}

// Figure 2 (Fig. 15): the ablation on the Markov trace, beside the block baselines.
std::string AblationFigure(const ReportData& d, const std::string& dir) {
  std::ostringstream dat;
  dat << "system mean max\n";
  for (const char* s : {"llms", "llms-no-compression", "llms-no-pipeline", "llms-no-lifecycle",
                        "vllm-s", "vllm-sq"}) {
    const RunRow* r = Find(d, d.main_model, "markov", s);
    if (r == nullptr) continue;
    dat << s << ' ' << std::max(1e-2, r->summary.switch_latency.mean * 1e3) << ' '
        << std::max(1e-2, r->summary.switch_latency.max * 1e3) << '\n';
  }
  WriteFile(dir + "/ablation.dat", dat.str());
  WriteFile(dir + "/ablation.gp",
            "set terminal svg size 760,400 font 'sans,12'\nset output 'ablation.svg'\n"
            "set style data histogram\nset style histogram cluster gap 1\n"
            "set style fill solid 0.85 border -1\nset logscale y\nset xtics rotate by -20\n"
            "set ylabel 'switch latency (ms, log)'\nset grid ytics\nset key top left\n"
            "set title 'Ablation, Markov trace'\n"
            "plot 'ablation.dat' using 2:xtic(1) title 'mean', '' using 3 title 'max'\n");
  return Plot(dir, "ablation.gp") ? "ablation.svg" : "";
}

// Figure 3 (Fig. 14): mean switch latency against active contexts, per budget.
std::string SweepFigure(const ReportData& d, const std::string& dir) {
  if (d.sweep.empty()) return "";
  std::string plot = "plot ";
  int index = 0;
  std::ostringstream dat;
  for (double b : d.settings.sweep_budgets) {
    for (const char* sys : {"llms", "vllm-sq"}) {
      dat << "# " << sys << " budget " << b << "\n";
      for (const SweepRow& r : d.sweep) {
        if (r.system == sys && r.budget_contexts == b) {
          dat << r.contexts << ' ' << std::max(1e-2, r.mean_switch * 1e3) << '\n';
        }
      }
      dat << "\n\n";
      if (index > 0) plot += ", ";
      plot += "'sweep.dat' index " + std::to_string(index) + " with linespoints lw 2 dt " +
              (std::string(sys) == "llms" ? "1" : "2") + " title '" + sys + ", " + Fmt("%g", b) +
              " ctx of f16 KV'";
      ++index;
    }
  }
  for (double l : d.settings.limits_ms) {
    plot += ", " + Fmt("%g", l) + " with lines lc rgb 'gray' dt 3 title '" + Fmt("%g", l) +
            " ms limit'";
  }
  WriteFile(dir + "/sweep.dat", dat.str());
  WriteFile(dir + "/sweep.gp",
            "set terminal svg size 760,420 font 'sans,12'\nset output 'sweep.svg'\n"
            "set logscale y\nset xlabel 'active contexts'\nset ylabel 'mean switch latency (ms, "
            "log)'\nset grid\nset key outside right\nset title 'Markov traces, fixed budgets'\n" +
                plot + "\n");
  return Plot(dir, "sweep.gp") ? "sweep.svg" : "";
}

// Figure 4 (Fig. 11/12): accuracy per compression mode.
std::string AccuracyFigure(const ReportData& d, const std::string& dir) {
  if (d.accuracy.empty()) return "";
  std::ostringstream dat;
  dat << "mode loss_delta_pct kl_millinats\n";
  const double ref = d.accuracy[0].loss;
  for (const AccuracyRow& r : d.accuracy) {
    std::string name = r.mode;
    for (char& c : name) c = c == ' ' ? '_' : c;
    dat << '"' << name << "\" " << 100 * (r.loss / ref - 1) << ' ' << 1e3 * r.kl_vs_f16 << '\n';
  }
  WriteFile(dir + "/accuracy.dat", dat.str());
  WriteFile(dir + "/accuracy.gp",
            "set terminal svg size 760,400 font 'sans,12'\nset output 'accuracy.svg'\n"
            "set style data histogram\nset style histogram cluster gap 1\n"
            "set style fill solid 0.85 border -1\nset xtics rotate by -20\nset grid ytics\n"
            "set ylabel 'loss vs f16 (%), KL (millinats/token)'\n"
            "set title 'stories260K, multi-turn TinyStories, KV compression'\n"
            "plot 'accuracy.dat' using 2:xtic(1) title 'loss increase (%)', '' using 3 title "
            "'KL vs f16 (millinats)'\n");
  return Plot(dir, "accuracy.gp") ? "accuracy.svg" : "";
}

void SystemTable(std::ostringstream& md, const ReportData& d, const std::string& model,
                 const std::string& pattern) {
  const RunRow* none = Find(d, model, pattern, "none");
  md << "| system | switches | mean switch ms | p50 | max | paired mean ms | mean ready ms | "
        "MiB read | MiB written | recompute share | prefill ms/tok | decode ms/tok | decode "
        "slowdown |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const RunRow& r : d.runs) {
    if (r.model != model || r.pattern != pattern) continue;
    const RunSummary& s = r.summary;
    std::string slowdown = "-";
    if (none != nullptr && none->summary.decode_seconds_per_token > 0) {
      slowdown =
          Fmt("%+.1f%%",
              100 * (s.decode_seconds_per_token / none->summary.decode_seconds_per_token - 1));
    }
    md << "| " << s.system << " | " << s.switched_calls << " of " << s.calls << " | "
       << Ms(s.switch_latency.mean) << " | " << Ms(s.switch_latency.p50) << " | "
       << Ms(s.switch_latency.max) << " | "
       << (s.paired_mean >= 0 ? Ms(s.paired_mean) : std::string("-")) << " | " << Ms(s.ready.mean)
       << " | " << Mib(s.bytes_read) << " | " << Mib(s.bytes_written) << " | "
       << Fmt("%.0f%%", 100 * s.recompute_share) << " | "
       << Fmt("%.1f", s.prefill_seconds_per_token * 1e3) << " | "
       << Fmt("%.1f", s.decode_seconds_per_token * 1e3) << " | " << slowdown << " |\n";
  }
  md << "\n";
}

}  // namespace

Status WriteReport(const ReportData& d) {
  const ReportSettings& s = d.settings;
  const std::string dir = s.out_dir;
  std::ostringstream md;
  md << "# Switch latency and accuracy: llms against its ablations and the baselines\n\n"
     << "Written by `scripts/report` (`llms report`); every number below comes from one run of "
        "it on this machine. Design and baselines: `../shared/spec/LLMS.md` §2-§7; how the "
        "replay works and what limits the numbers: `docs/evaluation.md`.\n\n";
  md << "Run: " << Fmt("%.0f", d.seconds) << " s in total (";
  for (size_t i = 0; i < d.step_seconds.size(); ++i) {
    md << (i ? ", " : "") << d.step_seconds[i].first << " " << Fmt("%.0f", d.step_seconds[i].second)
       << " s";
  }
  md << "); flash class " << s.flash << " (docs/flash_classes.md); seed " << s.seed
     << "; main model " << d.main_model << " (" << s.weight_type
     << " synthetic weights where synthetic); " << s.contexts << " contexts, " << s.warmup_tokens
     << " tokens of history each, then " << s.calls << " measured calls (Markov) or "
     << s.pattern_calls << " (other patterns); prompt lengths from the '" << s.dataset
     << "' profile x " << s.length_scale << "; budget " << s.budget_fraction
     << " of the contexts' f16 KV at the end of the trace, raised to 1.1x the largest "
        "context's f16 KV where that is more (LMK recomputes and vLLM-S keeps the running "
        "context at f16, so it must fit whole).\n\n";
  md << "Cost model (" << d.main_model << "): compute "
     << Fmt("%.2f", d.main_cost.compute_seconds_per_token * 1e3) << " ms/token, layer reads "
     << Fmt("%.2f", 1e-9 / d.main_cost.read_seconds_per_byte) << " GB/s + "
     << Fmt("%.0f", d.main_cost.read_seconds_per_request * 1e6) << " us/request, bulk reads "
     << Fmt("%.2f", 1e-9 / d.main_cost.bulk_read_seconds_per_byte) << " GB/s.\n\n";

  if (!d.failures.empty()) {
    md << "Runs that failed (left out of the tables):\n\n";
    for (const std::string& f : d.failures) md << "- " << f << "\n";
    md << "\n";
  }
  // Headline.
  const RunRow* ours = Find(d, d.main_model, "markov", "llms");
  if (ours != nullptr) {
    md << "## Headline (Markov, " << ours->contexts << " contexts, budget "
       << Mib(ours->budget_bytes) << " MiB = "
       << Fmt("%.2f",
              static_cast<double>(ours->budget_bytes) / static_cast<double>(ours->kv_f16_bytes))
       << " of " << Mib(ours->kv_f16_bytes) << " MiB f16 KV)\n\n"
       << "| baseline | its mean switch ms | ours ms | ours lower by | issue target | met |\n"
       << "|---|---|---|---|---|---|\n";
    const double o = ours->summary.switch_latency.mean;
    for (auto [sys, target] : {std::pair<const char*, double>{"vllm-sq", 9.7},
                               {"lmk", 100.0},
                               {"swap", 10.0},
                               {"vllm-s", 9.7}}) {
      const RunRow* b = Find(d, d.main_model, "markov", sys);
      if (b == nullptr) continue;
      const double m = b->summary.switch_latency.mean;
      md << "| " << sys << " | " << Ms(m) << " | " << Ms(o) << " | " << Ratio(m, o) << " | "
         << Fmt("%.1fx", target) << " | " << (o > 0 ? (m / o >= target ? "yes" : "no") : "yes")
         << " |\n";
    }
    md << "\n";
  }

  md << "## Every system on the Markov trace (" << d.main_model << ")\n\n"
     << "Switch latency = the part of a call's time to first token spent bringing its context "
        "back, measured inside the call (`CallStats::restore_seconds`: setup, waits for reads "
        "that compute did not hide, writes of evicted dirty chunks before the pass, the "
        "recomputed rows' share of the pass). `paired` = first token minus the same call's in "
        "the run without a memory manager (`none`, every context resident at f16), a "
        "cross-check that carries the noise of two runs on a shared machine. Ready = until "
        "every old chunk is present. Decode slowdown is against `none`.\n\n";
  SystemTable(md, d, d.main_model, "markov");
  const std::string f1 = LatencyFigure(d, dir), f2 = AblationFigure(d, dir);
  md << "## Per switching pattern\n\n| pattern | llms | vllm-sq | swap | lmk |\n"
     << "|---|---|---|---|---|\n";
  for (const char* p : {"markov", "random", "gaussian", "studentlife"}) {
    md << "| " << p;
    for (const char* sys : {"llms", "vllm-sq", "swap", "lmk"}) {
      const RunRow* r = Find(d, d.main_model, p, sys);
      md << " | " << (r ? Ms(r->summary.switch_latency.mean) : "-");
    }
    md << " |\n";
  }
  md << "\nMean switch latency in ms. StudentLife: user " << s.studentlife_user << "'s "
     << s.contexts << " most used apps (launcher, system UI and the survey app removed), in "
     << "their real order and gaps.\n\n";
  if (!f1.empty()) md << "![latency per system and pattern](" << f1 << ")\n\n";
  md << "## Ablation\n\n";
  if (!f2.empty()) md << "![ablation](" << f2 << ")\n\n";

  if (!d.sweep.empty()) {
    md << "## Active contexts under a switch-latency limit\n\n"
       << "Markov traces of " << s.sweep_calls << " calls after " << s.sweep_warmup_tokens
       << " tokens of history per context; budgets fixed in average contexts' f16 KV. The "
          "largest tested number of contexts whose mean switch latency stays under the limit:\n\n"
       << "| budget (contexts of f16 KV) | MiB | system";
    for (double l : s.limits_ms) md << " | <= " << Fmt("%g", l) << " ms";
    md << " | mean ms at";
    for (size_t n : s.sweep_contexts) md << " " << n;
    md << " |\n|---|---|---";
    for (size_t i = 0; i <= s.limits_ms.size(); ++i) md << "|---";
    md << "|\n";
    for (double b : s.sweep_budgets) {
      for (const char* sys : {"llms", "vllm-sq"}) {
        size_t bytes = 0;
        std::vector<size_t> best(s.limits_ms.size(), 0);
        std::vector<bool> stopped(s.limits_ms.size(), false);
        std::string means;
        // In increasing size: a size that failed (ResourceExhausted) or went over the limit ends
        // the count, so a larger size that happened to pass is not credited.
        for (size_t n : s.sweep_contexts) {
          const SweepRow* row = nullptr;
          for (const SweepRow& r : d.sweep) {
            if (r.system == sys && r.budget_contexts == b && r.contexts == n) row = &r;
          }
          means += ' ';
          means += row != nullptr ? Ms(row->mean_switch) : std::string("failed");
          if (row != nullptr) bytes = row->budget_bytes;
          for (size_t i = 0; i < s.limits_ms.size(); ++i) {
            stopped[i] = stopped[i] || row == nullptr || row->mean_switch * 1e3 > s.limits_ms[i];
            if (!stopped[i]) best[i] = n;
          }
        }
        md << "| " << Fmt("%g", b) << " | " << Mib(bytes) << " | " << sys;
        for (size_t n : best) md << " | " << n;
        md << " |" << means << " |\n";
      }
    }
    md << "\n";
    const std::string f3 = SweepFigure(d, dir);
    if (!f3.empty()) md << "![contexts under a limit](" << f3 << ")\n\n";
  }

  if (!d.big_model.empty()) {
    md << "## Shortened " << d.big_model << " run (Markov, " << s.big_contexts << " contexts, "
       << s.big_calls << " calls, " << s.big_warmup_tokens << " tokens of history)\n\n";
    SystemTable(md, d, d.big_model, "markov");
    const RunRow* b = Find(d, d.big_model, "markov", "llms");
    if (b != nullptr) {
      md << "Budget " << Mib(b->budget_bytes) << " MiB of " << Mib(b->kv_f16_bytes)
         << " MiB f16 KV. Cost model: compute "
         << Fmt("%.1f", d.big_cost.compute_seconds_per_token * 1e3) << " ms/token.\n\n";
    }
  }

  md << "## Accuracy under KV compression (stories260K)\n\n"
     << d.accuracy_stories << " TinyStories contexts x " << d.accuracy_turns << " turns of "
     << d.accuracy_turn_tokens
     << " tokens, each turn scored teacher-forced "
        "against the compressed KV of the turns before (the first turn is not scored). KL and "
        "agreement (same argmax) are against the f16 run at the same positions.\n\n"
     << "| mode | bits/value | loss (nats) | vs f16 | perplexity | KL vs f16 (nats) | "
        "next-token agreement |\n|---|---|---|---|---|---|---|\n";
  for (const AccuracyRow& r : d.accuracy) {
    md << "| " << r.mode << " | " << Fmt("%.2f", r.bits) << " | " << Fmt("%.4f", r.loss) << " | "
       << Fmt("%+.2f%%", 100 * (r.loss / d.accuracy[0].loss - 1)) << " | "
       << Fmt("%.3f", r.perplexity) << " | " << Fmt("%.5f", r.kl_vs_f16) << " | "
       << Fmt("%.2f%%", 100 * r.agreement) << " |\n";
  }
  md << "\n";
  const std::string f4 = AccuracyFigure(d, dir);
  if (!f4.empty()) md << "![accuracy](" << f4 << ")\n\n";

  md << "## Traces\n\nSaved under `traces/` (format: `docs/trace_format.md`); the digest "
        "(FNV-1a of the file) is equal across reruns with the same seed.\n\n"
     << "| trace | calls | digest |\n|---|---|---|\n";
  for (const TraceFile& t : d.traces) {
    md << "| " << t.name << " | " << t.calls << " | `" << t.digest << "` |\n";
  }
  md << "\nPer-call records of every run: `data/*.csv`.\n";
  if (f1.empty() && f4.empty()) {
    md << "\nFigures were not drawn: gnuplot is missing (scripts/setup installs gnuplot-nox); "
          "the .gp scripts and .dat files are in this directory.\n";
  }
  std::ofstream out(dir + "/report.md");
  out << md.str();
  if (!out) return Status::IOError("cannot write " + dir + "/report.md");
  return Status::Ok();
}

}  // namespace llms::cli
