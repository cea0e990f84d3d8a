// dspark synth: a random-weight GGUF of a real architecture and size, or a random DSpark
// drafter of the real shape for a target, for benchmarks.
#include "model/synth.h"

#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "draft/dspark_synth.h"
#include "model/load.h"

namespace dspark::cli {

namespace {

struct SynthCliOptions {
  std::string preset, type = "BF16", output;
  uint64_t seed = 0;
  int layers = 0, context = 0, threads = 0;
  bool list = false;
  std::string drafter_for;  // a target model: write a DSpark drafter for it instead
  DSparkSynthOptions drafter;
};

void run_synth_drafter(const SynthCliOptions& o) {
  if (o.output.empty()) fail("synth: -o DIR is required");
  const LoadedModel target = load_model(o.drafter_for);
  DSparkSynthOptions d = o.drafter;
  const std::optional<DType> type = parse_weight_type(o.type);
  if (!type) fail("synth: unknown weight type '", o.type, "'");
  d.weight_type = *type;
  d.seed = o.seed;
  Timer timer;
  write_synth_dspark(o.output, target.model->config, d);
  const DSparkConfig c = synth_dspark_config(target.model->config, d);
  std::string taps;
  for (int id : c.target_layer_ids) taps += (taps.empty() ? "" : ",") + std::to_string(id);
  std::fprintf(stderr,
               "wrote %s: DSpark drafter for %s, block %d, %d layers, taps %s, %s head rank %d, %s, %.1f s\n",
               o.output.c_str(), o.drafter_for.c_str(), c.block_size, c.backbone.n_layers, taps.c_str(),
               markov_head_name(c.markov_head), c.markov_rank, std::string(dtype_name(d.weight_type)).c_str(),
               timer.seconds());
}

std::string join(const std::vector<std::string>& xs) {
  std::string out;
  for (const std::string& x : xs) out += (out.empty() ? "" : ", ") + x;
  return out;
}

void print_presets() {
  for (const SynthPreset& p : synth_presets()) {
    const ModelConfig& c = p.config;
    std::printf("%-11s %s: %s, %d layers, dim %d, %d heads (%d kv, head dim %d), ffn %d, vocab %d%s\n",
                p.name.c_str(), p.description.c_str(), arch_name(c.arch), c.n_layers, c.dim, c.n_heads,
                c.n_kv_heads, c.head_dim, c.ffn_dim, c.vocab_size, c.tied_embeddings ? ", tied" : "");
  }
  std::printf("types: %s\n", join(weight_type_names()).c_str());
}

void run_synth(const SynthCliOptions& o) {
  if (o.list) {
    print_presets();
    return;
  }
  if (!o.drafter_for.empty()) {
    run_synth_drafter(o);
    return;
  }
  if (o.preset.empty()) fail("synth: --preset is required (dspark synth --list shows the presets)");
  if (o.output.empty()) fail("synth: -o FILE is required");
  const SynthPreset& preset = find_synth_preset(o.preset);
  SynthOptions so;
  const std::optional<DType> type = parse_weight_type(o.type);
  if (!type) fail("synth: unknown weight type '", o.type, "' (known: ", join(weight_type_names()), ")");
  so.weight_type = *type;
  so.seed = o.seed;
  so.n_layers = o.layers;
  so.context = o.context;
  ThreadPool pool(o.threads);
  Timer timer;
  const uint64_t bytes = write_synth_model(o.output, preset, so, &pool);
  const ModelConfig c = synth_config(preset, so);
  std::fprintf(stderr, "wrote %s: %s (%d layers), %s, seed %llu, %.1f MiB in %.1f s\n", o.output.c_str(),
               preset.name.c_str(), c.n_layers, std::string(dtype_name(so.weight_type)).c_str(),
               static_cast<unsigned long long>(o.seed), double(bytes) / (1 << 20), timer.seconds());
}

}  // namespace

void add_synth(CLI::App& app) {
  auto o = std::make_shared<SynthCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "synth", "Write a random-weight GGUF of a real architecture and size (for speed measurements)");
  cmd->add_option("--preset", o->preset, "Architecture and size (see --list)");
  cmd->add_option("--type", o->type,
                  "Weight type of the matrices (norms stay F32): " + join(weight_type_names()))
      ->capture_default_str();
  cmd->add_option("-o,--output", o->output, "GGUF file to write");
  cmd->add_option("--seed", o->seed, "Random seed of the weights")->capture_default_str();
  cmd->add_option("--layers", o->layers, "Override the preset's layer count (0: keep)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--context", o->context, "Override the preset's context length (0: keep)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--list", o->list, "List the presets and weight types");
  cmd->add_option("--drafter-for", o->drafter_for,
                  "Write a random DSpark drafter of the real shape for this target model to the folder -o");
  cmd->add_option("--block", o->drafter.block_size, "drafter: block size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--draft-layers", o->drafter.n_layers, "drafter: decoder layers")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--taps", o->drafter.n_taps, "drafter: tapped target layers")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--rank", o->drafter.markov_rank, "drafter: Markov head rank")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--confidence", o->drafter.confidence, "drafter: the confidence head's typical confidence")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 0.999));
  cmd->callback([o] { run_synth(*o); });
}

}  // namespace dspark::cli
