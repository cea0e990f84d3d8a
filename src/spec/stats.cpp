#include "spec/stats.h"

namespace dspark {

void SpecStats::add_round(int n_drafted, int n_verified, int n_accepted, int n_committed) {
  ++rounds;
  drafted += n_drafted;
  verified += n_verified;
  accepted += n_accepted;
  committed += n_committed;
  if (reached.size() < size_t(n_verified)) {
    reached.resize(size_t(n_verified), 0);
    accepted_at.resize(size_t(n_verified), 0);
  }
  // Positions 0..accepted were reached (all before them accepted); position `accepted` is the
  // rejected one when it was verified.
  for (int k = 0; k < n_verified && k <= n_accepted; ++k) {
    ++reached[size_t(k)];
    if (k < n_accepted) ++accepted_at[size_t(k)];
  }
}

void SpecStats::add(const SpecStats& s) {
  rounds += s.rounds;
  skipped_rounds += s.skipped_rounds;
  committed += s.committed;
  drafted += s.drafted;
  verified += s.verified;
  accepted += s.accepted;
  draft_seconds += s.draft_seconds;
  verify_seconds += s.verify_seconds;
  if (reached.size() < s.reached.size()) {
    reached.resize(s.reached.size(), 0);
    accepted_at.resize(s.reached.size(), 0);
  }
  for (size_t k = 0; k < s.reached.size(); ++k) {
    reached[k] += s.reached[k];
    accepted_at[k] += s.accepted_at[k];
  }
}

std::vector<double> SpecStats::accept_per_pos() const {
  std::vector<double> r(reached.size(), 0.0);
  for (size_t k = 0; k < r.size(); ++k)
    if (reached[k]) r[k] = double(accepted_at[k]) / double(reached[k]);
  return r;
}

std::vector<double> SpecStats::survival_per_pos() const {
  std::vector<double> r(accepted_at.size(), 0.0);
  for (size_t k = 0; k < r.size(); ++k)
    if (rounds) r[k] = double(accepted_at[k]) / double(rounds);
  return r;
}

nlohmann::json SpecStats::to_json() const {
  return {{"rounds", rounds},
          {"skipped_rounds", skipped_rounds},
          {"tau", tau()},
          {"drafted_tokens", drafted},
          {"verified_tokens", verified},
          {"accepted_tokens", accepted},
          {"accept_per_pos", accept_per_pos()},
          {"survival_per_pos", survival_per_pos()},
          {"draft_seconds", draft_seconds},
          {"verify_seconds", verify_seconds}};
}

}  // namespace dspark
