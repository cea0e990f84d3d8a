#include "kernels/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/matmul.h"

namespace dspark {

namespace {

// Rounds half to even like the SIMD conversions; NaN and overflow end up clamped.
int round_clamp(float v, int lo, int hi) { return int(std::clamp<long>(std::lrint(v), lo, hi)); }

float max_abs(const float* x, int n) {
  float m = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

// The value of largest magnitude, with its sign (the first one on ties).
float signed_max(const float* x, int n) {
  float amax = 0, m = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      m = x[i];
    }
  return m;
}

void quantize_q8_0(const float* x, int64_t n, BlockQ8_0* out) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    const float d = max_abs(xb, 32) / 127.0f;
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    for (int i = 0; i < 32; ++i) out[b].qs[i] = int8_t(std::clamp<long>(std::lround(xb[i] * inv), -127, 127));
  }
}

void quantize_q4_0(const float* x, int64_t n, BlockQ4_0* out) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    const float d = signed_max(xb, 32) / -8.0f;
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    auto code = [&](int j) {
      const float v = xb[j] * inv + 8.5f;  // in [0.5, 16.5]: truncation rounds half up
      return v >= 16.0f ? 15 : v > 0.0f ? int(v) : 0;
    };
    for (int j = 0; j < 16; ++j) out[b].qs[j] = uint8_t(code(j) | (code(j + 16) << 4));
  }
}

// Nearest integer of a non-negative value, clamped to [0, hi] (weight quantizers only: the
// activation quantizers must round exactly as the SIMD kernels do).
int nearest_nonneg(float v, int hi) { return v >= float(hi) ? hi : v > 0.0f ? int(v + 0.5f) : 0; }

// Q4_K sub-block fit: x ~ scale * q - min with q in 0..15, scale >= 0, min >= 0. Tries grid
// spacings around (max - min) / 15 and refits scale and min by least squares for each; the
// squared error follows from the same sums.
void fit_scale_min(const float* x, int n, float& scale, float& min) {
  const float lo = std::min(0.0f, *std::min_element(x, x + n)), hi = *std::max_element(x, x + n);
  scale = 0;
  min = -lo;
  if (hi <= lo) return;
  float sx = 0, sxx = 0;
  for (int i = 0; i < n; ++i) {
    sx += x[i];
    sxx += x[i] * x[i];
  }
  float best = INFINITY;
  for (int step = -4; step <= 4; ++step) {
    const float inv = (15.0f + 0.25f * float(step)) / (hi - lo);
    // Sums in 8 independent lanes, branch-free: the loop vectorises without reassociation.
    float lq[8] = {}, lqq[8] = {}, lqx[8] = {};
    for (int i = 0; i < n; i += 8)
      for (int l = 0; l < 8; ++l) {
        const float q = float(int(std::min((x[i + l] - lo) * inv + 0.5f, 15.0f)));  // argument >= 0.5
        lq[l] += q;
        lqq[l] += q * q;
        lqx[l] += q * x[i + l];
      }
    float sq = 0, sqq = 0, sqx = 0;
    for (int l = 0; l < 8; ++l) {
      sq += lq[l];
      sqq += lqq[l];
      sqx += lqx[l];
    }
    const float det = float(n) * sqq - sq * sq;
    if (det <= 0) continue;
    float s = (float(n) * sqx - sq * sx) / det, m = (s * sq - sx) / float(n);
    if (m < 0) {  // the fit wants a positive offset, which the format cannot hold
      m = 0;
      s = sqx / sqq;
    }
    if (s <= 0) continue;
    // sum (s q - m - x)^2
    const float err = s * s * sqq - 2 * s * m * sq - 2 * s * sqx + float(n) * m * m + 2 * m * sx + sxx;
    if (err < best) {
      best = err;
      scale = s;
      min = m;
    }
  }
}

void quantize_q4_k(const float* x, int64_t n, BlockQ4_K* out) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    float scale[8], min[8];
    for (int s = 0; s < 8; ++s) fit_scale_min(xb + 32 * s, 32, scale[s], min[s]);
    const float max_scale = *std::max_element(scale, scale + 8), max_min = *std::max_element(min, min + 8);
    BlockQ4_K& o = out[b];
    o.d = f32_to_f16(max_scale / 63.0f);
    o.dmin = f32_to_f16(max_min / 63.0f);
    const float d = f16_to_f32(o.d), dmin = f16_to_f32(o.dmin);
    uint8_t sc[8], m[8];
    for (int s = 0; s < 8; ++s) {
      sc[s] = uint8_t(d > 0 ? round_clamp(scale[s] / d, 0, 63) : 0);
      m[s] = uint8_t(dmin > 0 ? round_clamp(min[s] / dmin, 0, 63) : 0);
    }
    for (int j = 0; j < 4; ++j) {  // the packing that unpack_q4_k_scales reads
      o.scales[j] = uint8_t((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
      o.scales[j + 4] = uint8_t((m[j] & 63) | ((m[j + 4] >> 4) << 6));
      o.scales[j + 8] = uint8_t((sc[j + 4] & 0xf) | ((m[j + 4] & 0xf) << 4));
    }
    uint8_t q[kQK];
    for (int i = 0; i < kQK; ++i) {
      const float step = d * float(sc[i / 32]), offset = dmin * float(m[i / 32]);
      q[i] = uint8_t(step > 0 ? nearest_nonneg((xb[i] + offset) / step, 15) : 0);
    }
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) o.qs[32 * j + l] = uint8_t(q[64 * j + l] | (q[64 * j + 32 + l] << 4));
  }
}

void quantize_q6_k(const float* x, int64_t n, BlockQ6_K* out) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    // Sub-block scales: the value of largest magnitude maps to code -32 (the full range),
    // then a least-squares refit of the scale for those codes.
    float scale[16];
    for (int s = 0; s < 16; ++s) {
      const float* xs = xb + 16 * s;
      const float m = signed_max(xs, 16);
      scale[s] = m / -32.0f;
      if (m == 0) continue;
      float sqq = 0, sqx = 0;
      for (int i = 0; i < 16; ++i) {
        const float q = float(nearest_nonneg(xs[i] / scale[s] + 32.0f, 63) - 32);
        sqq += q * q;
        sqx += q * xs[i];
      }
      if (sqq > 0) scale[s] = sqx / sqq;
    }
    float max_scale = 0;
    for (float s : scale) max_scale = std::max(max_scale, std::fabs(s));
    BlockQ6_K& o = out[b];
    o.d = f32_to_f16(max_scale / 127.0f);
    const float d = f16_to_f32(o.d);
    for (int s = 0; s < 16; ++s) o.scales[s] = int8_t(d > 0 ? round_clamp(scale[s] / d, -128, 127) : 0);
    uint8_t q[kQK];
    for (int i = 0; i < kQK; ++i) {
      const float step = d * float(o.scales[i / 16]);
      q[i] = uint8_t(step != 0 ? nearest_nonneg(xb[i] / step + 32.0f, 63) : 32);
    }
    std::memset(o.qh, 0, sizeof(o.qh));
    for (int half = 0; half < 2; ++half)
      for (int l = 0; l < 32; ++l) {
        const uint8_t* qq = q + 128 * half + l;  // quarters at +0, +32, +64, +96
        o.ql[64 * half + l] = uint8_t((qq[0] & 0xf) | ((qq[64] & 0xf) << 4));
        o.ql[64 * half + 32 + l] = uint8_t((qq[32] & 0xf) | ((qq[96] & 0xf) << 4));
        o.qh[32 * half + l] =
            uint8_t((qq[0] >> 4) | ((qq[32] >> 4) << 2) | ((qq[64] >> 4) << 4) | ((qq[96] >> 4) << 6));
      }
  }
}

}  // namespace

void quantize_row(DType type, const float* x, int64_t n, void* out) {
  switch (type) {
    case DType::F32:
      std::memcpy(out, x, size_t(n) * 4);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(out)[i] = f32_to_f16(x[i]);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(out)[i] = f32_to_bf16(x[i]);
      return;
    case DType::Q8_0:
      return quantize_q8_0(x, n, static_cast<BlockQ8_0*>(out));
    case DType::Q4_0:
      return quantize_q4_0(x, n, static_cast<BlockQ4_0*>(out));
    case DType::Q4_K:
      return quantize_q4_k(x, n, static_cast<BlockQ4_K*>(out));
    case DType::Q6_K:
      return quantize_q6_k(x, n, static_cast<BlockQ6_K*>(out));
  }
}

void dequantize(DType type, const void* in, int64_t n, float* out) {
  switch (type) {
    case DType::F32:
      std::copy_n(static_cast<const float*>(in), n, out);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(static_cast<const uint16_t*>(in)[i]);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(static_cast<const uint16_t*>(in)[i]);
      return;
    case DType::Q8_0: {
      const auto* b = static_cast<const BlockQ8_0*>(in);
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(b[i / 32].d) * float(b[i / 32].qs[i % 32]);
      return;
    }
    case DType::Q4_0: {
      const auto* b = static_cast<const BlockQ4_0*>(in);
      for (int64_t i = 0; i < n; ++i)
        out[i] = float(q4_0_code(b[i / 32], int(i % 32)) - 8) * f16_to_f32(b[i / 32].d);
      return;
    }
    case DType::Q4_K: {  // ggml: y = (d * sc) * q - (dmin * m)
      const auto* b = static_cast<const BlockQ4_K*>(in);
      for (int64_t k = 0; k < n / kQK; ++k) {
        uint8_t sc[8], m[8];
        unpack_q4_k_scales(b[k].scales, sc, m);
        const float d = f16_to_f32(b[k].d), dmin = f16_to_f32(b[k].dmin);
        for (int i = 0; i < kQK; ++i)
          out[k * kQK + i] = d * float(sc[i / 32]) * float(q4_k_code(b[k], i)) - dmin * float(m[i / 32]);
      }
      return;
    }
    case DType::Q6_K: {  // ggml: y = d * sc * (q - 32)
      const auto* b = static_cast<const BlockQ6_K*>(in);
      for (int64_t k = 0; k < n / kQK; ++k) {
        const float d = f16_to_f32(b[k].d);
        for (int i = 0; i < kQK; ++i)
          out[k * kQK + i] = d * float(b[k].scales[i / 16]) * float(q6_k_code(b[k], i) - 32);
      }
      return;
    }
  }
}

void dequantize_row(const TensorView& w, int64_t row, float* out) {
  dequantize(w.type, w.row(row), w.cols(), out);
}

namespace {

void check_whole_blocks(const TensorView& t, DType type) {
  if (t.cols() % dtype_block_elems(type) != 0)
    fail("tensor '", t.name, "': rows of ", t.cols(), " values cannot be stored as ", dtype_name(type),
         " (blocks of ", dtype_block_elems(type), ")");
}

}  // namespace

void convert_tensor(const TensorView& t, DType type, void* out) {
  check_whole_blocks(t, type);
  const size_t row_bytes = dtype_row_bytes(type, t.cols());
  std::vector<float> row(size_t(t.cols()));
  for (int64_t r = 0; r < t.rows(); ++r) {
    dequantize_row(t, r, row.data());
    quantize_row(type, row.data(), t.cols(), static_cast<uint8_t*>(out) + size_t(r) * row_bytes);
  }
}

std::vector<uint8_t> convert_tensor(const TensorView& t, DType type) {
  check_whole_blocks(t, type);
  std::vector<uint8_t> out(dtype_row_bytes(type, t.cols()) * size_t(t.rows()));
  convert_tensor(t, type, out.data());
  return out;
}

void quantize_act_q8_0(const float* x, int64_t n, BlockQ8_0* out) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    const float d = max_abs(xb, 32) / 127.0f;
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = f32_to_f16(d);
    for (int i = 0; i < 32; ++i) out[b].qs[i] = int8_t(round_clamp(xb[i] * inv, -127, 127));
  }
}

void quantize_act_q8_k(const float* x, int64_t n, BlockQ8_K* out) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    const float d = max_abs(xb, kQK) / 127.0f;
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = d;
    for (int i = 0; i < kQK; ++i) out[b].qs[i] = int8_t(round_clamp(xb[i] * inv, -127, 127));
    for (int j = 0; j < kQK / 16; ++j) {
      int sum = 0;
      for (int i = 16 * j; i < 16 * j + 16; ++i) sum += out[b].qs[i];
      out[b].bsums[j] = int16_t(sum);
    }
  }
}

}  // namespace dspark
