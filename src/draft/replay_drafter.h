// Proposes a known continuation: the tokens that follow the committed ones in a reference
// sequence (e.g. the target's own greedy output), as long as the committed tokens agree with
// it. At temperature 0 it is a drafter that is always right, which measures the upper bound
// of speculative speed on a machine (`bench spec`) and lets tests force acceptance.
#pragma once

#include <algorithm>
#include <vector>

#include "draft/drafter.h"

namespace dspark {

class ReplayDrafter : public Drafter {
 public:
  // reference: the whole sequence, prompt included, from position 0.
  ReplayDrafter(std::vector<int> reference, int block) : ref_(std::move(reference)), block_(block) {}

  std::string name() const override { return "replay"; }
  int max_block() const override { return block_; }
  void reset(int) override {}

  void draft(const DraftInput& in, DraftBlock& out) override {
    out.clear();
    const size_t n = size_t(in.n_tokens);
    if (n > ref_.size() || !std::equal(in.tokens, in.tokens + n, ref_.begin())) return;  // off the script
    const int count = std::min(in.max_tokens, int(ref_.size() - n));
    if (out.q.size() < size_t(count)) out.q.resize(size_t(count));
    for (int k = 0; k < count; ++k) {
      const int t = ref_[n + size_t(k)];
      out.tokens.push_back(t);
      out.q[size_t(k)] = {{t}, {1.0f}};
    }
  }

 private:
  std::vector<int> ref_;
  int block_;
};

}  // namespace dspark
