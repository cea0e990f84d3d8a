// Portable reference kernels: ggml's block layouts as stored, activations quantized to
// Q8_0 (for Q8_0 / Q4_0 weights) or Q8_K (for K-quants) in the natural layout. Every SIMD
// level is tested against these.
#include <algorithm>

#include "kernels/matmul_kernels.h"
#include "kernels/quantize.h"

namespace dspark::kernels {

namespace {

// Eight independent partial sums in a fixed order: the compiler can vectorise the loop
// body without reassociating anything.
constexpr int kLanes = 8;

template <class Load>
float dot_generic(int64_t n, const float* x, Load load) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += load(i + l) * x[i + l];
  float tail = 0;
  for (; i < n; ++i) tail += load(i) * x[i];
  float s = 0;
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  return s + tail;
}

float dot_f32(const void* w, const void* x, int64_t n) {
  const auto* wf = static_cast<const float*>(w);
  return dot_generic(n, static_cast<const float*>(x), [wf](int64_t i) { return wf[i]; });
}

float dot_f16(const void* w, const void* x, int64_t n) {
  const auto* wh = static_cast<const uint16_t*>(w);
  return dot_generic(n, static_cast<const float*>(x), [wh](int64_t i) { return f16_to_f32(wh[i]); });
}

float dot_bf16(const void* w, const void* x, int64_t n) {
  const auto* wh = static_cast<const uint16_t*>(w);
  return dot_generic(n, static_cast<const float*>(x), [wh](int64_t i) { return bf16_to_f32(wh[i]); });
}

float dot_q8_0(const void* wp, const void* xp, int64_t n) {
  const auto* w = static_cast<const BlockQ8_0*>(wp);
  const auto* x = static_cast<const BlockQ8_0*>(xp);
  float s = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < 32; ++j) isum += int32_t(w[b].qs[j]) * x[b].qs[j];
    s += f16_to_f32(w[b].d) * f16_to_f32(x[b].d) * float(isum);
  }
  return s;
}

float dot_q4_0(const void* wp, const void* xp, int64_t n) {
  const auto* w = static_cast<const BlockQ4_0*>(wp);
  const auto* x = static_cast<const BlockQ8_0*>(xp);
  float s = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < 32; ++j) isum += (q4_0_code(w[b], j) - 8) * x[b].qs[j];
    s += f16_to_f32(w[b].d) * f16_to_f32(x[b].d) * float(isum);
  }
  return s;
}

// Per super-block: d * dx * sum_s sc_s * (codes . x)_s - dmin * dx * sum_s m_s * (sum of x)_s.
float dot_q4_k(const void* wp, const void* xp, int64_t n) {
  const auto* w = static_cast<const BlockQ4_K*>(wp);
  const auto* x = static_cast<const BlockQ8_K*>(xp);
  float s = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t sc[8], m[8];
    unpack_q4_k_scales(w[b].scales, sc, m);
    int32_t sumi = 0, summ = 0;
    for (int sub = 0; sub < 8; ++sub) {
      int32_t dot = 0;
      for (int i = 32 * sub; i < 32 * sub + 32; ++i) dot += q4_k_code(w[b], i) * x[b].qs[i];
      sumi += sc[sub] * dot;
      summ += m[sub] * (x[b].bsums[2 * sub] + x[b].bsums[2 * sub + 1]);
    }
    s += f16_to_f32(w[b].d) * x[b].d * float(sumi) - f16_to_f32(w[b].dmin) * x[b].d * float(summ);
  }
  return s;
}

float dot_q6_k(const void* wp, const void* xp, int64_t n) {
  const auto* w = static_cast<const BlockQ6_K*>(wp);
  const auto* x = static_cast<const BlockQ8_K*>(xp);
  float s = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int32_t sumi = 0;
    for (int sub = 0; sub < 16; ++sub) {
      int32_t dot = 0;
      for (int i = 16 * sub; i < 16 * sub + 16; ++i) dot += (q6_k_code(w[b], i) - 32) * x[b].qs[i];
      sumi += w[b].scales[sub] * dot;
    }
    s += f16_to_f32(w[b].d) * x[b].d * float(sumi);
  }
  return s;
}

size_t q8_0_act_bytes(int64_t cols) { return round_up_64(size_t(cols / 32) * sizeof(BlockQ8_0)); }
size_t q8_k_act_bytes(int64_t cols) { return round_up_64(size_t(cols / kQK) * sizeof(BlockQ8_K)); }
void prepare_q8_0(const float* x, int64_t cols, uint8_t* out) {
  quantize_act_q8_0(x, cols, reinterpret_cast<BlockQ8_0*>(out));
}
void prepare_q8_k(const float* x, int64_t cols, uint8_t* out) {
  quantize_act_q8_k(x, cols, reinterpret_cast<BlockQ8_K*>(out));
}

template <float (*Dot)(const void*, const void*, int64_t)>
void rows(const RowsArgs& a) {
  for (int64_t r = 0; r < a.n_rows; ++r)
    for (int t = 0; t < a.n_tokens; ++t)
      a.y[t * a.y_stride + r] = Dot(a.w + size_t(r) * a.w_stride, a.act + size_t(t) * a.act_stride, a.cols);
}

const MatmulKernel kKernels[] = {
    {8, nullptr, nullptr, rows<dot_f32>},               // F32
    {8, nullptr, nullptr, rows<dot_f16>},               // F16
    {8, nullptr, nullptr, rows<dot_bf16>},              // BF16
    {8, q8_0_act_bytes, prepare_q8_0, rows<dot_q8_0>},  // Q8_0
    {8, q8_0_act_bytes, prepare_q8_0, rows<dot_q4_0>},  // Q4_0
    {8, q8_k_act_bytes, prepare_q8_k, rows<dot_q4_k>},  // Q4_K
    {8, q8_k_act_bytes, prepare_q8_k, rows<dot_q6_k>},  // Q6_K
};
static_assert(std::size(kKernels) == size_t(DType::Q6_K) + 1);

}  // namespace

const MatmulKernel* scalar_kernels() { return kKernels; }

}  // namespace dspark::kernels
