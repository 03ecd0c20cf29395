// Writes report.md and its figures (gnuplot SVG) from the cells `llms report` measured.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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
std::string Frac(double f) { return f > 0 && f < 1 ? "1/" + Fmt("%.0f", 1 / f) : Fmt("%g", f); }
// Baseline over ours: how many times lower ours is. "-" when neither has anything to restore.
double RatioOf(double theirs, double ours) {
  if (ours > 0) return theirs / ours;
  return theirs > 0 ? INFINITY : NAN;
}
std::string RatioText(double r) {
  if (std::isnan(r)) return "-";
  if (std::isinf(r)) return "inf (ours 0)";
  return Fmt(r >= 10 ? "%.0fx" : "%.1fx", r);
}

const Cell* Find(const ReportData& d, const std::string& group, const std::string& pattern,
                 size_t contexts, double fraction, const std::string& flash,
                 const std::string& system, uint64_t seed) {
  for (const Cell& c : d.cells) {
    if (c.group == group && c.pattern == pattern && c.contexts == contexts &&
        c.budget_fraction == fraction && c.flash == flash && c.system == system && c.seed == seed) {
      return &c;
    }
  }
  return nullptr;
}
// The run without a manager of the same model, trace and chunk size (it does not depend on the
// budget).
const Cell* Reference(const ReportData& d, const Cell& of) {
  for (const Cell& c : d.cells) {
    if (c.system == kNoManager && c.model == of.model && c.pattern == of.pattern &&
        c.contexts == of.contexts && c.seed == of.seed && c.chunk_tokens == of.chunk_tokens &&
        c.not_run.empty()) {
      return &c;
    }
  }
  return nullptr;
}
bool Ran(const Cell* c) { return c != nullptr && c->not_run.empty(); }
// The headline size the flash, ablation, pattern, chunk and repetition cells use.
size_t Smallest(const ReportSettings& s) {
  return *std::min_element(s.contexts.begin(), s.contexts.end());
}
std::string Ready(const Cell* c) { return Ran(c) ? Ms(c->summary.ready.mean) : "-"; }
std::string Paired(const Cell* c) {
  return Ran(c) && c->summary.paired_mean >= 0 ? Ms(c->summary.paired_mean) : "-";
}

// Runs gnuplot on `script` in `dir`; false when gnuplot is missing or fails.
bool Plot(const std::string& dir, const std::string& script) {
  const std::string cmd = "cd '" + dir + "' && gnuplot '" + script + "' 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

const std::vector<std::string>& HeadlineSystems() {
  static const std::vector<std::string> systems = {"llms", "vllm-sq", "swap", "lmk"};
  return systems;
}

// Figure 1: mean time to ready per system at each budget of the first headline size.
std::string LatencyFigure(const ReportData& d, const std::string& dir) {
  const ReportSettings& s = d.settings;
  std::ostringstream dat;
  dat << "budget";
  for (const auto& sys : HeadlineSystems()) dat << ' ' << sys;
  dat << '\n';
  for (double f : s.budget_fractions) {
    dat << Frac(f);
    for (const auto& sys : HeadlineSystems()) {
      const Cell* c = Find(d, "headline", "markov", Smallest(s), f, s.flash, sys, s.seed);
      dat << ' ' << (Ran(c) ? std::max(1e-2, c->summary.ready.mean * 1e3) : 0.0);
    }
    dat << '\n';
  }
  WriteFile(dir + "/latency.dat", dat.str());
  WriteFile(dir + "/latency.gp",
            "set terminal svg size 760,400 font 'sans,12'\nset output 'latency.svg'\n"
            "set style data histogram\nset style histogram cluster gap 1\n"
            "set style fill solid 0.85 border -1\nset logscale y\nset key top right\n"
            "set xlabel 'KV budget (of all contexts'' f16 KV)'\n"
            "set ylabel 'mean time to ready (ms, log)'\nset grid ytics\n"
            "set title '" +
                d.main_model + ", Markov, " + std::to_string(Smallest(s)) + " contexts, " +
                s.flash +
                " flash'\n"
                "plot 'latency.dat' using 2:xtic(1) title columnhead, '' using 3 title columnhead, "
                "'' using 4 title columnhead, '' using 5 title columnhead\n");
  return Plot(dir, "latency.gp") ? "latency.svg" : "";
}

// Figure 2: accuracy per compression mode.
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

// The headline: ours against each baseline on time to ready and extra time to first token, per
// cell, then the median and range of the ratio over the budget sweep.
void Headline(std::ostringstream& md, const ReportData& d) {
  const ReportSettings& s = d.settings;
  md << "## Headline: time to ready and extra time to first token\n\n"
     << "Markov traces on the " << s.flash
     << " class; every budget of the sweep, each size. Per "
        "system: mean time to ready (every old chunk present: the paper's switch latency) / "
        "mean extra time to first token (first token minus the same call's on resident "
        "contexts, the `none` run), in ms, over the calls that switched context. LMK ran the "
        "first "
     << s.slow_calls << " measured calls only (it recomputes whole contexts).\n\n"
     << "| contexts | budget | MiB | llms | vllm-sq | swap | lmk "
        "|\n|---|---|---|---|---|---|---|\n";
  for (size_t n : s.contexts) {
    for (double f : s.budget_fractions) {
      const Cell* any = Find(d, "headline", "markov", n, f, s.flash, "llms", s.seed);
      md << "| " << n << " | " << Frac(f) << " | " << (any ? Mib(any->budget_bytes) : "-");
      for (const auto& sys : HeadlineSystems()) {
        const Cell* c = Find(d, "headline", "markov", n, f, s.flash, sys, s.seed);
        md << " | " << (Ran(c) ? Ready(c) + " / " + Paired(c) : "not run");
      }
      md << " |\n";
    }
  }
  md << "\nOurs lower by (baseline / ours), over the cells both ran:\n\n"
     << "| baseline | metric | median | range | cells | issue target (median, best) | median met "
        "|\n"
     << "|---|---|---|---|---|---|---|\n";
  for (const char* base : {"vllm-sq", "swap", "lmk"}) {
    for (int metric = 0; metric < 2; ++metric) {
      std::vector<double> ratios;
      for (size_t n : s.contexts) {
        for (double f : s.budget_fractions) {
          const Cell* o = Find(d, "headline", "markov", n, f, s.flash, "llms", s.seed);
          const Cell* b = Find(d, "headline", "markov", n, f, s.flash, base, s.seed);
          if (!Ran(o) || !Ran(b)) continue;
          // LMK ran fewer calls: ours over the same ones.
          const RunSummary& ours = std::string(base) == "lmk" ? o->slow_prefix : o->summary;
          if (metric == 1 && (ours.paired_mean < 0 || b->summary.paired_mean < 0)) continue;
          const double r = metric == 0 ? RatioOf(b->summary.ready.mean, ours.ready.mean)
                                       : RatioOf(b->summary.paired_mean, ours.paired_mean);
          if (!std::isnan(r)) ratios.push_back(r);
        }
      }
      std::sort(ratios.begin(), ratios.end());
      const std::string target = std::string(base) == "lmk" ? "100x" : "9.7x, 20x";
      const double need = std::string(base) == "lmk" ? 100 : 9.7;
      const double median = ratios.empty() ? NAN : ratios[(ratios.size() - 1) / 2];
      md << "| " << base << " | " << (metric == 0 ? "time to ready" : "extra first token") << " | "
         << RatioText(median) << " | "
         << (ratios.empty() ? "-" : RatioText(ratios.front()) + " to " + RatioText(ratios.back()))
         << " | " << ratios.size() << " | " << target << " | "
         << (ratios.empty()   ? "-"
             : median >= need ? "yes"
                              : "no")
         << " |\n";
    }
  }
  md << "\nThe median of an even count is the lower middle value. Against LMK, ours is taken over "
        "the same first "
     << s.slow_calls << " calls.\n\n";
}

// Every headline cell in full, with where its switch time goes.
void CellTable(std::ostringstream& md, const ReportData& d, const std::string& group) {
  md << "| trace | budget | flash | system | switches | ready mean / max ms | extra first "
        "token ms | switch ms: read + write + recompute + other | MiB read | MiB written | "
        "recomputed | decode slowdown |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const Cell& c : d.cells) {
    if (c.group != group || c.system == kNoManager) continue;
    md << "| " << c.pattern << "-" << c.contexts
       << (c.chunk_tokens != 16 ? ", chunk " + std::to_string(c.chunk_tokens) : "") << " | "
       << Frac(c.budget_fraction) << " (" << Mib(c.budget_bytes) << " MiB) | " << c.flash << " | "
       << c.system << " | ";
    if (!c.not_run.empty()) {
      md << c.not_run << " | | | | | | | |\n";
      continue;
    }
    const RunSummary& r = c.summary;
    const Cell* none = Reference(d, c);
    std::string slowdown = "-";
    if (none != nullptr && none->summary.decode_seconds_per_token > 0) {
      slowdown =
          Fmt("%+.1f%%",
              100 * (r.decode_seconds_per_token / none->summary.decode_seconds_per_token - 1));
    }
    md << r.switched_calls << " of " << r.calls << " | " << Ms(r.ready.mean) << " / "
       << Ms(r.ready.max) << " | " << Paired(&c) << " | " << Ms(r.switch_latency.mean) << ": "
       << Ms(r.read_seconds) << " + " << Ms(r.write_seconds) << " + " << Ms(r.recompute_seconds)
       << " + " << Ms(r.other_seconds) << " | " << Mib(r.bytes_read) << " | "
       << Mib(r.bytes_written) << " | " << Fmt("%.0f%%", 100 * r.recompute_share) << " | "
       << slowdown << " |\n";
  }
  md << "\n";
}

// The headline cells at full depth.
void FullDepth(std::ostringstream& md, const ReportData& d) {
  const ReportSettings& s = d.settings;
  if (d.depth_model.empty()) return;
  md << "## Headline cells at full depth (" << d.depth_model << ")\n\n"
     << s.depth_contexts << " contexts with histories of " << s.depth_history_min_tokens << " to "
     << s.depth_history_max_tokens << " tokens, " << s.depth_calls
     << " measured calls (Markov), prompts at " << s.depth_length_scale
     << " of the paper's lengths, " << s.generate_tokens << " tokens generated, " << s.flash
     << " flash: 2 cores prefill the whole shape (every layer) at ~12 tokens/s, so this trace is "
        "smaller than the matrix's.\n\n";
  const Cell* ours = nullptr;
  for (const Cell& c : d.cells) {
    if (c.group == "depth" && c.system == "llms" && c.budget_fraction == s.fixed_fraction)
      ours = &c;
  }
  md << "| baseline | ready: theirs / ours ms | ours lower by | extra first token: theirs / ours "
        "ms "
        "| ours lower by |\n|---|---|---|---|---|\n";
  for (const char* base : {"vllm-sq", "swap"}) {
    const Cell* b = nullptr;
    for (const Cell& c : d.cells) {
      if (c.group == "depth" && c.system == base) b = &c;
    }
    if (!Ran(ours) || !Ran(b)) {
      md << "| " << base << " | - | - | - | - |\n";
      continue;
    }
    md << "| " << base << " | " << Ready(b) << " / " << Ready(ours) << " | "
       << RatioText(RatioOf(b->summary.ready.mean, ours->summary.ready.mean)) << " | " << Paired(b)
       << " / " << Paired(ours) << " | "
       << RatioText(RatioOf(b->summary.paired_mean, ours->summary.paired_mean)) << " |\n";
  }
  md << "\n";
  CellTable(md, d, "depth");
}

// Mean and 95% confidence half-width (Student's t) of `v`.
std::pair<double, double> MeanCi(const std::vector<double>& v) {
  // Student's t, two-sided 95%, by degrees of freedom (1 to 30).
  static const double t975[] = {0,     12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365,
                                2.306, 2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                                2.120, 2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069,
                                2.064, 2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
  if (v.empty()) return {NAN, NAN};
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  if (v.size() < 2) return {mean, NAN};
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  const double sd = std::sqrt(ss / static_cast<double>(v.size() - 1));
  const size_t dof = v.size() - 1;
  const double t = dof <= 30 ? t975[dof] : 1.96;
  return {mean, t * sd / std::sqrt(static_cast<double>(v.size()))};
}

void Repetitions(std::ostringstream& md, const ReportData& d) {
  const ReportSettings& s = d.settings;
  if (s.repetitions < 2) return;
  md << "## Repetitions (" << s.repetitions << " trace seeds, " << Smallest(s)
     << " contexts, budget " << Frac(s.fixed_fraction) << ", " << s.flash << ")\n\n"
     << "Each seed draws other histories, prompts and switches. Mean over seeds of the per-run "
        "means, with a 95% confidence interval (Student's t).\n\n"
     << "| system | metric | per seed (ms) | mean +- 95% CI (ms) |\n|---|---|---|---|\n";
  for (const char* sys : {"llms", "vllm-sq"}) {
    for (int metric = 0; metric < 2; ++metric) {
      std::vector<double> v;
      std::string per;
      for (size_t r = 0; r < s.repetitions; ++r) {
        const uint64_t seed = s.seed + r;
        const Cell* c = Find(d, r == 0 ? "headline" : "repetition", "markov", Smallest(s),
                             s.fixed_fraction, s.flash, sys, seed);
        if (!Ran(c)) continue;
        const double x = metric == 0 ? c->summary.ready.mean : c->summary.paired_mean;
        if (x < 0) continue;
        v.push_back(x);
        per += (per.empty() ? "" : ", ") + Ms(x);
      }
      const auto [mean, ci] = MeanCi(v);
      md << "| " << sys << " | " << (metric == 0 ? "time to ready" : "extra first token") << " | "
         << per << " | " << (std::isnan(mean) ? "-" : Ms(mean)) << " +- "
         << (std::isnan(ci) ? "-" : Ms(ci)) << " |\n";
    }
  }
  md << "\n";
}

void FlashSweep(std::ostringstream& md, const ReportData& d) {
  const ReportSettings& s = d.settings;
  md << "## Flash classes (" << Smallest(s) << " contexts, budget " << Frac(s.fixed_fraction)
     << ")\n\nMean time to ready / extra time to first token, ms (docs/flash_classes.md).\n\n"
     << "| class | llms | vllm-sq | ours lower by (ready) |\n|---|---|---|---|\n";
  std::vector<std::string> classes = {s.flash};
  classes.insert(classes.end(), s.flash_sweep.begin(), s.flash_sweep.end());
  for (const std::string& f : classes) {
    const std::string group = f == s.flash ? "headline" : "flash";
    const Cell* o = Find(d, group, "markov", Smallest(s), s.fixed_fraction, f, "llms", s.seed);
    const Cell* b = Find(d, group, "markov", Smallest(s), s.fixed_fraction, f, "vllm-sq", s.seed);
    md << "| " << f << " | " << Ready(o) << " / " << Paired(o) << " | " << Ready(b) << " / "
       << Paired(b) << " | "
       << (Ran(o) && Ran(b) ? RatioText(RatioOf(b->summary.ready.mean, o->summary.ready.mean))
                            : "-")
       << " |\n";
  }
  md << "\n";
}

void Patterns(std::ostringstream& md, const ReportData& d) {
  const ReportSettings& s = d.settings;
  md << "## Switching patterns (" << Smallest(s) << " contexts, budget " << Frac(s.fixed_fraction)
     << ", " << s.flash
     << ")\n\nMean time to ready / extra time to first token, ms. StudentLife: user "
     << s.studentlife_user
     << "'s most used apps (launcher, system UI and the survey app removed), in their real "
        "order and gaps.\n\n| pattern | calls | llms | vllm-sq | swap |\n|---|---|---|---|---|\n";
  for (const char* p : {"markov", "random", "gaussian", "studentlife"}) {
    const std::string group = std::string(p) == "markov" ? "headline" : "pattern";
    const Cell* first = Find(d, group, p, Smallest(s), s.fixed_fraction, s.flash, "llms", s.seed);
    md << "| " << p << " | " << (Ran(first) ? std::to_string(first->summary.calls) : "-");
    for (const char* sys : {"llms", "vllm-sq", "swap"}) {
      const Cell* c = Find(d, group, p, Smallest(s), s.fixed_fraction, s.flash, sys, s.seed);
      md << " | " << Ready(c) << " / " << Paired(c);
    }
    md << " |\n";
  }
  md << "\n";
}

// The cell of `system` on the Markov trace of `contexts` at a budget of `bytes` (a sweep cell, or
// the headline cell of the largest size).
const Cell* AtBudget(const ReportData& d, size_t contexts, size_t bytes,
                     const std::string& system) {
  for (const Cell& c : d.cells) {
    if ((c.group == "contexts" || c.group == "headline") && c.pattern == "markov" &&
        c.contexts == contexts && c.budget_bytes == bytes && c.system == system &&
        c.seed == d.settings.seed && c.flash == d.settings.flash) {
      return &c;
    }
  }
  return nullptr;
}

// The paper's Fig. 14: how many active contexts stay under a time-to-ready limit at a fixed
// budget.
std::string ContextsUnderLimits(std::ostringstream& md, const ReportData& d,
                                const std::string& dir) {
  const ReportSettings& s = d.settings;
  std::vector<size_t> sizes = s.sweep_contexts;
  const size_t largest = *std::max_element(s.contexts.begin(), s.contexts.end());
  sizes.push_back(largest);
  std::sort(sizes.begin(), sizes.end());
  std::vector<size_t> budgets;  // bytes, from the sweep's cells
  for (const Cell& c : d.cells) {
    if (c.group == "contexts" &&
        std::find(budgets.begin(), budgets.end(), c.budget_bytes) == budgets.end()) {
      budgets.push_back(c.budget_bytes);
    }
  }
  if (budgets.empty()) return "";
  md << "## Active contexts under a time-to-ready limit\n\nMarkov traces of " << s.sweep_calls
     << " calls (the " << largest << "-context cells are the headline's, " << s.calls
     << " calls) at budgets fixed in bytes; the largest number of contexts whose mean time to "
        "ready stays under each of the paper's limits (a size that did not run, or went over, "
        "ends the count).\n\n| budget MiB | system";
  for (double l : s.limits_ms) md << " | <= " << Fmt("%g", l) << " ms";
  md << " | mean ready ms at";
  for (size_t n : sizes) md << " " << n;
  md << " |\n|---|---";
  for (size_t i = 0; i <= s.limits_ms.size(); ++i) md << "|---";
  md << "|\n";
  std::ostringstream dat;
  std::string plot = "plot ";
  int index = 0;
  for (size_t bytes : budgets) {
    for (const char* sys : {"llms", "vllm-sq"}) {
      std::vector<size_t> best(s.limits_ms.size(), 0);
      std::vector<bool> stopped(s.limits_ms.size(), false);
      std::string means;
      dat << "# " << sys << " " << bytes << "\n";
      for (size_t n : sizes) {
        const Cell* c = AtBudget(d, n, bytes, sys);
        means += ' ';
        means += Ran(c) ? Ms(c->summary.ready.mean) : std::string("-");
        if (Ran(c)) dat << n << ' ' << std::max(1e-2, c->summary.ready.mean * 1e3) << '\n';
        for (size_t i = 0; i < s.limits_ms.size(); ++i) {
          stopped[i] = stopped[i] || !Ran(c) || c->summary.ready.mean * 1e3 > s.limits_ms[i];
          if (!stopped[i]) best[i] = n;
        }
      }
      dat << "\n\n";
      md << "| " << Mib(bytes) << " | " << sys;
      for (size_t b : best) md << " | " << b;
      md << " |" << means << " |\n";
      if (index > 0) plot += ", ";
      plot += "'sweep.dat' index " + std::to_string(index) + " with linespoints lw 2 dt ";
      plot += std::string(sys) == "llms" ? "1" : "2";
      plot += " title '" + std::string(sys) + ", " + Mib(bytes) + " MiB'";
      ++index;
    }
  }
  md << "\n";
  for (double l : s.limits_ms) {
    plot += ", " + Fmt("%g", l) + " with lines lc rgb 'gray' dt 3 title '" + Fmt("%g", l) +
            " ms limit'";
  }
  WriteFile(dir + "/sweep.dat", dat.str());
  WriteFile(dir + "/sweep.gp",
            "set terminal svg size 760,420 font 'sans,12'\nset output 'sweep.svg'\n"
            "set logscale y\nset xlabel 'active contexts'\nset ylabel 'mean time to ready (ms, "
            "log)'\nset grid\nset key outside right\nset title 'Markov traces, fixed budgets'\n" +
                plot + "\n");
  return Plot(dir, "sweep.gp") ? "sweep.svg" : "";
}

void ChunkSizes(std::ostringstream& md, const ReportData& d) {
  const ReportSettings& s = d.settings;
  if (s.chunk_sizes.empty()) return;
  md << "## Chunk size (" << Smallest(s) << " contexts, budget " << Frac(s.fixed_fraction) << ", "
     << s.flash << ", first " << s.chunk_calls
     << " calls)\n\nMean time to ready / extra time to first token, ms; each size computes its "
        "own histories (another layout).\n\n| chunk tokens | llms | vllm-sq | MiB read (llms) |\n"
        "|---|---|---|---|\n";
  for (size_t chunk : s.chunk_sizes) {
    const Cell *o = nullptr, *b = nullptr;
    for (const Cell& c : d.cells) {
      if (c.group != "chunk" || c.chunk_tokens != chunk) continue;
      if (c.system == "llms") o = &c;
      if (c.system == "vllm-sq") b = &c;
    }
    md << "| " << chunk << " | " << Ready(o) << " / " << Paired(o) << " | " << Ready(b) << " / "
       << Paired(b) << " | " << (Ran(o) ? Mib(o->summary.bytes_read) : "-") << " |\n";
  }
  md << "\n";
  CellTable(md, d, "chunk");
}

void Accuracy(std::ostringstream& md, const ReportData& d, const std::string& figure) {
  md << "## Accuracy under KV compression (stories260K)\n\n"
     << d.accuracy_stories << " TinyStories contexts x " << d.accuracy_turns << " turns of "
     << d.accuracy_turn_tokens
     << " tokens, each turn scored teacher-forced against the compressed KV of the turns before "
        "(the first turn is not scored). KL and agreement (same argmax) are against the f16 run "
        "at the same positions.\n\n"
     << "| mode | bits/value | loss (nats) | vs f16 | perplexity | KL vs f16 (nats) | "
        "next-token agreement |\n|---|---|---|---|---|---|---|\n";
  for (const AccuracyRow& r : d.accuracy) {
    md << "| " << r.mode << " | " << Fmt("%.2f", r.bits) << " | " << Fmt("%.4f", r.loss) << " | "
       << Fmt("%+.2f%%", 100 * (r.loss / d.accuracy[0].loss - 1)) << " | "
       << Fmt("%.3f", r.perplexity) << " | " << Fmt("%.5f", r.kl_vs_f16) << " | "
       << Fmt("%.2f%%", 100 * r.agreement) << " |\n";
  }
  md << "\n";
  if (!figure.empty()) md << "![accuracy](" << figure << ")\n\n";
}

void Settings(std::ostringstream& md, const ReportData& d) {
  const ReportSettings& s = d.settings;
  md << "Run: " << Fmt("%.0f", d.seconds) << " s in total (";
  for (size_t i = 0; i < d.step_seconds.size(); ++i) {
    md << (i ? ", " : "") << d.step_seconds[i].first << " " << Fmt("%.0f", d.step_seconds[i].second)
       << " s";
  }
  md << "); seed " << s.seed << ".\n\n"
     << "- Model: " << d.main_model << " (" << s.weight_type
     << " synthetic weights where synthetic; prompts are random token ids).\n"
     << "- Histories: each context's, " << s.history_min_tokens << " to " << s.history_max_tokens
     << " tokens (uniform), computed once per trace seed and size at f16 without a memory "
        "manager ("
     << Fmt("%.0f", d.history_seconds)
     << " s in all), then adopted by every system's run (`KvManager::AdoptContext`): each "
        "system compresses, writes and evicts them under its own policy and budget before the "
        "first measured call, as its own warm-up calls would have (tested in "
        "`tests/eval/replay_test.cc`). Every system thus starts from the same KV.\n"
     << "- Measured calls: " << s.calls << " per headline trace (Markov, recency decay "
     << s.markov_decay << "), " << s.pattern_calls << " per other pattern, " << s.slow_calls
     << " for LMK; prompts from the '" << s.dataset << "' profile x " << s.length_scale << "; "
     << s.generate_tokens
     << " tokens generated per call; one call at a time, gaps on a virtual "
        "clock.\n"
     << "- Budgets: fractions of all contexts' f16 KV at the start of the measured calls. A "
        "system whose whole running context must fit at one level (LMK and vLLM-S at f16; "
        "vLLM-SQ, Swap and llms-no-compression at int8; int4-lru at int4) is not run where 1.1x "
        "its largest context does not fit; the cell says so.\n"
     << "- Flash: shaped classes keep their stores in " << s.shaped_store_dir
     << " (RAM), so the class's model and not this machine's disk sets their time; `native` "
        "is this machine's disk.\n";
  for (const auto& [flash, cost] : d.costs) {
    md << "- Cost model on " << flash << ": compute "
       << Fmt("%.2f", cost.compute_seconds_per_token * 1e3) << " ms/token, layer reads "
       << Fmt("%.2f", 1e-9 / cost.read_seconds_per_byte) << " GB/s + "
       << Fmt("%.0f", cost.read_seconds_per_request * 1e6) << " us/request, bulk reads "
       << Fmt("%.2f", 1e-9 / cost.bulk_read_seconds_per_byte) << " GB/s.\n";
  }
  md << "\n";
}

}  // namespace

Status WriteReport(const ReportData& d) {
  const ReportSettings& s = d.settings;
  const std::string dir = s.out_dir;
  std::ostringstream md;
  md << "# Context switches in the paper's regime: llms against its ablations and the "
        "baselines\n\n"
     << "Written by `scripts/report` (`llms report`); every number below comes from one run of "
        "it on this machine. Design and baselines: `../shared/spec/LLMS.md` §2-§7; how the "
        "replay works and what limits the numbers: `docs/evaluation.md`.\n\n";
  Settings(md, d);
  Headline(md, d);
  const std::string f1 = LatencyFigure(d, dir);
  if (!f1.empty()) md << "![time to ready per system and budget](" << f1 << ")\n\n";
  md << "## Every headline cell\n\n"
     << "Switch = the part of a call's time to first token spent bringing its context back, "
        "measured inside the call and split into reading stored chunks (bulk reads and waits for "
        "the I/O thread that compute did not hide), writing evicted dirty chunks before the "
        "pass, the recomputed rows' share of the pass, and the rest (planning, allocation). "
        "Means over switched calls. Decode slowdown is against the `none` run (every context "
        "resident at f16).\n\n";
  CellTable(md, d, "headline");
  FullDepth(md, d);
  Repetitions(md, d);
  FlashSweep(md, d);
  CellTable(md, d, "flash");
  md << "## Ablation (" << Smallest(s) << " contexts, budget " << Frac(s.fixed_fraction) << ", "
     << s.flash
     << ")\n\n`llms-no-pipeline` loads then runs; `llms-no-lifecycle` writes nothing ahead of "
        "time and evicts by LRU; `llms-lru` keeps ahead-of-time writes with plain LRU; "
        "`llms-no-compression` is int8 everywhere; `int4-lru` is static int4 with LRU and no other "
        "technique; `vllm-s` is f16 blocks. Ours and vLLM-SQ at this budget are in the headline "
        "table.\n\n";
  CellTable(md, d, "ablation");
  Patterns(md, d);
  CellTable(md, d, "pattern");
  const std::string f3 = ContextsUnderLimits(md, d, dir);
  if (!f3.empty()) md << "![contexts under a limit](" << f3 << ")\n\n";
  ChunkSizes(md, d);
  Accuracy(md, d, AccuracyFigure(d, dir));

  md << "## Traces\n\nSaved under `traces/` (format: `docs/trace_format.md`); the digest "
        "(FNV-1a of the file) is equal across reruns with the same seed.\n\n"
     << "| trace | calls | digest |\n|---|---|---|\n";
  for (const TraceFile& t : d.traces) {
    md << "| " << t.name << " | " << t.calls << " | `" << t.digest << "` |\n";
  }
  md << "\nPer-call records of every run: `data/*.csv`, named by model, trace, seed, system, "
        "budget fraction, flash class and calls.\n";
  if (f1.empty()) {
    md << "\nFigures were not drawn: gnuplot is missing (scripts/setup installs gnuplot-nox); "
          "the .gp scripts and .dat files are in this directory.\n";
  }
  std::ofstream out(dir + "/report.md");
  out << md.str();
  if (!out) return Status::IOError("cannot write " + dir + "/report.md");
  return Status::Ok();
}

}  // namespace llms::cli
