// The drafter training loop (DSPARK.md 6): epochs over a target cache in a seeded order,
// anchors sampled per sequence, gradients of `batch` sequences averaged per optimiser step,
// AdamW with warm-up, cosine decay and clipping; checkpoints in the DeepSpec layout that
// decoding loads, plus the optimiser state, so an interrupted run resumes where it was.
//
// An output folder holds:
//   config.json, model.safetensors   the drafter (DSPARK.md 3), weights in the chosen type;
//                                    no embedding / LM head: decoding takes the target's
//   trainer_state.safetensors        fp32 parameters, AdamW moments ("<name>.exp_avg",
//                                    "<name>.exp_avg_sq") and, in its metadata, the step
//   trainer_state.json               the options of the run (checked when resuming)
// Every file is written beside its final name and renamed into place; the state file goes
// last, so a crash leaves either the previous checkpoint or the new one.
// A resumed run gives the same parameters as an uninterrupted one: the data order and the
// anchors depend only on the seed, the epoch and the step.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "train/adamw.h"
#include "train/draft_train_model.h"
#include "train/target_cache.h"

namespace dspark {

struct DraftTrainOptions {
  std::string out_dir;
  DSparkConfig config;  // the drafter to train
  DraftLossConfig loss;
  AdamWConfig optim;              // total_steps is set from epochs / steps
  int epochs = 10;                // passes over the cache (ignored when steps > 0)
  int steps = 0;                  // optimiser steps; 0: epochs * (samples / batch)
  int batch = 8;                  // sequences per optimiser step
  int max_anchors = 512;          // blocks per sequence
  uint64_t seed = 42;             // initialisation, data order (seed + epoch) and anchors
  int save_every = 100;           // steps between checkpoints (and at the end)
  int log_every = 10;             // steps between progress reports
  DType save_type = DType::BF16;  // F32 or BF16 (the reference checkpoints are BF16)
};

struct DraftTrainProgress {
  int step = 0, total_steps = 0, epoch = 0;  // steps done
  LossTerms loss;                            // mean over the steps since the last report
  double grad_norm = 0;                      // of the last step, before clipping
  float lr = 0;                              // of the last step
  double tokens_per_second = 0;              // sequence tokens consumed per second, this run
  double elapsed_seconds = 0, eta_seconds = 0;
  bool checkpoint = false;  // a checkpoint was written at this step
};

class DraftTrainer {
 public:
  // Checks the options against the cache and the target (taps, shapes, vocabulary); Error
  // naming the mismatch. Resumes from out_dir when it holds a trainer state of the same run.
  DraftTrainer(const DraftTrainOptions& options, const TargetCacheReader& cache, const Model& target,
               ThreadPool& pool);

  int total_steps() const { return total_steps_; }
  int start_step() const { return start_step_; }  // > 0 when resumed
  // Trains to the end, calling on_progress every log_every steps, at checkpoints and at the end.
  void run(const std::function<void(const DraftTrainProgress&)>& on_progress = {});

  DraftTrainModel& model() { return model_; }

 private:
  void save(int steps_done);
  bool try_resume();
  std::string options_json() const;
  // The samples of optimiser step `step`, in order.
  std::vector<int64_t> step_samples(int step) const;

  DraftTrainOptions o_;
  const TargetCacheReader& cache_;
  ThreadPool& pool_;
  DraftTrainModel model_;
  AdamW optim_;
  int steps_per_epoch_ = 0, total_steps_ = 0, start_step_ = 0, batch_ = 0;
};

}  // namespace dspark
