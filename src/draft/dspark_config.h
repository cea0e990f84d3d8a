// The configuration of a DSpark drafter (DSPARK.md 3.2): a copy of the target's config.json
// with the drafter's fields added. Only the Qwen3-style backbone (`Qwen3DSparkModel`) is
// supported; Gemma4 drafters are refused with a clear error.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace dspark {

// The sequential head that biases the drafter's logits left to right (DSPARK.md 2.1-2.3).
enum class MarkovHead { None, Vanilla, Gated, Rnn };

const char* markov_head_name(MarkovHead h);

struct DSparkConfig {
  std::string architecture = "Qwen3DSparkModel";
  // The drafter's own decoder stack: n_layers = draft layers (`num_hidden_layers`); the
  // shapes, rope_theta and eps come from the drafter's config (a copy of the target's).
  ModelConfig backbone;
  int n_target_layers = 0;            // `num_target_layers`
  int block_size = 0;                 // B: tokens per block, anchor included
  std::vector<int> target_layer_ids;  // tapped target layers, in concatenation order; -1 = embedding
  int mask_token_id = -1;
  int markov_rank = 0;  // r; 0 = no sequential head
  MarkovHead markov_head = MarkovHead::None;
  bool confidence_head = false;
  bool confidence_with_markov = false;  // confidence input [h ; W1[x_{k-1}]] instead of h alone

  int dim() const { return backbone.dim; }
  int vocab_size() const { return backbone.vocab_size; }
  int n_taps() const { return int(target_layer_ids.size()); }
  int tap_dim() const { return n_taps() * backbone.dim; }  // m * d: one row of concatenated taps
  int confidence_in() const { return dim() + (confidence_with_markov ? markov_rank : 0); }
};

// Parses config.json text. `file` names the source in errors. Throws Error naming the field
// and what was expected; applies every validation rule of DSPARK.md 3.2.
DSparkConfig parse_dspark_config(const std::string& json_text, const std::string& file);
DSparkConfig load_dspark_config(const std::string& path);

// Checks the rules of DSPARK.md 3.2 and the backbone's own consistency (also run by the parser).
void validate_dspark_config(const DSparkConfig& c, const std::string& file);

// config.json text for a drafter with this configuration (the writer's counterpart of the parser).
std::string dspark_config_json(const DSparkConfig& c);

}  // namespace dspark
