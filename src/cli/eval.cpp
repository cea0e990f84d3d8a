// dspark eval: drafters measured on a prompt set with the whole block verified every round:
// tau, verify rate, acceptance per position, and how well the confidence head predicts
// survival (ECE, AUROC, Brier per position), raw and with the drafter's calibration.json.
// A table on stdout, JSON with --json, PNG plots (gnuplot) with --plots.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "cli/json_output.h"
#include "cli/plots.h"
#include "cli/spec_rounds.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/drafter_setup.h"
#include "engine/prompt_file.h"

namespace dspark::cli {

namespace {

struct EvalOptions {
  std::string model, prompts, json_path, plots_dir;
  std::vector<std::string> drafts, temps = {"0,1"};
  int n = 128;
  uint64_t seed = 980406;  // the reference evaluator's
  int threads = 0;
};

struct EvalDrafter {
  std::string name;  // as given with -d
  std::unique_ptr<DrafterSource> source;
  std::unique_ptr<Drafter> drafter;
};

// One drafter at one sampling temperature.
struct EvalResult {
  size_t drafter = 0;
  float temperature = 0;
  RecordedRounds rec;
  bool has_confidence = false;
  std::vector<PositionCalibration> raw, calibrated;
  const CalibrationFit* fit = nullptr;  // the drafter's calibration nearest the temperature

  double verify_rate() const {
    const SpecStats& s = rec.stats;
    return s.rounds ? double(s.committed) / double(s.verified + s.rounds) : 0.0;
  }
};

std::string percent_list(const std::vector<double>& xs) {
  std::ostringstream s;
  for (size_t i = 0; i < xs.size(); ++i) s << (i ? " " : "") << int(xs[i] * 100 + 0.5);
  return xs.empty() ? "-" : s.str();
}

nlohmann::json calibration_json(const EvalResult& r) {
  if (!r.has_confidence) return nullptr;
  auto field = [](const std::vector<PositionCalibration>& ms, auto get) {
    nlohmann::json a = nlohmann::json::array();
    for (const PositionCalibration& m : ms) a.push_back(get(m));
    return a;
  };
  auto bins = [](const std::vector<PositionCalibration>& ms) {
    nlohmann::json a = nlohmann::json::array();
    for (const PositionCalibration& m : ms) {
      nlohmann::json p = nlohmann::json::array();
      for (const ReliabilityBin& b : m.bins)
        p.push_back(
            {{"count", b.count}, {"mean_prediction", b.mean_prediction}, {"mean_label", b.mean_label}});
      a.push_back(p);
    }
    return a;
  };
  nlohmann::json j = {{"samples", field(r.raw, [](const PositionCalibration& m) { return m.samples; })},
                      {"survival", field(r.raw, [](const PositionCalibration& m) { return m.mean_label; })},
                      {"ece_raw", field(r.raw, [](const PositionCalibration& m) { return m.ece; })},
                      {"auroc_raw", field(r.raw, [](const PositionCalibration& m) { return m.auroc; })},
                      {"brier_raw", field(r.raw, [](const PositionCalibration& m) { return m.brier; })},
                      {"reliability_raw", bins(r.raw)},
                      {"calibration_fit", nullptr}};
  if (r.fit) {
    j["calibration_fit"] = {{"sampling_temperature", r.fit->sampling_temperature},
                            {"temperatures", r.fit->temperatures}};
    j["ece_calibrated"] = field(r.calibrated, [](const PositionCalibration& m) { return m.ece; });
    j["auroc_calibrated"] = field(r.calibrated, [](const PositionCalibration& m) { return m.auroc; });
    j["brier_calibrated"] = field(r.calibrated, [](const PositionCalibration& m) { return m.brier; });
    j["reliability_calibrated"] = bins(r.calibrated);
  }
  return j;
}

std::string temperature_tag(float t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "t%g", double(t));
  return buf;
}

// Writes the plots; returns their paths.
std::vector<std::string> write_plots(const std::string& dir, const std::vector<EvalDrafter>& drafters,
                                     const std::vector<float>& temps,
                                     const std::vector<EvalResult>& results) {
  std::vector<std::string> written;
  for (const EvalResult& r : results) {
    if (!r.has_confidence) continue;
    const std::string& name = drafters[r.drafter].name;
    const std::string file = "reliability_d" + std::to_string(r.drafter + 1) + "_" +
                             file_name_part(std::filesystem::path(name).filename().string()) + "_" +
                             temperature_tag(r.temperature);
    char title[512];
    std::snprintf(title, sizeof title, "%s, sampling temperature %g: survival by predicted survival",
                  name.c_str(), double(r.temperature));
    written.push_back(plot_reliability(dir, file, title, r.raw, r.fit ? &r.calibrated : nullptr));
  }
  for (const float t : temps) {
    std::vector<AcceptanceLine> lines;
    for (const EvalResult& r : results)
      if (r.temperature == t) lines.push_back({drafters[r.drafter].name, r.rec.stats.accept_per_pos()});
    char title[128];
    std::snprintf(title, sizeof title, "acceptance per draft position, sampling temperature %g", double(t));
    written.push_back(plot_acceptance(dir, "acceptance_" + temperature_tag(t), title, lines));
  }
  return written;
}

void run_eval(const EvalOptions& o) {
  if (o.n < 1) fail("eval: -n must be at least 1");
  const std::vector<float> temps = parse_temperatures(o.temps, "--temp");
  const std::vector<std::string> prompts = read_prompt_file(o.prompts);
  if (!o.plots_dir.empty()) {
    require_gnuplot();
    std::error_code ec;
    std::filesystem::create_directories(o.plots_dir, ec);
    if (ec || !std::filesystem::is_directory(o.plots_dir))
      fail(o.plots_dir, ": cannot create the plots folder", ec ? " (" + ec.message() + ")" : "");
  }
  const bool json_stdout = !o.json_path.empty() && json_to_stdout(o.json_path);
  FILE* table = json_stdout ? stderr : stdout;

  const std::string model_path = model_path_or_default(o.model);
  const LoadedModel lm = load_model(model_path);
  ThreadPool pool(o.threads);
  const int capacity = drafter_capacity(lm, pool, prompts, o.n);
  std::vector<EvalDrafter> drafters;
  for (const std::string& d : o.drafts) {
    EvalDrafter e;
    e.name = d;
    // A drafter kind that needs no model (ngram) may be named instead of a path.
    const bool kind_only = d == "ngram" && !std::filesystem::exists(d);
    e.source = load_drafter(kind_only ? "" : d, kind_only ? d : "", lm);
    e.drafter = make_drafter(*e.source, lm, pool, 1, capacity);
    drafters.push_back(std::move(e));
  }

  std::fprintf(table, "dspark eval: %s, %zu prompts, up to %d tokens each, seed %llu, %d threads\n",
               model_path.c_str(), prompts.size(), o.n, static_cast<unsigned long long>(o.seed), pool.size());
  std::vector<EvalResult> results;
  for (size_t di = 0; di < drafters.size(); ++di) {
    const EvalDrafter& d = drafters[di];
    for (const float t : temps) {
      EvalResult r;
      r.drafter = di;
      r.temperature = t;
      char what[64];
      std::snprintf(what, sizeof what, "temperature %g", double(t));
      r.rec = run_full_blocks(lm, *d.drafter, pool, prompts, t, o.n, o.seed,
                              progress_on_stderr(d.name + ", " + what, prompts.size()));
      r.has_confidence = d.drafter->has_confidence();
      if (r.has_confidence) {
        r.raw = position_calibration(r.rec.rounds, nullptr);
        if (d.source->calibration) {
          r.fit = d.source->calibration->nearest(t);
          r.calibrated = position_calibration(r.rec.rounds, r.fit);
        }
      }
      results.push_back(std::move(r));
    }
  }

  std::fprintf(table, "\n%-36s %5s %7s %6s %7s  %s\n", "drafter", "temp", "rounds", "tau", "verify",
               "accept % per position");
  for (const EvalResult& r : results)
    std::fprintf(table, "%-36s %5g %7lld %6.2f %7.3f  %s\n", drafters[r.drafter].name.c_str(),
                 double(r.temperature), static_cast<long long>(r.rec.stats.rounds), r.rec.stats.tau(),
                 r.verify_rate(), percent_list(r.rec.stats.accept_per_pos()).c_str());
  std::fprintf(table,
               "tau: tokens committed per round (bonus included); verify: committed / (verified drafts + "
               "rounds)\n\ncalibration (prediction: product of the confidences up to the position; label: "
               "all drafts up to it accepted; cal: with calibration.json)\n");
  std::fprintf(table, "%-36s %5s %4s %8s %8s %8s %8s %7s %7s %8s %8s\n", "drafter", "temp", "pos", "samples",
               "survival", "ECE raw", "ECE cal", "AUROC", "AUROC c", "Brier", "Brier c");
  for (const EvalResult& r : results) {
    const char* name = drafters[r.drafter].name.c_str();
    if (!r.has_confidence) {
      std::fprintf(table, "%-36s %5g    - (no confidence head)\n", name, double(r.temperature));
      continue;
    }
    for (size_t k = 0; k < r.raw.size(); ++k) {
      const PositionCalibration& a = r.raw[k];
      std::fprintf(table, "%-36s %5g %4zu %8lld %8.3f %8.4f ", name, double(r.temperature), k + 1,
                   static_cast<long long>(a.samples), a.mean_label, a.ece);
      if (r.fit)
        std::fprintf(table, "%8.4f %7.3f %7.3f %8.4f %8.4f\n", r.calibrated[k].ece, a.auroc,
                     r.calibrated[k].auroc, a.brier, r.calibrated[k].brier);
      else
        std::fprintf(table, "%8s %7.3f %7s %8.4f %8s\n", "-", a.auroc, "-", a.brier, "-");
    }
  }
  std::fflush(table);

  std::vector<std::string> plots;
  if (!o.plots_dir.empty()) {
    plots = write_plots(o.plots_dir, drafters, temps, results);
    for (const std::string& p : plots) std::fprintf(stderr, "wrote %s\n", p.c_str());
  }
  if (!o.json_path.empty()) {
    nlohmann::json out = {
        {"model", model_path},   {"prompts", prompts.size()},          {"n", o.n},      {"seed", o.seed},
        {"temperatures", temps}, {"results", nlohmann::json::array()}, {"plots", plots}};
    for (const EvalResult& r : results) {
      nlohmann::json j = r.rec.stats.to_json();
      j["drafter"] = drafters[r.drafter].name;
      j["kind"] = drafter_kind_name(drafters[r.drafter].source->kind);
      j["block"] = drafters[r.drafter].drafter->max_block();
      j["temperature"] = r.temperature;
      j["verify_rate"] = r.verify_rate();
      j["generated_tokens"] = r.rec.tokens;
      j["seconds"] = r.rec.seconds;
      j["calibration"] = calibration_json(r);
      out["results"].push_back(j);
    }
    write_json_output(out, o.json_path);
  }
}

}  // namespace

void add_eval(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Measure drafters: tau, acceptance per position, calibration of the confidences (table, JSON, plots)");
  cmd->add_option("-m,--model", o->model, "Target model (default: the project's model)");
  cmd->add_option("-d,--draft", o->drafts,
                  "Drafter (repeatable): a DSpark/DFlash folder, a draft model, or 'ngram'")
      ->required();
  cmd->add_option("--prompts", o->prompts,
                  "Prompt file: one prompt per line, \\n for a newline, blank and # lines skipped")
      ->required();
  cmd->add_option("--temp", o->temps, "Sampling temperatures (comma list or repeated)")
      ->capture_default_str();
  cmd->add_option("-n,--n-predict", o->n, "Maximum tokens generated per prompt")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Random seed (prompt i uses seed + i)")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--json", o->json_path,
                  "Write the results as JSON to FILE ('-': stdout, tables to stderr)");
  cmd->add_option("--plots", o->plots_dir,
                  "Write PNG plots (reliability diagrams, acceptance per position) to DIR, with gnuplot");
  cmd->callback([o] { run_eval(*o); });
}

}  // namespace dspark::cli
