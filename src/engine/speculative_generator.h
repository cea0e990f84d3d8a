// Speculative generation for one request (DSPARK.md 4): prefill, then rounds of
//   draft -> choose how many drafts to verify -> one batched target forward over
//   [anchor, d_0 .. d_{n-1}] -> accept (greedy match or rejection sampling) -> commit the
//   accepted drafts and the bonus token -> roll the target's and drafter's caches back.
// The output is the target's: token for token at temperature 0, in distribution otherwise.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "draft/drafter.h"
#include "engine/generator.h"
#include "model/kv_cache.h"
#include "spec/acceptance.h"
#include "spec/calibration.h"
#include "spec/scheduler.h"
#include "spec/stats.h"

namespace dspark {

// What one round did, for calibration and evaluation (SpecOptions::on_round). Valid only
// during the call.
struct RoundRecord {
  std::span<const float> confidence;  // raw confidence logits of the drafts (empty: no head)
  int drafted = 0;                    // drafts proposed (0: the round did not draft)
  int verified = 0;                   // n: drafts sent to the target
  int accepted = 0;                   // a: leading drafts accepted (up to a stop token)
  bool stop_in_drafts = false;        // an accepted draft was a stop token and ended generation
  int valid = 0;                      // positions judged: n, or the stop token's index + 1
};

struct SpecOptions {
  SchedulerKind scheduler = SchedulerKind::Fixed;
  int draft_max = 0;         // fixed: drafts verified per round (0: the drafter's block)
  float conf_threshold = 0;  // threshold: the smallest calibrated confidence admitted
  // Per-position temperatures for the confidence head; null: raw confidences.
  const Calibration* calibration = nullptr;
  // prefix: seconds of one target forward over T tokens (the engine's cost profile).
  std::function<double(int)> verify_seconds;
  // prefix: skip drafting in rounds where, judging from earlier rounds, it does not pay.
  bool draft_gate = true;
  AcceptRule accept = accept_drafts;  // replaced only by tests that check the checks
  // Called once per round after its tokens are committed (calibrate, eval); unset: nothing.
  std::function<void(const RoundRecord&)> on_round;
};

// Checks options against a drafter: Error for a draft_max outside 1..block, a threshold
// outside [0, 1], a confidence-based scheduler without a confidence head, or prefix without
// a cost curve.
void validate_spec_options(const SpecOptions& o, const Drafter& drafter);

class SpeculativeGenerator {
 public:
  // The drafter must hold sequence 0 with room for each request (make_drafter). One
  // generator serves any number of requests, one after another.
  SpeculativeGenerator(const LoadedModel& target, Drafter& drafter, ThreadPool& pool,
                       const SpecOptions& options);

  GenerateResult generate(const GenerateRequest& req,
                          const std::function<void(const std::string&)>& on_text = {});

  // The target's KV cache as the last request left it (committed positions only), for tests.
  const KVCache* cache() const { return cache_.get(); }

 private:
  // How many of the block's drafts to verify, by the scheduler.
  int verify_length(const DraftBlock& block, float temperature, double draft_seconds);
  // Seconds of a target forward over T tokens now: the cost profile's curve, scaled by how
  // this request's verifications compared with it (a profile measured on a busier or quieter
  // machine keeps its shape but not its level).
  double verify_cost(int tokens) const;

  const LoadedModel& lm_;
  Drafter& drafter_;
  ThreadPool& pool_;
  SpecOptions options_;
  std::unique_ptr<KVCache> cache_;
  // What earlier rounds taught, kept across requests: whether drafting pays, and how the
  // machine runs against its cost profile (moving average of measured / profiled
  // verification time; 0: nothing measured yet).
  DraftGate gate_;
  double cost_scale_ = 0;
  std::vector<float> confidence_, survival_;  // [block] calibrated c_k and products a_k
  int async_capacity_[2] = {-1, -1};          // prefix lengths of the last two rounds (-1: none)
  // Every round of every request so far: for a drafter without a confidence head, its
  // per-position acceptance stands in for confidences.
  SpecStats history_;
};

}  // namespace dspark
