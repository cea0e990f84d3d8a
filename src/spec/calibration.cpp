#include "spec/calibration.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"

namespace dspark {

const CalibrationFit* Calibration::nearest(float t) const {
  const CalibrationFit* best = nullptr;
  for (const CalibrationFit& f : fits) {
    const float d = std::fabs(f.sampling_temperature - t);
    if (!best || d < std::fabs(best->sampling_temperature - t) ||
        (d == std::fabs(best->sampling_temperature - t) &&
         f.sampling_temperature < best->sampling_temperature))
      best = &f;
  }
  return best;
}

Calibration Calibration::parse(const std::string& text, const std::string& file) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(file, ": not valid JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(file, ": expected a JSON object");
  if (j.value("format", std::string()) != "dspark-calibration")
    fail(file, ": \"format\" must be \"dspark-calibration\"");
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int>() != 1)
    fail(file, ": unsupported \"version\" (expected 1)");
  if (!j.contains("fits") || !j["fits"].is_array() || j["fits"].empty())
    fail(file, ": \"fits\" must be a non-empty array");
  Calibration c;
  for (size_t i = 0; i < j["fits"].size(); ++i) {
    const nlohmann::json& f = j["fits"][i];
    const std::string where = file + ": fits[" + std::to_string(i) + "]";
    if (!f.is_object()) fail(where, ": expected an object");
    if (!f.contains("sampling_temperature") || !f["sampling_temperature"].is_number() ||
        f["sampling_temperature"].get<double>() < 0)
      fail(where, ".sampling_temperature must be a number >= 0");
    if (!f.contains("temperatures") || !f["temperatures"].is_array() || f["temperatures"].empty())
      fail(where, ".temperatures must be a non-empty array");
    CalibrationFit fit;
    fit.sampling_temperature = f["sampling_temperature"].get<float>();
    for (const auto& t : f["temperatures"]) {
      if (!t.is_number() || !(t.get<double>() > 0) || !std::isfinite(t.get<double>()))
        fail(where, ".temperatures must hold positive finite numbers");
      fit.temperatures.push_back(t.get<float>());
    }
    c.fits.push_back(std::move(fit));
  }
  return c;
}

std::optional<Calibration> Calibration::load_from_dir(const std::string& dir) {
  const std::string path = dir + "/calibration.json";
  if (!std::filesystem::exists(path)) return std::nullopt;
  return parse(read_text_file(path), path);
}

std::string Calibration::to_json() const {
  nlohmann::json j = {{"format", "dspark-calibration"}, {"version", 1}, {"fits", nlohmann::json::array()}};
  for (const CalibrationFit& f : fits)
    j["fits"].push_back({{"sampling_temperature", f.sampling_temperature}, {"temperatures", f.temperatures}});
  return j.dump(2) + "\n";
}

float calibrated_confidence(float logit, const CalibrationFit* fit, int k) {
  float x = logit;
  if (fit && !fit->temperatures.empty())
    x /= fit->temperatures[std::min(size_t(k), fit->temperatures.size() - 1)];
  return 1.0f / (1.0f + std::exp(-x));
}

}  // namespace dspark
