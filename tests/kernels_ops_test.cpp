// Every weight type on every ISA level this machine has, in the spirit of llama.cpp's
// test-backend-ops: matmul against the scalar reference, batch invariance (a token's result
// is bit-identical whatever the batch around it), and the block layouts against blocks
// built by hand from ggml's published formats.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "core/dtype.h"
#include "kernels/isa.h"
#include "kernels/matmul.h"
#include "kernels/quantize.h"

namespace dspark {
namespace {

constexpr DType kAllTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0,
                               DType::Q4_0, DType::Q4_K, DType::Q6_K};

std::vector<float> random_vec(size_t n, std::mt19937& g, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

void put_half(uint8_t* p, float f) {
  const uint16_t h = f32_to_f16(f);
  std::memcpy(p, &h, 2);
}

// A weight matrix of `type`: half of the rows quantized from Gaussian values (some rows
// with outliers), the other half random bytes with sane fp16 scales, so every code,
// sub-block scale and min of the format occurs.
std::vector<uint8_t> random_weights(DType type, int64_t rows, int64_t cols, std::mt19937& g) {
  const size_t row_bytes = dtype_row_bytes(type, cols), block = dtype_block_bytes(type);
  std::vector<uint8_t> out(row_bytes * size_t(rows));
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = out.data() + size_t(r) * row_bytes;
    const bool raw = r % 2 == 1 && dtype_block_elems(type) > 1;
    if (!raw) {
      std::vector<float> x = random_vec(size_t(cols), g, r % 3 == 0 ? 0.02f : 1.0f);
      if (r % 4 == 0) x[size_t(r) % size_t(cols)] *= 50.0f;  // an outlier
      quantize_row(type, x.data(), cols, row);
      continue;
    }
    for (size_t i = 0; i < row_bytes; ++i) row[i] = uint8_t(g());
    for (size_t b = 0; b < row_bytes / block; ++b) {
      uint8_t* p = row + b * block;
      switch (type) {
        case DType::Q8_0:
        case DType::Q4_0:
          put_half(p, scale(g));
          break;
        case DType::Q4_K:
          put_half(p, scale(g));
          put_half(p + 2, scale(g));
          break;
        case DType::Q6_K:
          put_half(p + 208, scale(g) * 0.1f);
          break;
        default:
          break;
      }
    }
  }
  return out;
}

// Per element, the size of the terms a dot product adds (for Q4_K both d * sc * q and
// dmin * m, which may nearly cancel): what the rounding error of a sum is relative to.
std::vector<float> term_magnitudes(const TensorView& w, int64_t r) {
  std::vector<float> m(size_t(w.cols()));
  dequantize_row(w, r, m.data());
  if (w.type == DType::Q4_K) {
    const auto* b = reinterpret_cast<const BlockQ4_K*>(w.row(r));
    for (int64_t k = 0; k < w.cols() / kQK; ++k) {
      uint8_t sc[8], mn[8];
      unpack_q4_k_scales(b[k].scales, sc, mn);
      for (int i = 0; i < kQK; ++i)
        m[size_t(k * kQK + i)] = f16_to_f32(b[k].d) * float(sc[i / 32]) * float(q4_k_code(b[k], i)) +
                                 f16_to_f32(b[k].dmin) * float(mn[i / 32]);
    }
  }
  for (float& v : m) v = std::fabs(v);
  return m;
}

// Allowed |result - scalar reference| relative to sum_c |w_c x_c|: only the order of fp32
// additions differs (the integer dot products are exact and equal on every level).
double tolerance(DType type) {
  switch (type) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
      return 2e-5;
    default:
      return 1e-5;
  }
}

struct Shape {
  int64_t rows, cols;
};

std::vector<Shape> shapes_for(DType type) {
  switch (dtype_block_elems(type)) {
    case 1:  // any length: every tail of the 16- and 32-wide loops; short rows in tiles of
             // up to 16 rows, with remainders
      return {{5, 1},    {13, 31}, {37, 100},  {8, 512},  {21, 1029},
              {301, 64}, {77, 96}, {203, 256}, {45, 288}, {70, 512}};
    case 32:  // groups of 16 (AVX-512) or 8 (AVX2) blocks, with partial groups; short rows
              // that share a group
      return {{3, 32},  {13, 96},   {37, 512},  {10, 544}, {67, 1056}, {19, 2080}, {301, 64},
              {77, 96}, {123, 128}, {203, 256}, {45, 288}, {70, 512},  {40, 32}};
    default:  // super-blocks of 256; Q4_K groups pair them on AVX-512
      return {{3, 256}, {13, 512}, {37, 768}, {19, 2304}};
  }
}

constexpr int kTokens = 64;

class MatmulOps : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulOps, EveryIsaMatchesScalarReferenceAndIsBatchInvariant) {
  const DType type = GetParam();
  std::mt19937 g(unsigned(type) * 101 + 7);
  ThreadPool pool(2), one(1);
  for (const Shape& s : shapes_for(type)) {
    const std::vector<uint8_t> bytes = random_weights(type, s.rows, s.cols, g);
    const TensorView w{"w", type, {s.rows, s.cols}, bytes.data()};
    std::vector<float> x = random_vec(size_t(kTokens * s.cols), g);
    for (int64_t c = 0; c < s.cols; c += 7) x[size_t(c)] *= 8.0f;  // uneven blocks
    std::fill_n(x.begin() + s.cols, s.cols, 0.0f);                 // a token of zeros

    std::vector<float> ref(size_t(kTokens * s.rows));
    {
      ScopedKernelIsa scalar(Isa::Scalar);
      matmul(w, x.data(), kTokens, ref.data(), pool);
    }
    // Bound on the rounding differences, and a sanity check of the reference itself
    // against a double-precision product with the unquantized activations.
    for (int64_t r = 0; r < s.rows; ++r) {
      std::vector<float> deq(size_t(s.cols));
      dequantize_row(w, r, deq.data());
      const std::vector<float> mag = term_magnitudes(w, r);
      for (int t = 0; t < kTokens; ++t) {
        // Integer types round each activation by at most half a step of max|x| / 127 over
        // its block (32 values for Q8_0 and Q4_0, 256 for K-quants), plus fp16 rounding.
        const int64_t block = type == DType::Q4_K || type == DType::Q6_K ? kQK : 32;
        const bool quantized = dtype_block_elems(type) > 1;
        double exact = 0, size = 0, act_error = 0, amax = 0;
        for (int64_t c = 0; c < s.cols; ++c) {
          const float* xt = x.data() + t * s.cols;
          if (quantized && c % block == 0) {
            amax = 0;
            for (int64_t i = c; i < c + block; ++i) amax = std::max(amax, double(std::fabs(xt[i])));
          }
          exact += double(deq[size_t(c)]) * xt[c];
          size += double(mag[size_t(c)]) * std::fabs(xt[c]);
          // (Half a step, plus up to 127 steps times the fp16 rounding of the scale, 2^-11.)
          if (quantized) act_error += double(mag[size_t(c)]) * amax / 127.0 * (0.5 + 127.0 / 2048.0);
        }
        EXPECT_NEAR(ref[size_t(t * s.rows + r)], exact, act_error + 1e-5 * size + 1e-6)
            << dtype_name(type) << " " << s.rows << "x" << s.cols << " row " << r << " token " << t;
      }
    }

    for (Isa isa : supported_isas()) {
      ScopedKernelIsa forced(isa);
      const std::string where = std::string(dtype_name(type)) + " on " + std::string(isa_name(isa)) + ", " +
                                std::to_string(s.rows) + "x" + std::to_string(s.cols);
      std::vector<float> all(ref.size());
      matmul(w, x.data(), kTokens, all.data(), pool);
      for (int64_t r = 0; r < s.rows; ++r) {
        const std::vector<float> mag = term_magnitudes(w, r);
        for (int t = 0; t < kTokens; ++t) {
          double size = 0;
          for (int64_t c = 0; c < s.cols; ++c)
            size += double(mag[size_t(c)]) * std::fabs(x[size_t(t * s.cols + c)]);
          ASSERT_NEAR(all[size_t(t * s.rows + r)], ref[size_t(t * s.rows + r)],
                      tolerance(type) * size + 1e-30)
              << where << " row " << r << " token " << t;
        }
      }
      // Each token alone, one thread: the batched results must be the same bits.
      std::vector<float> single(ref.size());
      for (int t = 0; t < kTokens; ++t)
        matmul(w, x.data() + t * s.cols, 1, single.data() + t * s.rows, t % 2 ? pool : one);
      ASSERT_EQ(0, std::memcmp(single.data(), all.data(), all.size() * 4)) << where << ", 64 tokens";
      for (int n = 2; n <= 17; ++n) {
        const int first = (n * 5) % (kTokens - n);  // the window moves, so tokens change tiles
        std::vector<float> y(size_t(n * s.rows));
        matmul(w, x.data() + first * s.cols, n, y.data(), pool);
        ASSERT_EQ(0, std::memcmp(y.data(), single.data() + first * s.rows, y.size() * 4))
            << where << ", " << n << " tokens";
      }
      // The rows from `skip` on: each row sits elsewhere in the kernels' tiles and groups.
      for (int64_t skip : {int64_t(1), int64_t(3), int64_t(7)}) {
        if (skip >= s.rows) continue;
        const int64_t rows = s.rows - skip;
        const TensorView part{"w", type, {rows, s.cols}, bytes.data() + size_t(skip) * w.row_bytes()};
        for (int n : {1, 3, 8}) {
          std::vector<float> y(size_t(n * rows));
          matmul(part, x.data(), n, y.data(), n == 1 ? one : pool);
          for (int t = 0; t < n; ++t)
            ASSERT_EQ(0,
                      std::memcmp(y.data() + t * rows, single.data() + t * s.rows + skip, size_t(rows) * 4))
                << where << ", rows from " << skip << ", " << n << " tokens";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulOps, ::testing::ValuesIn(kAllTypes),
                         [](const auto& param_info) { return std::string(dtype_name(param_info.param)); });

TEST(Isa, ScalarIsAlwaysThereAndForcingRestores) {
  const std::vector<Isa> isas = supported_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::Scalar);
  EXPECT_EQ(isas.back(), best_isa());
  const Isa before = kernel_isa();
  {
    ScopedKernelIsa forced(Isa::Scalar);
    EXPECT_EQ(kernel_isa(), Isa::Scalar);
  }
  EXPECT_EQ(kernel_isa(), before);
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (!isa_supported(isa)) {
      EXPECT_THROW(set_kernel_isa(isa), std::exception);
    }
  }
}

TEST(Dtype, BlockSizesFollowGgml) {
  EXPECT_EQ(dtype_block_elems(DType::Q4_0), 32);
  EXPECT_EQ(dtype_block_bytes(DType::Q4_0), 18u);
  EXPECT_EQ(dtype_block_elems(DType::Q4_K), 256);
  EXPECT_EQ(dtype_block_bytes(DType::Q4_K), 144u);
  EXPECT_EQ(dtype_block_elems(DType::Q6_K), 256);
  EXPECT_EQ(dtype_block_bytes(DType::Q6_K), 210u);
  EXPECT_EQ(dtype_row_bytes(DType::Q4_K, 4096), 16u * 144u);
  EXPECT_EQ(dtype_name(DType::Q6_K), "Q6_K");
}

// ---------------------------------------------------------------------------------------
// Layouts against blocks built by hand.

TEST(Layout, Q4_0NibblesAndGgmlRounding) {
  BlockQ4_0 b{};
  b.d = f32_to_f16(0.5f);
  b.qs[0] = 0x3a;   // value 0: code 0xa, value 16: code 0x3
  b.qs[15] = 0xf0;  // value 15: code 0, value 31: code 15
  float y[32];
  dequantize(DType::Q4_0, &b, 32, y);
  EXPECT_EQ(y[0], 0.5f * (10 - 8));
  EXPECT_EQ(y[16], 0.5f * (3 - 8));
  EXPECT_EQ(y[15], 0.5f * (0 - 8));
  EXPECT_EQ(y[31], 0.5f * (15 - 8));
  EXPECT_EQ(y[1], 0.5f * -8);

  // The value of largest magnitude is -4: d = -4 / -8 = 0.5, code = min(15, trunc(x / d + 8.5)).
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = float(j - 16) * 0.25f;
  quantize_row(DType::Q4_0, x, 32, &b);
  EXPECT_EQ(b.d, f32_to_f16(0.5f));
  for (int j = 0; j < 32; ++j) EXPECT_EQ(q4_0_code(b, j), std::min(15, (j + 1) / 2)) << j;
  // A positive extreme gives a negative scale (ggml's sign convention).
  x[31] = 8.0f;
  quantize_row(DType::Q4_0, x, 32, &b);
  EXPECT_EQ(b.d, f32_to_f16(-1.0f));
  EXPECT_EQ(q4_0_code(b, 31), 0);
}

TEST(Layout, Q4_KScalesMinsAndNibbles) {
  // Sub-block scales and mins, packed by hand following ggml's get_scale_min_k4:
  //   bytes 0-3:  sc[j] | (sc[j+4] >> 4) << 6      bytes 4-7: m[j] | (m[j+4] >> 4) << 6
  //   bytes 8-11: (sc[j+4] & 15) | (m[j+4] & 15) << 4
  const uint8_t sc[8] = {1, 2, 3, 63, 17, 32, 48, 5}, mn[8] = {0, 1, 63, 7, 33, 16, 2, 60};
  BlockQ4_K b{};
  const uint8_t packed[12] = {65, 130, 195, 63, 128, 65, 63, 199, 17, 0, 32, 197};
  std::memcpy(b.scales, packed, 12);
  uint8_t got_sc[8], got_m[8];
  unpack_q4_k_scales(b.scales, got_sc, got_m);
  for (int j = 0; j < 8; ++j) {
    EXPECT_EQ(got_sc[j], sc[j]) << j;
    EXPECT_EQ(got_m[j], mn[j]) << j;
  }
  b.d = f32_to_f16(0.25f);
  b.dmin = f32_to_f16(0.125f);
  auto code = [](int i) { return (i * 7 + 3) % 16; };
  for (int j = 0; j < 4; ++j)  // chunk j: values 64j .. 64j+31 low nibbles, 64j+32 .. high
    for (int l = 0; l < 32; ++l) b.qs[32 * j + l] = uint8_t(code(64 * j + l) | code(64 * j + 32 + l) << 4);
  b.qs[0] = 0x7c;  // value 0: code 12, value 32: code 7
  float y[kQK];
  dequantize(DType::Q4_K, &b, kQK, y);
  EXPECT_EQ(y[0], 0.25f * 1 * 12 - 0.0f);
  EXPECT_EQ(y[32], 0.25f * 2 * 7 - 0.125f * 1);
  for (int i = 1; i < kQK; ++i) {
    if (i == 32) continue;
    const int s = i / 32;
    EXPECT_EQ(y[i], 0.25f * float(sc[s]) * float(code(i)) - 0.125f * float(mn[s])) << i;
  }
}

TEST(Layout, Q6_KLowAndHighBits) {
  BlockQ6_K b{};
  b.d = f32_to_f16(0.5f);
  for (int s = 0; s < 16; ++s) b.scales[s] = int8_t(s * 9 - 70);
  b.ql[0] = 0x5a;
  b.ql[32] = 0xc3;
  b.qh[0] = 0xe4;  // 2-bit fields 0, 1, 2, 3 from the bottom
  b.ql[64 + 5] = 0x0f;
  b.qh[32 + 5] = 0x03;
  float y[kQK];
  dequantize(DType::Q6_K, &b, kQK, y);
  auto value = [&](int i, int code) { return 0.5f * float(b.scales[i / 16]) * float(code - 32); };
  EXPECT_EQ(y[0], value(0, 0xa | 0 << 4));
  EXPECT_EQ(y[32], value(32, 0x3 | 1 << 4));
  EXPECT_EQ(y[64], value(64, 0x5 | 2 << 4));
  EXPECT_EQ(y[96], value(96, 0xc | 3 << 4));
  EXPECT_EQ(y[128 + 5], value(128 + 5, 0xf | 3 << 4));  // second half: ql[64..], qh[32..]
  EXPECT_EQ(y[1], value(1, 0));
  EXPECT_EQ(y[255], value(255, 0));
  EXPECT_EQ(q6_k_code(b, 96), 60);
}

// Quantize then dequantize: the error stays within each format's resolution.
TEST(Quantize, RoundTripsStayWithinTheFormatsResolution) {
  std::mt19937 g(5);
  const int n = 4096;
  std::vector<float> x = random_vec(n, g), y(n);
  struct Case {
    DType type;
    double rms_limit;  // relative to the rms of x (1)
  };
  for (const Case& c :
       {Case{DType::Q8_0, 0.01}, Case{DType::Q4_0, 0.13}, Case{DType::Q4_K, 0.1}, Case{DType::Q6_K, 0.03}}) {
    std::vector<uint8_t> q(dtype_row_bytes(c.type, n));
    quantize_row(c.type, x.data(), n, q.data());
    dequantize(c.type, q.data(), n, y.data());
    double err = 0;
    for (int i = 0; i < n; ++i) err += double(y[size_t(i)] - x[size_t(i)]) * (y[size_t(i)] - x[size_t(i)]);
    EXPECT_LT(std::sqrt(err / n), c.rms_limit) << dtype_name(c.type);
  }
  // K-quants of a constant or all-zero input are exact.
  std::vector<float> flat(kQK, 0.0f), out(kQK);
  for (DType t : {DType::Q4_K, DType::Q6_K}) {
    std::vector<uint8_t> q(dtype_row_bytes(t, kQK));
    quantize_row(t, flat.data(), kQK, q.data());
    dequantize(t, q.data(), kQK, out.data());
    for (float v : out) EXPECT_EQ(v, 0.0f) << dtype_name(t);
  }
}

TEST(Quantize, ActivationsQ8_KScaleQuantsAndBsums) {
  std::vector<float> x(2 * kQK);
  for (int i = 0; i < 2 * kQK; ++i) x[size_t(i)] = float((i * 37) % 255 - 127) * (i < kQK ? 0.5f : 0.01f);
  x[3] = -63.5f * 2;  // the largest magnitude of block 0: 127
  BlockQ8_K b[2];
  quantize_act_q8_k(x.data(), 2 * kQK, b);
  EXPECT_EQ(b[0].d, 127.0f / 127.0f);
  for (int i = 0; i < kQK; ++i) EXPECT_EQ(b[0].qs[i], int8_t(std::nearbyint(x[size_t(i)] / b[0].d))) << i;
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < kQK / 16; ++j) {
      int sum = 0;
      for (int i = 16 * j; i < 16 * j + 16; ++i) sum += b[k].qs[i];
      EXPECT_EQ(b[k].bsums[j], sum) << k << " " << j;
    }
  int amax = 0;
  for (int8_t q : b[1].qs) amax = std::max(amax, std::abs(int(q)));
  EXPECT_EQ(amax, 127);
}

TEST(Quantize, ActivationsQ8_0RoundHalfToEven) {
  float x[32] = {};
  x[0] = 127.0f;  // d = 1
  x[1] = 2.5f;
  x[2] = -3.5f;
  x[3] = 0.5f;
  BlockQ8_0 b;
  quantize_act_q8_0(x, 32, &b);
  EXPECT_EQ(f16_to_f32(b.d), 1.0f);
  EXPECT_EQ(b.qs[0], 127);
  EXPECT_EQ(b.qs[1], 2);
  EXPECT_EQ(b.qs[2], -4);
  EXPECT_EQ(b.qs[3], 0);
}

}  // namespace
}  // namespace dspark
