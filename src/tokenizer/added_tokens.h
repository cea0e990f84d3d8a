// Splits input text on tokens that are matched literally before any other processing:
// Hugging Face added tokens, GGUF control and user-defined tokens, llama2.c's <s> and </s>.
// At each position the longest literal wins; a trie keeps the scan linear in practice.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dspark {

struct LiteralToken {
  std::string content;
  int id = -1;
  bool lstrip = false;  // the match swallows whitespace on its left
  bool rstrip = false;  // ... and on its right
};

class LiteralTokenSplitter {
 public:
  void add(const LiteralToken& token);  // empty contents are ignored
  bool empty() const { return tokens_.empty(); }
  // The literals in the order added, each content once (the first one added wins).
  const std::vector<LiteralToken>& tokens() const { return tokens_; }

  struct Piece {
    std::string_view text;  // raw text to encode (id == -1), or the matched literal
    int id = -1;
  };
  // Appends the pieces of `text` in order; raw pieces are never empty.
  void split(std::string_view text, std::vector<Piece>& out) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int>> next;  // byte -> child node, sorted by byte
    int token = -1;                             // index into tokens_ when a literal ends here
  };
  int child(int node, uint8_t b) const;
  // Length of the longest literal starting at text[pos] (0 if none) and its token index.
  size_t longest_match(std::string_view text, size_t pos, int* token) const;

  std::vector<LiteralToken> tokens_;
  std::vector<Node> nodes_{Node{}};
  bool first_byte_[256] = {};
};

}  // namespace dspark
