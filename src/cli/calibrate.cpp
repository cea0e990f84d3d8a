// dspark calibrate: fits the confidence head's per-position temperatures (sequential
// temperature scaling, DSPARK.md 5) on speculative rounds over a prompt set, one fit per
// sampling temperature, and writes them with what was measured to calibration.json beside
// the drafter.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/spec_rounds.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/drafter_setup.h"
#include "engine/prompt_file.h"
#include "spec/calibration_fit.h"

namespace dspark::cli {

namespace {

struct CalibrateOptions {
  std::string model, draft, prompts;
  std::vector<std::string> temps = {"0,1"};
  int n = 128;
  uint64_t seed = 980406;  // the reference evaluator's
  int threads = 0;
  bool json = false;
};

void print_table(float temperature, const CalibrationFit& fit, const std::vector<PositionCalibration>& before,
                 const std::vector<PositionCalibration>& after, size_t rounds) {
  std::fprintf(stderr, "\nsampling temperature %g: %zu rounds\n", double(temperature), rounds);
  std::fprintf(stderr, "%4s %8s %9s %7s %9s %9s %8s %8s %9s %9s\n", "pos", "samples", "survival", "T",
               "ECE raw", "ECE cal", "AUROC", "AUROC c", "Brier raw", "Brier cal");
  for (size_t k = 0; k < before.size(); ++k)
    std::fprintf(stderr, "%4zu %8lld %9.3f %7.3f %9.4f %9.4f %8.3f %8.3f %9.4f %9.4f\n", k + 1,
                 static_cast<long long>(before[k].samples), before[k].mean_label, double(fit.temperatures[k]),
                 before[k].ece, after[k].ece, before[k].auroc, after[k].auroc, before[k].brier,
                 after[k].brier);
}

// Writes via a temporary file and a rename, so a reader never sees half a file.
void write_calibration(const std::string& path, const nlohmann::ordered_json& doc) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << doc.dump(2) << "\n";
    if (!f) fail(tmp, ": cannot write");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(path, ": cannot write (", ec.message(), ")");
}

void run_calibrate(const CalibrateOptions& o) {
  if (o.n < 1) fail("calibrate: -n must be at least 1");
  const std::vector<float> temps = parse_temperatures(o.temps, "--temps");
  const std::vector<std::string> prompts = read_prompt_file(o.prompts);
  if (!is_dspark_checkpoint(o.draft))
    fail(o.draft, ": not a DSpark drafter folder (config.json naming a *DSparkModel architecture)");

  const std::string model_path = model_path_or_default(o.model);
  const LoadedModel lm = load_model(model_path);
  ThreadPool pool(o.threads);
  const auto source = load_drafter(o.draft, "", lm);
  if (!source->dspark->config.confidence_head)
    fail(o.draft, ": the drafter has no confidence head, so there is nothing to calibrate");
  const auto drafter = make_drafter(*source, lm, pool, 1, drafter_capacity(lm, pool, prompts, o.n));
  std::fprintf(stderr, "calibrate: %s with %s (block %d), %zu prompts, up to %d tokens each, %d threads\n",
               o.draft.c_str(), model_path.c_str(), drafter->max_block(), prompts.size(), o.n, pool.size());

  nlohmann::ordered_json doc = {
      {"format", "dspark-calibration"}, {"version", 1}, {"fits", nlohmann::ordered_json::array()}};
  for (const float t : temps) {
    char what[64];
    std::snprintf(what, sizeof what, "temperature %g", double(t));
    const RecordedRounds rec = run_full_blocks(lm, *drafter, pool, prompts, t, o.n, o.seed,
                                               progress_on_stderr(what, prompts.size()));
    if (calibration_positions(rec.rounds) == 0)
      fail("calibrate: no draft was verified at temperature ", t,
           " (every generation ended at once; use longer -n or other prompts)");
    const CalibrationFit fit = fit_sequential_temperature_scaling(rec.rounds, t);
    const auto before = position_calibration(rec.rounds, nullptr);
    const auto after = position_calibration(rec.rounds, &fit);
    print_table(t, fit, before, after, rec.rounds.size());
    doc["fits"].push_back(calibration_fit_json(fit, before, after, int64_t(rec.rounds.size())));
  }
  // What the decoder will read back must parse.
  Calibration::parse(doc.dump(), "calibration");
  const std::string path = (std::filesystem::path(o.draft) / "calibration.json").string();
  write_calibration(path, doc);
  std::fprintf(stderr, "\nwrote %s (AUROC c: of the calibrated products)\n", path.c_str());
  if (o.json) std::printf("%s\n", doc.dump(2).c_str());
}

}  // namespace

void add_calibrate(CLI::App& app) {
  auto o = std::make_shared<CalibrateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate", "Fit a DSpark drafter's confidence temperatures (writes calibration.json beside it)");
  cmd->add_option("-m,--model", o->model, "Target model (default: the project's model)");
  cmd->add_option("-d,--draft", o->draft, "DSpark drafter folder with a confidence head")->required();
  cmd->add_option("--prompts", o->prompts,
                  "Prompt file: one prompt per line, \\n for a newline, blank and # lines skipped")
      ->required();
  cmd->add_option("--temps", o->temps, "Sampling temperatures to fit at (comma list or repeated)")
      ->capture_default_str();
  cmd->add_option("-n,--n-predict", o->n, "Maximum tokens generated per prompt")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Random seed (prompt i uses seed + i)")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", o->json, "Also print the written calibration.json on stdout");
  cmd->callback([o] { run_calibrate(*o); });
}

}  // namespace dspark::cli
