// Element types of weights and activations, and the scalar conversions between them.
// Quantized types follow ggml's block layouts byte for byte, so GGUF files map directly;
// the value of every stored element is defined by dequantize_row (kernels/quantize.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace dspark {

enum class DType : uint8_t { F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K };

// Q8_0: 32 weights share one fp16 scale: value = d * q.
struct BlockQ8_0 {
  uint16_t d;  // fp16 scale
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q4_0: 32 weights, 4 bits each: value j = d * (q_j - 8) with q_j the low nibble of qs[j]
// for j < 16 and the high nibble of qs[j - 16] for j >= 16.
struct BlockQ4_0 {
  uint16_t d;  // fp16 scale
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_0) == 18);

// K-quants: super-blocks of 256 weights split into sub-blocks with their own small integer
// scales, which are themselves scaled by fp16 super-block factors.
constexpr int kQK = 256;

// Q4_K: 8 sub-blocks of 32; sub-block s has a 6-bit scale sc_s and 6-bit min m_s packed in
// `scales` (see unpack_q4_k_scales); value = d * sc_s * q - dmin * m_s with q a nibble.
// Values 64j .. 64j+31 are the low nibbles of qs[32j .. 32j+31], values 64j+32 .. 64j+63
// their high nibbles.
struct BlockQ4_K {
  uint16_t d;     // fp16 scale of the sub-block scales
  uint16_t dmin;  // fp16 scale of the sub-block mins
  uint8_t scales[12];
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q6_K: 16 sub-blocks of 16 with int8 scales; value = d * scales[s] * (q - 32) with q a
// 6-bit number: 4 low bits in ql, 2 high bits in qh (layout in dequantize_row).
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;  // fp16
};
static_assert(sizeof(BlockQ6_K) == 210);

// Q8_K: activations quantized for dot products with K-quant weights (never stored in a
// file): value = d * q; bsums[i] = sum of qs[16i .. 16i+15].
struct BlockQ8_K {
  float d;
  int8_t qs[kQK];
  int16_t bsums[kQK / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// Integer codes of single weights, straight from the layouts above (reference code and
// tests; the kernels decode whole blocks at once).
// Q4_0 weight j (0..31): value = d * (code - 8).
inline int q4_0_code(const BlockQ4_0& b, int j) { return j < 16 ? b.qs[j] & 0xf : b.qs[j - 16] >> 4; }
// Q4_K weight i (0..255): value = d * sc * code - dmin * m for sub-block i / 32.
inline int q4_k_code(const BlockQ4_K& b, int i) {
  const uint8_t byte = b.qs[32 * (i / 64) + i % 32];
  return i % 64 < 32 ? byte & 0xf : byte >> 4;
}
// Q6_K weight i (0..255): value = d * scales[i / 16] * (code - 32). Each half of 128 values
// takes 64 bytes of ql and 32 of qh: its 4 quarters l = 0..31 take the low nibbles of
// ql[l], ql[32 + l], then the high nibbles of ql[l], ql[32 + l], and bits 0-1, 2-3, 4-5,
// 6-7 of qh[l].
inline int q6_k_code(const BlockQ6_K& b, int i) {
  const int half = i / 128, quarter = i % 128 / 32, l = i % 32;
  const uint8_t low = b.ql[64 * half + 32 * (quarter & 1) + l];
  const int high = (b.qh[32 * half + l] >> (2 * quarter)) & 3;
  return (quarter < 2 ? low & 0xf : low >> 4) | (high << 4);
}

// The 6-bit scales and mins of a Q4_K block (ggml's get_scale_min_k4): sub-blocks 0..3 keep
// them in the low 6 bits of bytes 0..3 (scales) and 4..7 (mins); sub-blocks 4..7 keep their
// low 4 bits in the nibbles of bytes 8..11 and their top 2 bits in the top bits of bytes 0..7.
inline void unpack_q4_k_scales(const uint8_t* packed, uint8_t* sc, uint8_t* m) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = packed[j] & 63;
    m[j] = packed[j + 4] & 63;
    sc[j + 4] = uint8_t((packed[j + 8] & 0xf) | ((packed[j] >> 6) << 4));
    m[j + 4] = uint8_t((packed[j + 8] >> 4) | ((packed[j + 4] >> 6) << 4));
  }
}

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
