// Calibration metrics and sequential temperature scaling (src/spec/calibration_metrics.h,
// src/spec/calibration_fit.h): ECE, AUROC and Brier on cases small enough to compute by
// hand; STS on synthetic confidences with a known per-position miscalibration brings the ECE
// down and recovers the temperatures; scaling never reorders confidences within a position.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "core/error.h"
#include "spec/calibration.h"
#include "spec/calibration_fit.h"
#include "spec/calibration_metrics.h"

namespace dspark {
namespace {

using Labels = std::vector<uint8_t>;

TEST(CalibrationMetrics, EceBySumOverBinsOfCountTimesGap) {
  // Bin 2 (0.10..0.15): mean prediction 0.1, mean label 0.5 -> 2 * 0.4.
  // Bin 18 (0.90..0.95): mean prediction 0.9, mean label 1 -> 2 * 0.1. Total 1.0 / 4.
  EXPECT_NEAR(expected_calibration_error({0.1, 0.1, 0.9, 0.9}, Labels{0, 1, 1, 1}), 0.25, 1e-12);
  // Perfectly calibrated bins give 0; so does no data.
  EXPECT_NEAR(expected_calibration_error({0.5, 0.5, 0.0, 1.0}, Labels{0, 1, 0, 1}), 0.0, 1e-12);
  EXPECT_EQ(expected_calibration_error({}, Labels{}), 0.0);
  // One bin pools everything: the gap between the overall means.
  EXPECT_NEAR(expected_calibration_error({0.2, 0.8}, Labels{0, 1}, 1), 0.0, 1e-12);
  EXPECT_NEAR(expected_calibration_error({0.4, 0.6, 0.5, 0.5}, Labels{0, 1, 0, 0}, 1), 0.25, 1e-12);
}

TEST(CalibrationMetrics, ReliabilityBinsHoldCountsAndMeans) {
  const auto bins = reliability_bins({0.0, 0.01, 0.52, 0.53, 0.54, 1.0}, Labels{0, 1, 1, 0, 1, 1});
  ASSERT_EQ(bins.size(), 20u);
  EXPECT_EQ(bins[0].count, 2);
  EXPECT_NEAR(bins[0].mean_prediction, 0.005, 1e-12);
  EXPECT_NEAR(bins[0].mean_label, 0.5, 1e-12);
  EXPECT_EQ(bins[10].count, 3);
  EXPECT_NEAR(bins[10].mean_prediction, 0.53, 1e-12);
  EXPECT_NEAR(bins[10].mean_label, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(bins[19].count, 1) << "a prediction of exactly 1 goes to the last bin";
  int64_t total = 0;
  for (const auto& b : bins) total += b.count;
  EXPECT_EQ(total, 6);
  EXPECT_EQ(bins[5].count, 0);
  EXPECT_EQ(bins[5].mean_prediction, 0.0);
}

TEST(CalibrationMetrics, AurocIsTheFractionOfCorrectlyOrderedPairs) {
  // Pairs (positive, negative): (0.35, 0.1) ok, (0.35, 0.4) wrong, (0.8, *) ok: 3 of 4.
  EXPECT_NEAR(auroc({0.1, 0.4, 0.35, 0.8}, Labels{0, 0, 1, 1}), 0.75, 1e-12);
  // A tie between a positive and a negative counts one half: (1 + 0.5 + 1 + 1) / 4.
  EXPECT_NEAR(auroc({0.2, 0.5, 0.5, 0.9}, Labels{0, 1, 0, 1}), 0.875, 1e-12);
  EXPECT_NEAR(auroc({0.5, 0.5, 0.5}, Labels{0, 1, 1}), 0.5, 1e-12);
  EXPECT_NEAR(auroc({0.9, 0.8, 0.1}, Labels{1, 1, 0}), 1.0, 1e-12);
  EXPECT_NEAR(auroc({0.1, 0.8, 0.9}, Labels{1, 0, 0}), 0.0, 1e-12);
  // One class empty: no pair to order, reported as 0.5.
  EXPECT_EQ(auroc({0.1, 0.9}, Labels{1, 1}), 0.5);
  EXPECT_EQ(auroc({0.1, 0.9}, Labels{0, 0}), 0.5);
  EXPECT_EQ(auroc({}, Labels{}), 0.5);
}

TEST(CalibrationMetrics, BrierIsTheMeanSquaredError) {
  EXPECT_NEAR(brier_score({0.2, 0.7}, Labels{0, 1}), (0.04 + 0.09) / 2, 1e-12);
  EXPECT_NEAR(brier_score({1.0, 0.0}, Labels{0, 1}), 1.0, 1e-12);
  EXPECT_EQ(brier_score({}, Labels{}), 0.0);
}

TEST(CalibrationMetrics, BadInputIsAnError) {
  EXPECT_THROW(expected_calibration_error({0.5}, Labels{}), Error);
  EXPECT_THROW(auroc({1.5}, Labels{1}), Error);
  EXPECT_THROW(brier_score({NAN}, Labels{0}), Error);
  EXPECT_THROW(reliability_bins({0.5}, Labels{2}), Error);
  EXPECT_THROW(reliability_bins({0.5}, Labels{1}, 0), Error);
}

TEST(CalibrationMetrics, PositionSamplesUseCumulativeProductsAndSkipUnjudgedPositions) {
  const float l0 = 0.5f, l1 = -1.0f, l2 = 2.0f;
  std::vector<ConfidenceRound> rounds = {
      {{l0, l1, l2}, 1, 3},  // first accepted, second rejected
      {{l0, l1, l2}, 3, 2},  // a stop token accepted at index 1: position 2 was never judged
      {{l0}, 0, 1},          // a round that drafted only one token
      {{}, 0, 0},            // a round without drafts
  };
  auto s = [](float x, float t = 1.0f) { return 1.0 / (1.0 + std::exp(-double(x) / t)); };
  std::vector<double> pred;
  Labels label;
  position_samples(rounds, nullptr, 0, pred, label);
  ASSERT_EQ(pred.size(), 3u);
  EXPECT_NEAR(pred[0], s(l0), 1e-6);
  EXPECT_EQ(label, (Labels{1, 1, 0}));
  position_samples(rounds, nullptr, 1, pred, label);
  ASSERT_EQ(pred.size(), 2u);
  EXPECT_NEAR(pred[0], s(l0) * s(l1), 1e-6);
  EXPECT_EQ(label, (Labels{0, 1}));
  CalibrationFit fit{0.0f, {2.0f, 0.5f}};  // the last temperature also serves position 2
  position_samples(rounds, &fit, 2, pred, label);
  ASSERT_EQ(pred.size(), 1u);
  EXPECT_NEAR(pred[0], s(l0, 2) * s(l1, 0.5) * s(l2, 0.5), 1e-6);
  EXPECT_EQ(label, (Labels{0}));

  EXPECT_EQ(calibration_positions(rounds), 3);
  const auto m = position_calibration(rounds, nullptr);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].samples, 3);
  EXPECT_NEAR(m[0].mean_label, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(m[0].brier, ((1 - s(l0)) * (1 - s(l0)) * 2 + s(l0) * s(l0)) / 3, 1e-6);
  EXPECT_EQ(m[2].samples, 1);
  EXPECT_EQ(m[2].auroc, 0.5);
  EXPECT_EQ(m[0].bins.size(), size_t(kCalibrationBins));
}

// Rounds of a drafter whose head reports logit_k = true_logit_k * scale[k]: draft k survives
// (given 0..k-1 did) with probability sigmoid(true_logit_k), so temperatures T_k = scale[k]
// calibrate it exactly.
std::vector<ConfidenceRound> miscalibrated_rounds(const std::vector<float>& scale, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> z(1.0f, 1.5f);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<ConfidenceRound> rounds(static_cast<size_t>(n));
  for (ConfidenceRound& r : rounds) {
    r.valid = int(scale.size());
    r.accepted = -1;
    for (size_t k = 0; k < scale.size(); ++k) {
      const float t = z(rng);
      r.logits.push_back(t * scale[k]);
      if (r.accepted < 0 && u(rng) >= 1.0 / (1.0 + std::exp(-double(t)))) r.accepted = int(k);
    }
    if (r.accepted < 0) r.accepted = int(scale.size());
  }
  return rounds;
}

TEST(SequentialTemperatureScaling, RemovesAKnownMiscalibrationAndRecoversTheTemperatures) {
  // Over-confident (x3, x2) and under-confident (/2) positions, then a calibrated one.
  const std::vector<float> scale = {3.0f, 0.5f, 2.0f, 1.0f};
  const auto rounds = miscalibrated_rounds(scale, 40000, 7);
  const CalibrationFit fit = fit_sequential_temperature_scaling(rounds, 1.0f);
  EXPECT_EQ(fit.sampling_temperature, 1.0f);
  ASSERT_EQ(fit.temperatures.size(), scale.size());
  const auto before = position_calibration(rounds, nullptr);
  const auto after = position_calibration(rounds, &fit);
  for (size_t k = 0; k < scale.size(); ++k) {
    SCOPED_TRACE("position " + std::to_string(k));
    EXPECT_NEAR(fit.temperatures[k], scale[k], 0.15 * scale[k]);
    EXPECT_LT(after[k].ece, 0.02);
    EXPECT_LE(after[k].ece, before[k].ece);
    EXPECT_LE(after[k].brier, before[k].brier + 1e-3);
    std::printf("position %zu: T %.3f (true %.3f), ECE %.4f -> %.4f, Brier %.4f -> %.4f, AUROC %.3f\n", k,
                double(fit.temperatures[k]), double(scale[k]), before[k].ece, after[k].ece, before[k].brier,
                after[k].brier, after[k].auroc);
  }
  EXPECT_GT(before[0].ece, 0.05) << "the synthetic head is visibly miscalibrated";
  EXPECT_GT(before[2].ece, 0.05);

  // Fitted on one sample and measured on another, it still holds.
  const auto held_out = position_calibration(miscalibrated_rounds(scale, 40000, 8), &fit);
  for (size_t k = 0; k < scale.size(); ++k) EXPECT_LT(held_out[k].ece, 0.02) << "position " << k;
}

TEST(SequentialTemperatureScaling, KeepsTheOrderOfConfidencesWithinAPosition) {
  const auto rounds = miscalibrated_rounds({4.0f, 0.3f, 1.5f}, 5000, 11);
  const CalibrationFit fit = fit_sequential_temperature_scaling(rounds, 0.0f);
  for (size_t k = 0; k < fit.temperatures.size(); ++k) {
    EXPECT_GE(fit.temperatures[k], kStsMin);
    EXPECT_LE(fit.temperatures[k], kStsMax);
    std::vector<float> logits;
    for (const ConfidenceRound& r : rounds) logits.push_back(r.logits[k]);
    std::sort(logits.begin(), logits.end());
    for (size_t i = 1; i < logits.size(); ++i)
      ASSERT_LE(calibrated_confidence(logits[i - 1], &fit, int(k)),
                calibrated_confidence(logits[i], &fit, int(k)))
          << "position " << k << ", logits " << logits[i - 1] << " and " << logits[i];
  }
}

TEST(SequentialTemperatureScaling, PositionsWithoutInformationKeepTheirTemperature) {
  // Every confidence is 0.5 (logit 0) whatever T is: any T gives the same ECE, so 1 stays.
  std::vector<ConfidenceRound> rounds;
  for (int i = 0; i < 100; ++i) rounds.push_back({{0.0f, 0.0f}, i % 2, 2});
  // Position 2 is never judged: the fit ends at position 1 (later ones use its temperature).
  rounds.push_back({{0.0f, 0.0f, 3.0f}, 1, 2});
  const CalibrationFit fit = fit_sequential_temperature_scaling(rounds, 0.5f);
  EXPECT_EQ(fit.temperatures, (std::vector<float>{1.0f, 1.0f}));
  EXPECT_THROW(fit_sequential_temperature_scaling({ConfidenceRound{{}, 0, 0}}, 1.0f), Error);
}

TEST(SequentialTemperatureScaling, FitRecordIsReadByCalibrationParse) {
  const auto rounds = miscalibrated_rounds({2.0f, 2.0f}, 2000, 3);
  const CalibrationFit fit = fit_sequential_temperature_scaling(rounds, 1.0f);
  const auto before = position_calibration(rounds, nullptr), after = position_calibration(rounds, &fit);
  const nlohmann::ordered_json rec = calibration_fit_json(fit, before, after, int64_t(rounds.size()));
  for (const char* key : {"ece_before", "ece_after", "auroc", "auroc_before", "brier_before", "brier_after",
                          "samples", "survival"})
    EXPECT_EQ(rec[key].size(), 2u) << key;
  EXPECT_EQ(rec["rounds"], 2000);
  const nlohmann::ordered_json doc = {{"format", "dspark-calibration"}, {"version", 1}, {"fits", {rec}}};
  const Calibration c = Calibration::parse(doc.dump(), "calibration.json");
  ASSERT_EQ(c.fits.size(), 1u);
  EXPECT_EQ(c.fits[0].temperatures, fit.temperatures);
  EXPECT_EQ(c.fits[0].sampling_temperature, 1.0f);
}

}  // namespace
}  // namespace dspark
