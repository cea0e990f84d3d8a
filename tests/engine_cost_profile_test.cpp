// The cost profile: interpolation, JSON round trip, measurement on a tiny model, and the
// cache (valid while the model file, machine and thread count are the same).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "engine/bandwidth.h"
#include "engine/cost_profile.h"
#include "model/load.h"
#include "model/synth.h"
#include "test_util.h"

namespace dspark {
namespace {

namespace fs = std::filesystem;

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

CostProfile hand_made() {
  CostProfile p;
  p.model = "/m.gguf";
  p.model_stamp = "bytes=1";
  p.weight_type = "BF16";
  p.cpu = "cpu";
  p.threads = 2;
  p.context = 16;
  p.k = {1, 2, 4, 8};
  p.seconds = {1.0, 1.2, 1.1, 2.0};  // a noisy dip at K = 4
  p.prefill_tokens = 16;
  p.prefill_seconds = 3;
  return p;
}

std::string write_tiny(const std::string& path, uint64_t seed) {
  SynthOptions o;
  o.weight_type = DType::F32;
  o.seed = seed;
  o.context = 64;  // a short window keeps the prefill of a context near its end quick
  write_synth_model(path, find_synth_preset("tiny"), o);
  return path;
}

CostProfileOptions quick() {
  CostProfileOptions o;
  o.context = 8;
  o.ks = quick_profile_ks(8);
  o.runs = 1;
  o.budget_seconds = 1;
  return o;
}

TEST(CostProfile, InterpolatesOnAMonotoneEnvelope) {
  const CostProfile p = hand_made();
  EXPECT_DOUBLE_EQ(p.time(1), 1.0);
  EXPECT_DOUBLE_EQ(p.time(0.5), 1.0);
  EXPECT_DOUBLE_EQ(p.time(2), 1.2);
  EXPECT_DOUBLE_EQ(p.time(4), 1.2);  // the dip is lifted to the envelope
  EXPECT_DOUBLE_EQ(p.time(6), 1.6);
  EXPECT_DOUBLE_EQ(p.time(8), 2.0);
  EXPECT_DOUBLE_EQ(p.time(12), 2.8);  // along the last slope (0.2 s per token)
  EXPECT_DOUBLE_EQ(p.relative(8), 2.0);
  double last = 0;
  for (double k = 1; k <= 40; k += 0.5) {
    EXPECT_GE(p.time(k), last) << k;
    last = p.time(k);
  }
  EXPECT_THROW(CostProfile().time(1), Error);
}

TEST(CostProfile, JsonRoundTripAndBadInput) {
  const CostProfile p = hand_made();
  const CostProfile q = CostProfile::from_json(nlohmann::json::parse(p.to_json().dump()), "p.json");
  EXPECT_TRUE(q.same_identity(p));
  EXPECT_EQ(q.k, p.k);
  EXPECT_EQ(q.seconds, p.seconds);
  EXPECT_EQ(q.prefill_seconds, p.prefill_seconds);
  nlohmann::json j = p.to_json();
  j.erase("cpu");
  EXPECT_THROW(CostProfile::from_json(j, "p.json"), Error);
  j = p.to_json();
  j["points"][0]["k"] = 2;
  EXPECT_THROW(CostProfile::from_json(j, "p.json"), Error);
  EXPECT_THROW(CostProfile::from_json(nlohmann::json::array(), "p.json"), Error);
}

TEST(CostProfile, SampledKValues) {
  EXPECT_EQ(quick_profile_ks(64), (std::vector<int>{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64}));
  EXPECT_EQ(quick_profile_ks(200),
            (std::vector<int>{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192}));
  EXPECT_EQ(full_profile_ks(512),
            (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 32, 64, 128, 256, 512}));
  EXPECT_EQ(full_profile_ks(3), (std::vector<int>{1, 2, 3}));
}

TEST(CostProfile, MeasuresATinyModelWithinItsContext) {
  const ScopedDir scoped;
  const std::string dir = scoped.path;
  const LoadedModel lm = load_model(write_tiny(dir + "/tiny.gguf", 1));
  ThreadPool pool(2);
  CostProfileOptions o = quick();
  o.context = lm.model->config.max_seq_len - 10;  // room for K <= 10 only
  std::vector<int> seen;
  o.on_point = [&](int k, double) { seen.push_back(k); };
  const CostProfile p = measure_cost_profile(*lm.model, pool, o);
  EXPECT_EQ(p.k, (std::vector<int>{1, 2, 3, 4, 6, 8}));
  EXPECT_EQ(seen, p.k);
  for (double s : p.seconds) EXPECT_GT(s, 0);
  EXPECT_EQ(p.threads, 2);
  EXPECT_EQ(p.weight_type, "F32");
  EXPECT_EQ(p.prefill_tokens, o.context);
  EXPECT_THAT(p.model, ::testing::EndsWith("tiny.gguf"));
  o.context = lm.model->config.max_seq_len;
  EXPECT_THROW(measure_cost_profile(*lm.model, pool, o), Error);
}

TEST(CostProfile, CacheRoundTripAndInvalidation) {
  const ScopedDir scoped;
  const std::string dir = scoped.path, cache = dir + "/cache";
  const std::string path = write_tiny(dir + "/tiny.gguf", 1);
  const LoadedModel lm = load_model(path);
  ThreadPool pool(2);
  bool from_cache = true;
  const CostProfile first = load_or_measure_cost_profile(*lm.model, pool, quick(), cache, &from_cache);
  EXPECT_FALSE(from_cache);
  EXPECT_TRUE(fs::exists(cost_profile_path(first, cache)));
  const CostProfile second = load_or_measure_cost_profile(*lm.model, pool, quick(), cache, &from_cache);
  EXPECT_TRUE(from_cache);
  EXPECT_EQ(second.k, first.k);
  EXPECT_EQ(second.seconds, first.seconds);

  // Another thread count or context is another profile.
  ThreadPool one(1);
  load_or_measure_cost_profile(*lm.model, one, quick(), cache, &from_cache);
  EXPECT_FALSE(from_cache);
  EXPECT_FALSE(load_cached_cost_profile(cost_profile_identity(*lm.model, 2, 9), cache).has_value());

  // A rewritten model file (same size, new bytes and time) invalidates the cached profile.
  write_tiny(path, 2);
  fs::last_write_time(path, fs::last_write_time(path) + std::chrono::seconds(5));
  EXPECT_FALSE(load_cached_cost_profile(cost_profile_identity(*lm.model, 2, 8), cache).has_value());
  load_or_measure_cost_profile(*lm.model, pool, quick(), cache, &from_cache);
  EXPECT_FALSE(from_cache);
  load_or_measure_cost_profile(*lm.model, pool, quick(), cache, &from_cache);
  EXPECT_TRUE(from_cache);

  // A damaged cache file is measured again and replaced.
  test::write_file(cost_profile_path(first, cache), "{not json");
  load_or_measure_cost_profile(*lm.model, pool, quick(), cache, &from_cache);
  EXPECT_FALSE(from_cache);
  load_or_measure_cost_profile(*lm.model, pool, quick(), cache, &from_cache);
  EXPECT_TRUE(from_cache);

  // No cache folder: always measured, nothing written.
  load_or_measure_cost_profile(*lm.model, pool, quick(), std::string(), &from_cache);
  EXPECT_FALSE(from_cache);
}

TEST(CostProfile, DefaultCacheFolderFollowsXdg) {
  const char* old = std::getenv("XDG_CACHE_HOME");
  const std::string saved = old ? old : "";
  setenv("XDG_CACHE_HOME", "/tmp/xdg-test", 1);
  EXPECT_EQ(default_cost_profile_dir(), "/tmp/xdg-test/dspark");
  if (old)
    setenv("XDG_CACHE_HOME", saved.c_str(), 1);
  else
    unsetenv("XDG_CACHE_HOME");
}

TEST(Bandwidth, MeasuresAPositiveMedian) {
  ThreadPool pool(2);
  const BandwidthResult r = measure_read_bandwidth(pool, size_t(8) << 20, 3);
  EXPECT_EQ(r.passes.size(), 3u);
  EXPECT_GT(r.gbps, 0);
  EXPECT_EQ(r.buffer_bytes, size_t(8) << 20);
  EXPECT_EQ(r.threads, 2);
  EXPECT_THROW(measure_read_bandwidth(pool, 1 << 20, 0), Error);
}

}  // namespace
}  // namespace dspark
