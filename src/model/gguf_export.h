// Writes a Model as a GGUF file with llama.cpp's standard metadata keys and tensor names,
// optionally converting the weight matrices to another type (norms and biases stay F32).
// For the `llama` architecture Q and K rows are permuted into the adjacent-pair RoPE order
// that GGUF llama files use, unless the model already rotates adjacent pairs.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "core/dtype.h"
#include "formats/gguf.h"
#include "model/config.h"
#include "model/model.h"

namespace dspark {

struct GgufExportOptions {
  std::optional<DType> weight_type;  // none: keep each tensor's stored type
  std::string name;                  // general.name
  // Adds tokenizer metadata (tokenizer.ggml.*), when the caller has a tokenizer to embed.
  std::function<void(GgufWriter&)> add_tokenizer;
};

// Converts and writes one tensor at a time: memory holds about one tensor of the output
// (two when Q/K rows are permuted), never the whole converted model, and the pages of a
// memory-mapped input are released once their tensor is written.
void export_gguf(const Model& model, const std::string& path, const GgufExportOptions& options = {});

// The metadata llama.cpp reads for the model's shape: general.architecture, general.name and
// the <arch>.* keys (block_count, embedding_length, attention.*, rope.*, ...).
void write_model_metadata(GgufWriter& w, const ModelConfig& c, const std::string& name);

}  // namespace dspark
