// dspark bench: the speed of this engine on this machine, as tables and JSON.
//   bandwidth  memory read bandwidth (what decoding a large model is bound by)
//   decode     tokens/s, achieved GB/s of weight traffic and its fraction of the bandwidth
//   verify     time of one forward over K tokens relative to K = 1 (the cost profile)
//   prefill    tokens/s of a forward over K tokens from an empty cache
//   all        every one of these
//   quality    how close each weight type stays to fp32 (bench_quality.cpp; not part of all)
//   spec       plain decoding against drafters on prompts (bench_spec.cpp; not part of all)
// Each model also gets a hash of its logits on a fixed prompt, so that correctness drift
// shows next to the speed.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/bench_quality.h"
#include "cli/bench_serve.h"
#include "cli/bench_spec.h"
#include "cli/commands.h"
#include "cli/json_output.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "engine/bandwidth.h"
#include "engine/cost_profile.h"
#include "engine/generator.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace dspark::cli {

namespace {

constexpr const char* kHashPrompt = "Once upon a time, there was a little girl named Lily.";

struct BenchOptions {
  std::string mode = "all";
  std::vector<std::string> models;
  std::string tokenizer;
  int n = 32;
  int prompt = 16;
  int runs = 5;
  int context = 512;
  int max_k = 512;
  int threads = 0;
  double budget = 30;
  int bandwidth_mib = 256;
  std::string json_path;
  bool json = false;
  bool store_profile = true;
  QualityOptions quality;
  ServeBenchOptions serve;
  SpecBenchOptions spec;  // spec: drafters and sampling; model, -n, -f, threads, JSON copied in  // quality:
                          // types and text; the fields shared with the rest are copied in
};

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  const size_t n = xs.size();
  return n % 2 ? xs[n / 2] : 0.5 * (xs[n / 2 - 1] + xs[n / 2]);
}

// Repeats a timed measurement up to `runs` times while the budget lasts (at least once).
std::vector<double> repeat(int runs, double budget, const std::function<double()>& once) {
  std::vector<double> out;
  Timer total;
  do {
    out.push_back(once());
  } while (int(out.size()) < runs && total.seconds() + out.back() <= budget);
  return out;
}

bool wants(const BenchOptions& o, const char* mode) { return o.mode == "all" || o.mode == mode; }

// FNV-1a over the bits of the logits: any change in the numerics changes it.
std::string logits_hash(const std::vector<float>& logits) {
  uint32_t h = 2166136261u;
  for (float f : logits) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    for (int i = 0; i < 4; ++i) h = (h ^ ((bits >> (8 * i)) & 0xff)) * 16777619u;
  }
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", h);
  return buf;
}

int argmax(const float* x, int n) { return int(std::max_element(x, x + n) - x); }

class ModelBench {
 public:
  ModelBench(const LoadedModel& lm, ThreadPool& pool, const BenchOptions& o, FILE* table)
      : lm_(lm), m_(*lm.model), c_(m_.config), pool_(pool), o_(o), table_(table), tf_(m_, pool) {}

  nlohmann::json run(BandwidthMeter* meter) {
    nlohmann::json j;
    j["path"] = m_.source;
    j["architecture"] = arch_name(c_.arch);
    j["layers"] = c_.n_layers;
    j["dim"] = c_.dim;
    j["weight_type"] = model_weight_type(m_);
    j["parameters"] = m_.parameter_count();
    j["weight_bytes"] = m_.weight_bytes();
    hash(j);
    std::fprintf(table_, "\nmodel %s: %s, %d layers, dim %d, %s, %.0fM parameters, %.1f MiB read per token\n",
                 m_.source.c_str(), arch_name(c_.arch), c_.n_layers, c_.dim,
                 j["weight_type"].get<std::string>().c_str(), double(m_.parameter_count()) / 1e6,
                 double(m_.weight_bytes()) / (1 << 20));
    std::fprintf(table_, "logits hash %s (top token %d, prompt of %d tokens)\n",
                 j["logits_hash"].get<std::string>().c_str(), j["top_token"].get<int>(),
                 j["hash_prompt_tokens"].get<int>());
    std::fflush(table_);
    if (wants(o_, "decode")) j["decode"] = decode(meter);
    std::fflush(table_);
    if (wants(o_, "verify")) j["verify"] = verify();
    std::fflush(table_);
    if (wants(o_, "prefill")) j["prefill"] = prefill();
    return j;
  }

 private:
  int limit() const { return c_.max_seq_len > 0 ? c_.max_seq_len : 1 << 30; }

  // One forward over a fixed prompt from an empty cache; also faults the weights in.
  void hash(nlohmann::json& j) {
    const Generator gen(lm_, pool_);
    std::vector<int> tokens = gen.tokenize_prompt(kHashPrompt);
    if (int(tokens.size()) > limit()) tokens.resize(size_t(limit()));
    KVCache cache(c_, 1, int(tokens.size()));
    Batch b;
    for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int(i), 0, i + 1 == tokens.size());
    std::vector<float> logits(size_t(c_.vocab_size));
    tf_.forward(b, cache, logits.data());
    j["logits_hash"] = logits_hash(logits);
    j["top_token"] = argmax(logits.data(), c_.vocab_size);
    j["hash_prompt_tokens"] = tokens.size();
  }

  // Each timed run follows a short bandwidth sample (when a meter is given), and the
  // fraction is taken run by run: on a shared machine the bandwidth drifts between runs.
  nlohmann::json decode(BandwidthMeter* meter) {
    const int prompt = std::max(o_.prompt, 1);
    if (prompt + o_.n > limit())
      fail(m_.source, ": ", prompt, " prompt tokens and ", o_.n, " decoded tokens exceed the context of ",
           limit());
    KVCache cache(c_, 1, prompt + o_.n);
    std::vector<float> logits(size_t(c_.vocab_size));
    Rng rng(1);
    Batch b;
    std::vector<double> samples;  // GB/s measured just before each run
    auto run_once = [&] {
      cache.clear(0);
      b.clear();
      for (int i = 0; i < prompt; ++i)
        b.add(int(rng.next_u64() % uint64_t(c_.vocab_size)), i, 0, i == prompt - 1);
      tf_.forward(b, cache, logits.data());
      if (meter) samples.push_back(meter->measure(3).gbps);
      Timer t;
      for (int i = 0; i < o_.n; ++i) {
        b.clear();
        b.add(argmax(logits.data(), c_.vocab_size), prompt + i, 0, true);
        tf_.forward(b, cache, logits.data());
      }
      return t.seconds();
    };
    std::vector<double> rates, fractions;
    for (double s : repeat(o_.runs, o_.budget, run_once)) rates.push_back(double(o_.n) / s);
    const double tps = median(rates);
    const double gbps = double(m_.weight_bytes()) * tps / 1e9;
    nlohmann::json j;
    j["tokens_per_second"] = tps;
    j["runs"] = rates;
    j["n"] = o_.n;
    j["prompt_tokens"] = prompt;
    j["gbps"] = gbps;
    std::fprintf(table_,
                 "decode   %.2f tokens/s (median of %zu runs of %d tokens after %d), %.2f GB/s of weights",
                 tps, rates.size(), o_.n, prompt, gbps);
    if (!samples.empty()) {
      for (size_t i = 0; i < rates.size(); ++i)
        fractions.push_back(double(m_.weight_bytes()) * rates[i] / 1e9 / samples[i]);
      j["bandwidth_gbps"] = median(samples);
      j["bandwidth_samples"] = samples;
      j["bandwidth_fraction"] = median(fractions);
      std::fprintf(table_, ", %.0f%% of the bandwidth measured alongside (%.1f GB/s)",
                   100 * median(fractions), median(samples));
    }
    std::fprintf(table_, "\n");
    return j;
  }

  nlohmann::json verify() {
    CostProfileOptions po;
    po.context = std::min(o_.context, limit() - 1);
    po.ks = full_profile_ks(std::min(o_.max_k, limit() - po.context));
    po.runs = o_.runs;
    po.budget_seconds = o_.budget;
    if (isatty(STDERR_FILENO))  // progress for slow models, on a terminal only
      po.on_point = [](int k, double s) { std::fprintf(stderr, "  verify K=%d: %.2f ms\n", k, s * 1e3); };
    const CostProfile p = measure_cost_profile(m_, pool_, po);
    nlohmann::json j;
    j["context"] = p.context;
    nlohmann::json points = nlohmann::json::array();
    std::fprintf(table_,
                 "verify   one forward over K tokens after %d in the cache (median of up to %d runs)\n",
                 p.context, o_.runs);
    std::fprintf(table_, "     K    ms/forward  x K=1   ms/token\n");
    for (size_t i = 0; i < p.k.size(); ++i) {
      const double ratio = p.seconds[i] / p.seconds[0];
      points.push_back({{"k", p.k[i]}, {"seconds", p.seconds[i]}, {"ratio", ratio}});
      std::fprintf(table_, "  %4d  %12.2f  %5.2f  %9.3f\n", p.k[i], p.seconds[i] * 1e3, ratio,
                   p.seconds[i] * 1e3 / p.k[i]);
    }
    j["points"] = points;
    if (o_.store_profile) {
      const std::string dir = default_cost_profile_dir();
      if (!dir.empty()) {
        store_cost_profile(p, dir);
        j["cache_path"] = cost_profile_path(p, dir);
        std::fprintf(stderr, "cost profile cached at %s\n", j["cache_path"].get<std::string>().c_str());
      }
    }
    return j;
  }

  nlohmann::json prefill() {
    std::vector<int> ks;
    for (int k = 64; k <= std::min(o_.max_k, limit()); k *= 2) ks.push_back(k);
    if (ks.empty()) ks.push_back(std::min(o_.max_k, limit()));
    KVCache cache(c_, 1, ks.back());
    std::vector<float> logits(size_t(c_.vocab_size));
    Rng rng(2);
    Batch b;
    nlohmann::json points = nlohmann::json::array();
    std::fprintf(table_, "prefill  one forward over K tokens from an empty cache\n");
    std::fprintf(table_, "     K    ms/forward   tokens/s\n");
    for (int K : ks) {
      auto once = [&] {
        cache.clear(0);
        b.clear();
        for (int i = 0; i < K; ++i) b.add(int(rng.next_u64() % uint64_t(c_.vocab_size)), i, 0, i == K - 1);
        Timer t;
        tf_.forward(b, cache, logits.data());
        return t.seconds();
      };
      const double s = median(repeat(o_.runs, o_.budget / double(ks.size()), once));
      points.push_back({{"k", K}, {"seconds", s}, {"tokens_per_second", K / s}});
      std::fprintf(table_, "  %4d  %12.2f  %9.1f\n", K, s * 1e3, K / s);
    }
    nlohmann::json j;
    j["points"] = points;
    return j;
  }

  const LoadedModel& lm_;
  const Model& m_;
  const ModelConfig& c_;
  ThreadPool& pool_;
  const BenchOptions& o_;
  FILE* table_;
  Transformer tf_;
};

void run_bench(BenchOptions o) {
  if (o.mode == "quality") {
    QualityOptions& q = o.quality;
    q.models = o.models;
    q.tokenizer = o.tokenizer;
    q.threads = o.threads;
    q.json = o.json;
    q.json_path = o.json_path;
    run_bench_quality(q);
    return;
  }
  if (o.mode == "serve") {
    ServeBenchOptions& sv = o.serve;
    if (o.models.size() > 1) fail("bench serve: one target model (-m) at a time");
    sv.model = o.models.empty() ? "" : o.models[0];
    sv.draft = o.spec.drafts.empty() ? "" : o.spec.drafts[0];
    if (o.spec.drafts.size() > 1) fail("bench serve: one drafter (-d) at a time");
    sv.prompt_file = o.quality.text_file;
    sv.n = o.n;
    sv.temperature = o.spec.temperature;
    sv.threads = o.threads;
    sv.json = o.json;
    sv.json_path = o.json_path;
    run_bench_serve(sv);
    return;
  }
  if (o.mode == "spec") {
    SpecBenchOptions& sp = o.spec;
    if (o.models.size() > 1) fail("bench spec: one target model (-m) at a time");
    sp.model = o.models.empty() ? "" : o.models[0];
    sp.prompt_file = o.quality.text_file;
    sp.n = o.n;
    sp.threads = o.threads;
    sp.json = o.json;
    sp.json_path = o.json_path;
    run_bench_spec(sp);
    return;
  }
  if (o.n < 1) fail("bench: -n must be at least 1");
  if (o.max_k < 1) fail("bench: --max-k must be at least 1");
  const bool json_stdout = o.json && json_to_stdout(o.json_path);
  FILE* table = json_stdout ? stderr : stdout;
  ThreadPool pool(o.threads);
  nlohmann::json out;
  out["cpu"] = cpu_model_name();
  out["threads"] = pool.size();
  out["mode"] = o.mode;
  std::fprintf(table, "dspark bench %s: %s, %d threads\n", o.mode.c_str(), cpu_model_name().c_str(),
               pool.size());

  if (o.mode != "bandwidth" && o.models.empty()) o.models.push_back(model_path_or_default(""));
  for (const std::string& path : o.models)  // before the slow part
    if (!std::filesystem::exists(path)) fail(path, ": no such file or directory");

  std::unique_ptr<BandwidthMeter> meter;
  if (wants(o, "bandwidth") || wants(o, "decode")) {
    meter = std::make_unique<BandwidthMeter>(pool, size_t(o.bandwidth_mib) << 20);
    const BandwidthResult bw = meter->measure(15);
    out["bandwidth"] = {{"gbps", bw.gbps},
                        {"best_gbps", bw.best_gbps},
                        {"passes", bw.passes},
                        {"buffer_bytes", bw.buffer_bytes},
                        {"threads", bw.threads}};
    std::fprintf(table, "memory read bandwidth %.1f GB/s (median of %zu passes over %zu MiB; best %.1f)\n",
                 bw.gbps, bw.passes.size(), bw.buffer_bytes >> 20, bw.best_gbps);
  }
  if (o.mode != "bandwidth") {
    out["models"] = nlohmann::json::array();
    for (const std::string& path : o.models) {
      Timer load;
      const LoadedModel lm = load_model(path, o.tokenizer);
      const double load_seconds = load.seconds();
      ModelBench mb(lm, pool, o, table);
      nlohmann::json j = mb.run(meter.get());
      j["load_seconds"] = load_seconds;
      out["models"].push_back(j);
    }
  }
  std::fflush(table);
  if (o.json) write_json_output(out, o.json_path);
}

}  // namespace

void add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd =
      app.add_subcommand("bench", "Measure bandwidth, decode speed, the verify cost curve, prefill");
  cmd->add_option("MODE", o->mode,
                  "What to measure: all (the speed modes), bandwidth, decode, verify, prefill, "
                  "quality (each weight type against fp32), spec (drafters against plain decoding), or "
                  "serve (the server under concurrent clients, per scheduler)")
      ->capture_default_str()
      ->check(CLI::IsMember({"all", "bandwidth", "decode", "verify", "prefill", "quality", "spec", "serve"}));
  cmd->add_option("-m,--model", o->models,
                  "Model(s) to measure; repeat -m for several (default: the project's)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file (as for generate)");
  cmd->add_option("-n,--n-predict", o->n, "decode: tokens per run")->capture_default_str();
  cmd->add_option("--prompt-tokens", o->prompt, "decode: tokens in the cache before decoding")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("-r,--runs", o->runs, "Repeats of each measurement (the median is reported)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--ctx", o->context, "verify: tokens already in the cache before each forward")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-k", o->max_k, "verify/prefill: largest K")->capture_default_str();
  cmd->add_option("--budget", o->budget,
                  "Seconds each measurement may take before repeats (and larger verify K) are cut")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--bandwidth-mib", o->bandwidth_mib, "bandwidth: buffer size (several times the L3 cache)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  CLI::Option* json =
      cmd->add_option("--json", o->json_path, "Write JSON results to FILE (\"-\" or none: stdout)")
          ->expected(0, 1);
  cmd->add_option("--types", o->quality.types, "quality: comma-separated weight types to compare with fp32")
      ->capture_default_str();
  cmd->add_option("-p,--prompt", o->quality.text,
                  "quality: the text to read (default: a built-in short story)");
  cmd->add_option("-f,--file", o->quality.text_file,
                  "quality: read the text from FILE; spec: prompts, one per line");
  cmd->add_option("-d,--draft", o->spec.drafts,
                  "spec: a drafter (DSpark/DFlash folder or draft model); repeatable");
  cmd->add_option("--kinds", o->spec.kinds, "spec: drafters without a model to include (\"ngram\" or \"\")")
      ->capture_default_str();
  cmd->add_option("--replay-block", o->spec.replay_block,
                  "spec: block of the always-right replay drafter, the upper bound (0: leave it out)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--scheduler", o->spec.scheduler,
                  "spec: fixed, threshold or prefix (default: prefix; replay: fixed)")
      ->check(CLI::IsMember({"fixed", "threshold", "prefix"}));
  cmd->add_option("--draft-max", o->spec.draft_max, "spec: drafts verified per round (fixed)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--conf-threshold", o->spec.conf_threshold, "spec: confidence threshold (threshold)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--temp", o->spec.temperature, "spec: sampling temperature (0: greedy, output checked)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->spec.seed, "spec: sampling seed")->capture_default_str();
  cmd->add_option("--spec", o->serve.spec, "serve: drafter kind (default: from -d; ngram needs no -d)")
      ->check(CLI::IsMember({"dspark", "dflash", "draft-model", "ngram"}));
  cmd->add_option("--schedulers", o->serve.schedulers, "serve: comma-separated schedulers to compare")
      ->capture_default_str();
  cmd->add_option("--concurrency", o->serve.concurrency,
                  "serve: comma-separated numbers of concurrent clients")
      ->capture_default_str();
  cmd->add_option("--seconds", o->serve.seconds, "serve: seconds of new requests per concurrency level")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--repeat", o->serve.repeat,
                  "serve: rounds over every scheduler and level; the median round is reported")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--parallel", o->serve.parallel, "serve: server slots (default: the largest concurrency)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--ctx-size", o->serve.ctx_size, "serve: positions per slot (default: the model's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--plot", o->serve.plot, "serve: write a PNG of throughput against per-user speed");
  cmd->add_flag("!--no-store", o->store_profile, "verify: do not store the curve in the cost profile cache");
  cmd->callback([o, json] {
    o->json = json->count() > 0;
    run_bench(*o);
  });
}

}  // namespace dspark::cli
