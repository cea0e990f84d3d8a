// Statistics of speculative decoding, as the `spec` object of the --json contract
// (DESIGN.md): rounds, tau, drafted / verified / accepted tokens, per-position acceptance
// and survival, and the time spent drafting and verifying.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace dspark {

struct SpecStats {
  int64_t rounds = 0;          // target verification passes after the prefill
  int64_t skipped_rounds = 0;  // rounds the draft gate decided not to draft (plain steps)
  int64_t committed = 0;       // tokens committed by rounds (bonus tokens included)
  int64_t drafted = 0, verified = 0, accepted = 0;
  // Per draft position k (0-based): rounds where k was verified with 0..k-1 accepted, and
  // where k was accepted too.
  std::vector<int64_t> reached, accepted_at;
  double draft_seconds = 0, verify_seconds = 0;

  // One round: `drafted` tokens proposed, `verified` of them sent to the target, the first
  // `accepted` of those accepted, `committed` tokens committed (accepted + bonus, or up to a
  // stop token).
  void add_round(int drafted, int verified, int accepted, int committed);
  // Adds another run's counts and times (statistics over several requests).
  void add(const SpecStats& other);

  double tau() const { return rounds ? double(committed) / double(rounds) : 0.0; }
  std::vector<double> accept_per_pos() const;
  std::vector<double> survival_per_pos() const;  // rounds with drafts 0..k accepted / rounds
  nlohmann::json to_json() const;
};

}  // namespace dspark
