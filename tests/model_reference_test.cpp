// The forward pass against the independent NumPy oracle in tests/reference/, on the real
// models of ../shared/models and on small random Qwen2/Qwen3/Llama models the test creates.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/gguf_export.h"
#include "model/kv_cache.h"
#include "model/loaders.h"
#include "model/transformer.h"
#include "test_util.h"

namespace dspark {
namespace {

using test::run_command;

const std::string kPython = "/usr/bin/python3";

std::string join(const std::vector<int>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

// Logits [tokens.size(), vocab] from the NumPy reference.
std::vector<float> reference_logits(const std::string& model, const std::vector<int>& tokens) {
  const std::string out = test::temp_dir() + "/logits.bin";
  const std::string cmd = kPython + " " + DSPARK_REFERENCE_DIR + "/llama_ref.py logits --model '" + model +
                          "' --tokens " + join(tokens) + " --out " + out + " 2>&1";
  std::string log;
  EXPECT_EQ(run_command(cmd, &log), 0) << log;
  const std::string bytes = test::read_file(out);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

// Logits of every position from one batched prefill.
std::vector<float> engine_logits(const Model& m, const std::vector<int>& tokens) {
  ThreadPool pool(2);
  KVCache cache(m.config, 1, int(tokens.size()));
  Transformer tf(m, pool);
  Batch b;
  for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int(i), 0, true);
  std::vector<float> logits(tokens.size() * size_t(m.config.vocab_size));
  tf.forward(b, cache, logits.data());
  return logits;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

std::unique_ptr<Model> load_any(const std::string& path) {
  if (std::filesystem::is_directory(path)) return load_hf_folder(path);
  if (path.size() > 5 && path.substr(path.size() - 5) == ".gguf")
    return load_gguf_model(GgufFile::open(path));
  return load_llama2c(path);
}

const std::vector<int> kTokens = {1, 400, 59, 261, 12, 301, 270, 15, 88, 3, 200, 201, 42, 77};

struct RealModel {
  const char* path;
};

class RealModels : public ::testing::TestWithParam<const char*> {};

TEST_P(RealModels, LogitsMatchNumpyReference) {
  const std::string path = test::shared_model(GetParam());
  auto m = load_any(path);
  const std::vector<float> ours = engine_logits(*m, kTokens), ref = reference_logits(path, kTokens);
  // fp32 activations against a float64 oracle over a few layers.
  EXPECT_LT(max_abs_diff(ours, ref), 1e-4f) << path;
}

INSTANTIATE_TEST_SUITE_P(SharedModels, RealModels,
                         ::testing::Values("tinystories-656k", "stories260k/stories260K_q80.bin",
                                           "aidreams260k/aidreams260K.bin"));

struct RandomCase {
  std::string name, args;
};

class RandomModels : public ::testing::TestWithParam<RandomCase> {};

TEST_P(RandomModels, LogitsMatchNumpyReference) {
  const std::string dir = test::temp_dir() + "/model";
  std::string log;
  ASSERT_EQ(run_command(kPython + " " + DSPARK_REFERENCE_DIR + "/make_random_model.py --out " + dir + " " +
                            GetParam().args + " 2>&1",
                        &log),
            0)
      << log;
  auto m = load_hf_folder(dir);
  const std::vector<int> tokens = {1, 5, 17, 33, 2, 90, 64, 8, 8, 8, 41};
  const std::vector<float> ref = reference_logits(dir, tokens);
  EXPECT_LT(max_abs_diff(engine_logits(*m, tokens), ref), 1e-4f);

  // The same model through GGUF (llama: Q/K rows permuted for adjacent-pair RoPE).
  const std::string gguf = test::temp_dir() + "/m.gguf";
  export_gguf(*m, gguf);
  auto g = load_gguf_model(GgufFile::open(gguf));
  EXPECT_LT(max_abs_diff(engine_logits(*g, tokens), ref), 1e-4f);
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, RandomModels,
    ::testing::Values(RandomCase{"qwen2_untied", "--arch qwen2 --seed 1 --tied 0"},
                      RandomCase{"qwen2_tied_bf16", "--arch qwen2 --seed 2 --tied 1 --dtype bf16"},
                      RandomCase{"qwen3_untied", "--arch qwen3 --seed 3 --tied 0 --rope-theta 1000000"},
                      RandomCase{"qwen3_head_dim_24_f16",
                                 "--arch qwen3 --seed 4 --tied 0 --head-dim 24 --dtype f16"},
                      RandomCase{"llama_untied", "--arch llama --seed 5 --tied 0"}),
    [](const auto& param_info) { return param_info.param.name; });

TEST(BatchInvariance, PrefillEqualsTokenByTokenDecodeBitForBit) {
  auto m = load_hf_folder(test::shared_model("tinystories-656k"));
  const std::vector<float> batched = engine_logits(*m, kTokens);
  ThreadPool pool(2);
  KVCache cache(m->config, 1, int(kTokens.size()));
  Transformer tf(*m, pool);
  const size_t V = size_t(m->config.vocab_size);
  std::vector<float> one(V);
  for (size_t i = 0; i < kTokens.size(); ++i) {
    Batch b;
    b.add(kTokens[i], int(i), 0, true);
    tf.forward(b, cache, one.data());
    ASSERT_EQ(0, std::memcmp(one.data(), batched.data() + i * V, V * 4)) << "position " << i;
  }
}

TEST(BatchInvariance, TruncateAndContinueReproducesLogits) {
  auto m = load_hf_folder(test::shared_model("tinystories-656k"));
  const std::vector<float> full = engine_logits(*m, kTokens);
  ThreadPool pool(2);
  KVCache cache(m->config, 1, int(kTokens.size()) + 4);
  Transformer tf(*m, pool);
  const size_t V = size_t(m->config.vocab_size);
  Batch b;
  for (int i = 0; i < 8; ++i) b.add(kTokens[size_t(i)], i, 0, false);
  for (int i = 8; i < 12; ++i) b.add(7, i, 0, false);  // a wrong continuation, rolled back
  tf.forward(b, cache, nullptr);
  cache.truncate(0, 8);
  b.clear();
  for (size_t i = 8; i < kTokens.size(); ++i) b.add(kTokens[i], int(i), 0, true);
  std::vector<float> rest((kTokens.size() - 8) * V);
  tf.forward(b, cache, rest.data());
  EXPECT_EQ(0, std::memcmp(rest.data(), full.data() + 8 * V, rest.size() * 4));
}

TEST(Forward, RejectsBadBatchesWithoutChangingTheCache) {
  auto m = load_hf_folder(test::shared_model("tinystories-656k"));
  ThreadPool pool(1);
  KVCache cache(m->config, 1, 4);
  Transformer tf(*m, pool);
  std::vector<float> logits(size_t(m->config.vocab_size));
  Batch b;
  b.add(5000, 0, 0, true);
  EXPECT_THROW(tf.forward(b, cache, logits.data()), Error);
  b.clear();
  b.add(1, 1, 0, true);  // position must continue the sequence (0)
  EXPECT_THROW(tf.forward(b, cache, logits.data()), Error);
  b.clear();
  for (int i = 0; i < 5; ++i) b.add(1, i, 0, i == 4);  // 5 tokens, capacity 4
  EXPECT_THROW(tf.forward(b, cache, logits.data()), Error);
  EXPECT_EQ(cache.length(0), 0);
}

}  // namespace
}  // namespace dspark
