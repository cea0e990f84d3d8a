// Speculative decoding from the command line: `generate -d/--spec` keeps the output and adds
// the `spec` statistics of the JSON contract, `bench spec` reports drafters against plain
// decoding, and bad options fail with one clear line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace dspark {
namespace {

using test::run_command;
using ::testing::HasSubstr;

std::string dspark() { return "XDG_CACHE_HOME=" + test::temp_dir() + " " + std::string(DSPARK_BINARY); }
std::string tinystories() { return test::shared_model("tinystories-656k"); }

std::string random_drafter(const std::string& args) {
  const std::string out = test::temp_dir() + "/drafter";
  std::string log;
  const std::string cmd = "/usr/bin/python3 " + std::string(DSPARK_REFERENCE_DIR) +
                          "/make_random_drafter.py --target " + tinystories() + " --out " + out +
                          " --layers 1 --block-size 4 " + args + " 2>&1";
  EXPECT_EQ(run_command(cmd, &log), 0) << log;
  return out;
}

nlohmann::json generate_json(const std::string& args) {
  std::string out;
  const std::string cmd =
      dspark() + " generate -m " + tinystories() + " -p 'Once upon a time' -n 30 --temp 0 --json " + args;
  EXPECT_EQ(run_command(cmd, &out), 0) << cmd << "\n" << out;
  return nlohmann::json::parse(out);
}

TEST(CliSpec, DrafterKeepsTheGreedyOutputAndReportsSpecStatistics) {
  const nlohmann::json plain = generate_json("");
  EXPECT_FALSE(plain.contains("spec"));
  const std::string drafter = random_drafter("--seed 2");
  for (const std::string& args : std::vector<std::string>{
           "-d " + drafter, "-d " + drafter + " --scheduler threshold --conf-threshold 0.3",
           "-d " + drafter + " --scheduler fixed --draft-max 2", "--spec ngram",
           "-d " + drafter + " --spec dflash"}) {
    const nlohmann::json j = generate_json(args);
    EXPECT_EQ(j["tokens"], plain["tokens"]) << args;
    EXPECT_EQ(j["text"], plain["text"]) << args;
    ASSERT_TRUE(j.contains("spec")) << args;
    const nlohmann::json& s = j["spec"];
    for (const char* key : {"rounds", "tau", "drafted_tokens", "verified_tokens", "accepted_tokens",
                            "accept_per_pos", "survival_per_pos", "draft_seconds", "verify_seconds"})
      EXPECT_TRUE(s.contains(key)) << args << ": " << key;
    EXPECT_GE(s["tau"].get<double>(), 1.0);
    EXPECT_LE(s["accepted_tokens"].get<int>(), s["verified_tokens"].get<int>());
    EXPECT_LE(s["verified_tokens"].get<int>(), s["drafted_tokens"].get<int>());
  }
}

TEST(CliSpec, BadOptionsFailWithOneClearLine) {
  const std::string drafter = random_drafter("--seed 2");
  const std::string base = dspark() + " generate -m " + tinystories() + " -p 'Hi' -n 4 ";
  const auto expect_error = [&](const std::string& args, const std::string& message) {
    std::string out;
    const int rc = run_command(base + args + " 2>&1", &out);
    EXPECT_GT(rc, 0) << args;
    EXPECT_LT(rc, 128) << args;
    EXPECT_THAT(out, HasSubstr(message)) << args;
  };
  expect_error("-d " + drafter + " --draft-max 9", "--draft-max 9 is outside 1..4");
  expect_error("-d " + drafter + " --draft-max 0", "--draft-max");
  expect_error("-d " + drafter + " --conf-threshold 1.5", "--conf-threshold");
  expect_error("--spec ngram --scheduler threshold", "the ngram drafter has no confidence head");
  expect_error("--scheduler prefix", "need a drafter");
  expect_error("--spec dspark", "needs a drafter");
  expect_error("-d " + test::shared_model("stories260k/stories260K_q80.bin"), "vocabulary");
  expect_error("-d " + random_drafter("--head none --confidence 0") + " --spec dspark", "use --spec dflash");
}

TEST(CliSpec, BenchSpecReportsEachDrafterAgainstPlainDecoding) {
  const std::string dir = test::temp_dir();
  test::write_file(dir + "/prompts.txt", "Once upon a time\nThe dog and the cat\n");
  const std::string drafter = random_drafter("--seed 4");
  std::string out;
  const std::string cmd = dspark() + " bench spec -m " + tinystories() + " -d " + drafter + " -f " + dir +
                          "/prompts.txt -n 16 --json " + dir + "/out.json";
  ASSERT_EQ(run_command(cmd + " 2>&1", &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("replay (always right"));
  const auto j = nlohmann::json::parse(test::read_file(dir + "/out.json"));
  EXPECT_EQ(j["prompts"], 2);
  EXPECT_GT(j["ar"]["tokens_per_second"].get<double>(), 0);
  ASSERT_EQ(j["drafters"].size(), 3u);  // the drafter, ngram, replay
  std::vector<std::string> kinds;
  for (const auto& d : j["drafters"]) {
    kinds.push_back(d["drafter"]);
    for (const char* key : {"tokens_per_second", "speedup_median", "tau", "accept_per_pos", "scheduler"})
      EXPECT_TRUE(d.contains(key)) << key;
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"dspark", "ngram", "replay"}));
  const auto& replay = j["drafters"][2];
  EXPECT_EQ(replay["accepted_tokens"], replay["verified_tokens"]) << "the replay drafter is always right";
  EXPECT_GT(replay["tau"].get<double>(), 4.0);
}

}  // namespace
}  // namespace dspark
