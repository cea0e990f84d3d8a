// dspark train-draft from the command line: a short run from a prompt file writes a drafter
// that `generate -d` uses losslessly, logs one JSON object per line when stderr is not a
// terminal, resumes, and refuses bad options with one clear line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"

namespace dspark {
namespace {

using test::run_command;
using ::testing::HasSubstr;

std::string dspark() { return "XDG_CACHE_HOME=" + test::temp_dir() + " " + std::string(DSPARK_BINARY); }
std::string tinystories() { return test::shared_model("tinystories-656k"); }

std::string prompt_file() {
  const std::string path = test::temp_dir() + "/prompts.txt";
  test::write_file(path,
                   "# two openings\nOnce upon a time, there was a cat who\nTom had a red ball.\\nOne day\n");
  return path;
}

// The JSON lines of a run's stderr with the given stage.
std::vector<nlohmann::json> stage_lines(const std::string& log, const std::string& stage) {
  std::vector<nlohmann::json> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] != '{') continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j.value("stage", "") == stage) out.push_back(j);
  }
  return out;
}

TEST(CliTrainDraft, TrainsADrafterThatDecodingUses) {
  const std::string out = test::temp_dir() + "/drafter", prompts = prompt_file();
  const std::string train =
      dspark() + " train-draft -m " + tinystories() + " -o " + out + " --prompts " + prompts +
      " --max-new 24 --block 4 --markov-rank 8 --anchors 8 --batch 2 --log-every 2 --steps ";
  std::string log;
  ASSERT_EQ(run_command(train + "4 2>&1", &log), 0) << log;
  const auto cache = stage_lines(log, "cache"), steps = stage_lines(log, "train");
  ASSERT_FALSE(cache.empty()) << log;
  EXPECT_EQ(cache.back()["items_done"], 2);
  ASSERT_EQ(steps.size(), 2u) << log;
  EXPECT_EQ(steps.back()["step"], 4);
  for (const char* key : {"loss", "ce", "l1", "conf", "tokens_per_second", "eta_seconds", "lr"})
    EXPECT_TRUE(steps.back().contains(key)) << key;
  EXPECT_TRUE(std::filesystem::exists(out + "/config.json"));
  EXPECT_TRUE(std::filesystem::exists(out + "/model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(out + "/target-cache/manifest.json"));

  // Decoding with it keeps the greedy output.
  std::string plain, spec;
  const std::string gen =
      dspark() + " generate -m " + tinystories() + " -p 'Once upon a time' -n 24 --temp 0 --json";
  ASSERT_EQ(run_command(gen, &plain), 0);
  ASSERT_EQ(run_command(gen + " -d " + out, &spec), 0) << spec;
  EXPECT_EQ(nlohmann::json::parse(spec)["tokens"], nlohmann::json::parse(plain)["tokens"]);
  EXPECT_TRUE(nlohmann::json::parse(spec).contains("spec"));

  // The same command again finds the run finished: it resumes at the last step.
  ASSERT_EQ(run_command(train + "6 2>&1", &log), 1) << log;
  EXPECT_THAT(log, HasSubstr("total_steps"));  // a longer schedule is another run: refused by name
  ASSERT_EQ(run_command(train + "4 2>&1", &log), 0) << log;
  EXPECT_THAT(log, HasSubstr("resumed at step 4"));
}

TEST(CliTrainDraft, DefaultTapsFitADeeperTarget) {
  // stories260K has 5 layers: the default taps are layers 1 .. L-2 = 1, 2, 3.
  const std::string out = test::temp_dir() + "/drafter", corpus = test::temp_dir() + "/corpus.txt";
  test::write_file(corpus, "Once upon a time, there was a little cat. The cat liked to play in the sun.\n");
  std::string log;
  ASSERT_EQ(
      run_command(dspark() + " train-draft -m " + test::shared_model("stories260k/stories260K_q80.bin") +
                      " -o " + out + " --corpus " + corpus +
                      " --seq-len 16 --block 4 --anchors 4 --batch 1 --steps 1 2>&1",
                  &log),
      0)
      << log;
  const nlohmann::json config = nlohmann::json::parse(test::read_file(out + "/config.json"));
  EXPECT_EQ(config["target_layer_ids"], nlohmann::json::array({1, 2, 3})) << config.dump();
}

TEST(CliTrainDraft, BadOptionsFailWithOneClearLine) {
  const std::string prompts = prompt_file();
  const std::string base = dspark() + " train-draft -m " + tinystories() + " -o " + test::temp_dir() + "/d ";
  const auto expect_error = [&](const std::string& args, const std::string& message) {
    std::string out;
    const int rc = run_command(base + args + " 2>&1", &out);
    EXPECT_GT(rc, 0) << args;
    EXPECT_LT(rc, 128) << args;
    EXPECT_THAT(out, HasSubstr(message)) << args;
  };
  expect_error("", "exactly one of --prompts FILE or --corpus FILE");
  expect_error("--prompts " + prompts + " --corpus " + prompts, "exactly one of");
  expect_error("--prompts /nonexistent/prompts.txt", "/nonexistent/prompts.txt");
  expect_error("--prompts " + prompts + " --kind eagle", "--kind eagle");
  expect_error("--prompts " + prompts + " --markov-head lstm", "--markov-head lstm");
  expect_error("--prompts " + prompts + " --taps 1", "layer");
  expect_error("--prompts " + prompts + " --dtype q4_0", "--dtype q4_0");
  std::string help;
  EXPECT_EQ(run_command(dspark() + " train-draft --help", &help), 0);
  EXPECT_THAT(help, HasSubstr("--markov-rank"));
}

}  // namespace
}  // namespace dspark
