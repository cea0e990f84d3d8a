// Ownership behind tensor views: mapped files and buffers of converted weights stay alive
// as long as the model that points into them. Shared by target models and drafters.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dspark {

class WeightStorage {
 public:
  void hold(std::shared_ptr<const void> p) { kept_.push_back(std::move(p)); }

  // Keeps `bytes` and returns a view of them.
  TensorView own(std::string name, DType type, std::vector<int64_t> shape, std::vector<uint8_t> bytes);
  // Small tensors the forward pass reads as fp32 (norms, biases): converted if stored otherwise.
  TensorView as_f32(const TensorView& t);
  // A view the kernels can read with aligned loads: a copy when the file placed the tensor at
  // an address that is not a multiple of its element size (legal in GGUF and safetensors).
  TensorView aligned(const TensorView& t);

 private:
  std::vector<std::shared_ptr<const void>> kept_;
};

}  // namespace dspark
