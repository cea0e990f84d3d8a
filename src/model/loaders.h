// Per-format loaders behind load_model(); shared helpers for them.
#pragma once

#include <memory>
#include <string>

#include "formats/gguf.h"
#include "model/model.h"

namespace dspark {

std::unique_ptr<Model> load_hf_folder(const std::string& dir);
std::unique_ptr<Model> load_llama2c(const std::string& path);
std::unique_ptr<Model> load_gguf_model(const std::shared_ptr<GgufFile>& gguf);

// Small tensors the forward pass reads as fp32 (norms, biases): converted if stored otherwise.
TensorView as_f32(Model& m, const TensorView& t);
// A view the kernels can read with aligned loads: a copy when the file placed the tensor at
// an address that is not a multiple of its element size (legal in GGUF and safetensors).
TensorView aligned(Model& m, const TensorView& t);

}  // namespace dspark
