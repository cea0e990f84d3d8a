// The target cache on the real TinyStories-656K (2 layers, d 128, vocab 2048): samples read
// back are what a fresh forward pass gives, bf16 storage rounds and nothing more, an
// interrupted build continues to exactly the samples of an uninterrupted one, a cache made
// otherwise is not continued, and damaged files give errors that name them.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>

#include "core/dtype.h"
#include "core/error.h"
#include "engine/generator.h"
#include "kernels/matmul.h"
#include "model/transformer.h"
#include "test_util.h"
#include "train/target_cache.h"
#include "train/target_cache_builder.h"

namespace dspark {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kPrompts = {
    "Once upon a time, there was a little dog named Max who",
    "Tom and his sister found a big box in the",
    "The sun was",
};

class TargetCache : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    lm_ = new LoadedModel(load_model(test::shared_model("tinystories-656k")));
    pool_ = new ThreadPool(2);
  }
  static void TearDownTestSuite() {
    delete pool_;
    delete lm_;
  }
  void TearDown() override {
    for (const std::string& d : scratch_) fs::remove_all(d);
  }
  // A fresh directory, removed after the test.
  std::string scratch() { return scratch_.emplace_back(test::temp_dir()); }

  static TargetCacheOptions options(CacheDType dtype = CacheDType::F32) {
    TargetCacheOptions o;
    o.taps = {-1, 0};
    o.dtype = dtype;
    o.max_new_tokens = 16;
    o.min_loss_tokens = 4;
    o.seed = 7;
    o.seq_len = 40;
    return o;
  }

  static TargetCacheProgress build(const std::string& dir, const TargetCacheOptions& o,
                                   const TargetCacheCallbacks& cb = {}) {
    return build_target_cache(*lm_, *pool_, kPrompts, dir, o, cb);
  }

  // One forward over the whole sequence, every row a logit row.
  static void fresh_forward(const std::vector<int>& tokens, const std::vector<int>& taps,
                            std::vector<float>& tap_out, std::vector<float>& final_hidden,
                            std::vector<float>& logits) {
    const Model& m = *lm_->model;
    const int n = int(tokens.size());
    tap_out.assign(size_t(n) * taps.size() * size_t(m.config.dim), 0.0f);
    final_hidden.assign(size_t(n) * size_t(m.config.dim), 0.0f);
    logits.assign(size_t(n) * size_t(m.config.vocab_size), 0.0f);
    KVCache cache(m.config, 1, n);
    Transformer tf(m, *pool_);
    Batch b;
    for (int i = 0; i < n; ++i) b.add(tokens[size_t(i)], i, 0, true);
    HiddenTaps ht;
    ht.layers = taps;
    ht.out = tap_out.data();
    ht.final_hidden = final_hidden.data();
    tf.forward(b, cache, logits.data(), &ht);
  }

  static std::vector<TargetSample> read_all(const std::string& dir) {
    TargetCacheReader r(dir);
    std::vector<TargetSample> out(size_t(r.size()));
    for (int64_t i = 0; i < r.size(); ++i) r.read(i, out[size_t(i)]);
    return out;
  }

  static LoadedModel* lm_;
  static ThreadPool* pool_;
  std::vector<std::string> scratch_;
};

LoadedModel* TargetCache::lm_ = nullptr;
ThreadPool* TargetCache::pool_ = nullptr;

// The Error `fn` throws; fails the test when it throws none.
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no Error thrown";
  return "";
}

void expect_same_bytes(const std::string& a, const std::string& b) {
  for (const char* f : {"/samples.bin", "/samples.idx", "/manifest.json"})
    EXPECT_TRUE(test::read_file(a + f) == test::read_file(b + f)) << f << " differs";
}

TEST(TargetCacheFormat, Fnv1a64KnownValues) {
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar", 6), 0x85944171f73967e8ull);
}

TEST_F(TargetCache, F32SamplesAreTheResponsesAndTheirFreshForward) {
  const std::string dir = scratch() + "/cache";
  TargetCachePlan plan;
  std::vector<TargetCacheProgress> seen;
  TargetCacheCallbacks cb;
  cb.on_plan = [&](const TargetCachePlan& p) { plan = p; };
  cb.on_progress = [&](const TargetCacheProgress& p) { seen.push_back(p); };
  const TargetCacheOptions o = options();
  const TargetCacheProgress done = build(dir, o, cb);
  EXPECT_EQ(plan.items, 3);
  EXPECT_EQ(plan.items_left, 3);
  EXPECT_FALSE(plan.resume.resumed);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen.back().items_done, 3);
  EXPECT_EQ(done.samples, 3);

  TargetCacheReader r(dir);
  ASSERT_EQ(r.size(), 3);
  EXPECT_TRUE(r.complete());
  EXPECT_EQ(r.spec().dim, 128);
  EXPECT_EQ(r.spec().vocab, 2048);
  EXPECT_EQ(r.spec().n_layers, 2);
  EXPECT_EQ(r.spec().taps, (std::vector<int>{-1, 0}));
  EXPECT_EQ(r.spec().dtype, CacheDType::F32);
  EXPECT_EQ(r.spec().sampling.temperature, 0.7f);
  EXPECT_EQ(r.spec().sampling.top_k, 20);
  EXPECT_EQ(r.spec().seed, 7u);
  EXPECT_EQ(r.tokens(), done.tokens);
  // The bound holds and the files are exactly data + index.
  const uint64_t bytes = fs::file_size(dir + "/samples.bin") + fs::file_size(dir + "/samples.idx");
  EXPECT_LE(bytes, plan.max_total_bytes);

  const Model& m = *lm_->model;
  Generator gen(*lm_, *pool_);
  for (int64_t i = 0; i < r.size(); ++i) {
    TargetSample s;
    r.read(i, s);
    EXPECT_EQ(s.source, uint32_t(i));
    EXPECT_EQ(s.sample, 0u);
    // Prompt then the target's own response to it with the sample's seed; loss on the response only.
    const std::vector<int> prompt = gen.tokenize_prompt(kPrompts[size_t(i)]);
    GenerateRequest req;
    req.prompt = kPrompts[size_t(i)];
    req.max_tokens = o.max_new_tokens;
    req.sampling = o.sampling;
    req.seed = target_cache_sample_seed(o.seed, i, 0);
    const GenerateResult res = gen.generate(req);
    std::vector<int> expect = prompt;
    expect.insert(expect.end(), res.tokens.begin(), res.tokens.end());
    ASSERT_EQ(std::vector<int>(s.tokens.begin(), s.tokens.end()), expect);
    for (size_t t = 0; t < expect.size(); ++t) EXPECT_EQ(s.loss_mask[t], t < prompt.size() ? 0 : 1) << t;
    EXPECT_EQ(r.record(i).n_loss, uint32_t(res.tokens.size()));

    // Features are a fresh forward's, bit for bit; final_hidden through the LM head gives its logits.
    std::vector<float> taps, fh, logits;
    fresh_forward(expect, {-1, 0}, taps, fh, logits);
    ASSERT_EQ(s.taps.size(), taps.size());
    EXPECT_EQ(std::memcmp(s.taps.data(), taps.data(), taps.size() * 4), 0);
    EXPECT_EQ(std::memcmp(s.final_hidden.data(), fh.data(), fh.size() * 4), 0);
    std::vector<float> head(logits.size());
    matmul(m.output, s.final_hidden.data(), s.size(), head.data(), *pool_);
    for (size_t k = 0; k < head.size(); ++k)
      ASSERT_NEAR(head[k], logits[k], 1e-5f * (1 + std::abs(logits[k])));
  }
}

TEST_F(TargetCache, FeaturesDoNotDependOnRowsPerForward) {
  Generator gen(*lm_, *pool_);
  const std::vector<int> tokens =
      gen.tokenize_prompt("Once upon a time, there was a big red ball in the park.");
  std::vector<float> t1, f1, t2, f2;
  record_target_features(*lm_->model, *pool_, {0}, tokens, 0, t1, f1);
  record_target_features(*lm_->model, *pool_, {0}, tokens, 5, t2, f2);
  EXPECT_TRUE(t1 == t2);
  EXPECT_TRUE(f1 == f2);
}

TEST_F(TargetCache, Bf16IsF32Rounded) {
  const std::string root = scratch();
  build(root + "/f32", options(CacheDType::F32));
  build(root + "/bf16", options(CacheDType::BF16));
  const auto a = read_all(root + "/f32"), b = read_all(root + "/bf16");
  ASSERT_EQ(a.size(), b.size());
  EXPECT_LT(fs::file_size(root + "/bf16/samples.bin"), fs::file_size(root + "/f32/samples.bin"));
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].tokens, b[i].tokens);
    EXPECT_EQ(a[i].loss_mask, b[i].loss_mask);
    ASSERT_EQ(a[i].taps.size(), b[i].taps.size());
    for (size_t k = 0; k < a[i].taps.size(); ++k)
      ASSERT_EQ(b[i].taps[k], bf16_to_f32(f32_to_bf16(a[i].taps[k]))) << k;
    for (size_t k = 0; k < a[i].final_hidden.size(); ++k)
      ASSERT_EQ(b[i].final_hidden[k], bf16_to_f32(f32_to_bf16(a[i].final_hidden[k]))) << k;
  }
}

TEST_F(TargetCache, SeveralSamplesPerPromptDiffer) {
  const std::string dir = scratch() + "/cache";
  TargetCacheOptions o = options();
  o.samples_per_prompt = 2;
  o.sampling.temperature = 1.0f;
  build(dir, o);
  const auto s = read_all(dir);
  ASSERT_EQ(s.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(s[i].source, i / 2);
    EXPECT_EQ(s[i].sample, i % 2);
  }
  EXPECT_NE(s[0].tokens, s[1].tokens);  // different seeds, temperature 1
}

TEST_F(TargetCache, InterruptedBuildContinuesToTheSameSamples) {
  const std::string root = scratch();
  const TargetCacheOptions o = options(CacheDType::BF16);
  build(root + "/whole", o);

  // A build stopped after two items (the progress callback throws, as a crash would).
  TargetCacheCallbacks stop;
  stop.on_progress = [](const TargetCacheProgress& p) {
    if (p.items_done == 2) throw std::runtime_error("stopped");
  };
  EXPECT_THROW(build(root + "/stopped", o, stop), std::runtime_error);
  EXPECT_EQ(TargetCacheReader(root + "/stopped").size(), 2);
  TargetCachePlan plan;
  TargetCacheCallbacks cb;
  cb.on_plan = [&](const TargetCachePlan& p) { plan = p; };
  build(root + "/stopped", o, cb);
  EXPECT_TRUE(plan.resume.resumed);
  EXPECT_EQ(plan.resume.samples_kept, 2);
  EXPECT_EQ(plan.items_left, 1);
  expect_same_bytes(root + "/whole", root + "/stopped");

  // A sample cut in the middle, with a partial and a garbage index record after it.
  const std::string torn = root + "/torn";
  fs::copy(root + "/whole", torn);
  const uint64_t data = fs::file_size(torn + "/samples.bin");
  fs::resize_file(torn + "/samples.bin", data - 100);
  {
    std::string idx = test::read_file(torn + "/samples.idx");
    idx += std::string(40, '\x5a') + "partial";
    test::write_file(torn + "/samples.idx", idx);
  }
  EXPECT_NE(error_of([&] { TargetCacheReader r(torn); }).find("samples.idx"), std::string::npos);
  build(torn, o, cb);
  EXPECT_EQ(plan.resume.samples_kept, 2);
  EXPECT_EQ(plan.resume.records_cut, 2);
  EXPECT_EQ(plan.items_left, 1);
  expect_same_bytes(root + "/whole", torn);

  // Only garbage after the last index record: nothing to redo.
  const std::string tail = root + "/tail";
  fs::copy(root + "/whole", tail);
  test::write_file(tail + "/samples.idx", test::read_file(tail + "/samples.idx") + "garbage");
  EXPECT_NE(error_of([&] { TargetCacheReader r(tail); }).find("whole number"), std::string::npos);
  build(tail, o, cb);
  EXPECT_EQ(plan.resume.samples_kept, 3);
  EXPECT_EQ(plan.resume.index_bytes_cut, 7u);
  EXPECT_EQ(plan.items_left, 0);
  expect_same_bytes(root + "/whole", tail);

  // The last sample damaged (not its length): it fails its checksum and is made again.
  const std::string flip = root + "/flip";
  fs::copy(root + "/whole", flip);
  {
    std::string bin = test::read_file(flip + "/samples.bin");
    bin[bin.size() - 20] ^= 0x10;
    test::write_file(flip + "/samples.bin", bin);
  }
  build(flip, o, cb);
  EXPECT_EQ(plan.resume.samples_kept, 2);
  EXPECT_EQ(plan.resume.records_cut, 1);
  expect_same_bytes(root + "/whole", flip);
}

TEST_F(TargetCache, DroppedItemsAreNotRedone) {
  const std::string dir = scratch() + "/cache";
  TargetCacheOptions o = options();
  o.min_loss_tokens = o.max_new_tokens + 1;  // every response is too short
  const TargetCacheProgress p = build(dir, o);
  EXPECT_EQ(p.samples, 0);
  EXPECT_EQ(p.dropped, 3);
  EXPECT_EQ(p.items_done, 3);
  EXPECT_EQ(TargetCacheReader(dir).size(), 0);
  TargetCachePlan plan;
  TargetCacheCallbacks cb;
  cb.on_plan = [&](const TargetCachePlan& x) { plan = x; };
  EXPECT_EQ(build(dir, o, cb).dropped, 0);
  EXPECT_EQ(plan.items_left, 0);
}

TEST_F(TargetCache, RefusesToContinueACacheMadeOtherwise) {
  const std::string dir = scratch() + "/cache";
  TargetCacheOptions o = options();
  o.taps = {0};
  build(dir, o);
  TargetCacheOptions taps = o;
  taps.taps = {-1, 0};
  std::string e = error_of([&] { build(dir, taps); });
  EXPECT_NE(e.find("tap layers"), std::string::npos) << e;
  EXPECT_NE(e.find("[0]"), std::string::npos) << e;
  EXPECT_NE(e.find("manifest.json"), std::string::npos) << e;
  TargetCacheOptions dtype = o;
  dtype.dtype = CacheDType::BF16;
  e = error_of([&] { build(dir, dtype); });
  EXPECT_NE(e.find("dtype"), std::string::npos) << e;
  TargetCacheOptions temp = o;
  temp.sampling.temperature = 0.5f;
  e = error_of([&] { build(dir, temp); });
  EXPECT_NE(e.find("temperature"), std::string::npos) << e;
  e = error_of([&] { build_target_cache(*lm_, *pool_, {"Another prompt"}, dir, o); });
  EXPECT_NE(e.find("source"), std::string::npos) << e;
  // The cache is untouched by the refusals.
  EXPECT_EQ(TargetCacheReader(dir).size(), 3);
}

TEST_F(TargetCache, RefusesBadTaps) {
  const std::string dir = scratch() + "/cache";
  TargetCacheOptions o = options();
  o.taps = {1};  // the last of 2 layers
  EXPECT_NE(error_of([&] { build(dir, o); }).find("last layer"), std::string::npos);
  o.taps = {0, 0};
  EXPECT_NE(error_of([&] { build(dir, o); }).find("twice"), std::string::npos);
  o.taps = {};
  EXPECT_NE(error_of([&] { build(dir, o); }).find("no tap"), std::string::npos);
}

TEST_F(TargetCache, DamagedFilesGiveErrorsNamingThem) {
  const std::string root = scratch();
  build(root + "/good", options(CacheDType::BF16));
  int n = 0;
  // Copies the good cache, applies `damage`, expects the reader (or reading every sample) to
  // fail with a message holding each of `words`.
  auto check = [&](const std::function<void(const std::string&)>& damage, std::vector<std::string> words) {
    const std::string dir = root + "/bad" + std::to_string(n++);
    fs::copy(root + "/good", dir);
    damage(dir);
    const std::string e = error_of([&] { read_all(dir); });
    for (const std::string& w : words)
      EXPECT_NE(e.find(w), std::string::npos) << "'" << w << "' not in: " << e;
  };
  auto edit = [](const std::string& path, const std::function<void(std::string&)>& fn) {
    std::string s = test::read_file(path);
    fn(s);
    test::write_file(path, s);
  };
  const std::string manifest = test::read_file(root + "/good/manifest.json");
  auto replace = [](std::string& s, const std::string& a, const std::string& b) {
    const size_t at = s.find(a);
    ASSERT_NE(at, std::string::npos) << a;
    s.replace(at, a.size(), b);
  };

  check(
      [&](const std::string& d) {
        edit(d + "/manifest.json", [](std::string& s) { s.resize(s.size() / 2); });
      },
      {"manifest.json", "not valid JSON"});
  check(
      [&](const std::string& d) {
        edit(d + "/manifest.json", [&](std::string& s) { replace(s, "\"dim\"", "\"dim_\""); });
      },
      {"manifest.json", "target.dim", "missing"});
  check(
      [&](const std::string& d) {
        edit(d + "/manifest.json",
             [&](std::string& s) { replace(s, "\"dtype\": \"bf16\"", "\"dtype\": \"f8\""); });
      },
      {"manifest.json", "dtype", "f8"});
  check(
      [&](const std::string& d) {
        edit(d + "/manifest.json", [&](std::string& s) { replace(s, "\"samples\": 3", "\"samples\": 4"); });
      },
      {"samples.idx", "holds 3 samples"});
  check([&](const std::string& d) { fs::remove(d + "/manifest.json"); }, {"manifest.json"});
  check([&](const std::string& d) { fs::resize_file(d + "/samples.idx", 10); }, {"samples.idx", "header"});
  check([&](const std::string& d) { edit(d + "/samples.idx", [](std::string& s) { s[0] = 'X'; }); },
        {"samples.idx", "magic"});
  check([&](const std::string& d) { fs::resize_file(d + "/samples.idx", 16 + 40 + 17); },
        {"samples.idx", "whole number"});
  // Record 1's offset.
  check([&](const std::string& d) { edit(d + "/samples.idx", [](std::string& s) { s[16 + 40] ^= 1; }); },
        {"samples.idx", "record 1", "offset"});
  // Record 0's token count.
  check([&](const std::string& d) { edit(d + "/samples.idx", [](std::string& s) { s[16 + 16] ^= 1; }); },
        {"samples.idx", "record 0"});
  check(
      [&](const std::string& d) {
        fs::resize_file(d + "/samples.bin", fs::file_size(d + "/samples.bin") - 8);
      },
      {"samples.idx", "past the end of the data file"});
  check([&](const std::string& d) { edit(d + "/samples.bin", [](std::string& s) { s += "extra"; }); },
        {"samples.bin", "after the last sample"});
  check([&](const std::string& d) { fs::resize_file(d + "/samples.bin", 5); }, {"samples.bin", "header"});
  check([&](const std::string& d) { edit(d + "/samples.bin", [](std::string& s) { s[40] ^= 4; }); },
        {"samples.bin", "sample 0", "checksum"});
  check([&](const std::string& d) { fs::remove(d + "/samples.bin"); }, {"samples.bin"});
  EXPECT_EQ(manifest, test::read_file(root + "/good/manifest.json"));

  // No manifest but samples: not overwritten by a new build.
  const std::string orphan = root + "/orphan";
  fs::copy(root + "/good", orphan);
  fs::remove(orphan + "/manifest.json");
  EXPECT_NE(error_of([&] { build(orphan, options(CacheDType::BF16)); }).find("refusing"), std::string::npos);
  EXPECT_NE(error_of([&] { TargetCacheReader r(root + "/missing"); }).find("not a directory"),
            std::string::npos);
}

TEST_F(TargetCache, CorpusSequencesStartWithBos) {
  const std::string dir = scratch() + "/corpus";
  const std::string text =
      "Once upon a time, there was a little cat named Tom. Tom liked to play with his red ball in the "
      "garden. "
      "One day, the ball rolled under a big tree. Tom looked and looked, but he could not find it. Then his "
      "friend the bird sang from a branch, and Tom saw the ball by the flowers. He was very happy.";
  TargetCacheOptions o = options();
  o.seq_len = 24;
  o.min_loss_tokens = 4;
  TargetCachePlan plan;
  TargetCacheCallbacks cb;
  cb.on_plan = [&](const TargetCachePlan& p) { plan = p; };
  build_corpus_cache(*lm_, *pool_, text, dir, o, cb);
  const std::vector<int> corpus = lm_->tokenizer->encode(text, false);
  const int bos = lm_->model->tokens.bos;
  ASSERT_GE(bos, 0);
  const auto samples = read_all(dir);
  EXPECT_EQ(plan.max_total_bytes, fs::file_size(dir + "/samples.bin") + fs::file_size(dir + "/samples.idx"));
  std::vector<int> joined;
  for (size_t i = 0; i < samples.size(); ++i) {
    const TargetSample& s = samples[i];
    EXPECT_EQ(s.source, i);
    ASSERT_LE(s.size(), 24);
    EXPECT_EQ(s.tokens[0], bos);
    EXPECT_EQ(s.loss_mask[0], 0);
    for (int t = 1; t < s.size(); ++t) EXPECT_EQ(s.loss_mask[size_t(t)], 1);
    joined.insert(joined.end(), s.tokens.begin() + 1, s.tokens.end());
  }
  // Every text token, in order, but a last piece too short to keep.
  ASSERT_LE(joined.size(), corpus.size());
  EXPECT_GT(joined.size() + 4, corpus.size());
  EXPECT_TRUE(std::equal(joined.begin(), joined.end(), corpus.begin()));

  std::vector<float> taps, fh, logits;
  const std::vector<int> seq(samples[1].tokens.begin(), samples[1].tokens.end());
  fresh_forward(seq, {-1, 0}, taps, fh, logits);
  EXPECT_EQ(std::memcmp(samples[1].taps.data(), taps.data(), taps.size() * 4), 0);
  EXPECT_EQ(std::memcmp(samples[1].final_hidden.data(), fh.data(), fh.size() * 4), 0);

  // A corpus cache is not continued as a responses cache.
  EXPECT_NE(error_of([&] { build(dir, o); }).find("mode"), std::string::npos);
}

}  // namespace
}  // namespace dspark
