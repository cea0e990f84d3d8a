// Broken or inconsistent model files give one clear error naming the file and the problem.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/gguf_export.h"
#include "model/load.h"
#include "model/loaders.h"
#include "test_util.h"

namespace dspark {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A copy of the TinyStories folder whose config.json the test may edit (weights linked, not copied).
std::string hf_copy() {
  const std::string dir = test::temp_dir();
  for (const char* f : {"model.safetensors", "tokenizer.json", "generation_config.json"})
    fs::create_symlink(fs::absolute(test::shared_model(std::string("tinystories-656k/") + f)), dir + "/" + f);
  fs::copy_file(test::shared_model("tinystories-656k/config.json"), dir + "/config.json");
  return dir;
}

void edit_config(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(test::read_file(dir + "/config.json"));
  edit(j);
  test::write_file(dir + "/config.json", j.dump());
}

TEST(BadModel, ConfigShapesThatDoNotMatchTheTensors) {
  const std::string dir = hf_copy();
  edit_config(dir, [](auto& j) { j["intermediate_size"] = 512; });
  EXPECT_THAT(error_of([&] { load_model(dir); }), AllOf(HasSubstr(dir), HasSubstr("mlp.gate_proj.weight"),
                                                        HasSubstr("[384, 128]"), HasSubstr("[512, 128]")));
}

TEST(BadModel, UnknownArchitectureAndMissingFields) {
  const std::string dir = hf_copy();
  edit_config(dir, [](auto& j) { j["architectures"] = {"MambaForCausalLM"}; });
  EXPECT_THAT(error_of([&] { load_model(dir); }),
              AllOf(HasSubstr("config.json"), HasSubstr("MambaForCausalLM")));
  edit_config(dir, [](auto& j) {
    j["architectures"] = {"LlamaForCausalLM"};
    j.erase("hidden_size");
  });
  EXPECT_THAT(error_of([&] { load_model(dir); }), HasSubstr("missing field 'hidden_size'"));
  edit_config(dir, [](auto& j) { j["hidden_size"] = "wide"; });
  EXPECT_THAT(error_of([&] { load_model(dir); }), HasSubstr("'hidden_size' must be a non-negative integer"));
  test::write_file(dir + "/config.json", "{ not json");
  EXPECT_THAT(error_of([&] { load_model(dir); }), AllOf(HasSubstr("config.json"), HasSubstr("invalid JSON")));
}

TEST(BadModel, MissingTensor) {
  const std::string dir = test::temp_dir();
  fs::copy_file(test::shared_model("tinystories-656k/config.json"), dir + "/config.json");
  auto full = SafetensorsFile::open(test::shared_model("tinystories-656k/model.safetensors"));
  std::vector<TensorView> keep;
  for (const auto& [name, e] : full->tensors())
    if (name != "model.layers.1.self_attn.v_proj.weight") keep.push_back(e.view);
  write_safetensors(dir + "/model.safetensors", keep);
  EXPECT_THAT(error_of([&] { load_hf_folder(dir); }),
              AllOf(HasSubstr(dir), HasSubstr("missing tensor 'model.layers.1.self_attn.v_proj.weight'")));
}

// A safetensors file written by hand so that one tensor can have a dtype dspark does not read.
TEST(BadModel, UnsupportedDtype) {
  const std::string dir = test::temp_dir();
  fs::copy_file(test::shared_model("tinystories-656k/config.json"), dir + "/config.json");
  auto full = SafetensorsFile::open(test::shared_model("tinystories-656k/model.safetensors"));
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, e] : full->tensors()) {
    std::string bytes(static_cast<const char*>(e.view.data), e.view.nbytes());
    std::string dtype = "F32";
    if (name == "model.norm.weight") {  // widen to F64
      std::string wide;
      for (size_t i = 0; i < bytes.size(); i += 4) {
        float f;
        std::memcpy(&f, bytes.data() + i, 4);
        const double d = f;
        wide.append(reinterpret_cast<const char*>(&d), 8);
      }
      bytes = wide;
      dtype = "F64";
    }
    header[name] = {{"dtype", dtype},
                    {"shape", e.view.shape},
                    {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  std::string h = header.dump();
  h.resize((h.size() + 7) / 8 * 8, ' ');
  const uint64_t n = h.size();
  test::write_file(dir + "/model.safetensors", std::string(reinterpret_cast<const char*>(&n), 8) + h + data);
  EXPECT_THAT(error_of([&] { load_hf_folder(dir); }), AllOf(HasSubstr(dir), HasSubstr("'model.norm.weight'"),
                                                            HasSubstr("F64"), HasSubstr("not supported")));
}

TEST(BadModel, TokenizerFromAnotherModel) {
  EXPECT_THAT(error_of([&] {
                load_model(test::shared_model("stories260k/stories260K_q80.bin"),
                           test::shared_model("tinystories-656k/tokenizer.json"));
              }),
              AllOf(HasSubstr("2048 tokens"), HasSubstr("512")));
}

TEST(BadModel, TruncatedLlama2cFilesAtManyCutPoints) {
  for (const char* rel : {"stories260k/stories260K_q80.bin", "aidreams260k/aidreams260K.bin"}) {
    const std::string bytes = test::read_file(test::shared_model(rel));
    const std::string path = test::temp_dir() + "/model.bin";
    for (size_t cut : {size_t(0), size_t(10), size_t(27), size_t(28), size_t(100), size_t(255), size_t(256),
                       bytes.size() / 3, bytes.size() / 2, bytes.size() - 4, bytes.size() - 1}) {
      test::write_file(path, bytes.substr(0, cut));
      const std::string err = error_of([&] { load_llama2c(path); });
      EXPECT_THAT(err, HasSubstr(path)) << rel << " cut at " << cut;
      EXPECT_NE(err, "(no error)");
    }
    test::write_file(path, bytes + "extra");
    EXPECT_THAT(error_of([&] { load_llama2c(path); }), HasSubstr("unexpected bytes"));
  }
}

TEST(BadModel, ImplausibleLlama2cHeader) {
  std::string bytes = test::read_file(test::shared_model("aidreams260k/aidreams260K.bin"));
  const int32_t huge = 1 << 30;
  std::memcpy(bytes.data() + 8, &huge, 4);  // layers
  const std::string path = test::temp_dir() + "/model.bin";
  test::write_file(path, bytes);
  EXPECT_THAT(error_of([&] { load_llama2c(path); }), HasSubstr("implausible llama2.c header"));
}

TEST(BadModel, GgufWithWrongShapesOrUnsupportedTypes) {
  auto m = load_hf_folder(test::shared_model("tinystories-656k"));
  const std::string dir = test::temp_dir();
  // Metadata says 3 layers, the file has tensors for 2.
  m->config.n_layers = 3;
  m->layers.push_back(m->layers.back());
  export_gguf(*m, dir + "/extra_layer.gguf");
  {
    auto g = GgufFile::open(dir + "/extra_layer.gguf");
    GgufWriter w;
    for (const auto& [k, v] : g->metadata()) w.set_value(k, v);
    for (const auto& t : g->tensors())
      if (t.name.rfind("blk.2.", 0) != 0) w.add_tensor(t.view);
    w.write(dir + "/missing_layer.gguf");
  }
  EXPECT_THAT(error_of([&] { load_gguf_model(GgufFile::open(dir + "/missing_layer.gguf")); }),
              AllOf(HasSubstr("missing_layer.gguf"), HasSubstr("missing tensor 'blk.2.attn_norm.weight'")));

  // A tensor whose shape disagrees with the metadata.
  {
    auto g = GgufFile::open(dir + "/extra_layer.gguf");
    GgufWriter w;
    for (const auto& [k, v] : g->metadata()) w.set_value(k, v);
    w.set_uint32("llama.feed_forward_length", 256);
    for (const auto& t : g->tensors()) w.add_tensor(t.view);
    w.write(dir + "/wrong_ffn.gguf");
  }
  EXPECT_THAT(error_of([&] { load_gguf_model(GgufFile::open(dir + "/wrong_ffn.gguf")); }),
              AllOf(HasSubstr("ffn_gate.weight"), HasSubstr("[384, 128]"), HasSubstr("[256, 128]")));

  // Unknown architecture.
  {
    GgufWriter w;
    w.set_string("general.architecture", "rwkv7");
    w.write(dir + "/rwkv.gguf");
  }
  EXPECT_THAT(error_of([&] { load_gguf_model(GgufFile::open(dir + "/rwkv.gguf")); }), HasSubstr("'rwkv7'"));
}

}  // namespace
}  // namespace dspark
