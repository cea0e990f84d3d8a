// Typed fields of a JSON object (a Hugging Face config.json and its kin). Every problem throws
// Error naming the file, the field and what was expected ("config.json: field 'hidden_size'
// must be a non-negative integer, got -3"). A field set to null counts as absent.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace dspark {

class JsonFields {
 public:
  // Integers must lie in [min_int, 2^30]; the default also admits negative ids such as -1.
  JsonFields(const nlohmann::json& j, std::string file, int64_t min_int = -(int64_t(1) << 30));

  const std::string& file() const { return file_; }
  // The field, or nullptr when it is absent or null.
  const nlohmann::json* find(const char* key) const;

  // `v` (the value of `key`, or an element of it) as an int in range.
  int to_int(const nlohmann::json& v, const char* key) const;
  int get_int(const char* key) const;  // a missing field is an error
  int get_int_or(const char* key, int def) const;
  double get_float_or(const char* key, double def) const;  // integers are numbers too
  bool get_bool_or(const char* key, bool def) const;
  std::string get_string_or(const char* key, const std::string& def) const;

  // The RoPE base of a Hugging Face config: `rope_theta`, or `rope_parameters.rope_theta` when
  // present (newer transformers); `def` when neither is. Refuses any RoPE scaling other than
  // "default" in `rope_scaling` or `rope_parameters`.
  float rope_theta(double def) const;

 private:
  const nlohmann::json& j_;
  std::string file_;
  int64_t min_int_;
};

}  // namespace dspark
