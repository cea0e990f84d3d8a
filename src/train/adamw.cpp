#include "train/adamw.h"

#include <algorithm>
#include <cmath>

namespace dspark {

float scheduled_lr(const AdamWConfig& c, int step) {
  const int total = std::max(1, c.total_steps);
  const int warmup = std::max(1, int(std::lround(double(c.warmup_fraction) * total)));
  if (step < warmup) return c.lr * float(step + 1) / float(warmup);
  const double progress = double(step - warmup) / double(std::max(1, total - warmup));
  return float(c.lr * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress))));
}

AdamW::AdamW(std::vector<Param*> params, const AdamWConfig& config)
    : params_(std::move(params)), config_(config) {
  for (const Param* p : params_) {
    m_.emplace_back(p->value.size(), 0.0f);
    v_.emplace_back(p->value.size(), 0.0f);
  }
}

double AdamW::step(int step_index) {
  double sq = 0;
  for (const Param* p : params_)
    for (float g : p->grad) sq += double(g) * g;
  const double norm = std::sqrt(sq);
  const float clip =
      config_.clip_norm > 0 && norm > config_.clip_norm ? float(config_.clip_norm / (norm + 1e-6)) : 1.0f;
  const float lr = scheduled_lr(config_, step_index);
  ++updates_;
  const float bc1 = 1.0f - std::pow(config_.beta1, float(updates_));
  const float bc2 = 1.0f - std::pow(config_.beta2, float(updates_));
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& p = *params_[i];
    std::vector<float>& m = m_[i];
    std::vector<float>& v = v_[i];
    for (size_t j = 0; j < p.value.size(); ++j) {
      const float g = p.grad[j] * clip;
      m[j] = config_.beta1 * m[j] + (1 - config_.beta1) * g;
      v[j] = config_.beta2 * v[j] + (1 - config_.beta2) * g * g;
      const float update = (m[j] / bc1) / (std::sqrt(v[j] / bc2) + config_.eps);
      p.value[j] -= lr * (update + config_.weight_decay * p.value[j]);
    }
  }
  return norm;
}

}  // namespace dspark
