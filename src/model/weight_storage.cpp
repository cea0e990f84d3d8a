#include "model/weight_storage.h"

#include "kernels/matmul.h"

namespace dspark {

TensorView WeightStorage::own(std::string name, DType type, std::vector<int64_t> shape,
                              std::vector<uint8_t> bytes) {
  auto buf = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  TensorView v{std::move(name), type, std::move(shape), buf->data()};
  kept_.push_back(std::move(buf));
  return v;
}

TensorView WeightStorage::as_f32(const TensorView& t) {
  if (t.empty() || t.type == DType::F32) return t;
  std::vector<uint8_t> bytes(size_t(t.numel()) * sizeof(float));
  auto* out = reinterpret_cast<float*>(bytes.data());
  for (int64_t r = 0; r < t.rows(); ++r) dequantize_row(t, r, out + r * t.cols());
  return own(t.name, DType::F32, t.shape, std::move(bytes));
}

TensorView WeightStorage::aligned(const TensorView& t) {
  const size_t align = t.type == DType::F32 ? 4 : 2;
  if (t.empty() || reinterpret_cast<uintptr_t>(t.data) % align == 0) return t;
  const auto* p = static_cast<const uint8_t*>(t.data);
  return own(t.name, t.type, t.shape, std::vector<uint8_t>(p, p + t.nbytes()));
}

}  // namespace dspark
