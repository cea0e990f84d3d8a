// Attention of one token over its cached context, for a block of key/value heads and the
// query heads that share each of them (grouped-query attention). Query head h uses
// key/value head j = h / group:
//   s[h][p] = scale * (q[h] . k[j][p])              for p < n_ctx
//   a[h][p] = exp(s[h][p] - max_p s[h][p]) / sum_p exp(...)
//   out[h]  = sum_p a[h][p] * v[j][p]
// The kernels walk the positions in order and read each cached row segment once for all
// the query heads of the block, so the cache streams from memory. They are chosen at run
// time for the CPU (kernels/isa.h); the scalar level is the reference the others are
// tested against.
//
// Batch invariance: a query head's result depends only on its query, its n_ctx key/value
// rows and n_ctx: the order of every sum is fixed by the head size and n_ctx alone, not by
// the other heads of the call nor by the scratch, so a token attends the same bit for bit
// however it is batched and however its heads are split into calls. (Levels differ from
// one another in rounding, within the tested tolerance.)
#pragma once

#include <cstddef>
#include <cstdint>

namespace dspark {

struct AttentionArgs {
  const float* q;     // [n_kv * group, head_dim]: query heads one after the other
  int n_kv;           // key/value heads in the call (>= 1)
  int group;          // query heads per key/value head (>= 1)
  const float* k;     // key of head j at position p: k + p * kv_stride + j * head_dim
  const float* v;     // value of head j at position p: v + p * kv_stride + j * head_dim
  int64_t kv_stride;  // floats from one position to the next
  int n_ctx;          // positions attended (>= 1)
  int head_dim;       // >= 1, any size
  float scale;        // usually 1 / sqrt(head_dim)
  float* scores;      // scratch of attention_scratch_floats(n_kv * group, n_ctx) floats
  float* out;         // [n_kv * group, head_dim]
};

// Floats of scratch one call needs: one row of scores per query head, rows padded to a
// multiple of 16 so every level's vectors stay inside them.
inline size_t attention_scratch_floats(int n_q, int n_ctx) {
  return size_t(n_q) * ((size_t(n_ctx) + 15) / 16 * 16);
}

// Writes `out` for one token and a block of key/value heads, with the level kernel_isa() names.
void attention(const AttentionArgs& args);

}  // namespace dspark
