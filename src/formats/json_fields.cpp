#include "formats/json_fields.h"

#include "core/error.h"

namespace dspark {

using nlohmann::json;

JsonFields::JsonFields(const json& j, std::string file, int64_t min_int)
    : j_(j), file_(std::move(file)), min_int_(min_int) {}

const json* JsonFields::find(const char* key) const {
  if (!j_.is_object()) return nullptr;
  auto it = j_.find(key);
  return it == j_.end() || it->is_null() ? nullptr : &*it;
}

int JsonFields::to_int(const json& v, const char* key) const {
  if (!v.is_number_integer() || v.get<int64_t>() < min_int_ || v.get<int64_t>() > (int64_t(1) << 30))
    fail(file_, ": field '", key, "' must be ", min_int_ == 0 ? "a non-negative integer" : "an integer",
         ", got ", v.dump());
  return int(v.get<int64_t>());
}

int JsonFields::get_int(const char* key) const {
  const json* v = find(key);
  if (!v) fail(file_, ": missing field '", key, "'");
  return to_int(*v, key);
}

int JsonFields::get_int_or(const char* key, int def) const {
  const json* v = find(key);
  return v ? to_int(*v, key) : def;
}

double JsonFields::get_float_or(const char* key, double def) const {
  const json* v = find(key);
  if (!v) return def;
  if (!v->is_number()) fail(file_, ": field '", key, "' must be a number, got ", v->dump());
  return v->get<double>();
}

bool JsonFields::get_bool_or(const char* key, bool def) const {
  const json* v = find(key);
  if (!v) return def;
  if (!v->is_boolean()) fail(file_, ": field '", key, "' must be true or false, got ", v->dump());
  return v->get<bool>();
}

std::string JsonFields::get_string_or(const char* key, const std::string& def) const {
  const json* v = find(key);
  if (!v) return def;
  if (!v->is_string()) fail(file_, ": field '", key, "' must be a string, got ", v->dump());
  return v->get<std::string>();
}

float JsonFields::rope_theta(double def) const {
  double theta = get_float_or("rope_theta", def);
  if (const json* rp = find("rope_parameters"); rp && rp->is_object())
    theta = JsonFields(*rp, file_ + " rope_parameters").get_float_or("rope_theta", theta);
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    const json* s = find(key);
    if (!s || !s->is_object()) continue;
    const json* type = s->contains("rope_type") ? &(*s)["rope_type"]
                       : s->contains("type")    ? &(*s)["type"]
                                                : nullptr;
    if (type && (!type->is_string() || type->get<std::string>() != "default"))
      fail(file_, ": RoPE scaling ", type->dump(), " in '", key,
           "' is not supported yet (expected \"default\")");
  }
  return float(theta);
}

}  // namespace dspark
