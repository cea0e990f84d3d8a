// The drafter's training losses for one position (DSPARK.md 6), on fp32 rows of V values:
//   CE   = -log p_d(x*)
//   L1   = ||p_d - p_t||_1                 (the full L1 distance, twice the total variation)
//   Conf = BCE(logit, c*),  c* = clamp(1 - L1 / 2, 0, 1), a constant for the gradient
// with p_d = softmax(l) of the drafter's logits (Markov bias included) and p_t the target's
// T = 1 distribution. The weighted batch means and their gradients are in draft_heads_train.h.
#pragma once

namespace dspark {

// How much each term counts in the total. DeepSpec's DSpark drafters use these; its DFlash
// drafters (no Markov or confidence head) train on CE alone.
struct LossWeights {
  float ce = 0.1f;
  float l1 = 0.9f;
  float conf = 1.0f;
};

// Weighted means over the batch: sum_k w_k * term_k / sum_k w_k, and total = the weighted
// sum of the three by LossWeights. A term that was not computed (no confidence head, or no
// target distribution given) is 0.
struct LossTerms {
  double ce = 0, l1 = 0, conf = 0, total = 0;
};

// p = softmax(l) over n values (p may alias l); returns log sum_i exp(l_i), so that
// -log p(i) = returned value - l_i. Sums in double.
double softmax_lse(const float* l, int n, float* p);

// sum_i |p_i - q_i|, summed in double.
double l1_distance(const float* p, const float* q, int n);

// The confidence target for an L1 distance: clamp(1 - l1 / 2, 0, 1).
float confidence_target(double l1);

// Binary cross-entropy of a logit against a target in [0, 1], from the logit (stable for
// any magnitude): softplus(x) - target * x. Its derivative in x is sigmoid(x) - target.
double bce_with_logit(float x, float target);

// The gradient with respect to the logits l of one row, SET into g (g may alias p):
//   g = ce * (p - onehot(label)) + l1 * J_softmax^T sign(p - q)
// where J_softmax^T s = p ⊙ (s - sum_j p_j s_j), sign(0) = 0. p = softmax(l); q is read
// only when l1 != 0.
void logits_grad(const float* p, const float* q, int label, int n, float ce, float l1, float* g);

}  // namespace dspark
