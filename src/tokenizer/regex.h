// A compiled PCRE2 pattern (UTF + Unicode properties, so \p{L} and \s mean what the
// Hugging Face tokenizers' regexes mean). Invalid UTF-8 in the subject is allowed: such
// bytes never match and end up in the gaps between matches.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dspark {

class Regex {
 public:
  // Throws Error "<label>: bad regex ...: <reason> at offset N" when it does not compile.
  // With `literal` the pattern is matched as plain text.
  Regex(std::string_view pattern, bool literal, const std::string& label);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-empty, non-overlapping matches [begin, end) from left to right, appended to `out`.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

  // The pattern as given, and whether it is matched as plain text (for writers that name it).
  const std::string& pattern() const;
  bool literal() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Pre-tokenizer regexes of well-known models.
extern const char* const kGpt2Pattern;
extern const char* const kQwen2Pattern;
extern const char* const kLlama3Pattern;

}  // namespace dspark
