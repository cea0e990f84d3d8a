// How well the confidence head predicts survival (DSPARK.md 5). For draft position k the
// prediction is the cumulative product a_k = c_0 ... c_k of the (calibrated) confidences and
// the label is 1 when drafts 0..k were all accepted. Per position: ECE over 20 equal-width
// bins, AUROC, Brier score and the reliability diagram's bins.
#pragma once

#include <cstdint>
#include <vector>

#include "spec/calibration.h"

namespace dspark {

inline constexpr int kCalibrationBins = 20;  // the reference recorder's ECE binning

// One bin of a reliability diagram: predictions in [i/bins, (i+1)/bins) (the last bin
// includes 1).
struct ReliabilityBin {
  int64_t count = 0;
  double mean_prediction = 0, mean_label = 0;  // 0 when the bin is empty
};

// Predictions in [0, 1] and labels in {0, 1} of equal length; Error otherwise. Empty input
// gives 0 for ECE and Brier and 0.5 for AUROC.
std::vector<ReliabilityBin> reliability_bins(const std::vector<double>& pred,
                                             const std::vector<uint8_t>& label, int bins = kCalibrationBins);
// sum over bins of count * |mean prediction - mean label|, divided by the number of samples.
double expected_calibration_error(const std::vector<double>& pred, const std::vector<uint8_t>& label,
                                  int bins = kCalibrationBins);
// Probability that a random positive is ranked above a random negative, ties counting one
// half (exact, from average ranks).
double auroc(const std::vector<double>& pred, const std::vector<uint8_t>& label);
// Mean of (prediction - label)^2.
double brier_score(const std::vector<double>& pred, const std::vector<uint8_t>& label);

// One speculative round as recorded for calibration.
struct ConfidenceRound {
  std::vector<float> logits;  // raw confidence-head logits of the block's drafts
  int accepted = 0;           // leading drafts accepted
  // Positions whose outcome counts: the drafts verified, or up to and including an accepted
  // stop token (positions past it were never judged; DSPARK.md 5).
  int valid = 0;
};

// Per position k, over the rounds where position k counts (k < valid and a logit exists).
struct PositionCalibration {
  int64_t samples = 0;
  double mean_prediction = 0, mean_label = 0;  // mean_label: the empirical survival rate
  double ece = 0, auroc = 0.5, brier = 0;
  std::vector<ReliabilityBin> bins;
};

// Predictions a_k and labels of position k over the rounds, with c_i =
// calibrated_confidence(logit_i, fit, i) (fit null: the raw sigmoid).
void position_samples(const std::vector<ConfidenceRound>& rounds, const CalibrationFit* fit, int k,
                      std::vector<double>& pred, std::vector<uint8_t>& label);

// The number of positions that have at least one sample.
int calibration_positions(const std::vector<ConfidenceRound>& rounds);

// Metrics for positions 0 .. calibration_positions(rounds) - 1.
std::vector<PositionCalibration> position_calibration(const std::vector<ConfidenceRound>& rounds,
                                                      const CalibrationFit* fit, int bins = kCalibrationBins);

}  // namespace dspark
