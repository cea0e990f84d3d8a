// AdamW with the schedule of DSPARK.md 6: linear warm-up, then cosine decay to 0, stepped
// once per optimiser step, and clipping of the global gradient norm.
#pragma once

#include <vector>

#include "train/param.h"

namespace dspark {

struct AdamWConfig {
  float lr = 6e-4f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // PyTorch's defaults
  float weight_decay = 0.0f;
  float clip_norm = 1.0f;  // <= 0: no clipping
  float warmup_fraction = 0.04f;
  int total_steps = 1;
};

// Learning rate at optimiser step `step` (0-based) of config.total_steps.
float scheduled_lr(const AdamWConfig& config, int step);

class AdamW {
 public:
  AdamW(std::vector<Param*> params, const AdamWConfig& config);

  // One update from the parameters' current gradients (which it leaves in place). Returns the
  // global gradient norm before clipping.
  double step(int step_index);

  const AdamWConfig& config() const { return config_; }
  // First and second moments, in the order of the parameters given (for saving and resuming).
  std::vector<std::vector<float>>& first_moments() { return m_; }
  std::vector<std::vector<float>>& second_moments() { return v_; }
  // The number of updates the moments have seen (bias correction); set when resuming.
  int updates() const { return updates_; }
  void set_updates(int n) { updates_ = n; }

 private:
  std::vector<Param*> params_;
  AdamWConfig config_;
  std::vector<std::vector<float>> m_, v_;
  int updates_ = 0;
};

}  // namespace dspark
