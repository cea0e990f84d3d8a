#include "train/draft_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "kernels/quantize.h"
#include "model/weight_storage.h"
#include "train/train_state.h"

namespace dspark {

namespace fs = std::filesystem;

namespace {

// Optimiser steps per epoch: the epoch is cut to a multiple of the batch (DSPARK.md 6).
int steps_per_epoch(int64_t samples, int batch) { return int(std::max<int64_t>(1, samples / batch)); }

AdamWConfig optimiser_config(const DraftTrainOptions& o, int64_t samples) {
  AdamWConfig c = o.optim;
  const int batch = int(std::min<int64_t>(o.batch, std::max<int64_t>(samples, 1)));
  c.total_steps = o.steps > 0 ? o.steps : std::max(1, o.epochs) * steps_per_epoch(samples, batch);
  return c;
}

}  // namespace

DraftTrainer::DraftTrainer(const DraftTrainOptions& options, const TargetCacheReader& cache,
                           const Model& target, ThreadPool& pool)
    : o_(options),
      cache_(cache),
      pool_(pool),
      model_(options.config, target),
      optim_(model_.params(), optimiser_config(options, cache.size())) {
  const TargetCacheSpec& spec = cache.spec();
  if (cache.size() == 0) fail("target cache: no samples to train on");
  if (spec.taps != o_.config.target_layer_ids) {
    std::ostringstream a, b;
    for (int t : spec.taps) a << t << ' ';
    for (int t : o_.config.target_layer_ids) b << t << ' ';
    fail("target cache taps layers [ ", a.str(), "] but the drafter reads [ ", b.str(), "]");
  }
  if (spec.dim != o_.config.dim() || spec.vocab != o_.config.vocab_size())
    fail("target cache: dim ", spec.dim, ", vocabulary ", spec.vocab, "; the drafter has dim ",
         o_.config.dim(), ", vocabulary ", o_.config.vocab_size());
  if (spec.dim != target.config.dim || spec.vocab != target.config.vocab_size)
    fail("target cache was made with another target (dim ", spec.dim, ", vocabulary ", spec.vocab, ")");
  if (o_.batch < 1) fail("--batch must be at least 1");
  if (o_.max_anchors < 1) fail("--anchors must be at least 1");
  if (o_.save_type != DType::F32 && o_.save_type != DType::BF16)
    fail("checkpoint type ", dtype_name(o_.save_type), ": F32 or BF16 expected");
  batch_ = int(std::min<int64_t>(o_.batch, cache.size()));
  steps_per_epoch_ = steps_per_epoch(cache.size(), batch_);
  total_steps_ = optim_.config().total_steps;
  model_.init(o_.seed);
  if (try_resume()) return;
  std::error_code ec;
  fs::create_directories(o_.out_dir, ec);
  if (ec) fail(o_.out_dir, ": cannot create the folder: ", ec.message());
}

std::string DraftTrainer::options_json() const {
  const LossWeights& lw = o_.loss.weights;
  nlohmann::json j = {
      {"format", "dspark-trainer-state"},
      {"version", 1},
      {"drafter", nlohmann::json::parse(dspark_config_json(o_.config))},
      {"cache",
       {{"fingerprint", cache_.spec().fingerprint}, {"samples", cache_.size()}, {"tokens", cache_.tokens()}}},
      {"loss", {{"ce", lw.ce}, {"l1", lw.l1}, {"conf", lw.conf}, {"decay_gamma", o_.loss.decay_gamma}}},
      {"optimizer", adamw_json(optim_.config())},
      {"batch", batch_},
      {"max_anchors", o_.max_anchors},
      {"seed", o_.seed},
  };
  return j.dump(2) + "\n";
}

std::vector<int64_t> DraftTrainer::step_samples(int step) const {
  const int epoch = step / steps_per_epoch_, within = step % steps_per_epoch_;
  std::vector<int64_t> order(size_t(cache_.size()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = int64_t(i);
  Rng rng(o_.seed + uint64_t(epoch));  // the reference shuffles with seed 42 + epoch
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[size_t(rng.next_u64() % i)]);
  return std::vector<int64_t>(order.begin() + ptrdiff_t(within) * batch_,
                              order.begin() + ptrdiff_t(within + 1) * batch_);
}

void DraftTrainer::run(const std::function<void(const DraftTrainProgress&)>& on_progress) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  int64_t tokens = 0;
  LossTerms window{};
  int window_steps = 0;
  TargetSample sample;
  for (int step = start_step_; step < total_steps_; ++step) {
    model_.zero_grad();
    LossTerms sum{};
    int counted = 0;
    const std::vector<int64_t> ids = step_samples(step);
    for (size_t b = 0; b < ids.size(); ++b) {
      cache_.read(ids[b], sample);
      const TrainSequence seq{sample.size(), sample.tokens.data(), sample.loss_mask.data(),
                              sample.taps.data(), sample.final_hidden.data()};
      Rng anchor_rng(mix_seed(o_.seed, uint64_t(step) * uint64_t(batch_) + b));
      const std::vector<int> anchors = sample_anchors(seq, o_.max_anchors, anchor_rng);
      tokens += seq.length;
      if (anchors.empty()) continue;
      const LossTerms t = model_.forward_backward(seq, anchors, o_.loss, pool_);
      sum.ce += t.ce;
      sum.l1 += t.l1;
      sum.conf += t.conf;
      sum.total += t.total;
      ++counted;
    }
    if (counted > 0) {
      // Each sequence's loss is its own weighted mean; the step's loss is their mean.
      const float inv = 1.0f / float(counted);
      for (Param* p : model_.params())
        for (float& g : p->grad) g *= inv;
      window.ce += sum.ce / counted;
      window.l1 += sum.l1 / counted;
      window.conf += sum.conf / counted;
      window.total += sum.total / counted;
      ++window_steps;
    }
    const double grad_norm = optim_.step(step);
    const int done = step + 1;
    const bool checkpoint = done % std::max(1, o_.save_every) == 0 || done == total_steps_;
    if (checkpoint) save(done);
    if (on_progress && (done % std::max(1, o_.log_every) == 0 || checkpoint || done == total_steps_)) {
      DraftTrainProgress p;
      p.step = done;
      p.total_steps = total_steps_;
      p.epoch = step / steps_per_epoch_;
      const double n = std::max(1, window_steps);
      p.loss = LossTerms{window.ce / n, window.l1 / n, window.conf / n, window.total / n};
      p.grad_norm = grad_norm;
      p.lr = scheduled_lr(optim_.config(), step);
      p.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();
      p.tokens_per_second = p.elapsed_seconds > 0 ? double(tokens) / p.elapsed_seconds : 0;
      const int run_steps = done - start_step_;
      p.eta_seconds = p.elapsed_seconds / run_steps * (total_steps_ - done);
      p.checkpoint = checkpoint;
      on_progress(p);
      window = LossTerms{};
      window_steps = 0;
    }
  }
}

void DraftTrainer::save(int steps_done) {
  const fs::path dir(o_.out_dir), tmp = dir / ".checkpoint.partial";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  // The drafter in the DeepSpec layout, converted to the checkpoint type.
  DSparkWeights w = model_.weights_view();
  WeightStorage storage;
  if (o_.save_type != DType::F32) {
    std::vector<TensorView*> views{&w.fc,         &w.hidden_norm, &w.norm,           &w.markov_w1,
                                   &w.markov_w2,  &w.gate_proj,   &w.gate_bias,      &w.joint_proj,
                                   &w.joint_bias, &w.confidence,  &w.confidence_bias};
    for (LayerWeights& l : w.layers)
      for (TensorView* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.q_norm, &l.k_norm, &l.ffn_norm,
                            &l.w_gate, &l.w_up, &l.w_down})
        views.push_back(t);
    for (TensorView* t : views) {
      if (t->empty() || t->shape.size() != 2) continue;  // norms and biases stay fp32 (as the loader wants)
      std::vector<uint8_t> bytes(size_t(t->rows()) * dtype_row_bytes(o_.save_type, t->cols()));
      for (int64_t r = 0; r < t->rows(); ++r)
        quantize_row(o_.save_type, static_cast<const float*>(t->data) + r * t->cols(), t->cols(),
                     bytes.data() + size_t(r) * dtype_row_bytes(o_.save_type, t->cols()));
      *t = storage.own(t->name, o_.save_type, t->shape, std::move(bytes));
    }
  }
  write_dspark_checkpoint(tmp.string(), o_.config, w);

  write_train_state(tmp.string(), model_.params(), optim_, steps_done, options_json());

  for (const char* name : {kTrainOptionsFile, "config.json", "model.safetensors", kTrainStateFile})
    move_into_place((tmp / name).string(), (dir / name).string());
  fs::remove_all(tmp, ec);
}

bool DraftTrainer::try_resume() {
  const int step = resume_train_state(o_.out_dir, options_json(), model_.params(), optim_, total_steps_);
  if (step < 0) return false;
  start_step_ = step;
  return true;
}

}  // namespace dspark
