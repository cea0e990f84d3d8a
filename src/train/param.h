// Trainable parameters: an fp32 value and its gradient, named as in the checkpoint the
// trainer writes (DSPARK.md 3.3 for drafters), so saving and loading need no name table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dspark {

struct Param {
  std::string name;            // checkpoint name, e.g. "layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // [rows, cols] for matrices (y = W x), [n] for vectors
  std::vector<float> value;    // row-major
  std::vector<float> grad;     // same size; backward passes add into it

  int64_t size() const { return int64_t(value.size()); }
  float* w() { return value.data(); }
  const float* w() const { return value.data(); }
  float* g() { return grad.data(); }
  bool empty() const { return value.empty(); }
};

// A parameter of this shape, zero-filled, with a zeroed gradient.
inline Param make_param(std::string name, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  Param p;
  p.name = std::move(name);
  p.shape = std::move(shape);
  p.value.assign(size_t(n), 0.0f);
  p.grad.assign(size_t(n), 0.0f);
  return p;
}

// An F32 view of the parameter's value under its name (empty for an empty parameter).
inline TensorView view_of(const Param& p) {
  TensorView t;
  if (p.empty()) return t;
  t.name = p.name;
  t.type = DType::F32;
  t.shape = p.shape;
  t.data = p.value.data();
  return t;
}

}  // namespace dspark
