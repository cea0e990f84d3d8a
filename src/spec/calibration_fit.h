// Sequential temperature scaling (DSPARK.md 5): per draft position k, left to right, a
// scalar T_k chosen by 1-D grid search to minimise the 20-bin ECE of the cumulative product
// a_k = sigmoid(logit_0 / T_0) ... sigmoid(logit_k / T_k), with T_0..T_{k-1} fixed at the
// values already fitted. Dividing by a positive T keeps the order of the confidences within
// a position; it can change the order of the cross-position products (DSPARK.md 9).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "spec/calibration.h"
#include "spec/calibration_metrics.h"

namespace dspark {

// The grid: kStsCoarse log-spaced temperatures from kStsMin to kStsMax (a factor of about
// 1.08 apart), then kStsFine log-spaced ones between the best coarse point's neighbours (a
// factor of about 1.004 apart). ECE is piecewise constant in T, so a grid is as good as
// anything smarter; the range covers heads that are 20x over- or under-confident.
inline constexpr float kStsMin = 0.05f, kStsMax = 20.0f;
inline constexpr int kStsCoarse = 81, kStsFine = 41;

// Fits T_k for every position that has samples (calibration_positions(rounds)); a position
// without samples gets the previous position's temperature (1 for the first). Among
// temperatures with the same ECE the one nearest 1 (in log T) wins, so positions that carry no
// information are left alone. Error when no round has a sample.
CalibrationFit fit_sequential_temperature_scaling(const std::vector<ConfidenceRound>& rounds,
                                                  float sampling_temperature, int bins = kCalibrationBins);

// One entry of calibration.json's "fits": the fit ("sampling_temperature", "temperatures")
// and what the calibrator measured on the rounds it was fitted on, per position:
// "samples", "survival" (rate of the label), "ece_before" / "ece_after", "auroc_before" /
// "auroc" (of the calibrated products), "brier_before" / "brier_after", and "rounds" (all
// rounds recorded). Calibration::parse reads the fit and ignores the rest.
nlohmann::ordered_json calibration_fit_json(const CalibrationFit& fit,
                                            const std::vector<PositionCalibration>& before,
                                            const std::vector<PositionCalibration>& after, int64_t rounds);

}  // namespace dspark
