#include "train/lm_trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "formats/gguf.h"
#include "model/gguf_export.h"
#include "train/train_state.h"

namespace dspark {

namespace fs = std::filesystem;

namespace {

AdamWConfig with_steps(AdamWConfig c, int steps) {
  c.total_steps = steps;
  return c;
}

// FNV-1a 64 of the token ids: identifies the data a run was started on.
std::string token_hash(const std::vector<int>& tokens) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int t : tokens)
    for (int i = 0; i < 4; ++i) {
      h ^= uint64_t((uint32_t(t) >> (8 * i)) & 0xff);
      h *= 0x100000001b3ull;
    }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

}  // namespace

LmTrainer::LmTrainer(const LmTrainOptions& options, std::vector<int> train, std::vector<int> heldout,
                     const Tokenizer& tokenizer, ThreadPool& pool)
    : o_(options),
      train_(std::move(train)),
      heldout_(std::move(heldout)),
      tokenizer_(tokenizer),
      pool_(pool),
      model_(options.config),
      optim_(model_.params(), with_steps(options.optim, options.steps)) {
  if (o_.steps < 1) fail("train-lm: --steps must be at least 1");
  if (o_.batch < 1) fail("train-lm: --batch must be at least 1");
  if (o_.seq_len < 1 || o_.seq_len > o_.config.max_seq_len)
    fail("train-lm: --seq-len ", o_.seq_len, " outside 1..", o_.config.max_seq_len, " (the context)");
  if (int64_t(train_.size()) < int64_t(o_.seq_len) + 1)
    fail("train-lm: the training text has ", train_.size(), " tokens, fewer than one window of ",
         o_.seq_len + 1);
  if (tokenizer.vocab_size() != o_.config.vocab_size)
    fail("train-lm: the tokenizer has ", tokenizer.vocab_size(), " tokens, the model ", o_.config.vocab_size);
  if (o_.save_type != DType::F32 && o_.save_type != DType::F16 && o_.save_type != DType::BF16 &&
      o_.save_type != DType::Q8_0)
    fail("train-lm: checkpoint type ", dtype_name(o_.save_type), ": F32, F16, BF16 or Q8_0 expected");
  model_.init(o_.seed);
  const int step = resume_train_state(o_.out_dir, options_json(), model_.params(), optim_, o_.steps);
  if (step >= 0) {
    start_step_ = step;
    return;
  }
  std::error_code ec;
  fs::create_directories(o_.out_dir, ec);
  if (ec) fail(o_.out_dir, ": cannot create the folder: ", ec.message());
}

std::string LmTrainer::options_json() const {
  const ModelConfig& c = o_.config;
  nlohmann::json j = {
      {"format", "dspark-trainer-state"},
      {"version", 1},
      {"model",
       {{"layers", c.n_layers},
        {"dim", c.dim},
        {"heads", c.n_heads},
        {"kv_heads", c.n_kv_heads},
        {"head_dim", c.head_dim},
        {"ffn", c.ffn_dim},
        {"vocab", c.vocab_size},
        {"context", c.max_seq_len},
        {"rope_theta", c.rope_theta},
        {"norm_eps", c.norm_eps},
        {"tied", c.tied_embeddings}}},
      {"data", {{"train_tokens", train_.size()}, {"train_hash", token_hash(train_)}}},
      {"optimizer", adamw_json(optim_.config())},
      {"batch", o_.batch},
      {"seq_len", o_.seq_len},
      {"seed", o_.seed},
  };
  return j.dump(2) + "\n";
}

double LmTrainer::heldout_loss() {
  const int64_t window = int64_t(o_.seq_len) + 1;
  const int64_t n = std::min<int64_t>(o_.eval_windows, int64_t(heldout_.size()) / window);
  if (n <= 0) return -1;
  double sum = 0;
  for (int64_t w = 0; w < n; ++w) sum += model_.loss(heldout_.data() + w * window, 1, o_.seq_len, pool_);
  return sum / double(n);
}

void LmTrainer::run(const std::function<void(const LmTrainProgress&)>& on_progress) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const int64_t window = int64_t(o_.seq_len) + 1, starts = int64_t(train_.size()) - window + 1;
  std::vector<int> batch(size_t(o_.batch) * size_t(window));
  double window_loss = 0;
  int window_steps = 0;
  int64_t tokens = 0;
  for (int step = start_step_; step < o_.steps; ++step) {
    // The windows of a step depend on the seed and the step only.
    Rng rng(mix_seed(o_.seed, uint64_t(step)));
    for (int b = 0; b < o_.batch; ++b) {
      const int64_t at = int64_t(rng.next_u64() % uint64_t(starts));
      std::copy_n(train_.begin() + at, window, batch.begin() + ptrdiff_t(b) * window);
    }
    model_.zero_grad();
    window_loss += model_.forward_backward(batch.data(), o_.batch, o_.seq_len, pool_);
    ++window_steps;
    tokens += int64_t(o_.batch) * o_.seq_len;
    const double grad_norm = optim_.step(step);
    const int done = step + 1;
    const bool last = done == o_.steps;
    const bool checkpoint = done % std::max(1, o_.save_every) == 0 || last;
    const bool evaluate = done % std::max(1, o_.eval_every) == 0 || last;
    if (checkpoint) save(done);
    if (on_progress && (done % std::max(1, o_.log_every) == 0 || checkpoint || evaluate)) {
      LmTrainProgress p;
      p.step = done;
      p.total_steps = o_.steps;
      p.loss = window_loss / std::max(1, window_steps);
      if (evaluate) {
        p.heldout_loss = heldout_loss();
        p.heldout_perplexity = p.heldout_loss >= 0 ? std::exp(p.heldout_loss) : -1;
      }
      p.grad_norm = grad_norm;
      p.lr = scheduled_lr(optim_.config(), step);
      p.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();
      p.tokens_per_second = p.elapsed_seconds > 0 ? double(tokens) / p.elapsed_seconds : 0;
      p.eta_seconds = p.elapsed_seconds / (done - start_step_) * (o_.steps - done);
      p.tokens_seen = int64_t(done) * o_.batch * o_.seq_len;
      p.checkpoint = checkpoint;
      on_progress(p);
      window_loss = 0;
      window_steps = 0;
    }
  }
}

void LmTrainer::save(int steps_done) {
  const fs::path dir(o_.out_dir), tmp = dir / ".checkpoint.partial";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fail(tmp.string(), ": cannot create the folder: ", ec.message());
  GenerationTokens special;
  special.bos = tokenizer_.bos_id();
  if (tokenizer_.eos_id() >= 0) special.eos = {tokenizer_.eos_id()};
  const Model view = model_.model_view(special);
  GgufExportOptions g;
  g.weight_type = o_.save_type;
  g.name = o_.name;
  g.add_tokenizer = [this](GgufWriter& w) { tokenizer_.write_gguf(w); };
  export_gguf(view, (tmp / "model.gguf").string(), g);
  write_train_state(tmp.string(), model_.params(), optim_, steps_done, options_json());
  for (const char* name : {kTrainOptionsFile, "model.gguf", kTrainStateFile})
    move_into_place((tmp / name).string(), (dir / name).string());
  fs::remove_all(tmp, ec);
}

}  // namespace dspark
