// dspark train-lm: pre-trains a Llama-architecture model from scratch on a text corpus with
// a given tokenizer, reporting held-out loss and perplexity, and writes a standard GGUF
// (tokenizer embedded) with a resumable trainer state beside it.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/train_common.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "model/synth.h"
#include "train/lm_trainer.h"

namespace dspark::cli {

namespace {

struct TrainLmOptions {
  std::string out, corpus, heldout, tokenizer, name = "dspark", dtype = "f32";
  int layers = 4, dim = 256, heads = 8, kv_heads = 4, ffn = 768, context = 512;
  float rope_theta = 10000.0f;
  bool untied = false;
  int steps = 1000, batch = 16, seq_len = 256, save_every = 200, log_every = 10, eval_every = 200;
  AdamWConfig optim = [] {
    AdamWConfig c;
    c.lr = 1e-3f;
    return c;
  }();
  uint64_t seed = 1234;
  int threads = 0;
};

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot read");
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  if (path.ends_with(".gguf")) return Tokenizer::from_gguf(*GgufFile::open(path));
  return Tokenizer::from_hf_json(path);
}

void print_progress(const LmTrainProgress& p, bool tty) {
  if (tty) {
    char text[160];
    std::snprintf(text, sizeof text, "loss %.4f%s %.0f tok/s%s", p.loss,
                  p.heldout_loss >= 0 ? (" held-out " + std::to_string(p.heldout_loss).substr(0, 6) +
                                         " ppl " + std::to_string(p.heldout_perplexity).substr(0, 7))
                                            .c_str()
                                      : "",
                  p.tokens_per_second, p.checkpoint ? " saved" : "");
    print_progress_line(p.step, p.total_steps, text, p.eta_seconds);
    return;
  }
  nlohmann::json j = {{"stage", "train"},
                      {"step", p.step},
                      {"total_steps", p.total_steps},
                      {"loss", p.loss},
                      {"grad_norm", p.grad_norm},
                      {"lr", p.lr},
                      {"tokens_per_second", p.tokens_per_second},
                      {"tokens_seen", p.tokens_seen},
                      {"elapsed_seconds", p.elapsed_seconds},
                      {"eta_seconds", p.eta_seconds},
                      {"checkpoint", p.checkpoint}};
  if (p.heldout_loss >= 0) {
    j["heldout_loss"] = p.heldout_loss;
    j["heldout_perplexity"] = p.heldout_perplexity;
  }
  print_json_line(j);
}

void run_train_lm(const TrainLmOptions& o) {
  const bool tty = isatty(fileno(stderr));
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(o.tokenizer);
  LmTrainOptions t;
  t.out_dir = o.out;
  t.optim = o.optim;
  t.name = o.name;
  ModelConfig& c = t.config;
  c.arch = Arch::Llama;
  c.n_layers = o.layers;
  c.dim = o.dim;
  c.n_heads = o.heads;
  c.n_kv_heads = o.kv_heads;
  c.head_dim = o.heads > 0 ? o.dim / o.heads : 0;
  c.ffn_dim = o.ffn;
  c.vocab_size = tok->vocab_size();
  c.max_seq_len = o.context;
  c.rope_theta = o.rope_theta;
  c.norm_eps = 1e-5f;
  c.tied_embeddings = !o.untied;
  if (o.heads <= 0 || o.dim % o.heads != 0) fail("--dim ", o.dim, " must be a multiple of --heads ", o.heads);
  t.steps = o.steps;
  t.batch = o.batch;
  t.seq_len = o.seq_len;
  t.seed = o.seed;
  t.save_every = o.save_every;
  t.log_every = o.log_every;
  t.eval_every = o.eval_every;
  const std::optional<DType> type = parse_weight_type(o.dtype);
  if (!type) fail("--dtype ", o.dtype, ": f32, f16, bf16 or q8_0 expected");
  t.save_type = *type;

  ThreadPool pool(o.threads);
  const bool bos = tok->add_bos_default();
  std::vector<int> train = tok->encode(read_text(o.corpus), bos);
  std::vector<int> heldout = o.heldout.empty() ? std::vector<int>{} : tok->encode(read_text(o.heldout), bos);
  LmTrainer trainer(t, std::move(train), std::move(heldout), *tok, pool);
  std::fprintf(
      stderr,
      "training a llama model: %d layers, dim %d, %d/%d heads, ffn %d, vocabulary %d, context %d; %lld "
      "parameters; %d steps of %d x %d tokens\n",
      c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.ffn_dim, c.vocab_size, c.max_seq_len,
      (long long)trainer.model().parameter_count(), t.steps, t.batch, t.seq_len);
  if (trainer.start_step() > 0)
    std::fprintf(stderr, "resumed at step %d of %d from %s\n", trainer.start_step(), t.steps, o.out.c_str());
  trainer.run([tty](const LmTrainProgress& p) { print_progress(p, tty); });
  std::fprintf(stderr, "wrote %s/model.gguf\n", o.out.c_str());
}

}  // namespace

void add_train_lm(CLI::App& app) {
  auto o = std::make_shared<TrainLmOptions>();
  CLI::App* cmd =
      app.add_subcommand("train-lm", "Pre-train a Llama-architecture model from scratch on a text corpus");
  cmd->add_option("-o,--out", o->out, "Output folder: model.gguf and the trainer state")->required();
  cmd->add_option("--corpus", o->corpus, "Training text")->required();
  cmd->add_option("--heldout", o->heldout, "Held-out text for the loss / perplexity report");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer: a GGUF (e.g. from train-tokenizer) or tokenizer.json")
      ->required();
  cmd->add_option("--layers", o->layers, "Decoder layers (default 4)");
  cmd->add_option("--dim", o->dim, "Hidden size (default 256)");
  cmd->add_option("--heads", o->heads, "Attention heads (default 8)");
  cmd->add_option("--kv-heads", o->kv_heads, "Key/value heads (default 4)");
  cmd->add_option("--ffn", o->ffn, "SwiGLU hidden size (default 768)");
  cmd->add_option("--context", o->context, "Context length (default 512)");
  cmd->add_option("--rope-theta", o->rope_theta, "RoPE base (default 10000)");
  cmd->add_flag("--untied", o->untied, "A separate output matrix (default: tied to the embedding)");
  cmd->add_option("--steps", o->steps, "Optimiser steps (default 1000)");
  cmd->add_option("--batch", o->batch, "Sequences per step (default 16)");
  cmd->add_option("--seq-len", o->seq_len, "Tokens per sequence (default 256)");
  add_optimizer_flags(cmd, o->optim);
  cmd->add_option("--seed", o->seed, "Seed of the initialisation and the sampled windows (default 1234)");
  cmd->add_option("--save-every", o->save_every, "Steps between checkpoints (default 200)");
  cmd->add_option("--log-every", o->log_every, "Steps between progress reports (default 10)");
  cmd->add_option("--eval-every", o->eval_every, "Steps between held-out evaluations (default 200)");
  cmd->add_option("--dtype", o->dtype, "Weight type of model.gguf: f32 (default), f16, bf16, q8_0");
  cmd->add_option("--name", o->name, "general.name of the GGUF (default dspark)");
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
  cmd->callback([o] { run_train_lm(*o); });
}

}  // namespace dspark::cli
