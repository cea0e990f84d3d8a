// BPE by token score (sentencepiece BPE as llama2.c and llama.cpp's "llama" vocab run it):
// start from the text's characters; repeatedly merge the adjacent pair whose concatenation
// is a token with the highest score, the leftmost one on ties, until none is a token.
// The same linked list + heap scheme as RankMerges keeps long texts O(n log n).
#pragma once

#include <array>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace dspark {

class ScoreMerger {
 public:
  // `scores[id]` ranks merges; tokens with `mergeable[id] == 0` (control and byte tokens)
  // are never produced by a merge. Characters that are not tokens become the byte tokens
  // of their bytes (`byte_ids`, -1 where missing: then `unk`, or dropped if there is none):
  // before merging when `bytes_first` (llama2.c), after it otherwise (llama.cpp).
  ScoreMerger(const Vocab& vocab, std::vector<float> scores, std::vector<uint8_t> mergeable,
              std::array<int, 256> byte_ids, bool bytes_first);

  void encode(std::string_view text, std::vector<int>& out) const;

  const std::vector<float>& scores() const { return scores_; }
  const std::vector<uint8_t>& mergeable() const { return mergeable_; }

 private:
  void emit_bytes(std::string_view bytes, std::vector<int>& out) const;

  const Vocab& vocab_;
  std::vector<float> scores_;
  std::vector<uint8_t> mergeable_;
  std::array<int, 256> byte_ids_;
  bool bytes_first_;
};

}  // namespace dspark
