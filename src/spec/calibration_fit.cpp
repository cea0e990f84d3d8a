#include "spec/calibration_fit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace dspark {

namespace {

// The samples of one position: each round's product of the already-calibrated earlier
// confidences, its logit at this position, and its label.
struct PositionData {
  std::vector<size_t> round;  // index into the rounds
  std::vector<double> prefix;
  std::vector<float> logit;
  std::vector<uint8_t> label;
  std::vector<double> pred;  // scratch: prefix * sigmoid(logit / T)
};

double ece_at(PositionData& d, double t, int bins) {
  for (size_t i = 0; i < d.logit.size(); ++i)
    d.pred[i] = d.prefix[i] / (1.0 + std::exp(-double(d.logit[i]) / t));
  return expected_calibration_error(d.pred, d.label, bins);
}

// The log-spaced points lo .. hi (n >= 2).
std::vector<double> log_grid(double lo, double hi, int n) {
  std::vector<double> g(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) g[size_t(i)] = lo * std::pow(hi / lo, double(i) / double(n - 1));
  return g;
}

// The shortest decimal that reads back as the same float, as a double: 0.7f is written 0.7
// rather than 0.699999988079071.
double shortest_decimal(float x) {
  char buf[32];
  for (int digits = 6; digits < 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, double(x));
    if (std::strtof(buf, nullptr) == x) return std::strtod(buf, nullptr);
  }
  return double(x);
}

}  // namespace

CalibrationFit fit_sequential_temperature_scaling(const std::vector<ConfidenceRound>& rounds,
                                                  float sampling_temperature, int bins) {
  const int positions = calibration_positions(rounds);
  if (positions == 0)
    fail("temperature scaling: no recorded round has a verified draft with a confidence (nothing to fit)");
  CalibrationFit fit;
  fit.sampling_temperature = sampling_temperature;
  // prefix[r]: product of round r's calibrated confidences at the positions fitted so far.
  std::vector<double> prefix(rounds.size(), 1.0);
  const std::vector<double> coarse = log_grid(kStsMin, kStsMax, kStsCoarse);
  const double step = std::pow(double(kStsMax) / kStsMin, 1.0 / (kStsCoarse - 1));
  PositionData d;
  for (int k = 0; k < positions; ++k) {
    d = PositionData();
    for (size_t r = 0; r < rounds.size(); ++r) {
      if (k >= std::min(rounds[r].valid, int(rounds[r].logits.size()))) continue;
      d.round.push_back(r);
      d.prefix.push_back(prefix[r]);
      d.logit.push_back(rounds[r].logits[size_t(k)]);
      d.label.push_back(rounds[r].accepted > k ? 1 : 0);
    }
    d.pred.resize(d.logit.size());
    double t = fit.temperatures.empty() ? 1.0 : double(fit.temperatures.back());
    if (!d.logit.empty()) {
      double best_ece = ece_at(d, 1.0, bins);
      t = 1.0;
      auto consider = [&](double candidate) {
        const double e = ece_at(d, candidate, bins);
        if (e < best_ece - 1e-12 ||
            (e <= best_ece + 1e-12 && std::fabs(std::log(candidate)) < std::fabs(std::log(t)))) {
          best_ece = std::min(e, best_ece);
          t = candidate;
        }
      };
      for (double c : coarse) consider(c);
      const double centre = t;
      for (double c : log_grid(std::max(centre / step, double(kStsMin)),
                               std::min(centre * step, double(kStsMax)), kStsFine))
        consider(c);
    }
    fit.temperatures.push_back(float(t));
    // The confidence the decoder will use (calibrated_confidence), for the next positions.
    for (size_t i = 0; i < d.round.size(); ++i)
      prefix[d.round[i]] *= double(calibrated_confidence(d.logit[i], &fit, k));
  }
  return fit;
}

nlohmann::ordered_json calibration_fit_json(const CalibrationFit& fit,
                                            const std::vector<PositionCalibration>& before,
                                            const std::vector<PositionCalibration>& after, int64_t rounds) {
  auto field = [](const std::vector<PositionCalibration>& ms, auto get) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (const PositionCalibration& m : ms) a.push_back(get(m));
    return a;
  };
  nlohmann::ordered_json temperatures = nlohmann::ordered_json::array();
  for (float t : fit.temperatures) temperatures.push_back(shortest_decimal(t));
  return {{"sampling_temperature", shortest_decimal(fit.sampling_temperature)},
          {"temperatures", temperatures},
          {"rounds", rounds},
          {"samples", field(before, [](const PositionCalibration& m) { return m.samples; })},
          {"survival", field(before, [](const PositionCalibration& m) { return m.mean_label; })},
          {"ece_before", field(before, [](const PositionCalibration& m) { return m.ece; })},
          {"ece_after", field(after, [](const PositionCalibration& m) { return m.ece; })},
          {"auroc_before", field(before, [](const PositionCalibration& m) { return m.auroc; })},
          {"auroc", field(after, [](const PositionCalibration& m) { return m.auroc; })},
          {"brier_before", field(before, [](const PositionCalibration& m) { return m.brier; })},
          {"brier_after", field(after, [](const PositionCalibration& m) { return m.brier; })}};
}

}  // namespace dspark
