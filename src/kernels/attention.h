// Attention of one token over its cached context, for the query heads that share one
// key/value head (grouped-query attention): each cached key and value row is read once for
// the whole group.
//   s[g][p] = scale * (q[g] . k[p])              for p < n_ctx
//   a[g][p] = exp(s[g][p] - max_p s[g][p]) / sum_p exp(...)
//   out[g]  = sum_p a[g][p] * v[p]
// The kernels are chosen at run time for the CPU (kernels/isa.h); the scalar level is the
// reference the others are tested against.
//
// Batch invariance: every result depends only on q, the n_ctx key/value rows and n_ctx:
// the order of every sum is fixed by the head size and n_ctx alone, so a token attends
// the same bit for bit whatever else is in its batch. (Levels differ from one another in
// rounding, within the tested tolerance.)
#pragma once

#include <cstddef>
#include <cstdint>

namespace dspark {

struct AttentionArgs {
  const float* q;     // [n_q, head_dim]: the group's query heads, one after the other
  int n_q;            // query heads in the group (>= 1)
  const float* k;     // key of position p at k + p * kv_stride (head_dim floats)
  const float* v;     // value of position p at v + p * kv_stride
  int64_t kv_stride;  // floats from one position to the next
  int n_ctx;          // positions attended (>= 1)
  int head_dim;       // >= 1, any size
  float scale;        // usually 1 / sqrt(head_dim)
  float* scores;      // scratch of attention_scratch_floats(n_q, n_ctx) floats
  float* out;         // [n_q, head_dim]
};

// Floats of scratch one call needs: one row of scores per query head, rows padded to a
// multiple of 16 so every level's vectors stay inside them.
inline size_t attention_scratch_floats(int n_q, int n_ctx) {
  return size_t(n_q) * ((size_t(n_ctx) + 15) / 16 * 16);
}

// Writes `out` for one token and one key/value head, with the level kernel_isa() names.
void attention(const AttentionArgs& args);

}  // namespace dspark
