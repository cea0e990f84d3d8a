// The dspark program as users and scripts see it: the command-line contract of DESIGN.md.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace dspark {
namespace {

using test::run_command;
using ::testing::HasSubstr;

std::string dspark() { return DSPARK_BINARY; }
std::string tinystories() { return test::shared_model("tinystories-656k"); }

TEST(Cli, EverySubcommandAnswersHelp) {
  for (const char* sub : {"", "generate", "info", "serve", "bench", "synth", "quantize", "calibrate", "eval",
                          "train-draft", "train-tokenizer", "train-lm"}) {
    std::string out;
    EXPECT_EQ(run_command(dspark() + " " + sub + " --help", &out), 0) << sub;
    EXPECT_THAT(out, HasSubstr("Usage")) << sub;
  }
}

TEST(Cli, JsonOutputHasTheContractFields) {
  std::string out;
  ASSERT_EQ(
      run_command(dspark() + " generate -m " + tinystories() + " -p 'Once upon a time' -n 12 --temp 0 --json",
                  &out),
      0)
      << out;
  const auto j = nlohmann::json::parse(out);
  for (const char* key : {"text", "tokens", "n_gen", "n_prompt", "load_seconds", "prefill_seconds",
                          "decode_seconds", "seconds", "tokens_per_second"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["n_gen"], 12);
  EXPECT_EQ(j["tokens"].size(), 12u);
  EXPECT_GT(j["n_prompt"].get<int>(), 1);
  EXPECT_DOUBLE_EQ(j["seconds"].get<double>(),
                   j["prefill_seconds"].get<double>() + j["decode_seconds"].get<double>());
  EXPECT_GT(j["tokens_per_second"].get<double>(), 0);
  EXPECT_THAT(j["text"].get<std::string>(), ::testing::Not(HasSubstr("Once upon a time")));  // no prompt
}

TEST(Cli, EmptyPromptStartsFromBosAndPositionalPromptEqualsDashP) {
  std::string a, b, c;
  ASSERT_EQ(run_command(dspark() + " generate -m " + tinystories() + " -p '' -n 8 --temp 0 --json", &a), 0);
  EXPECT_EQ(nlohmann::json::parse(a)["n_prompt"], 1);
  EXPECT_THAT(nlohmann::json::parse(a)["text"].get<std::string>(), HasSubstr("Once upon a time"));
  ASSERT_EQ(run_command(dspark() + " generate -m " + tinystories() + " 'The cat' -n 8 --temp 0 --json", &b),
            0);
  ASSERT_EQ(
      run_command(dspark() + " generate -m " + tinystories() + " -p 'The cat' -n 8 --temp 0 --json", &c), 0);
  EXPECT_EQ(nlohmann::json::parse(b)["tokens"], nlohmann::json::parse(c)["tokens"]);
}

TEST(Cli, StreamsTextToStdoutAndStatisticsToStderr) {
  std::string out;
  ASSERT_EQ(
      run_command(dspark() + " generate -m " + tinystories() + " -p '' -n 10 --temp 0 2>/dev/null", &out), 0);
  EXPECT_EQ(out.rfind("Once upon a time", 0), 0u) << out;
}

TEST(Cli, InfoDescribesTheModel) {
  std::string out;
  ASSERT_EQ(run_command(dspark() + " info " + tinystories() + " --json", &out), 0) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["layers"], 2);
  EXPECT_EQ(j["dim"], 128);
  EXPECT_EQ(j["kv_heads"], 4);
  EXPECT_EQ(j["vocab_size"], 2048);
  EXPECT_EQ(j["tied_embeddings"], true);
}

TEST(Cli, ErrorsAreOneLineWithAnExitCodeBelow128) {
  const std::string dir = test::temp_dir();
  test::write_file(dir + "/bad.gguf", "GGUF\x03");
  const std::vector<std::string> bad_args = {
      "generate -m /nonexistent/model.gguf -p hi", "generate -m " + dir + "/bad.gguf -p hi",
      "generate -m " + test::shared_model("stories260k/stories260K_q80.bin") + " --tokenizer " +
          tinystories() + "/tokenizer.json -p hi",
      "generate --temp -1", "frobnicate"};
  for (const std::string& args : bad_args) {
    std::string err;
    const int code = run_command(dspark() + " " + args + " 2>&1 >/dev/null", &err);
    EXPECT_GT(code, 0) << args;
    EXPECT_LT(code, 128) << args;
    EXPECT_FALSE(err.empty()) << args;
  }
  std::string err;
  run_command(dspark() + " generate -m " + dir + "/bad.gguf -p hi 2>&1 >/dev/null", &err);
  EXPECT_THAT(err, HasSubstr("bad.gguf"));
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

}  // namespace
}  // namespace dspark
