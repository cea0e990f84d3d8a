// Accepting drafts against the target (DSPARK.md 4 steps 6 and 8): token j is accepted with
// probability min(1, p_j(d_j) / q_j(d_j)), the first rejection ends the run, and the next
// token is drawn from the residual max(p_a - q_a, 0) (renormalised) after a rejection, or
// from p_n when every draft was accepted. The committed tokens then follow the target's
// distribution exactly, whatever the drafter proposed (Leviathan et al. 2023).
//
// p and q are the distributions after the same sampling transform on both sides
// (next_token_distribution); with greedy sampling both are one-hot and the rule reduces to
// "accept while d_j equals the target's argmax, then take the target's argmax".
#pragma once

#include <vector>

#include "core/rng.h"
#include "kernels/sampling.h"

namespace dspark {

struct Verdict {
  int accepted = 0;  // a: the length of the leading run of accepted drafts
  int next = -1;     // the token committed after them (bonus or residual draw)
};

// Dense scratch for probability lookups, reused across calls (no allocation once grown).
struct AcceptScratch {
  std::vector<float> dense;
  TokenProbs residual;
};

// drafts[0..n), q[0..n): the drafter's tokens and their distributions; p[0..n]: the
// target's distributions at the n+1 verified positions.
Verdict accept_drafts(const int* drafts, const TokenProbs* q, const TokenProbs* p, int n, Rng& rng,
                      AcceptScratch& scratch);

// The signature of an acceptance rule, so tests can check that a wrong rule is caught.
using AcceptRule = Verdict (*)(const int*, const TokenProbs*, const TokenProbs*, int, Rng&, AcceptScratch&);

// Probability of `token` in a sparse distribution (0 when absent).
float prob_of(const TokenProbs& d, int token);

}  // namespace dspark
