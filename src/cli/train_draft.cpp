// dspark train-draft: builds (or continues) the target cache from prompts or a corpus, then
// trains a DSpark or DFlash drafter on it and writes checkpoints in the DeepSpec layout.
// Progress: a bar on a terminal, one JSON object per line otherwise (both on stderr).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/train_common.h"
#include "core/error.h"
#include "draft/dspark_synth.h"
#include "engine/prompt_file.h"
#include "model/load.h"
#include "train/draft_trainer.h"
#include "train/target_cache_builder.h"

namespace dspark::cli {

namespace {

struct TrainDraftOptions {
  std::string model, out, prompts, corpus, cache;
  bool cache_only = false;
  int threads = 0;
  // Target cache.
  int max_new = 256, samples_per_prompt = 1, seq_len = 256;
  float gen_temp = 0.7f, gen_top_p = 0.8f;
  int gen_top_k = 20;
  std::string cache_dtype = "bf16";
  uint64_t cache_seed = 0;
  // Drafter.
  std::string kind = "dspark", markov_head = "vanilla";
  int layers = 1, block = 7, markov_rank = 32, mask_token = -1;
  bool no_confidence = false;
  std::vector<int> taps;
  // Training.
  int epochs = 10, steps = 0, batch = 8, anchors = 512, save_every = 100, log_every = 10;
  AdamWConfig optim;  // --lr (default 6e-4, DSPARK.md 6), --warmup, --clip, --weight-decay
  float ce_weight = -1, l1_weight = -1, conf_weight = -1;  // -1: the kind's default
  uint64_t seed = 42;
  std::string dtype = "bf16";
};

MarkovHead parse_markov_head(const std::string& s) {
  if (s == "vanilla") return MarkovHead::Vanilla;
  if (s == "gated") return MarkovHead::Gated;
  if (s == "rnn") return MarkovHead::Rnn;
  if (s == "none") return MarkovHead::None;
  fail("--markov-head ", s, ": vanilla, gated, rnn or none expected");
}

DSparkConfig drafter_config(const TrainDraftOptions& o, const ModelConfig& target) {
  if (o.kind != "dspark" && o.kind != "dflash") fail("--kind ", o.kind, ": dspark or dflash expected");
  const bool dflash = o.kind == "dflash";
  DSparkSynthOptions s;
  s.block_size = o.block;
  s.n_layers = o.layers;
  s.markov_head = dflash ? MarkovHead::None : parse_markov_head(o.markov_head);
  s.markov_rank = s.markov_head == MarkovHead::None ? 0 : o.markov_rank;
  s.confidence_head = !dflash && !o.no_confidence;
  // By default up to 5 of the layers 1 .. L-2 (synth_dspark_config spreads them).
  s.n_taps = o.taps.empty() ? std::clamp(target.n_layers - 2, 1, 5) : int(o.taps.size());
  if (o.block < 1) fail("--block must be at least 1");
  if (o.layers < 1) fail("--layers must be at least 1");
  DSparkConfig c = synth_dspark_config(target, s);
  if (!o.taps.empty()) c.target_layer_ids = o.taps;
  if (target.n_layers == 2 && o.taps.empty()) c.target_layer_ids = {0};
  if (o.mask_token >= 0) c.mask_token_id = o.mask_token;
  validate_dspark_config(c, "--taps / --mask-token");
  return c;
}

void print_cache_progress(const TargetCacheProgress& p, bool tty) {
  if (tty) {
    std::fprintf(stderr, "\rtarget cache: %lld/%lld items, %lld samples, %lld tokens, %.0f s   ",
                 (long long)p.items_done, (long long)p.items, (long long)p.samples, (long long)p.tokens,
                 p.seconds);
  } else {
    nlohmann::json j = {{"stage", "cache"},     {"items_done", p.items_done}, {"items", p.items},
                        {"samples", p.samples}, {"tokens", p.tokens},         {"loss_tokens", p.loss_tokens},
                        {"dropped", p.dropped}, {"seconds", p.seconds}};
    std::fprintf(stderr, "%s\n", j.dump().c_str());
  }
}

void build_cache(const TrainDraftOptions& o, const LoadedModel& lm, ThreadPool& pool, const DSparkConfig& c,
                 const std::string& cache_dir, bool tty) {
  TargetCacheOptions co;
  co.taps = c.target_layer_ids;
  co.dtype = parse_cache_dtype(o.cache_dtype, "--cache-dtype");
  co.max_new_tokens = o.max_new;
  co.samples_per_prompt = o.samples_per_prompt;
  co.sampling = reference_response_sampling();
  co.sampling.temperature = o.gen_temp;
  co.sampling.top_p = o.gen_top_p;
  co.sampling.top_k = o.gen_top_k;
  co.seed = o.cache_seed;
  co.seq_len = o.seq_len;
  TargetCacheCallbacks cb;
  cb.on_plan = [&](const TargetCachePlan& plan) {
    std::fprintf(stderr,
                 "target cache %s: %lld of %lld items to do, at most %.1f MiB more (%.1f MiB in all)%s\n",
                 cache_dir.c_str(), (long long)plan.items_left, (long long)plan.items,
                 double(plan.max_bytes) / (1 << 20), double(plan.max_total_bytes) / (1 << 20),
                 plan.resume.resumed ? ", resumed" : "");
  };
  int64_t last = -1;
  cb.on_progress = [&](const TargetCacheProgress& p) {
    if (tty || p.items_done == p.items || p.items_done - last >= 16) {
      print_cache_progress(p, tty);
      last = p.items_done;
    }
  };
  TargetCacheProgress done;
  if (!o.corpus.empty()) {
    std::ifstream f(o.corpus, std::ios::binary);
    if (!f) fail(o.corpus, ": cannot read the corpus");
    std::stringstream text;
    text << f.rdbuf();
    done = build_corpus_cache(lm, pool, text.str(), cache_dir, co, cb);
  } else {
    done = build_target_cache(lm, pool, read_prompt_file(o.prompts), cache_dir, co, cb);
  }
  if (tty) std::fprintf(stderr, "\n");
  std::fprintf(stderr, "target cache: %lld samples, %lld tokens (%lld with loss)\n", (long long)done.samples,
               (long long)done.tokens, (long long)done.loss_tokens);
}

void print_train_progress(const DraftTrainProgress& p, bool tty) {
  if (tty) {
    char text[160];
    std::snprintf(text, sizeof text, "loss %.4f (ce %.3f l1 %.3f conf %.3f) %.0f tok/s%s", p.loss.total,
                  p.loss.ce, p.loss.l1, p.loss.conf, p.tokens_per_second, p.checkpoint ? " saved" : "");
    print_progress_line(p.step, p.total_steps, text, p.eta_seconds);
    return;
  }
  print_json_line({{"stage", "train"},
                   {"step", p.step},
                   {"total_steps", p.total_steps},
                   {"epoch", p.epoch},
                   {"loss", p.loss.total},
                   {"ce", p.loss.ce},
                   {"l1", p.loss.l1},
                   {"conf", p.loss.conf},
                   {"grad_norm", p.grad_norm},
                   {"lr", p.lr},
                   {"tokens_per_second", p.tokens_per_second},
                   {"elapsed_seconds", p.elapsed_seconds},
                   {"eta_seconds", p.eta_seconds},
                   {"checkpoint", p.checkpoint}});
}

void run_train_draft(const TrainDraftOptions& o) {
  if (o.prompts.empty() == o.corpus.empty())
    fail("train-draft: give exactly one of --prompts FILE or --corpus FILE");
  const bool tty = isatty(fileno(stderr));
  ThreadPool pool(o.threads);
  const LoadedModel lm = load_model(model_path_or_default(o.model));
  const DSparkConfig config = drafter_config(o, lm.model->config);
  DraftTrainOptions t;
  t.out_dir = o.out;
  t.optim = o.optim;
  t.config = config;
  const bool dflash = o.kind == "dflash";
  // DeepSpec's DFlash baseline trains on cross-entropy alone; DSpark on all three terms.
  t.loss.weights.ce = o.ce_weight >= 0 ? o.ce_weight : (dflash ? 1.0f : 0.1f);
  t.loss.weights.l1 = o.l1_weight >= 0 ? o.l1_weight : (dflash ? 0.0f : 0.9f);
  t.loss.weights.conf = config.confidence_head ? (o.conf_weight >= 0 ? o.conf_weight : 1.0f) : 0.0f;
  t.epochs = o.epochs;
  t.steps = o.steps;
  t.batch = o.batch;
  t.max_anchors = o.anchors;
  t.seed = o.seed;
  t.save_every = o.save_every;
  t.log_every = o.log_every;
  if (o.dtype == "bf16")
    t.save_type = DType::BF16;
  else if (o.dtype == "f32")
    t.save_type = DType::F32;
  else
    fail("--dtype ", o.dtype, ": bf16 or f32 expected");

  const std::string cache_dir =
      o.cache.empty() ? (std::filesystem::path(o.out) / "target-cache").string() : o.cache;
  build_cache(o, lm, pool, config, cache_dir, tty);
  if (o.cache_only) return;

  const TargetCacheReader cache(cache_dir);
  DraftTrainer trainer(t, cache, *lm.model, pool);
  int64_t params = 0;
  for (Param* p : trainer.model().params()) params += p->size();
  std::fprintf(stderr, "training a %s drafter: %d layers, block %d, %s head (rank %d), confidence %s, taps [",
               o.kind.c_str(), config.backbone.n_layers, config.block_size,
               markov_head_name(config.markov_head), config.markov_rank,
               config.confidence_head ? "on" : "off");
  for (size_t i = 0; i < config.target_layer_ids.size(); ++i)
    std::fprintf(stderr, "%s%d", i ? ", " : "", config.target_layer_ids[i]);
  std::fprintf(stderr, "]; %lld trainable parameters; %d steps of %d sequences from %lld samples\n",
               (long long)params, trainer.total_steps(), std::min<int>(t.batch, int(cache.size())),
               (long long)cache.size());
  if (trainer.start_step() > 0)
    std::fprintf(stderr, "resumed at step %d of %d from %s\n", trainer.start_step(), trainer.total_steps(),
                 o.out.c_str());
  trainer.run([tty](const DraftTrainProgress& p) { print_train_progress(p, tty); });
  std::fprintf(stderr, "wrote %s (config.json, model.safetensors)\n", o.out.c_str());
}

}  // namespace

void add_train_draft(CLI::App& app) {
  auto o = std::make_shared<TrainDraftOptions>();
  CLI::App* cmd = app.add_subcommand("train-draft", "Train a DSpark (or DFlash) drafter for a target model");
  cmd->add_option("-m,--model", o->model, "Target model (default: the project's default model)");
  cmd->add_option("-o,--out", o->out, "Output folder: the drafter checkpoint and the trainer state")
      ->required();
  cmd->add_option(
      "--prompts", o->prompts,
      "Prompt file (one per line, \\n escapes, # comments): responses are regenerated by the target");
  cmd->add_option("--corpus", o->corpus,
                  "Plain text trained on as it is (cut into --seq-len token sequences)");
  cmd->add_option("--cache", o->cache, "Target cache folder (default: OUT/target-cache)");
  cmd->add_flag("--cache-only", o->cache_only, "Build the target cache and stop");
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
  cmd->add_option("--max-new", o->max_new, "Response tokens per prompt (default 256)");
  cmd->add_option("--samples-per-prompt", o->samples_per_prompt, "Responses per prompt (default 1)");
  cmd->add_option("--gen-temp", o->gen_temp, "Sampling temperature of the responses (default 0.7)");
  cmd->add_option("--gen-top-p", o->gen_top_p, "Top-p of the responses (default 0.8)");
  cmd->add_option("--gen-top-k", o->gen_top_k, "Top-k of the responses (default 20)");
  cmd->add_option("--cache-seed", o->cache_seed, "Seed of the responses (default 0)");
  cmd->add_option("--cache-dtype", o->cache_dtype, "Stored features: bf16 (default) or f32");
  cmd->add_option("--seq-len", o->seq_len, "Corpus sequence length in tokens (default 256)");
  cmd->add_option("--kind", o->kind, "dspark (Markov + confidence heads) or dflash (no heads, CE only)");
  cmd->add_option("--layers", o->layers, "Draft decoder layers (default 1)");
  cmd->add_option("--block", o->block, "Block size B: drafts per round (default 7)");
  cmd->add_option("--markov-head", o->markov_head, "vanilla (default), gated, rnn or none");
  cmd->add_option("--markov-rank", o->markov_rank, "Markov rank r (default 32)");
  cmd->add_flag("--no-confidence", o->no_confidence, "Train without a confidence head");
  cmd->add_option("--taps", o->taps, "Tapped target layers (default: up to 5 spread below the last layer)")
      ->delimiter(',');
  cmd->add_option("--mask-token", o->mask_token, "Mask token id (default: the last vocabulary entry)");
  cmd->add_option("--epochs", o->epochs, "Passes over the cache (default 10)");
  cmd->add_option("--steps", o->steps, "Optimiser steps (overrides --epochs)");
  cmd->add_option("--batch", o->batch, "Sequences per optimiser step (default 8)");
  cmd->add_option("--anchors", o->anchors, "Blocks per sequence (default 512)");
  add_optimizer_flags(cmd, o->optim);
  cmd->add_option("--ce-weight", o->ce_weight, "Cross-entropy weight (default 0.1; dflash 1)");
  cmd->add_option("--l1-weight", o->l1_weight, "L1(p_draft, p_target) weight (default 0.9; dflash 0)");
  cmd->add_option("--conf-weight", o->conf_weight, "Confidence BCE weight (default 1)");
  cmd->add_option("--seed", o->seed, "Seed of the initialisation, data order and anchors (default 42)");
  cmd->add_option("--save-every", o->save_every, "Steps between checkpoints (default 100)");
  cmd->add_option("--log-every", o->log_every, "Steps between progress reports (default 10)");
  cmd->add_option("--dtype", o->dtype, "Checkpoint weight type: bf16 (default) or f32");
  cmd->callback([o] { run_train_draft(*o); });
}

}  // namespace dspark::cli
