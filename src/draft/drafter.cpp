#include "draft/drafter.h"

namespace dspark {

int draw_draft_token(float* logits, int vocab, const int* history, int n_history, const SamplingParams& p,
                     Rng& rng, TokenProbs& q) {
  next_token_distribution(logits, vocab, p, history, n_history, q);
  if (q.ids.size() == 1) return q.ids[0];
  return sample_from(q, rng.uniform());
}

}  // namespace dspark
