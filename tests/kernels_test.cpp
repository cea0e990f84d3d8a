// Kernels against straightforward double-precision references.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/dtype.h"
#include "core/rng.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quantize.h"
#include "kernels/sampling.h"

namespace dspark {
namespace {

std::vector<float> random_vec(size_t n, std::mt19937& g, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

TEST(Dtype, F16RoundTripsExactlyRepresentableValues) {
  for (float f : {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.9604645e-08f, 0.333251953125f})
    EXPECT_EQ(f16_to_f32(f32_to_f16(f)), f) << f;
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(1e6f))));
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
}

TEST(Dtype, F16RoundsToNearestEven) {
  // 1 + 2^-11 lies exactly between 1 and 1 + 2^-10: ties go to the even mantissa (1).
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + std::ldexp(1.0f, -11))), 1.0f);
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11))), 1.0f + std::ldexp(1.0f, -9));
  // Every f16 bit pattern that is a finite number survives f16 -> f32 -> f16.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;
    EXPECT_EQ(f32_to_f16(f16_to_f32(uint16_t(h))), h) << h;
  }
}

TEST(Dtype, Bf16RoundsToNearestEven) {
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);  // tie -> even
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
}

TEST(Quantize, Q8_0BlockMatchesHandComputedLayout) {
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = float(i - 16) * 0.5f;  // max |x| = 8 -> d = 8/127
  BlockQ8_0 b;
  quantize_row(DType::Q8_0, x, 32, &b);
  EXPECT_EQ(b.d, f32_to_f16(8.0f / 127.0f));
  EXPECT_EQ(b.qs[0], -127);  // -8 / d
  EXPECT_EQ(b.qs[16], 0);
  EXPECT_EQ(b.qs[17], int8_t(std::lround(0.5f * 127.0f / 8.0f)));  // 7.9375 -> 8
  EXPECT_EQ(b.qs[31], int8_t(std::lround(7.5f * 127.0f / 8.0f)));
}

TEST(Matmul, EveryTypeMatchesDoubleReference) {
  std::mt19937 g(7);
  for (DType type : {DType::F32, DType::F16, DType::BF16, DType::Q8_0}) {
    for (int cols : {32, 96, 160}) {
      const int rows = 13, tokens = 3;
      std::vector<float> wf = random_vec(size_t(rows * cols), g);
      std::vector<uint8_t> bytes(dtype_row_bytes(type, cols) * rows);
      for (int r = 0; r < rows; ++r)
        quantize_row(type, wf.data() + r * cols, cols,
                     bytes.data() + dtype_row_bytes(type, cols) * size_t(r));
      TensorView w{"w", type, {rows, cols}, bytes.data()};
      std::vector<float> x = random_vec(size_t(tokens * cols), g);
      std::vector<float> y(size_t(tokens * rows));
      ThreadPool pool(2);
      matmul(w, x.data(), tokens, y.data(), pool);
      for (int t = 0; t < tokens; ++t)
        for (int r = 0; r < rows; ++r) {
          std::vector<float> deq(static_cast<size_t>(cols));
          dequantize_row(w, r, deq.data());
          double ref = 0, act_error = 0;
          for (int c = 0; c < cols; ++c) {
            ref += double(deq[size_t(c)]) * x[size_t(t * cols + c)];
            // Integer types round the activations to 8 bits: at most half a step of max|x| / 127
            // over each block of 32 (plus the fp16 rounding of the scale).
            if (type == DType::Q8_0) {
              float amax = 0;
              for (int i = c / 32 * 32; i < c / 32 * 32 + 32; ++i)
                amax = std::max(amax, std::fabs(x[size_t(t * cols + i)]));
              act_error += std::fabs(deq[size_t(c)]) * amax / 127.0 * 0.501;
            }
          }
          EXPECT_NEAR(y[size_t(t * rows + r)], ref, 1e-4 * std::sqrt(double(cols)) + act_error)
              << dtype_name(type) << " cols " << cols;
          // The stored type is close to the fp32 original.
          const double tol = type == DType::F32 ? 1e-6 : type == DType::F16 ? 1e-3 : 2e-2;
          for (int c = 0; c < cols; ++c) EXPECT_NEAR(deq[size_t(c)], wf[size_t(r * cols + c)], tol * 4);
        }
    }
  }
}

TEST(Matmul, BatchInvariantAcrossTokenCountsAndThreads) {
  std::mt19937 g(3);
  const int rows = 37, cols = 64;
  std::vector<float> wf = random_vec(size_t(rows * cols), g);
  TensorView w{"w", DType::F32, {rows, cols}, wf.data()};
  std::vector<float> x = random_vec(size_t(9 * cols), g);
  ThreadPool one(1), two(2);
  std::vector<float> single(static_cast<size_t>(rows)), batch(size_t(9 * rows));
  matmul(w, x.data(), 9, batch.data(), two);
  for (int t = 0; t < 9; ++t) {
    matmul(w, x.data() + t * cols, 1, single.data(), one);
    for (int r = 0; r < rows; ++r) ASSERT_EQ(single[size_t(r)], batch[size_t(t * rows + r)]);
  }
}

TEST(Ops, RmsnormMatchesDefinition) {
  std::vector<float> x = {1, -2, 3, 4}, w = {1, 2, 0.5f, 1}, out(4);
  rmsnorm(out.data(), x.data(), w.data(), 4, 1e-5f);
  const double inv = 1.0 / std::sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-5);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[size_t(i)], w[size_t(i)] * x[size_t(i)] * inv, 1e-6);
}

TEST(Ops, RopeStylesAreTheSameRotationOnPermutedDimensions) {
  std::mt19937 g(1);
  const int hd = 16;
  std::vector<float> halves = random_vec(hd, g), pairs(hd);
  for (int i = 0; i < hd / 2; ++i) {  // pair (i, i + hd/2) becomes (2i, 2i+1)
    pairs[size_t(2 * i)] = halves[size_t(i)];
    pairs[size_t(2 * i + 1)] = halves[size_t(i + hd / 2)];
  }
  rope_halves(halves.data(), hd, 37, 10000.0f);
  rope_adjacent(pairs.data(), hd, 37, 10000.0f);
  for (int i = 0; i < hd / 2; ++i) {
    EXPECT_FLOAT_EQ(pairs[size_t(2 * i)], halves[size_t(i)]);
    EXPECT_FLOAT_EQ(pairs[size_t(2 * i + 1)], halves[size_t(i + hd / 2)]);
  }
  // Position 0 is the identity; rotation keeps the norm.
  std::vector<float> v = random_vec(hd, g), v0 = v;
  rope_halves(v.data(), hd, 0, 1e6f);
  EXPECT_EQ(v, v0);
}

TEST(Sampling, GreedyPicksArgmaxLowestIndexOnTies) {
  std::vector<float> l = {0.1f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(argmax(l.data(), 4), 1);
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p, 1);
  EXPECT_EQ(s.sample(l.data(), 4, {}), 1);
}

TEST(Sampling, CutsKeepTheRightTokens) {
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  TokenProbs d;
  sampling_distribution(l.data(), 4, p, d);
  ASSERT_EQ(d.ids, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_NEAR(d.probs[2], 0.15f, 1e-6);
  p.top_k = 2;
  sampling_distribution(l.data(), 4, p, d);
  ASSERT_EQ(d.ids, (std::vector<int>{0, 1}));
  EXPECT_NEAR(d.probs[0], 0.5 / 0.8, 1e-6);
  p.top_k = 0;
  p.top_p = 0.75f;  // 0.5 is not enough, 0.5 + 0.3 is
  sampling_distribution(l.data(), 4, p, d);
  EXPECT_EQ(d.ids.size(), 2u);
  p.top_p = 1.0f;
  p.min_p = 0.2f;  // keeps p >= 0.1: tokens 0, 1, 2
  sampling_distribution(l.data(), 4, p, d);
  EXPECT_EQ(d.ids.size(), 3u);
  p.min_p = 0.0f;
  p.temperature = 0.5f;  // squares then renormalises
  sampling_distribution(l.data(), 4, p, d);
  EXPECT_NEAR(d.probs[0], 0.25 / (0.25 + 0.09 + 0.0225 + 0.0025), 1e-5);
}

TEST(Sampling, SeedFixesTheSequenceAndFrequenciesFollowTheDistribution) {
  std::vector<float> l = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  Sampler a(p, 42), b(p, 42);
  std::vector<int> count(3);
  for (int i = 0; i < 30000; ++i) {
    std::vector<float> la = l, lb = l;
    const int ta = a.sample(la.data(), 3, {}), tb = b.sample(lb.data(), 3, {});
    ASSERT_EQ(ta, tb);
    ++count[size_t(ta)];
  }
  EXPECT_NEAR(count[0] / 30000.0, 0.6, 0.015);
  EXPECT_NEAR(count[1] / 30000.0, 0.3, 0.015);
  EXPECT_NEAR(count[2] / 30000.0, 0.1, 0.01);
}

TEST(Sampling, RepeatPenaltyFollowsSign) {
  std::vector<float> l = {2.0f, -2.0f, 1.0f};
  const int recent[] = {0, 1, 0};
  apply_repeat_penalty(l.data(), 3, recent, 3, 2.0f);
  EXPECT_EQ(l, (std::vector<float>{1.0f, -4.0f, 1.0f}));
}

}  // namespace
}  // namespace dspark
