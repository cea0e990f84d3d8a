#include "spec/acceptance.h"

#include <algorithm>

namespace dspark {

float prob_of(const TokenProbs& d, int token) {
  for (size_t i = 0; i < d.ids.size(); ++i)
    if (d.ids[i] == token) return d.probs[i];
  return 0.0f;
}

namespace {

// A draw from max(p - q, 0) / sum; p itself when the residual has (numerically) no mass.
int draw_residual(const TokenProbs& p, const TokenProbs& q, Rng& rng, AcceptScratch& s) {
  int max_id = 0;
  for (int id : p.ids) max_id = std::max(max_id, id);
  for (int id : q.ids) max_id = std::max(max_id, id);
  if (s.dense.size() <= size_t(max_id)) s.dense.resize(size_t(max_id) + 1, 0.0f);
  for (size_t i = 0; i < q.ids.size(); ++i) s.dense[size_t(q.ids[i])] = q.probs[i];

  TokenProbs& r = s.residual;
  r.ids.clear();
  r.probs.clear();
  double sum = 0;
  for (size_t i = 0; i < p.ids.size(); ++i) {
    const float m = p.probs[i] - s.dense[size_t(p.ids[i])];
    if (m <= 0.0f) continue;
    r.ids.push_back(p.ids[i]);
    r.probs.push_back(m);
    sum += m;
  }
  for (int id : q.ids) s.dense[size_t(id)] = 0.0f;  // leave the scratch all zero
  if (sum <= 1e-8) return draw_from(p, rng);
  for (float& m : r.probs) m = float(m / sum);
  return draw_from(r, rng);
}

}  // namespace

Verdict accept_drafts(const int* drafts, const TokenProbs* q, const TokenProbs* p, int n, Rng& rng,
                      AcceptScratch& scratch) {
  Verdict v;
  for (int j = 0; j < n; ++j) {
    const float pd = prob_of(p[j], drafts[j]);
    const float qd = std::max(prob_of(q[j], drafts[j]), 1e-8f);
    // A sure accept (greedy match, or p >= q) draws nothing, so greedy decoding consumes no
    // random numbers.
    if (pd >= qd || (pd > 0.0f && rng.uniform() < pd / qd)) {
      ++v.accepted;
      continue;
    }
    v.next = draw_residual(p[j], q[j], rng, scratch);
    return v;
  }
  v.next = draw_from(p[n], rng);
  return v;
}

}  // namespace dspark
