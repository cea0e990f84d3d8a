// Random-weight models of real shapes (dspark synth): every weight type loads, validates and
// generates; the embedded tokenizer round-trips text; the streaming GGUF writer produces the
// same bytes as the in-memory one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "kernels/sampling.h"
#include "model/kv_cache.h"
#include "model/load.h"
#include "model/synth.h"
#include "model/transformer.h"
#include "test_util.h"

namespace dspark {
namespace {

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

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string write_tiny(const std::string& dir, DType type, uint64_t seed = 0, const char* preset = "tiny") {
  SynthOptions o;
  o.weight_type = type;
  o.seed = seed;
  const std::string path =
      dir + "/" + preset + "-" + std::string(dtype_name(type)) + "-" + std::to_string(seed) + ".gguf";
  write_synth_model(path, find_synth_preset(preset), o);
  return path;
}

// Greedy/sampled tokens of a short generation.
std::vector<int> generate(const LoadedModel& lm, const std::string& prompt, int n, uint64_t seed) {
  ThreadPool pool(2);
  int vocab = lm.model->config.vocab_size;
  KVCache cache(lm.model->config, 1, 64);
  Transformer tf(*lm.model, pool);
  std::vector<int> ids = lm.tokenizer->encode(prompt, true);
  Batch b;
  for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], int(i), 0, i + 1 == ids.size());
  std::vector<float> logits(static_cast<size_t>(vocab));
  tf.forward(b, cache, logits.data());
  SamplingParams sp;
  Sampler sampler(sp, seed);
  std::vector<int> out;
  for (int i = 0; i < n; ++i) {
    for (float x : logits) EXPECT_TRUE(std::isfinite(x));
    const int next = sampler.sample(logits.data(), vocab, ids);
    out.push_back(next);
    ids.push_back(next);
    b.clear();
    b.add(next, int(ids.size()) - 1, 0, true);
    tf.forward(b, cache, logits.data());
  }
  return out;
}

TEST(Synth, EveryWeightTypeLoadsValidatesAndGeneratesDeterministically) {
  const ScopedDir scoped;
  const std::string dir = scoped.path;
  ASSERT_FALSE(weight_type_names().empty());
  for (const std::string& name : weight_type_names()) {
    SCOPED_TRACE(name);
    const DType type = *parse_weight_type(name);
    const LoadedModel lm = load_model(write_tiny(dir, type));
    const Model& m = *lm.model;
    EXPECT_NO_THROW(m.validate());
    const ModelConfig& c = m.config;
    EXPECT_EQ(c.arch, Arch::Qwen3);
    EXPECT_EQ(c.n_layers, 2);
    EXPECT_EQ(c.dim, 256);
    EXPECT_EQ(c.vocab_size, 512);
    EXPECT_TRUE(c.qk_norm);
    EXPECT_TRUE(c.tied_embeddings);
    EXPECT_EQ(m.layers[0].wq.type, type);
    EXPECT_EQ(m.tok_embeddings.type, type);
    EXPECT_EQ(m.layers[1].ffn_norm.type, DType::F32);
    EXPECT_EQ(m.tokens.bos, 510);
    ASSERT_EQ(m.tokens.eos.size(), 1u);
    EXPECT_EQ(m.tokens.eos[0], 511);
    const std::vector<int> a = generate(lm, "hello world", 12, 7);
    const std::vector<int> b = generate(lm, "hello world", 12, 7);
    EXPECT_EQ(a, b);
  }
}

TEST(Synth, GeneratorRunsOnTheUntiedLlamaPreset) {
  const ScopedDir scoped;
  const std::string dir = scoped.path;
  const LoadedModel lm = load_model(write_tiny(dir, DType::BF16, 3, "tiny-llama"));
  EXPECT_EQ(lm.model->config.arch, Arch::Llama);
  EXPECT_FALSE(lm.model->config.tied_embeddings);
  EXPECT_NE(lm.model->output.data, lm.model->tok_embeddings.data);
  EXPECT_EQ(generate(lm, "", 8, 1).size(), 8u);
}

TEST(Synth, TheSeedDecidesTheWeights) {
  const ScopedDir scoped;
  const std::string dir = scoped.path;
  const ScopedDir other;
  const std::string a = test::read_file(write_tiny(dir, DType::Q8_0, 1));
  const std::string a2 = test::read_file(write_tiny(other.path, DType::Q8_0, 1));
  const std::string b = test::read_file(write_tiny(dir, DType::Q8_0, 2));
  EXPECT_EQ(a, a2);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), b.size());
}

TEST(Synth, WeightsHaveTheIntendedScale) {
  const ScopedDir scoped;
  const std::string dir = scoped.path;
  const LoadedModel lm = load_model(write_tiny(dir, DType::F32));
  const TensorView& w = lm.model->layers[0].w_up;
  const float* x = static_cast<const float*>(w.data);
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    sum += x[i];
    sq += double(x[i]) * x[i];
  }
  const double mean = sum / double(w.numel()), sd = std::sqrt(sq / double(w.numel()) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_NEAR(sd, 0.02, 1e-3);
  const float* norm = static_cast<const float*>(lm.model->layers[0].attn_norm.data);
  EXPECT_EQ(norm[0], 1.0f);
}

TEST(Synth, TokenizerRoundTripsText) {
  const ScopedDir scoped;
  const std::string dir = scoped.path;
  const LoadedModel lm = load_model(write_tiny(dir, DType::F16));
  const Tokenizer& tok = *lm.tokenizer;
  EXPECT_EQ(tok.vocab_size(), 512);
  for (const std::string text :
       {"hello world", "The quick brown fox, 42 times!", "  two  spaces\nand a newline\t",
        "h\xC3\xA9llo w\xC3\xB6rld \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x99\x82", ""}) {
    const std::vector<int> ids = tok.encode(text, false);
    EXPECT_EQ(tok.decode(ids), text) << text;
  }
  // Merged tokens are used: " the" takes fewer tokens than its four bytes.
  EXPECT_LT(tok.encode(" the", false).size(), 4u);
  // The special tokens are written literally and render as nothing.
  const std::vector<int> ids = tok.encode("a<|endoftext|>", false);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[1], 511);
  EXPECT_TRUE(tok.is_control(511));
  EXPECT_TRUE(tok.is_control(510));
}

TEST(Synth, FullSizeVocabularyIsConsistent) {
  const SynthVocab v = make_synth_vocab(151936);
  ASSERT_EQ(v.tokens.size(), 151936u);
  EXPECT_EQ(v.merges.size(), 151936u - 258u);
  EXPECT_EQ(v.token_types.size(), v.tokens.size());
  EXPECT_EQ(v.bos, 151934);
  EXPECT_EQ(v.eos, 151935);
  GgufWriter w;
  add_synth_tokenizer(w, v, "qwen2");
  const std::string bytes = w.serialize();
  auto g = GgufFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "vocab.gguf");
  const std::unique_ptr<Tokenizer> tok = Tokenizer::from_gguf(*g);
  EXPECT_EQ(tok->vocab_size(), 151936);
  const std::string text = "Once upon a time, there was a little girl named Lily. She liked 3 apples.";
  const std::vector<int> ids = tok->encode(text, false);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_LT(ids.size(), text.size() * 6 / 10);  // lowercase runs merge, up to four symbols a token
  EXPECT_THROW(make_synth_vocab(100), Error);
}

TEST(Synth, StreamingWriterEqualsTheInMemoryWriter) {
  const ScopedDir scoped;
  const std::string dir = scoped.path;
  for (const char* preset : {"tiny", "tiny-llama"}) {
    SynthOptions o;
    o.weight_type = DType::Q8_0;
    o.seed = 11;
    ThreadPool one(1), two(2);
    GgufWriter streamed, in_memory;
    add_synth_model(streamed, find_synth_preset(preset), o, &two);
    o.stream = false;
    add_synth_model(in_memory, find_synth_preset(preset), o, &one);
    const std::string path = dir + "/" + preset + ".gguf";
    streamed.write(path);
    const std::string expected = in_memory.serialize();
    EXPECT_EQ(test::read_file(path), expected) << preset;
    EXPECT_EQ(streamed.serialize(), expected) << preset;
    EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
  }
}

TEST(Synth, GgufTensorSourcesMatchCopiedTensorsAndAreChecked) {
  const ScopedDir scoped;
  const std::string dir = scoped.path;
  std::vector<float> data(3 * 64);
  for (size_t i = 0; i < data.size(); ++i) data[i] = float(i) * 0.5f;
  GgufWriter copied(64), streamed(64);
  for (GgufWriter* w : {&copied, &streamed}) w->set_string("general.name", "t");
  copied.add_tensor("a", DType::F32, {3, 64}, data.data());
  copied.add_tensor("b", DType::F32, {5}, data.data());
  streamed.add_tensor_source("a", DType::F32, {3, 64}, [&](std::string& out) {
    out.assign(reinterpret_cast<const char*>(data.data()), data.size() * 4);
  });
  streamed.add_tensor("b", DType::F32, {5}, data.data());
  EXPECT_EQ(copied.serialize(), streamed.serialize());
  streamed.write(dir + "/s.gguf");
  EXPECT_EQ(test::read_file(dir + "/s.gguf"), copied.serialize());

  GgufWriter bad;
  bad.add_tensor_source("short", DType::F32, {8}, [](std::string& out) { out.assign(12, 'x'); });
  EXPECT_THAT(error_of([&] { bad.write(dir + "/bad.gguf"); }), HasSubstr("'short'"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad.gguf"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad.gguf.partial"));
  EXPECT_THAT(error_of([&] { bad.add_tensor_source("short", DType::F32, {8}, [](std::string&) {}); }),
              HasSubstr("added twice"));
  EXPECT_THAT(error_of([&] { bad.add_tensor_source("none", DType::F32, {8}, nullptr); }),
              HasSubstr("no source"));
}

TEST(Synth, PresetsAndTypesByName) {
  EXPECT_EQ(parse_weight_type("q8_0"), DType::Q8_0);
  EXPECT_EQ(parse_weight_type("BF16"), DType::BF16);
  EXPECT_FALSE(parse_weight_type("Q9_9").has_value());
  EXPECT_THAT(error_of([] { find_synth_preset("gpt-5"); }), HasSubstr("qwen3-0.6b"));
  // The real shapes: parameter counts of Qwen3-0.6B (tied) and stories110M.
  auto params = [](const ModelConfig& c) {
    const int64_t d = c.dim, per_layer = d * c.q_dim() * 2 + d * c.kv_dim() * 2 + 3 * d * c.ffn_dim + 2 * d +
                                         (c.qk_norm ? 2 * c.head_dim : 0);
    return int64_t(c.vocab_size) * d * (c.tied_embeddings ? 1 : 2) + c.n_layers * per_layer + d;
  };
  EXPECT_EQ(params(find_synth_preset("qwen3-0.6b").config), 596049920);
  // Qwen3-1.7B: 1.4B parameters besides the (tied) embeddings.
  EXPECT_NEAR(double(params(find_synth_preset("qwen3-1.7b").config)) - 151936.0 * 2048, 1.41e9, 0.01e9);
  EXPECT_NEAR(double(params(find_synth_preset("qwen3-4b").config)), 4.02e9, 0.01e9);
  EXPECT_NEAR(double(params(find_synth_preset("llama-110m").config)), 134e6, 1e6);
}

}  // namespace
}  // namespace dspark
