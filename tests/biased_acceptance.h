// A deliberately wrong acceptance rule, for showing that the distribution tests can fail.
#pragma once

#include <algorithm>

#include "spec/acceptance.h"

namespace dspark::test {

// The classic mistake: after a rejection, sample from p instead of the residual
// max(p - q, 0). It over-represents the drafter's favourite tokens.
inline Verdict residual_is_p(const int* d, const TokenProbs* q, const TokenProbs* p, int n, Rng& rng,
                             AcceptScratch&) {
  Verdict v;
  for (int j = 0; j < n; ++j) {
    const float pd = prob_of(p[j], d[j]), qd = std::max(prob_of(q[j], d[j]), 1e-8f);
    if (rng.uniform() < std::min(1.0f, pd / qd)) {
      ++v.accepted;
      continue;
    }
    v.next = sample_from(p[j], rng.uniform());
    return v;
  }
  v.next = sample_from(p[n], rng.uniform());
  return v;
}

}  // namespace dspark::test
