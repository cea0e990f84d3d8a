#include "spec/scheduler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dspark {

const char* scheduler_name(SchedulerKind k) {
  switch (k) {
    case SchedulerKind::None:
      return "none";
    case SchedulerKind::Fixed:
      return "fixed";
    case SchedulerKind::Threshold:
      return "threshold";
    case SchedulerKind::Prefix:
      return "prefix";
    case SchedulerKind::Async:
      return "async";
  }
  return "?";
}

SchedulerKind parse_scheduler(const std::string& name) {
  for (SchedulerKind k : {SchedulerKind::None, SchedulerKind::Fixed, SchedulerKind::Threshold,
                          SchedulerKind::Prefix, SchedulerKind::Async})
    if (name == scheduler_name(k)) return k;
  fail("unknown scheduler '", name, "' (expected none, fixed, threshold, prefix or async)");
}

int threshold_length(const float* confidence, int n, float threshold) {
  int k = 0;
  while (k < n && confidence[k] >= threshold) ++k;
  return k;
}

namespace {

struct Candidate {
  float a;
  int pos, request;
};

// Every (request, position) with survival > 0, by survival descending, then position, then
// request: never by the draft token itself.
std::vector<Candidate> ranked_candidates(const std::vector<std::vector<float>>& survival) {
  std::vector<Candidate> c;
  for (size_t r = 0; r < survival.size(); ++r)
    for (size_t j = 0; j < survival[r].size(); ++j)
      if (survival[r][j] > 0.0f) c.push_back({survival[r][j], int(j), int(r)});
  std::sort(c.begin(), c.end(), [](const Candidate& x, const Candidate& y) {
    if (x.a != y.a) return x.a > y.a;
    if (x.pos != y.pos) return x.pos < y.pos;
    return x.request < y.request;
  });
  return c;
}

}  // namespace

std::vector<int> schedule_prefixes(const std::vector<std::vector<float>>& survival, double draft_seconds,
                                   const std::function<double(int)>& verify_seconds, int other_tokens) {
  const std::vector<Candidate> c = ranked_candidates(survival);
  const int R = int(survival.size());
  std::vector<int> length(size_t(R), 0), best_length = length;
  int tokens = other_tokens + R;
  double tau = R;
  double best = tau / (draft_seconds + verify_seconds(tokens));
  for (const Candidate& x : c) {
    // A request's positions come in order (a is non-increasing in j, ties by position), so
    // this extends its prefix by one.
    if (x.pos != length[size_t(x.request)]) break;
    length[size_t(x.request)] = x.pos + 1;
    tokens += 1;
    tau += x.a;
    const double theta = tau / (draft_seconds + verify_seconds(tokens));
    if (!(theta > best)) break;
    best = theta;
    best_length = length;
  }
  return best_length;
}

std::vector<int> top_k_prefixes(const std::vector<std::vector<float>>& survival, int capacity) {
  std::vector<int> length(survival.size(), 0);
  for (const Candidate& x : ranked_candidates(survival)) {
    if (capacity-- <= 0) break;
    // In ranked order a request's positions come in order, so this extends its prefix.
    length[size_t(x.request)] = std::max(length[size_t(x.request)], x.pos + 1);
  }
  return length;
}

int prefix_length(const float* survival, int n, double draft_seconds,
                  const std::function<double(int)>& verify_seconds) {
  return schedule_prefixes({std::vector<float>(survival, survival + n)}, draft_seconds, verify_seconds)[0];
}

ProbeBackoff::ProbeBackoff(int every, int max_every)
    : first_every_(every), max_every_(max_every), every_(every) {
  if (every < 1 || max_every < every)
    fail("draft gate: probe intervals must satisfy 1 <= ", every, " <= ", max_every);
}

bool ProbeBackoff::should_draft(bool pays) {
  probing_ = false;
  if (pays) {
    skipped_ = 0;
    return true;
  }
  if (skipped_ >= every_) {
    skipped_ = 0;
    probing_ = true;
    return true;
  }
  ++skipped_;
  return false;
}

void ProbeBackoff::after_round(bool pays) {
  if (pays)
    every_ = first_every_;
  else if (probing_)
    every_ = std::min(2 * every_, max_every_);
}

DraftGate::DraftGate(int probe_every, int max_probe_every) : probe_(probe_every, max_probe_every) {}

// Exponential moving averages: recent rounds matter most, as acceptance drifts with the text.
constexpr double kDecay = 0.8;

bool DraftGate::should_draft(double plain_step_seconds) {
  return probe_.should_draft(rounds_ == 0 || speculative_rate() * plain_step_seconds >= 1.0);
}

void DraftGate::record_round(int committed, double seconds, double plain_step_seconds) {
  if (rounds_++ == 0) {
    tokens_ = committed;
    seconds_ = seconds;
  } else {
    tokens_ = kDecay * tokens_ + (1 - kDecay) * committed;
    seconds_ = kDecay * seconds_ + (1 - kDecay) * seconds;
  }
  probe_.after_round(speculative_rate() * plain_step_seconds >= 1.0);
}

double DraftGate::speculative_rate() const { return seconds_ > 0 ? tokens_ / seconds_ : 0.0; }

StepDraftGate::StepDraftGate(int probe_every, int max_probe_every) : probe_(probe_every, max_probe_every) {}

bool StepDraftGate::pays(int R, int other, const std::function<double(int)>& verify_seconds) const {
  const double plain_rate = R / verify_seconds(other + R);
  // The expected token count is fractional: interpolate the curve between its neighbours.
  const double tokens = other + R + R * verified_;
  const int below = int(tokens);
  const double frac = tokens - below;
  const double verify = frac > 0 ? (1 - frac) * verify_seconds(below) + frac * verify_seconds(below + 1)
                                 : verify_seconds(below);
  const double spec_rate = R * tau_ / (R * draft_seconds_ + verify);
  return spec_rate >= plain_rate;
}

bool StepDraftGate::should_draft(int R, int other, const std::function<double(int)>& verify_seconds) {
  if (R <= 0) return false;  // nothing to decode: not a skipped step either
  return probe_.should_draft(steps_ == 0 || pays(R, other, verify_seconds));
}

void StepDraftGate::record_step(int R, int committed, int verified, double draft_seconds,
                                const std::function<double(int)>& verify_seconds, int other) {
  if (R <= 0) return;
  const double tau = double(committed) / R, v = double(verified) / R, d = draft_seconds / R;
  if (steps_++ == 0) {
    tau_ = tau, verified_ = v, draft_seconds_ = d;
  } else {
    tau_ = kDecay * tau_ + (1 - kDecay) * tau;
    verified_ = kDecay * verified_ + (1 - kDecay) * v;
    draft_seconds_ = kDecay * draft_seconds_ + (1 - kDecay) * d;
  }
  probe_.after_round(pays(R, other, verify_seconds));
}

}  // namespace dspark
