#include "spec/calibration_metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace dspark {

namespace {

void check_samples(const std::vector<double>& pred, const std::vector<uint8_t>& label) {
  if (pred.size() != label.size())
    fail("calibration metrics: ", pred.size(), " predictions but ", label.size(), " labels");
  for (size_t i = 0; i < pred.size(); ++i) {
    if (!(pred[i] >= 0.0 && pred[i] <= 1.0))
      fail("calibration metrics: prediction ", i, " is ", pred[i], ", outside [0, 1]");
    if (label[i] > 1) fail("calibration metrics: label ", i, " is ", int(label[i]), ", not 0 or 1");
  }
}

}  // namespace

std::vector<ReliabilityBin> reliability_bins(const std::vector<double>& pred,
                                             const std::vector<uint8_t>& label, int bins) {
  check_samples(pred, label);
  if (bins < 1) fail("calibration metrics: ", bins, " bins (need at least 1)");
  std::vector<ReliabilityBin> out(static_cast<size_t>(bins));
  for (size_t i = 0; i < pred.size(); ++i) {
    ReliabilityBin& b = out[size_t(std::min(int(pred[i] * bins), bins - 1))];
    ++b.count;
    b.mean_prediction += pred[i];
    b.mean_label += label[i];
  }
  for (ReliabilityBin& b : out)
    if (b.count) {
      b.mean_prediction /= double(b.count);
      b.mean_label /= double(b.count);
    }
  return out;
}

double expected_calibration_error(const std::vector<double>& pred, const std::vector<uint8_t>& label,
                                  int bins) {
  const std::vector<ReliabilityBin> diagram = reliability_bins(pred, label, bins);
  if (pred.empty()) return 0.0;
  double sum = 0;
  for (const ReliabilityBin& b : diagram)
    sum += double(b.count) * std::fabs(b.mean_prediction - b.mean_label);
  return sum / double(pred.size());
}

double auroc(const std::vector<double>& pred, const std::vector<uint8_t>& label) {
  check_samples(pred, label);
  const size_t n = pred.size();
  const double positives = double(std::count(label.begin(), label.end(), uint8_t(1)));
  const double negatives = double(n) - positives;
  // With one class empty no positive/negative pair exists and the ranking says nothing; 0.5
  // is what an uninformative score gets, so such positions do not look good or bad.
  if (positives == 0 || negatives == 0) return 0.5;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return pred[a] < pred[b]; });
  // Mann-Whitney: the sum of the positives' ranks (1-based, tied predictions sharing the
  // average rank of their group), less the smallest possible sum, over the number of pairs.
  double positive_rank_sum = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && pred[order[j]] == pred[order[i]]) ++j;
    const double rank = 0.5 * double(i + 1 + j);  // average of ranks i+1 .. j
    for (size_t t = i; t < j; ++t)
      if (label[order[t]]) positive_rank_sum += rank;
    i = j;
  }
  return (positive_rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

double brier_score(const std::vector<double>& pred, const std::vector<uint8_t>& label) {
  check_samples(pred, label);
  if (pred.empty()) return 0.0;
  double sum = 0;
  for (size_t i = 0; i < pred.size(); ++i) sum += (pred[i] - label[i]) * (pred[i] - label[i]);
  return sum / double(pred.size());
}

void position_samples(const std::vector<ConfidenceRound>& rounds, const CalibrationFit* fit, int k,
                      std::vector<double>& pred, std::vector<uint8_t>& label) {
  pred.clear();
  label.clear();
  for (const ConfidenceRound& r : rounds) {
    if (k >= std::min(r.valid, int(r.logits.size()))) continue;
    double a = 1.0;
    for (int i = 0; i <= k; ++i) a *= double(calibrated_confidence(r.logits[size_t(i)], fit, i));
    pred.push_back(a);
    label.push_back(r.accepted > k ? 1 : 0);
  }
}

int calibration_positions(const std::vector<ConfidenceRound>& rounds) {
  int n = 0;
  for (const ConfidenceRound& r : rounds) n = std::max(n, std::min(r.valid, int(r.logits.size())));
  return n;
}

std::vector<PositionCalibration> position_calibration(const std::vector<ConfidenceRound>& rounds,
                                                      const CalibrationFit* fit, int bins) {
  std::vector<PositionCalibration> out(size_t(calibration_positions(rounds)));
  std::vector<double> pred;
  std::vector<uint8_t> label;
  for (size_t k = 0; k < out.size(); ++k) {
    position_samples(rounds, fit, int(k), pred, label);
    PositionCalibration& m = out[k];
    m.samples = int64_t(pred.size());
    for (size_t i = 0; i < pred.size(); ++i) {
      m.mean_prediction += pred[i];
      m.mean_label += label[i];
    }
    if (m.samples) {
      m.mean_prediction /= double(m.samples);
      m.mean_label /= double(m.samples);
    }
    m.bins = reliability_bins(pred, label, bins);
    m.ece = expected_calibration_error(pred, label, bins);
    m.auroc = auroc(pred, label);
    m.brier = brier_score(pred, label);
  }
  return out;
}

}  // namespace dspark
