#include "kernels/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace dspark {

int argmax(const float* logits, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

void apply_repeat_penalty(float* logits, int n, const int* recent, int n_recent, float penalty) {
  if (penalty == 1.0f) return;
  std::vector<bool> seen(size_t(n), false);
  for (int i = 0; i < n_recent; ++i) {
    const int t = recent[i];
    if (t < 0 || t >= n || seen[size_t(t)]) continue;
    seen[size_t(t)] = true;
    logits[t] = logits[t] > 0 ? logits[t] / penalty : logits[t] * penalty;
  }
}

void sampling_distribution(const float* logits, int n, const SamplingParams& p, TokenProbs& out) {
  const float inv_t = 1.0f / p.temperature;
  auto& ids = out.ids;
  auto& probs = out.probs;
  // Sort by logit descending, index ascending on ties, so the result is deterministic.
  auto by_logit = [logits](int a, int b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  size_t keep;
  if (p.top_k > 0 && p.top_k < n) {
    keep = size_t(p.top_k);
    ids.resize(size_t(n));
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + std::ptrdiff_t(keep), ids.end(), by_logit);
    ids.resize(keep);
    probs.resize(keep);
    const float mx = logits[ids[0]] * inv_t;
    double sum = 0;
    for (size_t i = 0; i < keep; ++i) sum += probs[i] = std::exp(logits[ids[i]] * inv_t - mx);
    for (auto& q : probs) q = float(q / sum);
  } else {
    // Every token: no sort of the whole vocabulary unless a cut needs the order.
    float mx = logits[0];
    for (int i = 1; i < n; ++i) mx = std::max(mx, logits[i]);
    mx *= inv_t;
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += std::exp(logits[i] * inv_t - mx);
    ids.clear();
    if (p.min_p > 0.0f) {
      // Only tokens within min_p of the most likely one can survive (a top-p cut keeps a
      // prefix of the same order, so it never needs the others).
      for (int i = 0; i < n; ++i)
        if (std::exp(logits[i] * inv_t - mx) >= p.min_p) ids.push_back(i);
      std::sort(ids.begin(), ids.end(), by_logit);
    } else {
      ids.resize(size_t(n));
      std::iota(ids.begin(), ids.end(), 0);
      if (p.top_p < 1.0f) std::sort(ids.begin(), ids.end(), by_logit);
    }
    keep = ids.size();
    probs.resize(keep);
    for (size_t i = 0; i < keep; ++i) probs[i] = float(std::exp(logits[ids[i]] * inv_t - mx) / sum);
    if (p.min_p <= 0.0f && p.top_p >= 1.0f) return;  // no cut: every token, in index order
  }

  if (p.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
    double cum = 0;
    size_t i = 0;
    while (i < keep) {
      cum += probs[i++];
      if (cum >= p.top_p) break;
    }
    keep = i;
  }
  if (p.min_p > 0.0f) {
    const float floor_p = p.min_p * probs[0];
    size_t i = 1;
    while (i < keep && probs[i] >= floor_p) ++i;
    keep = i;
  }
  ids.resize(keep);
  probs.resize(keep);
  double kept = 0;
  for (float q : probs) kept += q;
  for (auto& q : probs) q = float(q / kept);
}

int sample_from(const TokenProbs& d, float u) {
  float cum = 0;
  for (size_t i = 0; i < d.ids.size(); ++i) {
    cum += d.probs[i];
    if (u < cum) return d.ids[i];
  }
  return d.ids.back();  // rounding left u just above the total
}

namespace {

void penalize_recent(float* logits, int n, const SamplingParams& p, const int* history, int n_history) {
  if (p.repeat_penalty == 1.0f || n_history <= 0) return;
  const int k = std::min(n_history, p.repeat_last_n);
  apply_repeat_penalty(logits, n, history + (n_history - k), k, p.repeat_penalty);
}

}  // namespace

void next_token_distribution(float* logits, int n, const SamplingParams& p, const int* history, int n_history,
                             TokenProbs& out) {
  penalize_recent(logits, n, p, history, n_history);
  if (p.greedy()) {
    out.ids.assign(1, argmax(logits, n));
    out.probs.assign(1, 1.0f);
    return;
  }
  sampling_distribution(logits, n, p, out);
}

int draw_from(const TokenProbs& d, Rng& rng) {
  return d.ids.size() == 1 ? d.ids[0] : sample_from(d, rng.uniform());
}

int Sampler::sample(float* logits, int n, const std::vector<int>& history) {
  penalize_recent(logits, n, params_, history.data(), int(history.size()));
  if (params_.greedy()) return argmax(logits, n);
  sampling_distribution(logits, n, params_, scratch_);
  return sample_from(scratch_, rng_.uniform());
}

}  // namespace dspark
