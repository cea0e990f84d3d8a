#include "tokenizer/added_tokens.h"

#include <algorithm>

namespace dspark {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

int LiteralTokenSplitter::child(int node, uint8_t b) const {
  const auto& next = nodes_[size_t(node)].next;
  auto it = std::lower_bound(next.begin(), next.end(), b,
                             [](const std::pair<uint8_t, int>& e, uint8_t key) { return e.first < key; });
  return it != next.end() && it->first == b ? it->second : -1;
}

void LiteralTokenSplitter::add(const LiteralToken& token) {
  if (token.content.empty()) return;
  int node = 0;
  for (char c : token.content) {
    const uint8_t b = uint8_t(c);
    int next = child(node, b);
    if (next < 0) {
      next = int(nodes_.size());
      nodes_.push_back(Node{});
      auto& edges = nodes_[size_t(node)].next;
      auto it = std::lower_bound(edges.begin(), edges.end(), b,
                                 [](const std::pair<uint8_t, int>& e, uint8_t key) { return e.first < key; });
      edges.insert(it, {b, next});
    }
    node = next;
  }
  if (nodes_[size_t(node)].token >= 0) return;  // same literal twice: the first one wins
  nodes_[size_t(node)].token = int(tokens_.size());
  tokens_.push_back(token);
  first_byte_[uint8_t(token.content[0])] = true;
}

size_t LiteralTokenSplitter::longest_match(std::string_view text, size_t pos, int* token) const {
  size_t best = 0;
  int node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    node = child(node, uint8_t(text[i]));
    if (node < 0) break;
    if (nodes_[size_t(node)].token >= 0) {
      best = i + 1 - pos;
      *token = nodes_[size_t(node)].token;
    }
  }
  return best;
}

void LiteralTokenSplitter::split(std::string_view text, std::vector<Piece>& out) const {
  size_t raw_start = 0;  // start of the raw text not yet emitted
  size_t pos = 0;
  while (pos < text.size()) {
    int token = -1;
    const size_t len = first_byte_[uint8_t(text[pos])] ? longest_match(text, pos, &token) : 0;
    if (len == 0) {
      ++pos;
      continue;
    }
    const LiteralToken& t = tokens_[size_t(token)];
    size_t raw_end = pos;
    if (t.lstrip)
      while (raw_end > raw_start && is_space(text[raw_end - 1])) --raw_end;
    if (raw_end > raw_start) out.push_back({text.substr(raw_start, raw_end - raw_start), -1});
    out.push_back({text.substr(pos, len), t.id});
    pos += len;
    if (t.rstrip)
      while (pos < text.size() && is_space(text[pos])) ++pos;
    raw_start = pos;
  }
  if (raw_start < text.size()) out.push_back({text.substr(raw_start), -1});
}

}  // namespace dspark
