#include "draft/ngram_drafter.h"

#include <algorithm>

#include "core/error.h"

namespace dspark {

NgramDrafter::NgramDrafter(const NgramOptions& o) : options_(o) {
  if (o.min_ngram < 1 || o.max_ngram < o.min_ngram)
    fail("ngram drafter: n-gram sizes must satisfy 1 <= min (", o.min_ngram, ") <= max (", o.max_ngram, ")");
  if (o.max_block < 1) fail("ngram drafter: max_block must be at least 1, got ", o.max_block);
}

void NgramDrafter::draft(const DraftInput& in, DraftBlock& out) {
  out.clear();
  const int* t = in.tokens;
  const int N = in.n_tokens;
  for (int n = std::min(options_.max_ngram, N - 1); n >= options_.min_ngram; --n) {
    // The most recent earlier occurrence of the last n tokens: start i with t[i..i+n) equal
    // to t[N-n..N), i + n < N so at least one token follows it.
    for (int i = N - n - 1; i >= 0; --i) {
      if (!std::equal(t + i, t + i + n, t + (N - n))) continue;
      const int follow = std::min(in.max_tokens, N - (i + n));
      if (out.q.size() < size_t(follow)) out.q.resize(size_t(follow));
      for (int k = 0; k < follow; ++k) {
        const int d = t[i + n + k];
        out.tokens.push_back(d);
        out.q[size_t(k)].ids.assign(1, d);
        out.q[size_t(k)].probs.assign(1, 1.0f);
      }
      return;
    }
  }
}

}  // namespace dspark
