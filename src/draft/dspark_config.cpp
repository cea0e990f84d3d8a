#include "draft/dspark_config.h"

#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/json_fields.h"
#include "model/hf_config.h"

namespace dspark {

using nlohmann::json;

const char* markov_head_name(MarkovHead h) {
  switch (h) {
    case MarkovHead::None:
      return "none";
    case MarkovHead::Vanilla:
      return "vanilla";
    case MarkovHead::Gated:
      return "gated";
    case MarkovHead::Rnn:
      return "rnn";
  }
  return "?";
}

namespace {

std::string parse_architecture(const JsonFields& f) {
  const json* a = f.find("architectures");
  if (!a || !a->is_array() || a->empty() || !(*a)[0].is_string())
    fail(f.file(),
         ": field 'architectures' must be a list naming the drafter class (expected Qwen3DSparkModel)");
  const std::string name = (*a)[0].get<std::string>();
  if (name == "Gemma4DSparkModel")
    fail(f.file(), ": architecture 'Gemma4DSparkModel' is not supported yet (only Qwen3DSparkModel)");
  if (name != "Qwen3DSparkModel")
    fail(f.file(), ": field 'architectures' is '", name, "', expected 'Qwen3DSparkModel' (a DSpark drafter)");
  return name;
}

ModelConfig parse_backbone(const JsonFields& f) {
  ModelConfig c = read_hf_shape(f);
  c.arch = Arch::Qwen3;
  c.qk_norm = true;
  c.qkv_bias = false;
  c.tied_embeddings = false;
  if (f.get_bool_or("attention_bias", false))
    fail(f.file(),
         ": field 'attention_bias' is true; a Qwen3 DSpark drafter has no attention biases (expected false)");
  if (f.get_bool_or("mlp_bias", false)) fail(f.file(), ": field 'mlp_bias' is true, expected false");
  if (const std::string act = f.get_string_or("hidden_act", "silu"); act != "silu")
    fail(f.file(), ": field 'hidden_act' is '", act, "', expected 'silu'");
  return c;
}

std::vector<int> parse_layer_ids(const JsonFields& f) {
  const json* ids = f.find("target_layer_ids");
  if (!ids) fail(f.file(), ": missing field 'target_layer_ids'");
  if (!ids->is_array())
    fail(f.file(), ": field 'target_layer_ids' must be a list of integers, got ", ids->dump());
  std::vector<int> out;
  for (const json& v : *ids) out.push_back(f.to_int(v, "target_layer_ids"));
  return out;
}

MarkovHead parse_markov_type(const JsonFields& f, int rank) {
  if (rank <= 0) return MarkovHead::None;  // `markov_head_type` is written only when rank > 0
  const std::string type = f.get_string_or("markov_head_type", "vanilla");
  if (type == "vanilla") return MarkovHead::Vanilla;
  if (type == "rnn") return MarkovHead::Rnn;
  if (type == "gated") return MarkovHead::Gated;
  fail(f.file(), ": field 'markov_head_type' is '", type, "', expected 'vanilla', 'rnn' or 'gated'");
}

}  // namespace

void validate_dspark_config(const DSparkConfig& c, const std::string& file) {
  const ModelConfig& b = c.backbone;
  if (b.n_layers <= 0)
    fail(file, ": field 'num_hidden_layers' (draft layers) must be at least 1, got ", b.n_layers);
  if (b.dim <= 0 || b.ffn_dim <= 0 || b.n_heads <= 0 || b.n_kv_heads <= 0 || b.head_dim <= 0 ||
      b.vocab_size <= 0)
    fail(file, ": sizes must be positive (hidden_size ", b.dim, ", intermediate_size ", b.ffn_dim,
         ", num_attention_heads ", b.n_heads, ", num_key_value_heads ", b.n_kv_heads, ", head_dim ",
         b.head_dim, ", vocab_size ", b.vocab_size, ")");
  if (b.n_heads % b.n_kv_heads != 0)
    fail(file, ": field 'num_attention_heads' (", b.n_heads,
         ") must be a multiple of 'num_key_value_heads' (", b.n_kv_heads, ")");
  if (b.head_dim % 2 != 0)
    fail(file, ": field 'head_dim' is ", b.head_dim, ", expected an even number (RoPE pairs)");
  if (c.block_size <= 0) fail(file, ": field 'block_size' must be at least 1, got ", c.block_size);
  if (c.n_target_layers < 1)
    fail(file, ": field 'num_target_layers' must be at least 1, got ", c.n_target_layers);
  if (c.target_layer_ids.empty())
    fail(file, ": field 'target_layer_ids' is empty, expected at least one layer");
  for (size_t i = 0; i < c.target_layer_ids.size(); ++i) {
    const int id = c.target_layer_ids[i];
    if (i > 0 && id <= c.target_layer_ids[i - 1])
      fail(file, ": field 'target_layer_ids' must be strictly increasing, but ", id, " follows ",
           c.target_layer_ids[i - 1]);
    if (id == c.n_target_layers - 1)
      fail(file, ": field 'target_layer_ids' taps layer ", id,
           ", the last of 'num_target_layers' = ", c.n_target_layers,
           "; the final target layer must never be tapped (expected ids below ", c.n_target_layers - 1, ")");
    if (id < -1 || id >= c.n_target_layers)
      fail(file, ": field 'target_layer_ids' has layer ", id, ", expected -1 (embedding) .. ",
           c.n_target_layers - 2, " for 'num_target_layers' = ", c.n_target_layers);
  }
  if (c.mask_token_id < 0 || c.mask_token_id >= b.vocab_size)
    fail(file, ": field 'mask_token_id' is ", c.mask_token_id, ", expected an id below 'vocab_size' (",
         b.vocab_size, ")");
  if (c.markov_rank < 0) fail(file, ": field 'markov_rank' is ", c.markov_rank, ", expected >= 0");
  if ((c.markov_rank > 0) != (c.markov_head != MarkovHead::None))
    fail(file, ": field 'markov_head_type' is ", markov_head_name(c.markov_head), " but 'markov_rank' is ",
         c.markov_rank);
  if (c.confidence_head && c.confidence_with_markov && c.markov_rank == 0)
    fail(file,
         ": field 'confidence_head_with_markov' is true (the default when the confidence head is on) "
         "but 'markov_rank' is 0; a confidence head with Markov input needs markov_rank > 0");
}

DSparkConfig parse_dspark_config(const std::string& json_text, const std::string& file) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    fail(file, ": invalid JSON: ", e.what());
  }
  if (!j.is_object()) fail(file, ": expected a JSON object");
  const JsonFields f(j, file);
  DSparkConfig c;
  c.architecture = parse_architecture(f);
  c.backbone = parse_backbone(f);
  c.n_target_layers = f.get_int("num_target_layers");
  c.block_size = f.get_int("block_size");
  c.target_layer_ids = parse_layer_ids(f);
  c.mask_token_id = f.get_int("mask_token_id");
  c.markov_rank = f.get_int_or("markov_rank", 0);
  c.markov_head = parse_markov_type(f, c.markov_rank);
  c.confidence_head = f.get_bool_or("enable_confidence_head", false);
  // Written only when the head is on; every released drafter feeds it W1[x_{k-1}] too.
  c.confidence_with_markov = c.confidence_head && f.get_bool_or("confidence_head_with_markov", true);
  validate_dspark_config(c, file);
  return c;
}

DSparkConfig load_dspark_config(const std::string& path) {
  return parse_dspark_config(read_text_file(path), path);
}

std::string dspark_config_json(const DSparkConfig& c) {
  const ModelConfig& b = c.backbone;
  json j = {
      {"architectures", {c.architecture}},
      {"model_type", "qwen3"},
      {"hidden_size", b.dim},
      {"intermediate_size", b.ffn_dim},
      {"num_hidden_layers", b.n_layers},
      {"num_attention_heads", b.n_heads},
      {"num_key_value_heads", b.n_kv_heads},
      {"head_dim", b.head_dim},
      {"vocab_size", b.vocab_size},
      {"max_position_embeddings", b.max_seq_len},
      {"rms_norm_eps", double(b.norm_eps)},
      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", double(b.rope_theta)}}},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"tie_word_embeddings", false},
      {"num_target_layers", c.n_target_layers},
      {"block_size", c.block_size},
      {"target_layer_ids", c.target_layer_ids},
      {"mask_token_id", c.mask_token_id},
      {"enable_confidence_head", c.confidence_head},
      {"markov_rank", c.markov_rank},
      {"layer_types", std::vector<std::string>(size_t(b.n_layers), "full_attention")},
  };
  if (c.confidence_head) j["confidence_head_with_markov"] = c.confidence_with_markov;
  if (c.markov_rank > 0) j["markov_head_type"] = markov_head_name(c.markov_head);
  return j.dump(2) + "\n";
}

}  // namespace dspark
