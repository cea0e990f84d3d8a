// Random-weight DSpark drafter checkpoints for the engine tests, made by the NumPy reference
// script tests/reference/make_random_drafter.py for a target model.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "model/model.h"
#include "test_util.h"

namespace dspark::test {

// A Hugging Face config.json describing the target, which make_random_drafter.py copies.
inline std::string target_config_dir(const std::string& path, const Model& m) {
  if (std::filesystem::is_directory(path)) return path;
  const ModelConfig& c = m.config;
  const nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                            {"model_type", "llama"},
                            {"hidden_size", c.dim},
                            {"num_attention_heads", c.n_heads},
                            {"num_key_value_heads", c.n_kv_heads},
                            {"head_dim", c.head_dim},
                            {"intermediate_size", c.ffn_dim},
                            {"vocab_size", c.vocab_size},
                            {"num_hidden_layers", c.n_layers},
                            {"rms_norm_eps", c.norm_eps},
                            {"rope_theta", c.rope_theta},
                            {"max_position_embeddings", c.max_seq_len},
                            {"tie_word_embeddings", false}};
  const std::string dir = temp_dir();
  write_file(dir + "/config.json", j.dump());
  return dir;
}

// A random-weight DSpark drafter checkpoint for the target (block 4 unless given).
inline std::string random_drafter(const std::string& path, const Model& m, const std::string& args) {
  const std::string out = temp_dir() + "/drafter";
  const std::string layer_ids = m.config.n_layers > 2 ? "--layer-ids=0,1" : "--layer-ids=0";
  std::string log;
  const std::string cmd = "/usr/bin/python3 " + std::string(DSPARK_REFERENCE_DIR) +
                          "/make_random_drafter.py --target " + target_config_dir(path, m) + " --out " + out +
                          " --layers 1 " + layer_ids + " " + args + " 2>&1";
  EXPECT_EQ(run_command(cmd, &log), 0) << cmd << "\n" << log;
  return out;
}

}  // namespace dspark::test
