// A flattened batch of tokens for one forward pass. Each token names its sequence and its
// position in that sequence; decode, prefill and verification are all batches of this kind.
#pragma once

#include <algorithm>
#include <vector>

namespace dspark {

struct Batch {
  std::vector<int> tokens;
  std::vector<int> positions;
  std::vector<int> seqs;
  std::vector<int> logit_rows;  // indices into tokens whose logits are wanted, in output order
  // The last position each token attends to, inclusive. Empty: causal (its own position).
  // A drafter block sets it to the block's last position so the block sees itself whole.
  std::vector<int> attend_until;

  void add(int token, int pos, int seq, bool want_logits) {
    if (want_logits) logit_rows.push_back(int(tokens.size()));
    if (!attend_until.empty()) attend_until.push_back(pos);
    tokens.push_back(token);
    positions.push_back(pos);
    seqs.push_back(seq);
  }
  // Tokens [begin, end) attend to each other in both directions (and to their cached context).
  void make_bidirectional(int begin, int end) {
    if (attend_until.empty()) attend_until = positions;
    int last = 0;
    for (int i = begin; i < end; ++i) last = std::max(last, positions[size_t(i)]);
    for (int i = begin; i < end; ++i) attend_until[size_t(i)] = last;
  }
  void clear() {
    tokens.clear();
    positions.clear();
    seqs.clear();
    logit_rows.clear();
    attend_until.clear();
  }
  int size() const { return int(tokens.size()); }
};

}  // namespace dspark
