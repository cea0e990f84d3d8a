// The interface every drafter implements (dspark, dflash, draft-model, ngram). A decoding
// round asks the drafter for up to n tokens after the anchor; the target then verifies a
// prefix of them and tells the drafter which positions are committed.
//
// Drafts are drawn with the request's own sampling transform (next_token_distribution), and
// the distribution each token was drawn from is returned with it: rejection sampling needs
// q_k(d_k) and the residual max(p - q, 0), and both sides must use the same transform for the
// output to keep the target's distribution.
#pragma once

#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/sampling.h"

namespace dspark {

// One round's proposal for one sequence.
struct DraftBlock {
  std::vector<int> tokens;        // d_0 .. d_{n-1}
  std::vector<TokenProbs> q;      // q_k: what d_k was drawn from (one-hot at the token when greedy)
  std::vector<float> confidence;  // raw confidence logits logit_k (drafters with a confidence head)

  void clear() {
    tokens.clear();
    confidence.clear();  // q keeps its buffers; only the first tokens.size() entries are valid
  }
};

// What a drafter may read for one round.
struct DraftInput {
  int seq = 0;
  // Committed tokens of the sequence at positions 0..s: the prompt, everything generated so
  // far, and last the anchor x0 (the token most recently committed, not yet seen by the target).
  const int* tokens = nullptr;
  int n_tokens = 0;
  // Rows of target hidden-state taps (Drafter::tap_layers, concatenated) for positions
  // [s - n_pending, s) that this drafter has not been given yet. Empty for drafters without taps.
  const float* pending_taps = nullptr;
  int n_pending = 0;
  int max_tokens = 0;  // draft at most this many tokens (1 .. max_block())
  const SamplingParams* sampling = nullptr;
  Rng* rng = nullptr;  // for drawing draft tokens when sampling is not greedy
};

class Drafter {
 public:
  virtual ~Drafter() = default;

  virtual std::string name() const = 0;  // "dspark", "dflash", "draft-model", "ngram"
  virtual int max_block() const = 0;     // the most tokens one round can draft
  virtual bool has_confidence() const { return false; }
  // Target layers whose raw outputs the drafter reads (DSPARK.md 1.1); empty: none.
  virtual std::vector<int> tap_layers() const { return {}; }

  // Proposes between 0 and in.max_tokens tokens (0: nothing worth proposing, e.g. no n-gram
  // match). Pending taps passed here are consumed: they are not passed again.
  virtual void draft(const DraftInput& in, DraftBlock& out) = 0;

  // The sequence's tokens at positions < n are final; anything the drafter keeps about later
  // positions (rejected drafts) is dropped. Called after every verification.
  virtual void commit(int /*seq*/, int /*n*/) {}
  // Forgets the sequence entirely (a new request in its slot).
  virtual void reset(int seq) = 0;
};

// Draws d from the request's sampling transform applied to `logits` (modified in place) with
// `history` preceding it, and stores the distribution in q. Greedy: the argmax, one-hot q.
int draw_draft_token(float* logits, int vocab, const int* history, int n_history, const SamplingParams& p,
                     Rng& rng, TokenProbs& q);

}  // namespace dspark
