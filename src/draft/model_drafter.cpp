#include "draft/model_drafter.h"

#include <algorithm>

#include "core/error.h"

namespace dspark {

void check_draft_vocabulary(const Tokenizer& target, const Tokenizer& draft, const Model& draft_model) {
  if (target.vocab_size() != draft.vocab_size())
    fail("the draft model's tokenizer has ", draft.vocab_size(), " tokens, the target's ",
         target.vocab_size(), ": a draft model must share the target's vocabulary");
  if (draft_model.config.vocab_size < target.vocab_size())
    fail("the draft model outputs ", draft_model.config.vocab_size, " logits, fewer than the target's ",
         target.vocab_size(), " tokens");
  for (int id = 0; id < target.vocab_size(); ++id)
    if (target.token_bytes(id) != draft.token_bytes(id) || target.is_control(id) != draft.is_control(id))
      fail("token ", id, " differs between the target ('", target.token_text(id), "') and the draft model ('",
           draft.token_text(id), "'): a draft model must share the target's vocabulary");
}

ModelDrafter::ModelDrafter(const Model& model, ThreadPool& pool, int n_seqs, int max_positions,
                           const ModelDrafterOptions& options)
    : model_(model),
      options_(options),
      forward_(model, pool),
      cache_(model.config, n_seqs, max_positions),
      logits_(size_t(model.config.vocab_size)) {
  if (options.max_block < 1) fail("draft model: max_block must be at least 1, got ", options.max_block);
  if (options.vocab_limit < 0) fail("draft model: negative vocab_limit");
}

void ModelDrafter::draft(const DraftInput& in, DraftBlock& out) {
  out.clear();
  const int s = in.n_tokens - 1;  // the anchor's position
  if (s < 0) fail("draft model: no anchor token");
  if (in.max_tokens < 0 || in.max_tokens > max_block())
    fail("draft model: ", in.max_tokens, " tokens asked, at most ", max_block(), " per round");
  // Room for the drafts fed back: positions up to s + max_tokens - 1.
  const int n = std::min(in.max_tokens, cache_.capacity() - s);
  if (n <= 0) return;
  const int V = options_.vocab_limit > 0 ? std::min(options_.vocab_limit, model_.config.vocab_size)
                                         : model_.config.vocab_size;
  const SamplingParams& sp = *in.sampling;
  const int keep = std::min(in.n_tokens, std::max(sp.repeat_last_n, 0));
  history_.assign(in.tokens + (in.n_tokens - keep), in.tokens + in.n_tokens);
  if (out.q.size() < size_t(n)) out.q.resize(size_t(n));

  // Catch up on committed tokens the cache has not seen (the anchor at least), in one batch.
  if (cache_.length(in.seq) > s) cache_.truncate(in.seq, s);
  batch_.clear();
  for (int p = cache_.length(in.seq); p <= s; ++p) batch_.add(in.tokens[p], p, in.seq, p == s);
  forward_.forward(batch_, cache_, logits_.data());
  for (int k = 0; k < n; ++k) {
    const int d = draw_draft_token(logits_.data(), V, history_.data(), int(history_.size()), sp, *in.rng,
                                   out.q[size_t(k)]);
    out.tokens.push_back(d);
    history_.push_back(d);
    if (k + 1 == n) break;  // the last draft is never fed back
    batch_.clear();
    batch_.add(d, s + 1 + k, in.seq, true);
    forward_.forward(batch_, cache_, logits_.data());
  }
}

void ModelDrafter::commit(int seq, int n) {
  if (cache_.length(seq) > n) cache_.truncate(seq, n);
}

}  // namespace dspark
