// Converting a model's weights to another stored type, shared by the GGUF export (tensor
// by tensor while the file is written) and by in-memory comparisons of types.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/dtype.h"
#include "model/model.h"

namespace dspark {

// The type a tensor takes in a model converted to `type`: matrices take it, vectors (norms,
// biases) are F32, and a matrix whose rows are not whole blocks of `type` (llama2.c's hidden
// size 172) keeps its stored type. No `type`: every tensor keeps its stored type.
DType converted_type(const TensorView& t, std::optional<DType> type);

// Why the model's matrices cannot all be stored as `type` (the first matrix whose rows are not
// whole blocks of it), or "" when they can.
std::string conversion_misfit(const Model& m, DType type);

// A copy of the model whose matrices are stored as `type`, held in memory. Views of tensors
// that keep their type are shared with `m`, whose storage the copy keeps alive. Throws Error
// (the conversion_misfit text) when a matrix's rows are not whole blocks of `type`.
std::shared_ptr<Model> convert_model(const Model& m, DType type);

}  // namespace dspark
