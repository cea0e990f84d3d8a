// A flattened batch of tokens for one forward pass. Each token names its sequence and its
// position in that sequence; decode, prefill and verification are all batches of this kind.
#pragma once

#include <vector>

namespace dspark {

struct Batch {
  std::vector<int> tokens;
  std::vector<int> positions;
  std::vector<int> seqs;
  std::vector<int> logit_rows;  // indices into tokens whose logits are wanted, in output order

  void add(int token, int pos, int seq, bool want_logits) {
    if (want_logits) logit_rows.push_back(int(tokens.size()));
    tokens.push_back(token);
    positions.push_back(pos);
    seqs.push_back(seq);
  }
  void clear() {
    tokens.clear();
    positions.clear();
    seqs.clear();
    logit_rows.clear();
  }
  int size() const { return int(tokens.size()); }
};

}  // namespace dspark
