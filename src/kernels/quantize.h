// Conversions between fp32 rows and the stored weight types, and the 8-bit activation
// quantizations of the integer dot products.
//
// Weights: Q8_0 and Q4_0 follow ggml's reference quantizers (Q8_0: d = max|x| / 127,
// q = round(x / d); Q4_0: d = m / -8 with m the value of largest magnitude,
// q = min(15, trunc(x / d + 8.5))). Q4_K and Q6_K use our own search for sub-block scales
// (and mins): not bit-identical to ggml's quantizers, but stored in exactly ggml's layout,
// and dequantize_row follows ggml's dequantize_row_q4_K / q6_K arithmetic.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace dspark {

// Writes dtype_row_bytes(type, n) bytes; n must be a multiple of the type's block size.
void quantize_row(DType type, const float* x, int64_t n, void* out);

// Converts n stored elements of `type` at `in` to fp32.
void dequantize(DType type, const void* in, int64_t n, float* out);

// Converts a whole tensor (any stored type) to `type`; returns the new bytes.
std::vector<uint8_t> convert_tensor(const TensorView& t, DType type);
// The same into `out`, which must hold dtype_row_bytes(type, t.cols()) * t.rows() bytes.
void convert_tensor(const TensorView& t, DType type, void* out);

// Activations for integer dot products, rounded half to even (as the SIMD kernels round).
// Q8_0 (n a multiple of 32): d = fp16(max|x| / 127), q = round(x * 127 / max|x|).
void quantize_act_q8_0(const float* x, int64_t n, BlockQ8_0* out);
// Q8_K (n a multiple of 256): d = max|x| / 127 in fp32, q = round(x / d), bsums filled.
void quantize_act_q8_k(const float* x, int64_t n, BlockQ8_K* out);

}  // namespace dspark
