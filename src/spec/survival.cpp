#include "spec/survival.h"

#include <algorithm>

namespace dspark {

void draft_survival(const DraftBlock& block, const CalibrationFit* fit, const SpecStats& measured,
                    std::vector<float>& confidence, std::vector<float>& survival) {
  const bool from_history = block.confidence.empty();
  const int drafted = int(block.tokens.size());
  const int n = from_history ? drafted : std::min(drafted, int(block.confidence.size()));
  confidence.resize(size_t(n));
  survival.resize(size_t(n));
  float a = 1.0f, prior = 0.5f;
  for (int k = 0; k < n; ++k) {
    float c;
    if (from_history) {
      const bool seen = size_t(k) < measured.reached.size();
      const double accepted = seen ? double(measured.accepted_at[size_t(k)]) : 0.0;
      const double reached = seen ? double(measured.reached[size_t(k)]) : 0.0;
      c = float((accepted + 2.0 * prior) / (reached + 2.0));
      prior = c;
    } else {
      c = calibrated_confidence(block.confidence[size_t(k)], fit, k);
    }
    confidence[size_t(k)] = c;
    survival[size_t(k)] = a *= c;
  }
}

}  // namespace dspark
