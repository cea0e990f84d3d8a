// Hugging Face folders: config.json + safetensors (single or sharded), Llama / Qwen2 / Qwen3.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/json_fields.h"
#include "formats/safetensors.h"
#include "model/hf_config.h"
#include "model/loaders.h"

namespace dspark {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json parse_json_file(const std::string& path) {
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail(path, ": invalid JSON: ", e.what());
  }
}

Arch parse_arch(const JsonFields& r) {
  const json* a = r.find("architectures");
  if (!a || !a->is_array() || a->empty() || !(*a)[0].is_string())
    fail(r.file(), ": field 'architectures' must be a list naming the model class");
  const std::string name = (*a)[0].get<std::string>();
  if (name == "LlamaForCausalLM" || name == "MistralForCausalLM") return Arch::Llama;
  if (name == "Qwen2ForCausalLM") return Arch::Qwen2;
  if (name == "Qwen3ForCausalLM") return Arch::Qwen3;
  fail(r.file(), ": unsupported architecture '", name,
       "' (supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)");
}

ModelConfig parse_config(const JsonFields& r) {
  const Arch arch = parse_arch(r);  // named first: a config of another kind says so
  ModelConfig c = read_hf_shape(r);
  c.arch = arch;
  c.qkv_bias = c.arch == Arch::Qwen2;
  c.qk_norm = c.arch == Arch::Qwen3;
  if (c.arch != Arch::Qwen2 && r.get_bool_or("attention_bias", false))
    fail(r.file(), ": attention_bias = true is not supported for this architecture");
  if (r.get_bool_or("mlp_bias", false)) fail(r.file(), ": mlp_bias = true is not supported");
  if (const json* act = r.find("hidden_act"); act && *act != "silu")
    fail(r.file(), ": hidden_act ", act->dump(), " is not supported (only silu)");
  c.tied_embeddings = r.get_bool_or("tie_word_embeddings", false);
  return c;
}

// eos_token_id may be a number or a list; generation_config.json wins over config.json.
void read_special_ids(const json& j, GenerationTokens& t) {
  if (auto it = j.find("bos_token_id"); it != j.end() && it->is_number_integer()) t.bos = it->get<int>();
  if (auto it = j.find("eos_token_id"); it != j.end()) {
    if (it->is_number_integer()) t.eos = {it->get<int>()};
    if (it->is_array()) {
      t.eos.clear();
      for (const auto& e : *it)
        if (e.is_number_integer()) t.eos.push_back(e.get<int>());
    }
  }
}

}  // namespace

std::unique_ptr<Model> load_hf_folder(const std::string& dir) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(config_path)) fail(dir, ": no config.json (not a Hugging Face model folder)");
  const json config = parse_json_file(config_path);
  if (!config.is_object()) fail(config_path, ": expected a JSON object");
  auto m = std::make_unique<Model>();
  m->source = dir;
  m->format = "safetensors";
  m->config = parse_config(JsonFields(config, config_path, 0));
  read_special_ids(config, m->tokens);
  const std::string gen_path = (fs::path(dir) / "generation_config.json").string();
  if (fs::exists(gen_path)) read_special_ids(parse_json_file(gen_path), m->tokens);

  auto set = std::make_shared<SafetensorsSet>(SafetensorsSet::open_folder(dir));
  m->storage.hold(set);
  auto get = [&](const std::string& name, bool required = true) -> TensorView {
    const SafetensorsEntry* e = set->find(name);
    if (!e) {
      if (required) fail(dir, ": missing tensor '", name, "'");
      return {};
    }
    if (!e->view.data) fail(dir, ": tensor '", name, "' has dtype ", e->dtype, ", which is not supported");
    return m->storage.aligned(e->view);
  };

  const ModelConfig& c = m->config;
  m->tok_embeddings = get("model.embed_tokens.weight", false);
  m->output = get("lm_head.weight", false);
  if (m->output.empty()) {  // tied: the head is the embedding
    m->output = m->tok_embeddings;
    m->config.tied_embeddings = true;
  }
  if (m->tok_embeddings.empty()) {
    if (!c.tied_embeddings) fail(dir, ": missing tensor 'model.embed_tokens.weight'");
    m->tok_embeddings = m->output;  // some files store only the head of tied embeddings
  }
  if (m->tok_embeddings.empty()) fail(dir, ": missing tensor 'model.embed_tokens.weight'");
  m->output_norm = m->storage.as_f32(get("model.norm.weight"));
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights l;
    l.attn_norm = m->storage.as_f32(get(p + "input_layernorm.weight"));
    l.wq = get(p + "self_attn.q_proj.weight");
    l.wk = get(p + "self_attn.k_proj.weight");
    l.wv = get(p + "self_attn.v_proj.weight");
    l.wo = get(p + "self_attn.o_proj.weight");
    if (c.qkv_bias) {
      l.bq = m->storage.as_f32(get(p + "self_attn.q_proj.bias"));
      l.bk = m->storage.as_f32(get(p + "self_attn.k_proj.bias"));
      l.bv = m->storage.as_f32(get(p + "self_attn.v_proj.bias"));
    }
    if (c.qk_norm) {
      l.q_norm = m->storage.as_f32(get(p + "self_attn.q_norm.weight"));
      l.k_norm = m->storage.as_f32(get(p + "self_attn.k_norm.weight"));
    }
    l.ffn_norm = m->storage.as_f32(get(p + "post_attention_layernorm.weight"));
    l.w_gate = get(p + "mlp.gate_proj.weight");
    l.w_up = get(p + "mlp.up_proj.weight");
    l.w_down = get(p + "mlp.down_proj.weight");
    m->layers.push_back(std::move(l));
  }
  m->validate();
  return m;
}

}  // namespace dspark
