// Prompt files (calibrate, eval, the drafter trainer): one prompt per line. Within a line
// `\n` stands for a newline, `\t` for a tab and `\\` for a backslash (any other backslash is
// kept as it is). Blank lines and lines starting with '#' are skipped; a trailing '\r' (a
// file written on Windows) is dropped.
#pragma once

#include <string>
#include <vector>

namespace dspark {

// The prompts in `text` (possibly none).
std::vector<std::string> parse_prompt_lines(const std::string& text);

// The prompts of the file; Error naming the file when it cannot be read or holds none.
std::vector<std::string> read_prompt_file(const std::string& path);

}  // namespace dspark
