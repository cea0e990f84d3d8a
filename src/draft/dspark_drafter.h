// The DSpark drafter behind the Drafter interface (DSPARK.md 4 steps 1-4): one parallel
// block forward over [anchor, MASK x (B-1)] conditioned on the target's tapped hidden
// states, then left to right the sequential (Markov / RNN) head's bias, the confidence
// logit and the draw of each draft token.
//
// The same class is the dflash drafter: the backbone alone, without the sequential and
// confidence heads (the checkpoint may have them; dflash mode ignores them).
#pragma once

#include <memory>
#include <vector>

#include "draft/drafter.h"
#include "draft/dspark_forward.h"
#include "draft/dspark_heads.h"

namespace dspark {

class DSparkDrafter : public Drafter {
 public:
  // use_heads false: dflash mode. With use_heads true the checkpoint must have a sequential
  // or a confidence head (else Error: it is a dflash checkpoint). The model must already be
  // attached to its target (attach_target). Caches for n_seqs sequences of max_positions.
  DSparkDrafter(const DSparkModel& model, ThreadPool& pool, int n_seqs, int max_positions, bool use_heads);

  std::string name() const override { return use_heads_ ? "dspark" : "dflash"; }
  int max_block() const override { return forward_.block_size(); }
  bool has_confidence() const override { return use_heads_ && heads_.has_confidence(); }
  std::vector<int> tap_layers() const override { return model_.config.target_layer_ids; }

  void draft(const DraftInput& in, DraftBlock& out) override;
  // The drafter caches context only up to the anchor's position, which is always committed.
  void commit(int seq, int n) override;
  void reset(int seq) override { forward_.cache().clear(seq); }

  const DSparkForward& forward() const { return forward_; }

 private:
  const DSparkModel& model_;
  const bool use_heads_;
  DSparkForward forward_;
  DSparkHeads heads_;
  std::vector<float> logits_;  // [V] l_k
  std::vector<float> state_;   // [state_size] RNN state s_k
  std::vector<int> history_;   // recent committed tokens then drafts, for the repetition penalty
};

}  // namespace dspark
