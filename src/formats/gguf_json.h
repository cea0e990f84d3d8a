// A GGUF file's raw contents as GgufFile reads them, for `dspark info --gguf` and for
// comparing with other GGUF readers (tests/gguf_js).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "formats/gguf.h"

namespace dspark {

// {"version", "alignment", "metadata": {key: value}, "tensors": [{name, type, shape, offset}]}.
// Values keep their kind: integers as integers, booleans as booleans, floats as numbers (a
// non-finite float as the string "nan", "inf" or "-inf"), strings as strings, arrays as
// arrays. `type` is the ggml type name ("F32", "Q8_0"), `shape` the dimensions in file order
// (ne[0] first), `offset` relative to the data section. Strings are not checked for UTF-8:
// dump with error_handler_t::replace.
nlohmann::json gguf_to_json(const GgufFile& f);

// The same as readable text; arrays longer than a few elements are shortened.
std::string gguf_listing(const GgufFile& f);

}  // namespace dspark
