// How many drafts to verify (DSPARK.md 4 step 4, 5 and 9).
//
//   none       do not draft (plain decoding).
//   fixed      verify the first N drafts.
//   threshold  verify up to the first position whose own calibrated confidence c_k is below X
//              (a per-position test, as in the reference evaluator).
//   prefix     the hardware-aware prefix scheduler: over all requests of a step, admit draft
//              positions in order of survival a_{r,j} = c_{r,1} ... c_{r,j} (descending, ties
//              by position, then by request) while the expected committed tokens per second of
//              the whole step, tau* / (t_draft + t_verify(tokens)), keeps increasing; stop at
//              the first decrease (the early stop keeps it lossless: paper, App. A).
//   async      the production variant (paper 5.2): the step's capacity K is the number of
//              drafts the prefix scheduler admitted two steps earlier; the top K positions by
//              current survival are verified, without an early stop.
//
// Each decision about position j depends only on drafts before j, so the output is the
// target's whatever is chosen. DraftGate decides, before drafting and from earlier rounds
// only, whether drafting pays at all.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace dspark {

enum class SchedulerKind { None, Fixed, Threshold, Prefix, Async };

const char* scheduler_name(SchedulerKind k);
// "none", "fixed", "threshold", "prefix", "async"; Error otherwise.
SchedulerKind parse_scheduler(const std::string& name);

// The number of leading drafts whose confidence is at least `threshold`.
int threshold_length(const float* confidence, int n, float threshold);

// survival[r][j] = a_{r,j} for request r's draft j (non-increasing in j). verify_seconds(T):
// the target's time for one forward over T tokens. Returns how many drafts of each request to
// verify. Every request verifies its anchor, and `other_tokens` (prompt chunks of joining
// requests) ride in the same forward, so the step has other + R + sum(lengths) tokens.
std::vector<int> schedule_prefixes(const std::vector<std::vector<float>>& survival, double draft_seconds,
                                   const std::function<double(int)>& verify_seconds, int other_tokens = 0);

// The `capacity` positions of highest survival over all requests (same order as above),
// as a length per request: the async scheduler's admission, without an early stop.
std::vector<int> top_k_prefixes(const std::vector<std::vector<float>>& survival, int capacity);

// One request's prefix: schedule_prefixes with R = 1.
int prefix_length(const float* survival, int n, double draft_seconds,
                  const std::function<double(int)>& verify_seconds);

// A gate's fallback when drafting does not pay: draft once anyway after `every` skipped
// rounds, so a drafter that becomes useful again is noticed; each probe that does not pay
// doubles the interval (up to `max_every`), so a useless drafter costs almost nothing.
class ProbeBackoff {
 public:
  ProbeBackoff(int every, int max_every);
  // Before a round: whether to draft, given whether drafting is expected to pay.
  bool should_draft(bool pays);
  // After a round that drafted: whether drafting now looks like it pays.
  void after_round(bool pays);

 private:
  const int first_every_, max_every_;
  int every_, skipped_ = 0;
  bool probing_ = false;  // the last round drafted only because of a probe
};

// Decides before each round whether to draft. It compares the measured rate of speculative
// rounds (tokens committed per second, moving averages) with the rate of a plain decode step
// (the caller's current estimate) and drafts when speculation is at least as fast; otherwise
// it probes (ProbeBackoff).
class DraftGate {
 public:
  explicit DraftGate(int probe_every = 8, int max_probe_every = 512);

  bool should_draft(double plain_step_seconds);
  void record_round(int committed_tokens, double seconds, double plain_step_seconds);  // a round that drafted

  double speculative_rate() const;  // tokens/s, 0 before any round

 private:
  double tokens_ = 0, seconds_ = 0;  // moving averages per speculative round
  int rounds_ = 0;
  ProbeBackoff probe_;
};

// DraftGate for a batch of requests: whether the whole step drafts. Because the load
// changes from step to step, it predicts rather than replays: from earlier drafting steps
// it keeps per request the tokens committed (tau), the drafts verified and the drafting
// time, and drafts when R * tau / (R * t_draft + t_verify(other + R * (1 + verified))) is at
// least the plain step's R / t_verify(other + R); otherwise it probes (ProbeBackoff).
class StepDraftGate {
 public:
  explicit StepDraftGate(int probe_every = 8, int max_probe_every = 512);

  // requests: requests decoding this step; other_tokens: prompt tokens in the same forward.
  bool should_draft(int requests, int other_tokens, const std::function<double(int)>& verify_seconds);
  // A step that drafted: totals over its requests.
  void record_step(int requests, int committed, int verified, double draft_seconds,
                   const std::function<double(int)>& verify_seconds, int other_tokens);

 private:
  bool pays(int requests, int other_tokens, const std::function<double(int)>& verify_seconds) const;
  double tau_ = 0, verified_ = 0, draft_seconds_ = 0;  // moving averages per request
  int steps_ = 0;
  ProbeBackoff probe_;
};

}  // namespace dspark
