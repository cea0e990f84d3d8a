// Element-wise and per-row operations of the transformer forward pass, on fp32 rows.
#pragma once

#include <cstdint>

namespace dspark {

// out = w * x / sqrt(mean(x^2) + eps), over n elements (out may alias x).
void rmsnorm(float* out, const float* x, const float* w, int n, float eps);

// Rotates one head vector in place for position `pos`.
// Halves: pairs (i, i + head_dim/2); adjacent: pairs (2i, 2i+1); frequency theta^(-2i/head_dim).
void rope_halves(float* v, int head_dim, int pos, float theta);
void rope_adjacent(float* v, int head_dim, int pos, float theta);

// The same rotations with the angles of one position computed once for every head and
// layer: cs[2i] = cos, cs[2i+1] = sin of pair i (head_dim floats). Results are identical.
void rope_angles(float* cs, int head_dim, int pos, float theta);
void rope_halves(float* v, int head_dim, const float* cs);
void rope_adjacent(float* v, int head_dim, const float* cs);

// In-place softmax over n values (max subtracted first).
void softmax(float* x, int n);

// gate[i] = silu(gate[i]) * up[i]
void swiglu(float* gate, const float* up, int n);

inline void add_inplace(float* y, const float* x, int n) {
  for (int i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace dspark
