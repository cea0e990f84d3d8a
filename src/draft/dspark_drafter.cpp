#include "draft/dspark_drafter.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dspark {

DSparkDrafter::DSparkDrafter(const DSparkModel& model, ThreadPool& pool, int n_seqs, int max_positions,
                             bool use_heads)
    : model_(model),
      use_heads_(use_heads),
      forward_(model, pool, n_seqs, max_positions),
      heads_(model, pool),
      logits_(size_t(model.config.vocab_size())),
      state_(size_t(heads_.state_size())) {
  if (use_heads && !heads_.has_markov() && !heads_.has_confidence())
    fail(model.source, ": the drafter has no sequential or confidence head (markov_rank 0, no confidence ",
         "head): it is a dflash drafter; use --spec dflash");
}

void DSparkDrafter::draft(const DraftInput& in, DraftBlock& out) {
  out.clear();
  if (in.n_tokens < 1) fail("dspark drafter: no anchor token");
  if (in.max_tokens < 0 || in.max_tokens > max_block())
    fail("dspark drafter: ", in.max_tokens, " tokens asked, the block holds ", max_block());
  const int anchor = in.tokens[in.n_tokens - 1];
  forward_.draft(in.seq, in.pending_taps, in.n_pending, anchor);

  const SamplingParams& sp = *in.sampling;
  const int V = model_.config.vocab_size();
  const int keep = std::min(in.n_tokens, std::max(sp.repeat_last_n, 0));
  history_.assign(in.tokens + (in.n_tokens - keep), in.tokens + in.n_tokens);
  std::fill(state_.begin(), state_.end(), 0.0f);  // s_{-1} = 0
  if (out.q.size() < size_t(in.max_tokens)) out.q.resize(size_t(in.max_tokens));

  int prev = anchor;
  for (int k = 0; k < in.max_tokens; ++k) {
    std::copy_n(forward_.base_logits(k), V, logits_.data());
    if (use_heads_) {
      if (heads_.has_markov())
        heads_.add_markov_bias(forward_.hidden(k), prev, state_.data(), logits_.data());
      if (heads_.has_confidence())
        out.confidence.push_back(heads_.confidence_logit(forward_.hidden(k), prev));
    }
    const int d = draw_draft_token(logits_.data(), V, history_.data(), int(history_.size()), sp, *in.rng,
                                   out.q[size_t(k)]);
    out.tokens.push_back(d);
    history_.push_back(d);
    prev = d;
  }
}

void DSparkDrafter::commit(int seq, int n) {
  if (forward_.cache().length(seq) > n) forward_.cache().truncate(seq, n);
}

}  // namespace dspark
