// Continuous batching: many requests decoded together, speculatively (DSPARK.md 5 and 9).
// One step:
//   1. waiting requests join free slots (a slot is a KV-cache sequence of fixed capacity,
//      reserved up front: memory never grows with load, excess requests wait in a queue);
//   2. whether this step drafts at all is decided before drafting, from earlier steps only;
//   3. every decoding request drafts;
//   4. the scheduler picks each request's verification length across all requests;
//   5. ONE target forward runs every request's [anchor, admitted drafts] plus prompt chunks
//      of joining requests (prefill mixed with decode);
//   6. acceptance per request; finished requests leave and free their slots.
// Each request's output is what the target alone would give it: token for token at
// temperature 0, in distribution otherwise; each request has its own sampling and seed.
//
// Not thread-safe: EngineLoop runs it on a thread of its own.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "engine/drafter_setup.h"
#include "kernels/sampling.h"
#include "model/kv_cache.h"
#include "model/load.h"
#include "model/transformer.h"
#include "spec/scheduler.h"
#include "spec/stats.h"

namespace dspark {

struct EngineOptions {
  int slots = 4;            // requests decoded at once
  int context = 0;          // positions per slot (0: the model's context)
  int prefill_chunk = 256;  // prompt tokens per step, over all joining requests
  int max_waiting = 1024;   // queued requests beyond the slots; more are refused
  SchedulerKind scheduler = SchedulerKind::Prefix;
  int draft_max = 0;  // fixed: drafts verified per request (0: the drafter's block)
  float conf_threshold = 0.5f;
  bool draft_gate = true;  // prefix, async: skip drafting in steps where it does not pay
  // Seconds of one target forward over T tokens (prefix, async and the gate need it).
  std::function<double(int)> verify_seconds;
};

enum class FinishReason { Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

struct RequestOutput {
  std::vector<int> tokens;  // generated ids, a stop token included
  int n_prompt = 0;
  FinishReason reason = FinishReason::Length;
  SpecStats spec;                   // this request's rounds
  double time_to_first_token = -1;  // seconds from joining the queue; -1: none
  double seconds = 0;               // from joining the queue to the end
  std::string error;                // reason Error: what went wrong
};

struct EngineRequest {
  std::vector<int> prompt;  // token ids, BOS included; not empty
  int max_tokens = -1;      // -1: until the slot's context is full
  SamplingParams sampling;
  uint64_t seed = 0;
  std::vector<int> stop_tokens;  // besides the model's end-of-sequence tokens
  // Called on the engine's thread with each new piece of text as soon as it is complete
  // UTF-8 (never empty; a stop token has none), then on_done exactly once. Keep them short.
  std::function<void(const std::string& text)> on_text;
  std::function<void(const RequestOutput&)> on_done;
};

// What one step did, for metrics.
struct StepReport {
  int requests = 0;        // requests that decoded
  int prefill_tokens = 0;  // prompt tokens of joining requests
  int tokens = 0;          // tokens in the target forward
  bool drafted = false;
  double seconds = 0;
  struct Round {
    int proposed, verified, accepted;
  };
  std::vector<Round> rounds;  // one per request that drafted
};

class BatchEngine {
 public:
  // `drafter` null: plain decoding whatever the scheduler. Throws Error for options that do
  // not fit the model or the drafter.
  BatchEngine(const LoadedModel& target, const DrafterSource* drafter, ThreadPool& pool,
              const EngineOptions& options);
  // With a drafter made for options.slots sequences of slot_context() + 1 positions (tests,
  // custom drafters); `calibration` may be null.
  BatchEngine(const LoadedModel& target, std::unique_ptr<Drafter> drafter, const Calibration* calibration,
              ThreadPool& pool, const EngineOptions& options);
  // Positions of one slot: options.context, or the model's context when that is 0.
  static int slot_context(const EngineOptions& options, const Model& model);
  ~BatchEngine();

  // Error naming what is wrong when the request can never run (empty prompt, prompt that
  // does not fit a slot, token out of the vocabulary, bad max_tokens). Thread-safe.
  void check(const EngineRequest& req) const;
  // Queues a request under the caller's id: Error as check() does; false when the queue is
  // full (nothing queued).
  bool submit(int64_t id, EngineRequest req);
  // Ends the request at the next step (at once when it is still waiting): on_done with
  // reason Cancelled. Unknown or finished ids are ignored.
  void cancel(int64_t id);
  // One step; false when there was nothing to do.
  bool step();
  // Ends every request, running or waiting, with reason Error and this message (after a
  // step failed: the engine's state is not trusted any more, so the caches are cleared).
  void abort_all(const std::string& message);

  int running() const { return int(active_.size()); }
  int waiting() const { return int(waiting_.size()); }
  int slots() const { return options_.slots; }
  int context() const { return context_; }
  double kv_usage() const;  // cached positions / all slots' positions
  const EngineOptions& options() const { return options_; }
  bool speculative() const { return drafter_ != nullptr; }

  std::function<void(const StepReport&)> on_step;

 private:
  struct Slot;
  void admit();
  void finish(Slot& s, FinishReason reason);
  void release_finished();
  // The verification lengths of the drafting requests (survival computed inside).
  std::vector<int> schedule(const std::vector<Slot*>& drafting, double draft_seconds, int other_tokens);
  double verify_cost(int tokens) const;
  // Seconds of a step over `tokens` without drafting: the forward plus the step's own
  // overhead, which a step that commits more tokens per request pays only once.
  double step_cost(int tokens) const;

  const LoadedModel& lm_;
  ThreadPool& pool_;
  EngineOptions options_;
  int context_ = 0;
  std::unique_ptr<Drafter> drafter_;
  const Calibration* calibration_ = nullptr;
  std::vector<int> tap_layers_;
  size_t tap_width_ = 0;
  KVCache cache_;
  Transformer tf_;
  std::vector<std::unique_ptr<Slot>> slots_;  // [slots]; null: free
  std::vector<Slot*> active_;                 // in order of joining
  std::deque<std::unique_ptr<Slot>> waiting_;
  // Learned across steps and requests.
  StepDraftGate gate_;
  double cost_scale_ = 0;           // measured / profiled verification time (moving average)
  double step_overhead_ = 0;        // seconds of a step outside drafting and the forward (average)
  SpecStats history_;               // every round: measured acceptance for drafters without a head
  std::deque<int> async_capacity_;  // drafts the prefix scheduler admitted in recent steps
  // Step scratch.
  Batch batch_;
  std::vector<float> logits_, taps_;
};

}  // namespace dspark
