// A typed, non-owning view of a weight tensor. Shapes are outermost first, as in PyTorch
// and safetensors: a linear layer's weight is {out, in} and each of its `out` rows holds
// `in` elements stored contiguously (in blocks for quantized types).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace dspark {

struct TensorView {
  std::string name;
  DType type = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;

  bool empty() const { return data == nullptr; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  // Elements in one innermost row, and how many such rows there are.
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const { return cols() == 0 ? 0 : numel() / cols(); }
  size_t row_bytes() const { return dtype_row_bytes(type, cols()); }
  size_t nbytes() const { return size_t(rows()) * row_bytes(); }
  const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data) + size_t(r) * row_bytes(); }
};

std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace dspark
