// Where a command's `--json [FILE]` results go: stdout (no FILE or "-"), else FILE.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace dspark::cli {

// Whether the results go to stdout (so tables must go to stderr).
inline bool json_to_stdout(const std::string& path) { return path.empty() || path == "-"; }

// Writes the results, indented, with a final newline; throws Error naming FILE on failure.
void write_json_output(const nlohmann::json& j, const std::string& path);

}  // namespace dspark::cli
