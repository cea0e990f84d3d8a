// `generate` with no -m: the default model (models/default.gguf, or $DSPARK_MODEL_DIR) runs
// with the drafter that ships beside it, and its greedy output is the plain output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace dspark {
namespace {

using test::run_command;
using ::testing::HasSubstr;

std::string dspark() { return "XDG_CACHE_HOME=" + test::temp_dir() + " " + std::string(DSPARK_BINARY); }

nlohmann::json run_json(const std::string& cmd, std::string* log = nullptr) {
  const std::string err = test::temp_dir() + "/stderr";
  std::string out;
  EXPECT_EQ(run_command(cmd + " 2>" + err, &out), 0) << cmd << "\n" << test::read_file(err);
  if (log) *log = test::read_file(err);
  return nlohmann::json::parse(out);
}

// A model folder laid out like models/: TinyStories as default.gguf, a random DSpark drafter
// as default-dspark/.
std::string make_model_dir() {
  const std::string dir = test::temp_dir();
  std::string log;
  EXPECT_EQ(run_command(std::string(DSPARK_BINARY) + " quantize " + test::shared_model("tinystories-656k") +
                            " " + dir + "/default.gguf F32 2>&1",
                        &log),
            0)
      << log;
  EXPECT_EQ(run_command("/usr/bin/python3 " + std::string(DSPARK_REFERENCE_DIR) +
                            "/make_random_drafter.py --target " + test::shared_model("tinystories-656k") +
                            " --out " + dir + "/default-dspark --layers 1 --block-size 4 --seed 3 2>&1",
                        &log),
            0)
      << log;
  return dir;
}

TEST(CliDefaultModel, RunsWithTheDrafterBesideItAndKeepsTheGreedyOutput) {
  const std::string dir = make_model_dir();
  const std::string base =
      "DSPARK_MODEL_DIR=" + dir + " " + dspark() + " generate 'Once upon a time' -n 24 --temp 0 --json";
  std::string log;
  const nlohmann::json spec = run_json(base, &log);
  EXPECT_THAT(log, HasSubstr("default-dspark"));
  ASSERT_TRUE(spec.contains("spec"));
  const nlohmann::json plain = run_json(base + " --spec none");
  EXPECT_FALSE(plain.contains("spec"));
  EXPECT_EQ(spec["tokens"], plain["tokens"]);
  EXPECT_EQ(spec["text"], plain["text"]);

  // --spec names another drafter for the default model; -m alone means no drafter.
  const nlohmann::json ngram = run_json(base + " --spec ngram", &log);
  EXPECT_THAT(log, HasSubstr("drafter ngram"));
  EXPECT_EQ(ngram["tokens"], plain["tokens"]);
  const nlohmann::json other = run_json(base + " -m " + dir + "/default.gguf");
  EXPECT_FALSE(other.contains("spec"));
}

TEST(CliDefaultModel, ContradictoryOptionsFail) {
  const std::string dir = make_model_dir();
  std::string out;
  const int rc = run_command("DSPARK_MODEL_DIR=" + dir + " " + dspark() +
                                 " generate hi -n 2 --spec none -d " + dir + "/default-dspark 2>&1",
                             &out);
  EXPECT_GT(rc, 0);
  EXPECT_LT(rc, 128);
  EXPECT_THAT(out, HasSubstr("contradict"));
}

// The model and drafter in models/: a valid GGUF of the stated shape, and greedy decoding with
// the shipped drafter, calibrated and scheduled, gives the plain output.
TEST(CliDefaultModel, ShippedModelIsValidAndItsDrafterKeepsTheGreedyOutput) {
  const std::string base = "env -u DSPARK_MODEL_DIR " + dspark();
  const nlohmann::json info = run_json(base + " info --json");
  EXPECT_THAT(info["path"].get<std::string>(), ::testing::EndsWith("models/default.gguf"));
  EXPECT_EQ(info["architecture"], "llama");
  EXPECT_GE(info["parameters"].get<int64_t>(), 5'000'000);
  EXPECT_EQ(info["parameters_by_type"]["F32"], info["parameters"]);  // runs from DRAM: 43 MiB > L3
  EXPECT_EQ(info["tokenizer_vocab"], info["vocab_size"]);
  const nlohmann::json raw = run_json(base + " info --gguf --json " + info["path"].get<std::string>());
  EXPECT_EQ(raw["metadata"]["general.architecture"], "llama");
  EXPECT_EQ(raw["metadata"]["tokenizer.ggml.model"], "gpt2");
  EXPECT_EQ(raw["metadata"]["llama.block_count"], info["layers"]);

  const std::string gen = base + " generate 'And God said unto Moses' -n 48 --temp 0 --json";
  std::string log;
  const nlohmann::json spec = run_json(gen, &log);
  EXPECT_THAT(log, HasSubstr("default-dspark"));
  EXPECT_THAT(log, HasSubstr("scheduler prefix, calibrated"));
  ASSERT_TRUE(spec.contains("spec"));
  const nlohmann::json plain = run_json(gen + " --spec none");
  EXPECT_EQ(spec["tokens"], plain["tokens"]);
  EXPECT_EQ(spec["text"], plain["text"]);
  // The prefix scheduler's choices depend on measured times; the fixed one verifies every
  // draft, so the drafter's drafts are surely put to the test.
  const nlohmann::json fixed = run_json(gen + " --scheduler fixed");
  EXPECT_EQ(fixed["tokens"], plain["tokens"]);
  EXPECT_GT(fixed["spec"]["accepted_tokens"].get<int>(), 0);
}

}  // namespace
}  // namespace dspark
