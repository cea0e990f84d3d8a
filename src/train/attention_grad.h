// Multi-head attention for training, forward and backward, where each query sees up to two
// ranges of keys. That one description covers every mask the trainers need:
//   drafter block at anchor a (DSPARK.md 1.2): context keys [0, a) and its own block's keys
//     (bidirectional inside the block, blocks never see each other);
//   causal language model: keys [0, i].
// Keys and values are given already normed and rotated; GQA: query head h reads KV head
// h / (n_heads / n_kv_heads). The backward pass recomputes the attention weights instead of
// storing them (keeps memory at O(tokens), not O(tokens · keys)).
#pragma once

#include "core/thread_pool.h"

namespace dspark {

struct KeyRanges {
  int begin0 = 0, end0 = 0;  // first range of key rows [begin0, end0)
  int begin1 = 0, end1 = 0;  // second range (empty when begin1 == end1)
};

struct AttentionShape {
  int n_queries = 0, n_keys = 0;
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 0;  // usually head_dim^-1/2
};

// q [n_queries, n_heads·hd], k/v [n_keys, n_kv_heads·hd], ranges [n_queries];
// out [n_queries, n_heads·hd]. A query with no visible key gets zeros.
void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v,
                       const KeyRanges* ranges, float* out, ThreadPool& pool);

// Sets dq [n_queries, n_heads·hd], dk and dv [n_keys, n_kv_heads·hd] from dout.
void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                        const KeyRanges* ranges, const float* dout, float* dq, float* dk, float* dv,
                        ThreadPool& pool);

}  // namespace dspark
