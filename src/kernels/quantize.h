// Conversion of fp32 rows into a stored weight type (the inverse of dequantize_row).
// Q8_0 follows ggml's reference rounding: d = max|x| / 127, q = round(x / d).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace dspark {

// Writes dtype_row_bytes(type, n) bytes; n must be a multiple of the type's block size.
void quantize_row(DType type, const float* x, int64_t n, void* out);

// Converts a whole tensor (any stored type) to `type`; returns the new bytes.
std::vector<uint8_t> convert_tensor(const TensorView& t, DType type);

}  // namespace dspark
