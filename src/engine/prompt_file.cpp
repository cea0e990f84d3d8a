#include "engine/prompt_file.h"

#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/mapped_file.h"

namespace dspark {

namespace {

std::string unescape(const std::string& line) {
  std::string out;
  out.reserve(line.size());
  for (size_t i = 0; i < line.size(); ++i) {
    const char next = i + 1 < line.size() ? line[i + 1] : '\0';
    if (line[i] == '\\' && (next == 'n' || next == 't' || next == '\\')) {
      out += next == 'n' ? '\n' : next == 't' ? '\t' : '\\';
      ++i;
    } else {
      out += line[i];
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> parse_prompt_lines(const std::string& text) {
  std::vector<std::string> prompts;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos || line[0] == '#') continue;
    prompts.push_back(unescape(line));
  }
  return prompts;
}

std::vector<std::string> read_prompt_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail(path, ": no such prompt file");
  std::vector<std::string> prompts = parse_prompt_lines(read_text_file(path));
  if (prompts.empty())
    fail(path, ": no prompts (one per line; blank lines and lines starting with # are skipped)");
  return prompts;
}

}  // namespace dspark
