// Element types of weights and activations, and the scalar conversions between them.
// Quantized types follow ggml's block layouts byte for byte, so GGUF files map directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace dspark {

enum class DType : uint8_t { F32, F16, BF16, Q8_0 };

// Q8_0: 32 weights share one fp16 scale: value = d * q.
struct BlockQ8_0 {
  uint16_t d;  // fp16 scale
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34);

std::string_view dtype_name(DType t);
// Number of elements one block of this type holds (1 for plain floats).
int64_t dtype_block_elems(DType t);
// Bytes of one block.
size_t dtype_block_bytes(DType t);
// Bytes taken by n elements; n must be a multiple of the block size.
size_t dtype_row_bytes(DType t, int64_t n);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, keeping NaN a NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffff) > 0x7f800000) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace dspark
