// Pre-training a language model from scratch on a tokenized corpus: random windows of the
// training tokens (seeded per step, so a resumed run repeats its steps), AdamW with warm-up,
// cosine decay and clipping, a held-out loss / perplexity report, and checkpoints:
//   OUT/model.gguf                 the model as a standard GGUF (llama.* keys, tokenizer
//                                  embedded), weights in the chosen type
//   OUT/trainer_state.safetensors  fp32 weights and AdamW moments (train_state.h)
//   OUT/trainer_state.json         the run's options
// written beside their final names and renamed into place.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "tokenizer/tokenizer.h"
#include "train/adamw.h"
#include "train/lm_train_model.h"

namespace dspark {

struct LmTrainOptions {
  std::string out_dir;
  std::string name = "dspark";  // general.name of the GGUF
  ModelConfig config;
  AdamWConfig optim;     // total_steps = steps
  int steps = 1000;      // optimiser steps
  int batch = 16;        // sequences per step
  int seq_len = 256;     // tokens per sequence (predicting the next one at each)
  uint64_t seed = 1234;  // initialisation and window sampling
  int save_every = 200;
  int log_every = 10;
  int eval_every = 200;   // steps between held-out evaluations (and at the end)
  int eval_windows = 64;  // held-out windows of seq_len tokens evaluated (at most)
  DType save_type = DType::F32;
};

struct LmTrainProgress {
  int step = 0, total_steps = 0;
  double loss = 0;           // mean training loss since the last report (nats/token)
  double heldout_loss = -1;  // < 0: not evaluated at this step
  double heldout_perplexity = -1;
  double grad_norm = 0;
  float lr = 0;
  double tokens_per_second = 0;  // training tokens per second, this run
  double elapsed_seconds = 0, eta_seconds = 0;
  int64_t tokens_seen = 0;  // training tokens over the whole run, earlier sessions included
  bool checkpoint = false;
};

class LmTrainer {
 public:
  // train / heldout: the tokenized corpus and held-out text (heldout may be empty). Error
  // when the training text is shorter than one window or options do not fit. Resumes from
  // out_dir when it holds the state of the same run.
  LmTrainer(const LmTrainOptions& options, std::vector<int> train, std::vector<int> heldout,
            const Tokenizer& tokenizer, ThreadPool& pool);

  int total_steps() const { return o_.steps; }
  int start_step() const { return start_step_; }
  LmTrainModel& model() { return model_; }

  void run(const std::function<void(const LmTrainProgress&)>& on_progress = {});
  // Mean cross-entropy over up to eval_windows consecutive windows of the held-out tokens;
  // -1 without held-out text.
  double heldout_loss();

 private:
  void save(int steps_done);
  std::string options_json() const;

  LmTrainOptions o_;
  std::vector<int> train_, heldout_;
  const Tokenizer& tokenizer_;
  ThreadPool& pool_;
  LmTrainModel model_;
  AdamW optim_;
  int start_step_ = 0;
};

}  // namespace dspark
