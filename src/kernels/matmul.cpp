#include "kernels/matmul.h"

#include <algorithm>

#include "core/dtype.h"

namespace dspark {

namespace {

// Eight independent partial sums in a fixed order: the compiler can vectorise the loop
// body without reassociating anything, and the order never depends on the batch.
constexpr int kLanes = 8;
constexpr int64_t kMinChunkWork = 1 << 15;  // multiply-adds

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

float dot_f32(const float* w, const float* x, int64_t n) {
  return dot_generic(n, x, [w](int64_t i) { return w[i]; });
}

float dot_f16(const uint16_t* w, const float* x, int64_t n) {
  return dot_generic(n, x, [w](int64_t i) { return f16_to_f32(w[i]); });
}

float dot_bf16(const uint16_t* w, const float* x, int64_t n) {
  return dot_generic(n, x, [w](int64_t i) { return bf16_to_f32(w[i]); });
}

float dot_q8_0(const BlockQ8_0* w, const float* x, int64_t n) {
  float s = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    float acc[kLanes] = {};
    const float* xb = x + b * 32;
    for (int i = 0; i < 32; i += kLanes)
      for (int l = 0; l < kLanes; ++l) acc[l] += float(w[b].qs[i + l]) * xb[i + l];
    float block = 0;
    for (int l = 0; l < kLanes; ++l) block += acc[l];
    s += f16_to_f32(w[b].d) * block;
  }
  return s;
}

}  // namespace

float dot_row(const TensorView& w, int64_t row, const float* x) {
  const int64_t n = w.cols();
  const void* p = w.row(row);
  switch (w.type) {
    case DType::F32:
      return dot_f32(static_cast<const float*>(p), x, n);
    case DType::F16:
      return dot_f16(static_cast<const uint16_t*>(p), x, n);
    case DType::BF16:
      return dot_bf16(static_cast<const uint16_t*>(p), x, n);
    case DType::Q8_0:
      return dot_q8_0(static_cast<const BlockQ8_0*>(p), x, n);
  }
  return 0;
}

void dequantize_row(const TensorView& w, int64_t row, float* out) {
  const int64_t n = w.cols();
  const void* p = w.row(row);
  switch (w.type) {
    case DType::F32:
      std::copy_n(static_cast<const float*>(p), n, out);
      break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(static_cast<const uint16_t*>(p)[i]);
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
      break;
    case DType::Q8_0: {
      const auto* b = static_cast<const BlockQ8_0*>(p);
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(b[i / 32].d) * float(b[i / 32].qs[i % 32]);
      break;
    }
  }
}

void matmul(const TensorView& w, const float* x, int n_tokens, float* y, ThreadPool& pool) {
  const int64_t rows = w.rows(), cols = w.cols();
  // Threads split the weight rows so each weight row is read once for all tokens; a chunk
  // carries enough multiply-adds to be worth handing to another thread.
  const int64_t grain = std::max<int64_t>(1, kMinChunkWork / (cols * std::max(n_tokens, 1)));
  pool.parallel_for(rows, grain, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r)
      for (int t = 0; t < n_tokens; ++t) y[int64_t(t) * rows + r] = dot_row(w, r, x + int64_t(t) * cols);
  });
}

}  // namespace dspark
