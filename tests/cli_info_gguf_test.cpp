// dspark info --gguf: a GGUF file's raw metadata and tensor list as the GGUF parser reads them
// (tests/gguf_js compares the same output with an independent reader).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "test_util.h"

namespace dspark {
namespace {

using test::run_command;
using ::testing::HasSubstr;

std::string dspark() { return DSPARK_BINARY; }

// A tiny synthetic Qwen3 (2 layers, dim 256, 4 heads of 64, 2 kv heads, ffn 512, vocab 512,
// tied embeddings) of `type`, in a folder removed when the test ends.
class CliInfoGguf : public ::testing::Test {
 protected:
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string synth(const std::string& type) {
    const std::string path = dir_ + "/tiny-" + type + ".gguf";
    std::string out;
    EXPECT_EQ(run_command(dspark() + " synth --preset tiny --type " + type + " -o " + path + " 2>&1", &out),
              0)
        << out;
    return path;
  }
  nlohmann::json info_gguf(const std::string& path) {
    std::string out;
    EXPECT_EQ(run_command(dspark() + " info --gguf --json " + path, &out), 0) << out;
    return nlohmann::json::parse(out);
  }
  std::string dir_ = test::temp_dir();
};

const nlohmann::json& tensor(const nlohmann::json& j, const std::string& name) {
  for (const nlohmann::json& t : j["tensors"])
    if (t["name"] == name) return t;
  throw std::runtime_error("no tensor " + name);
}

TEST_F(CliInfoGguf, JsonListsTheTinyModelsMetadataAndTensors) {
  const std::string path = synth("F32");
  const nlohmann::json j = info_gguf(path);
  EXPECT_EQ(j["version"], 3);
  EXPECT_EQ(j["alignment"], 32);

  const nlohmann::json& m = j["metadata"];
  EXPECT_EQ(m["general.architecture"], "qwen3");
  EXPECT_EQ(m["qwen3.block_count"], 2);
  EXPECT_EQ(m["qwen3.embedding_length"], 256);
  EXPECT_EQ(m["qwen3.attention.head_count_kv"], 2);
  EXPECT_EQ(m["qwen3.context_length"], 1024);
  EXPECT_FLOAT_EQ(m["qwen3.attention.layer_norm_rms_epsilon"].get<float>(), 1e-6f);
  EXPECT_EQ(m["tokenizer.ggml.add_bos_token"], true);
  ASSERT_TRUE(m["tokenizer.ggml.tokens"].is_array());
  EXPECT_EQ(m["tokenizer.ggml.tokens"].size(), 512u);
  EXPECT_TRUE(m["tokenizer.ggml.tokens"][0].is_string());
  EXPECT_EQ(m["tokenizer.ggml.token_type"].size(), 512u);

  // 11 tensors per layer, the embedding and the final norm; tied embeddings, so no output.weight.
  ASSERT_EQ(j["tensors"].size(), 24u);
  const nlohmann::json& first = j["tensors"][0];
  EXPECT_EQ(first["name"], "token_embd.weight");
  EXPECT_EQ(first["type"], "F32");
  EXPECT_EQ(first["shape"], nlohmann::json({256, 512}));  // ne[0] (the row) first
  EXPECT_EQ(first["offset"], 0);
  EXPECT_EQ(tensor(j, "blk.0.attn_k.weight")["shape"], nlohmann::json({256, 128}));
  EXPECT_EQ(tensor(j, "blk.1.ffn_down.weight")["shape"], nlohmann::json({512, 256}));
  EXPECT_EQ(tensor(j, "blk.0.attn_q_norm.weight")["shape"], nlohmann::json({64}));
  EXPECT_EQ(tensor(j, "output_norm.weight")["type"], "F32");

  // Everything the parser read, in its order.
  const auto f = GgufFile::open(path);
  EXPECT_EQ(m.size(), f->metadata().size());
  for (size_t i = 0; i < f->tensors().size(); ++i) {
    const GgufTensor& t = f->tensors()[i];
    const nlohmann::json& jt = j["tensors"][i];
    EXPECT_EQ(jt["name"], t.name);
    EXPECT_EQ(jt["type"], ggml_type_name(t.ggml_type)) << t.name;
    EXPECT_EQ(jt["shape"].get<std::vector<int64_t>>(), t.ne) << t.name;
    EXPECT_EQ(jt["offset"].get<uint64_t>(), t.offset) << t.name;
  }
}

TEST_F(CliInfoGguf, QuantizedMatricesNameTheirGgmlType) {
  const nlohmann::json j = info_gguf(synth("Q8_0"));
  EXPECT_EQ(tensor(j, "token_embd.weight")["type"], "Q8_0");
  EXPECT_EQ(tensor(j, "blk.0.attn_q.weight")["type"], "Q8_0");
  EXPECT_EQ(tensor(j, "blk.0.attn_q.weight")["shape"], nlohmann::json({256, 256}));
  EXPECT_EQ(tensor(j, "blk.0.attn_norm.weight")["type"], "F32");
}

TEST_F(CliInfoGguf, WithoutJsonPrintsAReadableListing) {
  std::string out;
  ASSERT_EQ(run_command(dspark() + " info --gguf " + synth("F32"), &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("version   3, alignment 32"));
  EXPECT_THAT(out, HasSubstr("general.architecture = \"qwen3\""));
  EXPECT_THAT(out, HasSubstr("(512 elements)]"));
  EXPECT_THAT(out, HasSubstr("token_embd.weight  F32  [256,512]  offset 0"));
}

TEST_F(CliInfoGguf, ANonGgufModelIsAClearError) {
  const std::string model = test::shared_model("tinystories-656k");
  for (const std::string& path : {model, model + "/model.safetensors"}) {
    std::string out;
    EXPECT_EQ(run_command(dspark() + " info --gguf --json " + path + " 2>&1", &out), 1) << path;
    EXPECT_THAT(out, HasSubstr("not a GGUF file")) << out;
    EXPECT_EQ(out.find('{'), std::string::npos) << out;  // no JSON on stdout
  }
}

TEST_F(CliInfoGguf, RefusesATokenizer) {
  std::string out;
  EXPECT_NE(run_command(dspark() + " info --gguf " + synth("F32") + " --tokenizer x.json 2>&1", &out), 0);
  EXPECT_THAT(out, HasSubstr("excludes"));
}

}  // namespace
}  // namespace dspark
