#include "kernels/quantize.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/matmul.h"

namespace dspark {

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
    case DType::Q8_0: {
      auto* blocks = static_cast<BlockQ8_0*>(out);
      for (int64_t b = 0; b < n / 32; ++b) {
        const float* xb = x + b * 32;
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
        const float d = amax / 127.0f;
        const float inv = d != 0.0f ? 1.0f / d : 0.0f;
        blocks[b].d = f32_to_f16(d);
        for (int i = 0; i < 32; ++i) blocks[b].qs[i] = int8_t(std::lround(xb[i] * inv));
      }
      return;
    }
  }
}

std::vector<uint8_t> convert_tensor(const TensorView& t, DType type) {
  if (t.cols() % dtype_block_elems(type) != 0)
    fail("tensor '", t.name, "': rows of ", t.cols(), " values cannot be stored as ", dtype_name(type),
         " (blocks of ", dtype_block_elems(type), ")");
  const size_t row_bytes = dtype_row_bytes(type, t.cols());
  std::vector<uint8_t> out(row_bytes * size_t(t.rows()));
  std::vector<float> row(size_t(t.cols()));
  for (int64_t r = 0; r < t.rows(); ++r) {
    dequantize_row(t, r, row.data());
    quantize_row(type, row.data(), t.cols(), out.data() + size_t(r) * row_bytes);
  }
  return out;
}

}  // namespace dspark
