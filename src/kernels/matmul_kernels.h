// The interface between matmul.cpp (shape checks, activation scratch, threading) and the
// per-ISA kernel files (matmul_scalar.cpp, matmul_avx2.cpp, matmul_avx512*.cpp).
//
// A kernel first prepares each token's fp32 activation row once per matmul call (quantized
// to 8 bits for the integer types, in the layout its dot products want), then computes
// blocks of weight rows against up to `max_tokens` prepared tokens at a time, reading each
// weight once for all of them. Every (row, token) result is computed by the same
// instructions in the same order whatever the number of tokens in the call: the per-token
// code is one template instantiated for 1..max_tokens tokens.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace dspark::kernels {

struct RowsArgs {
  const uint8_t* w;      // first weight row
  size_t w_stride;       // bytes from one weight row to the next
  int64_t n_rows, cols;  // rows to compute; elements per row
  const uint8_t* act;    // first prepared token
  size_t act_stride;     // bytes from one prepared token to the next
  int n_tokens;          // 1 .. max_tokens
  float* y;              // y[t * y_stride + r] for token t, row r (relative to w)
  int64_t y_stride;
};

struct MatmulKernel {
  int max_tokens = 1;
  // Bytes of one prepared token (a multiple of 64); 0: rows() reads the fp32 rows directly.
  size_t (*act_bytes)(int64_t cols) = nullptr;
  void (*prepare)(const float* x, int64_t cols, uint8_t* out) = nullptr;
  void (*rows)(const RowsArgs& args) = nullptr;
};

// One kernel per DType (indexed by the enum's value) for each level; every level
// implements every type.
const MatmulKernel* scalar_kernels();
const MatmulKernel* avx2_kernels();
const MatmulKernel* avx512_kernels();

constexpr size_t round_up_64(size_t n) { return (n + 63) / 64 * 64; }

}  // namespace dspark::kernels
