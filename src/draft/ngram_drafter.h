// Prompt-lookup drafting: no model. The last n tokens (n from max_ngram down to min_ngram)
// are looked up earlier in the sequence; the tokens that followed their most recent earlier
// occurrence are proposed. Repetitive text (code, quoting the prompt, lists) drafts well.
//
// The proposal is deterministic, so q is one-hot at each draft token: rejection sampling
// then accepts d with probability p(d) and the residual is p without d, which keeps the
// target's distribution at any temperature.
#pragma once

#include "draft/drafter.h"

namespace dspark {

struct NgramOptions {
  int min_ngram = 1;
  int max_ngram = 3;
  int max_block = 8;  // tokens proposed at most per round
};

class NgramDrafter : public Drafter {
 public:
  explicit NgramDrafter(const NgramOptions& options = {});

  std::string name() const override { return "ngram"; }
  int max_block() const override { return options_.max_block; }
  void draft(const DraftInput& in, DraftBlock& out) override;
  void reset(int) override {}

 private:
  NgramOptions options_;
};

}  // namespace dspark
