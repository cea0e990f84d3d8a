// BPE by merge rank (Hugging Face "BPE" models, GGUF "gpt2"): repeatedly merge the adjacent
// pair of symbols with the lowest-ranked merge rule, the leftmost one on ties, until no
// rule applies. A doubly linked list of symbols and a heap of candidate pairs make a word
// of n symbols cost O(n log n), so a whole unsplit text (sentencepiece-style) stays fast.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace dspark {

class RankMerges {
 public:
  // Rule: symbols (left, right) merge into `merged`; lower rank applies first. A pair given
  // twice keeps its first rule.
  void add(int left, int right, int merged, int rank);
  size_t size() const { return rules_.size(); }
  void reserve(size_t n) { rules_.reserve(n); }

  // Reusable buffers so that encoding many small words does not allocate per word.
  struct Scratch {
    struct Node {
      int id, prev, next;
    };
    struct Candidate {
      int rank, pos, left, right;
    };
    std::vector<Node> nodes;
    std::vector<Candidate> heap;
  };
  // Merges `symbols` in place.
  void apply(std::vector<int>& symbols, Scratch& scratch) const;

  struct Rule {
    int rank;
    int merged;
  };
  // The rule for the pair (left, right), or nullptr when there is none.
  const Rule* find(int left, int right) const {
    auto it = rules_.find(key(left, right));
    return it == rules_.end() ? nullptr : &it->second;
  }
  struct RuleEntry {
    int left, right, merged, rank;
  };
  // Every rule, lowest rank first (for writers).
  std::vector<RuleEntry> rules_by_rank() const;

 private:
  static uint64_t key(int left, int right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }
  std::unordered_map<uint64_t, Rule> rules_;
};

}  // namespace dspark
