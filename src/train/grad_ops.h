// Forward and backward passes of the row-wise operations of a Qwen3-style decoder layer,
// on fp32 rows. Each backward sits next to its forward and is checked against finite
// differences in tests/train_grad_ops_test.cpp. Gradients of inputs are SET unless a
// function says it adds; gradients of weights are always ADDED (they accumulate over a batch).
#pragma once

#include "core/thread_pool.h"

namespace dspark {

// y[i] = w ⊙ x[i] / sqrt(mean(x[i]²) + eps) for n rows of `dim` values (y may alias x).
void rmsnorm_rows(const float* x, const float* w, int n, int dim, float eps, float* y, ThreadPool& pool);
// dx = ∂/∂x, dw += ∂/∂w for the rows above, given dy. With add_dx, dx is added into.
void rmsnorm_rows_backward(const float* x, const float* w, const float* dy, int n, int dim, float eps,
                           float* dx, float* dw, bool add_dx, ThreadPool& pool);

// Rotate-half RoPE in place on rows of `heads` vectors of head_dim: row i at positions[i].
// inverse = true rotates by the opposite angle, which is the backward pass (a rotation's
// transpose is its inverse).
void rope_rows(float* v, const int* positions, int n, int heads, int head_dim, float theta, bool inverse,
               ThreadPool& pool);

// a = silu(g) ⊙ u, over n values.
void swiglu_forward(const float* g, const float* u, int64_t n, float* a, ThreadPool& pool);
// dg, du from da.
void swiglu_backward(const float* g, const float* u, const float* da, int64_t n, float* dg, float* du,
                     ThreadPool& pool);

// y += x over n values.
void add_rows(float* y, const float* x, int64_t n, ThreadPool& pool);

}  // namespace dspark
