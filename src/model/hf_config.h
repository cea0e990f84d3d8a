// The shape fields every Hugging Face decoder config.json shares (hidden_size,
// intermediate_size, num_hidden_layers, attention heads, head_dim, vocab_size,
// max_position_embeddings, rms_norm_eps, RoPE base), read the same way for target models and
// for drafters, whose config is a copy of their target's with fields added.
#pragma once

#include "formats/json_fields.h"
#include "model/config.h"

namespace dspark {

// Reads the shape fields into a ModelConfig with rotate-half RoPE; the caller sets the
// architecture and its flags (biases, q/k norms, tied embeddings). Throws Error naming the
// file and the field.
ModelConfig read_hf_shape(const JsonFields& f);

}  // namespace dspark
