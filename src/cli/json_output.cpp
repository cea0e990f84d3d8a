#include "cli/json_output.h"

#include <cstdio>
#include <fstream>

#include "core/error.h"

namespace dspark::cli {

void write_json_output(const nlohmann::json& j, const std::string& path) {
  const std::string text = j.dump(2) + "\n";
  if (json_to_stdout(path)) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return;
  }
  std::ofstream f(path, std::ios::trunc);
  f << text;
  if (!f) fail(path, ": cannot write the JSON results");
}

}  // namespace dspark::cli
