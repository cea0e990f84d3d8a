#include "draft/drafter.h"

namespace dspark {

int draw_draft_token(float* logits, int vocab, const int* history, int n_history, const SamplingParams& p,
                     Rng& rng, TokenProbs& q) {
  next_token_distribution(logits, vocab, p, history, n_history, q);
  return draw_from(q, rng);
}

}  // namespace dspark
