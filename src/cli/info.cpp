// dspark info: what a model file holds.
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "formats/gguf_json.h"
#include "model/load.h"

namespace dspark::cli {

namespace {

// --gguf: the file's raw metadata and tensor list, as the GGUF parser reads them.
void run_info_gguf(const std::string& given, bool as_json) {
  const std::string path = model_path_or_default(given);
  if (std::filesystem::is_directory(path))
    fail(path, ": a directory, not a GGUF file (--gguf reads a .gguf file)");
  const auto f = GgufFile::open(path);
  if (as_json)
    std::printf("%s\n",
                gguf_to_json(*f).dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  else
    std::fputs(gguf_listing(*f).c_str(), stdout);
}

void run_info(const std::string& path, const std::string& tokenizer, bool as_json) {
  const LoadedModel lm = load_model(model_path_or_default(path), tokenizer);
  const Model& m = *lm.model;
  const ModelConfig& c = m.config;
  std::map<std::string, int64_t> params_by_type;
  m.for_each_tensor(
      [&](const TensorView& t) { params_by_type[std::string(dtype_name(t.type))] += t.numel(); });
  nlohmann::json j;
  j["path"] = m.source;
  j["format"] = m.format;
  j["architecture"] = arch_name(c.arch);
  j["layers"] = c.n_layers;
  j["dim"] = c.dim;
  j["heads"] = c.n_heads;
  j["kv_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["ffn_dim"] = c.ffn_dim;
  j["vocab_size"] = c.vocab_size;
  j["context_length"] = c.max_seq_len;
  j["rope_theta"] = c.rope_theta;
  j["rope_style"] = c.rope_style == RopeStyle::Halves ? "halves" : "adjacent-pairs";
  j["norm_eps"] = c.norm_eps;
  j["qkv_bias"] = c.qkv_bias;
  j["qk_norm"] = c.qk_norm;
  j["tied_embeddings"] = c.tied_embeddings;
  j["parameters"] = m.parameter_count();
  j["parameters_by_type"] = params_by_type;
  j["weight_bytes_per_token"] = m.weight_bytes();
  j["tokenizer_vocab"] = lm.tokenizer->vocab_size();
  j["bos"] = m.tokens.bos;
  j["eos"] = m.tokens.eos;
  if (as_json) {
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("model        %s (%s)\n", m.source.c_str(), m.format.c_str());
  std::printf("architecture %s: %d layers, dim %d, %d heads (%d kv, head dim %d), ffn %d\n",
              arch_name(c.arch), c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim);
  std::printf("vocabulary   %d (tokenizer %d), context %d, bos %d\n", c.vocab_size,
              lm.tokenizer->vocab_size(), c.max_seq_len, m.tokens.bos);
  std::printf("rope         theta %g, %s; rms eps %g%s%s%s\n", double(c.rope_theta),
              c.rope_style == RopeStyle::Halves ? "rotate-half" : "adjacent pairs", double(c.norm_eps),
              c.qkv_bias ? ", qkv bias" : "", c.qk_norm ? ", q/k norm" : "",
              c.tied_embeddings ? ", tied embeddings" : "");
  std::printf("parameters   %lld (", static_cast<long long>(m.parameter_count()));
  const char* sep = "";
  for (const auto& [type, n] : params_by_type) {
    std::printf("%s%s %lld", sep, type.c_str(), static_cast<long long>(n));
    sep = ", ";
  }
  std::printf("), %.2f MiB read per token\n", double(m.weight_bytes()) / (1 << 20));
}

}  // namespace

void add_info(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto tokenizer = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto gguf = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("info", "Show a model's architecture, shapes, types and tokenizer");
  cmd->add_option("MODEL", *path, "Model path (default: the project's model)");
  cmd->add_option("-m,--model", *path, "Model path (same as MODEL)");
  CLI::Option* tok = cmd->add_option("--tokenizer", *tokenizer, "Tokenizer file");
  cmd->add_flag("--json", *json, "Print JSON");
  cmd->add_flag("--gguf", *gguf,
                "Show a GGUF file's raw contents: version, every metadata key and value, and each tensor's "
                "name, ggml type, dimensions (ne[0] first) and data offset")
      ->excludes(tok);
  cmd->callback([=] { *gguf ? run_info_gguf(*path, *json) : run_info(*path, *tokenizer, *json); });
}

}  // namespace dspark::cli
