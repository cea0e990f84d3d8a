// Calibrated confidences (DSPARK.md 5 and 9). The confidence head's logit_k becomes
// c_k = sigmoid(logit_k / T_k), with per-position temperatures fitted by sequential
// temperature scaling. The fits live in `calibration.json` beside the drafter, one set of
// temperatures per sampling temperature they were fitted at; the decoder uses the fit whose
// sampling temperature is nearest to the request's (greedy counts as 0).
//
// calibration.json:
//   {"format": "dspark-calibration", "version": 1,
//    "fits": [{"sampling_temperature": 0.0, "temperatures": [T_1, ..., T_B], ...}, ...]}
// Other fields (metrics written by the calibrator) are ignored. Positions beyond a fit's
// list use its last temperature.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace dspark {

struct CalibrationFit {
  float sampling_temperature = 0;
  std::vector<float> temperatures;  // T_k for k = 1..B (index 0 is the first draft)
};

struct Calibration {
  std::vector<CalibrationFit> fits;

  // The fit nearest to the sampling temperature (lower on ties); null when there are none.
  const CalibrationFit* nearest(float sampling_temperature) const;

  // Throws Error naming `file` and the field when the text is not a valid calibration.
  static Calibration parse(const std::string& json_text, const std::string& file);
  // calibration.json in `dir`, or nothing when the file does not exist.
  static std::optional<Calibration> load_from_dir(const std::string& dir);
  std::string to_json() const;
};

// c_k = sigmoid(logit / T_k); the raw sigmoid(logit) without a fit.
float calibrated_confidence(float logit, const CalibrationFit* fit, int k);

}  // namespace dspark
