#include "formats/gguf_json.h"

#include <cmath>

namespace dspark {

namespace {

nlohmann::json value_json(const GgufValue& v) {
  switch (v.type) {
    case GgufValueType::BOOL:
      return v.u != 0;
    case GgufValueType::UINT8:
    case GgufValueType::UINT16:
    case GgufValueType::UINT32:
    case GgufValueType::UINT64:
      return v.u;
    case GgufValueType::INT8:
    case GgufValueType::INT16:
    case GgufValueType::INT32:
    case GgufValueType::INT64:
      return v.i;
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64:
      if (std::isnan(v.f)) return "nan";
      if (std::isinf(v.f)) return v.f > 0 ? "inf" : "-inf";
      return v.f;
    case GgufValueType::STRING:
      return v.str;
    case GgufValueType::ARRAY: {
      nlohmann::json a = nlohmann::json::array();
      for (const GgufValue& e : v.array) a.push_back(value_json(e));
      return a;
    }
  }
  return nullptr;
}

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One line: an array shows its first elements and its length.
std::string short_value(const nlohmann::json& v) {
  constexpr size_t kShown = 8;
  if (!v.is_array() || v.size() <= kShown) return dump(v);
  std::string s = "[";
  for (size_t k = 0; k < kShown; ++k) s += dump(v[k]) + ", ";
  return s + "... (" + std::to_string(v.size()) + " elements)]";
}

}  // namespace

nlohmann::json gguf_to_json(const GgufFile& f) {
  nlohmann::json j;
  j["version"] = f.version();
  j["alignment"] = f.alignment();
  j["metadata"] = nlohmann::json::object();
  for (const auto& [key, value] : f.metadata()) j["metadata"][key] = value_json(value);
  j["tensors"] = nlohmann::json::array();
  for (const GgufTensor& t : f.tensors())
    j["tensors"].push_back(
        {{"name", t.name}, {"type", ggml_type_name(t.ggml_type)}, {"shape", t.ne}, {"offset", t.offset}});
  return j;
}

std::string gguf_listing(const GgufFile& f) {
  const nlohmann::json j = gguf_to_json(f);
  std::string s = "file      " + f.label() + "\nversion   " + std::to_string(f.version()) + ", alignment " +
                  std::to_string(f.alignment()) + "\nmetadata  " + std::to_string(j["metadata"].size()) +
                  " keys\n";
  for (const auto& [key, value] : j["metadata"].items()) s += "  " + key + " = " + short_value(value) + "\n";
  s += "tensors   " + std::to_string(j["tensors"].size()) +
       " (shape ne[0] first, offset in the data section)\n";
  for (const nlohmann::json& t : j["tensors"])
    s += "  " + t["name"].get<std::string>() + "  " + t["type"].get<std::string>() + "  " + dump(t["shape"]) +
         "  offset " + std::to_string(t["offset"].get<uint64_t>()) + "\n";
  return s;
}

}  // namespace dspark
