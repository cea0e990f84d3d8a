// Random-weight DSpark drafters of the real shape for a target (DSPARK.md 3), so the cost
// of drafting can be measured at sizes that matter before a trained drafter exists. Their
// drafts are noise; their confidence head is biased to a chosen confidence so schedulers
// verify realistic numbers of drafts.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "draft/dspark_config.h"
#include "model/config.h"

namespace dspark {

struct DSparkSynthOptions {
  int block_size = 7;  // the released checkpoints' B
  int n_layers = 5;    // draft layers
  int n_taps = 5;      // tapped target layers, spread evenly below the last one
  int markov_rank = 256;
  MarkovHead markov_head = MarkovHead::Vanilla;
  bool confidence_head = true;
  float confidence = 0.9f;          // sigmoid of the confidence head's bias
  DType weight_type = DType::BF16;  // F32, F16 or BF16
  uint64_t seed = 0;
};

// The drafter configuration for a target of this shape (Error when the target is too shallow
// for the taps).
DSparkConfig synth_dspark_config(const ModelConfig& target, const DSparkSynthOptions& o);

// Writes config.json and model.safetensors to `dir` (no embedding / LM head: the target's).
void write_synth_dspark(const std::string& dir, const ModelConfig& target, const DSparkSynthOptions& o);

}  // namespace dspark
