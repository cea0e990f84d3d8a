// The measurement and model-making commands as users and scripts see them: dspark synth,
// quantize and bench.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "engine/generator.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "test_util.h"

namespace dspark {
namespace {

using test::run_command;
using ::testing::HasSubstr;

// A fresh temporary folder, removed with everything in it when the test ends.
struct ScopedDir {
  std::string path = test::temp_dir();
  ScopedDir() = default;
  ScopedDir(const ScopedDir&) = delete;
  ScopedDir& operator=(const ScopedDir&) = delete;
  ~ScopedDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

std::string dspark() { return DSPARK_BINARY; }
std::string tinystories() { return test::shared_model("tinystories-656k"); }

nlohmann::json run_json(const std::string& args) {
  std::string out;
  const int code = run_command(dspark() + " " + args + " 2>/dev/null", &out);
  EXPECT_EQ(code, 0) << args;
  try {
    return nlohmann::json::parse(out);
  } catch (const nlohmann::json::exception& e) {
    ADD_FAILURE() << args << ": " << e.what() << "\n" << out;
    return {};
  }
}

std::vector<int> greedy_tokens(const std::string& model, const std::string& prompt, int n) {
  return run_json("generate -m " + model + " -p '" + prompt + "' -n " + std::to_string(n) +
                  " --temp 0 --json")["tokens"]
      .get<std::vector<int>>();
}

// Argmax of every position's logits over a token sequence (teacher forcing).
std::vector<int> top1(const LoadedModel& lm, const std::vector<int>& tokens) {
  ThreadPool pool(2);
  const int vocab = lm.model->config.vocab_size;
  KVCache cache(lm.model->config, 1, int(tokens.size()));
  Transformer tf(*lm.model, pool);
  Batch b;
  for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int(i), 0, true);
  std::vector<float> logits(tokens.size() * size_t(vocab));
  tf.forward(b, cache, logits.data());
  std::vector<int> out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const float* row = logits.data() + i * size_t(vocab);
    out.push_back(int(std::max_element(row, row + vocab) - row));
  }
  return out;
}

TEST(CliTools, SubcommandsAnswerHelp) {
  for (const char* sub : {"synth", "quantize", "bench"}) {
    std::string out;
    EXPECT_EQ(run_command(dspark() + " " + sub + " --help", &out), 0) << sub;
    EXPECT_THAT(out, HasSubstr("Usage")) << sub;
  }
  std::string out;
  ASSERT_EQ(run_command(dspark() + " synth --list", &out), 0);
  EXPECT_THAT(out, HasSubstr("qwen3-1.7b"));
  EXPECT_THAT(out, HasSubstr("Q8_0"));
}

TEST(CliTools, ErrorsAreOneLineWithExitCodeOne) {
  const ScopedDir scoped;
  const std::string dir = scoped.path;
  const std::vector<std::string> bad = {
      "synth --preset gpt-9 -o " + dir + "/x.gguf",
      "synth --preset tiny --type Q9_9 -o " + dir + "/x.gguf",
      "synth --preset tiny -o /nonexistent/dir/x.gguf",
      "quantize /nonexistent/model.gguf " + dir + "/y.gguf F32",
      "quantize " + tinystories() + " " + dir + "/y.gguf F77",
      "bench decode -m /nonexistent/model.gguf",
  };
  for (const std::string& args : bad) {
    std::string err;
    EXPECT_EQ(run_command(dspark() + " " + args + " 2>&1 >/dev/null", &err), 1) << args;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << args << ": " << err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/y.gguf"));
  std::string err;
  const int code = run_command(dspark() + " bench frobnicate 2>&1 >/dev/null", &err);
  EXPECT_GT(code, 0);
  EXPECT_LT(code, 128);
}

TEST(CliTools, SynthModelGeneratesText) {
  const ScopedDir scoped;
  const std::string dir = scoped.path, path = dir + "/tiny.gguf";
  ASSERT_EQ(run_command(dspark() + " synth --preset tiny --type Q8_0 --seed 3 -o " + path + " 2>/dev/null"),
            0);
  const nlohmann::json a = run_json("generate -m " + path + " hello -n 6 --seed 1 --json");
  const nlohmann::json b = run_json("generate -m " + path + " hello -n 6 --seed 1 --json");
  EXPECT_GE(a["n_gen"].get<int>(), 1);
  EXPECT_EQ(a["tokens"], b["tokens"]);
  const nlohmann::json info = run_json("info " + path + " --json");
  EXPECT_EQ(info["architecture"], "qwen3");
  EXPECT_EQ(info["vocab_size"], 512);
}

TEST(CliTools, QuantizeToF32KeepsGreedyOutput) {
  const ScopedDir scoped;
  const std::string dir = scoped.path, out = dir + "/ts-f32.gguf";
  ASSERT_EQ(run_command(dspark() + " quantize " + tinystories() + " " + out + " F32 2>/dev/null"), 0);
  EXPECT_EQ(greedy_tokens(out, "Once upon a time", 30), greedy_tokens(tinystories(), "Once upon a time", 30));
  EXPECT_EQ(greedy_tokens(out, "", 30), greedy_tokens(tinystories(), "", 30));
}

TEST(CliTools, QuantizeToQ8_0AgreesOnTop1) {
  const ScopedDir scoped;
  const std::string dir = scoped.path, out = dir + "/ts-q8.gguf";
  ASSERT_EQ(run_command(dspark() + " quantize " + tinystories() + " " + out + " Q8_0 2>/dev/null"), 0);
  const LoadedModel original = load_model(tinystories());
  const LoadedModel q8 = load_model(out);
  EXPECT_EQ(q8.model->layers[0].wq.type, DType::Q8_0);
  EXPECT_EQ(q8.model->layers[0].attn_norm.type, DType::F32);
  // The original's own greedy continuation, read by both models.
  std::vector<int> tokens = original.tokenizer->encode("Once upon a time", true);
  const std::vector<int> gen = greedy_tokens(tinystories(), "Once upon a time", 60);
  tokens.insert(tokens.end(), gen.begin(), gen.end());
  const std::vector<int> a = top1(original, tokens), b = top1(q8, tokens);
  int same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  EXPECT_GE(double(same) / double(a.size()), 0.9) << same << " of " << a.size();
}

TEST(CliTools, BenchWritesJsonWithTheExpectedFields) {
  const ScopedDir scoped;
  const std::string dir = scoped.path, model = dir + "/tiny.gguf";
  ASSERT_EQ(run_command(dspark() + " synth --preset tiny --type BF16 -o " + model + " 2>/dev/null"), 0);
  const std::string common = " -m " + model + " -n 4 -r 2 --ctx 16 --max-k 8 --budget 1 --bandwidth-mib 16";
  const nlohmann::json j = run_json("bench all" + common + " --no-store --json");
  EXPECT_GT(j["threads"].get<int>(), 0);
  EXPECT_FALSE(j["cpu"].get<std::string>().empty());
  EXPECT_GT(j["bandwidth"]["gbps"].get<double>(), 0);
  ASSERT_EQ(j["models"].size(), 1u);
  const nlohmann::json& m = j["models"][0];
  EXPECT_EQ(m["weight_type"], "BF16");
  EXPECT_EQ(m["logits_hash"].get<std::string>().size(), 8u);
  EXPECT_GT(m["weight_bytes"].get<double>(), 0);
  EXPECT_GT(m["decode"]["tokens_per_second"].get<double>(), 0);
  EXPECT_GT(m["decode"]["gbps"].get<double>(), 0);
  EXPECT_GT(m["decode"]["bandwidth_fraction"].get<double>(), 0);
  const nlohmann::json& points = m["verify"]["points"];
  ASSERT_EQ(points.size(), 8u);
  EXPECT_EQ(points[0]["k"], 1);
  EXPECT_DOUBLE_EQ(points[0]["ratio"].get<double>(), 1.0);
  EXPECT_EQ(points[7]["k"], 8);
  EXPECT_EQ(m["verify"]["context"], 16);
  ASSERT_GE(m["prefill"]["points"].size(), 1u);
  EXPECT_GT(m["prefill"]["points"][0]["tokens_per_second"].get<double>(), 0);

  // One mode, JSON to a file, the cost profile cached under $XDG_CACHE_HOME; the hash of
  // the logits does not change from run to run.
  std::string table;
  ASSERT_EQ(run_command("XDG_CACHE_HOME=" + dir + "/cache " + dspark() + " bench verify" + common +
                            " --json " + dir + "/v.json 2>/dev/null",
                        &table),
            0);
  EXPECT_THAT(table, HasSubstr("ms/forward"));
  EXPECT_THAT(table, HasSubstr(m["logits_hash"].get<std::string>()));
  const nlohmann::json v = nlohmann::json::parse(test::read_file(dir + "/v.json"));
  EXPECT_FALSE(v.contains("bandwidth"));
  EXPECT_FALSE(v["models"][0].contains("decode"));
  EXPECT_EQ(v["models"][0]["logits_hash"], m["logits_hash"]);
  EXPECT_EQ(v["models"][0]["verify"]["points"].size(), 8u);
  const std::string cached = v["models"][0]["verify"]["cache_path"].get<std::string>();
  EXPECT_EQ(cached.rfind(dir + "/cache/dspark/", 0), 0u) << cached;
  EXPECT_TRUE(std::filesystem::exists(cached));
}

TEST(CliTools, BenchQualityReportsEachTypeOrWhyItWasSkipped) {
  const ScopedDir scoped;
  const std::string text = scoped.path + "/text.txt";
  test::write_file(text, "Once upon a time, there was a little dog named Max. Max liked to run in the park.");
  const nlohmann::json j =
      run_json("bench quality -m " + tinystories() + " --types Q8_0,q4_k -f " + text + " --json");
  EXPECT_EQ(j["mode"], "quality");
  ASSERT_EQ(j["models"].size(), 1u);
  const nlohmann::json& m = j["models"][0];
  EXPECT_GT(m["tokens"].get<int>(), 10);
  EXPECT_EQ(m["positions"].get<int>(), m["tokens"].get<int>() - 1);
  ASSERT_EQ(m["types"].size(), 2u);
  const nlohmann::json& q8 = m["types"][0];
  EXPECT_EQ(q8["type"], "Q8_0");
  EXPECT_GE(q8["top1_agreement"].get<double>(), 0.9);
  EXPECT_LT(q8["mean_kl"].get<double>(), 0.01);
  EXPECT_GE(q8["max_kl"].get<double>(), q8["mean_kl"].get<double>());
  EXPECT_GT(q8["ppl_fp32"].get<double>(), 1.0);
  EXPECT_GT(q8["ppl"].get<double>(), 1.0);
  EXPECT_EQ(m["types"][1]["type"], "Q4_K");
  EXPECT_THAT(m["types"][1]["skipped"].get<std::string>(), HasSubstr("blocks of 256"));

  // The table, on stdout without --json; an unknown type is a one-line error.
  std::string table;
  ASSERT_EQ(run_command(dspark() + " bench quality -m " + tinystories() + " --types F16 -p 'Tom ran home.'",
                        &table),
            0);
  EXPECT_THAT(table, HasSubstr("top-1 agree"));
  EXPECT_THAT(table, HasSubstr("F16"));
  std::string err;
  EXPECT_EQ(
      run_command(dspark() + " bench quality -m " + tinystories() + " --types Q9 2>&1 >/dev/null", &err), 1);
  EXPECT_THAT(err, HasSubstr("unknown weight type 'Q9'"));
}

}  // namespace
}  // namespace dspark
