// The default model's training commands (scripts/train_default_model.sh), shortened to a few
// steps on a small corpus, repeat themselves: the same seed gives the same tokenizer file,
// the same loss curves and the same weights.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"

namespace dspark {
namespace {

using test::run_command;

std::string dspark() { return "XDG_CACHE_HOME=" + test::temp_dir() + " " + std::string(DSPARK_BINARY); }

// Text written for this project: the prompt files, repeated.
std::string corpus() {
  const std::string data = std::string(DSPARK_REFERENCE_DIR) + "/../../data/prompts/";
  std::string text;
  for (int i = 0; i < 4; ++i)
    for (const char* f : {"stories-train.txt", "kjv-heldout.txt", "kjv-calibrate.txt"})
      text += test::read_file(data + f);
  const std::string path = test::temp_dir() + "/corpus.txt";
  test::write_file(path, text);
  return path;
}

// (step, loss) of every "train" progress line of a run's stderr.
std::vector<std::pair<int, double>> loss_curve(const std::string& log) {
  std::vector<std::pair<int, double>> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] != '{') continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j.value("stage", "") == "train") out.emplace_back(j["step"].get<int>(), j["loss"].get<double>());
  }
  return out;
}

std::string run_ok(const std::string& cmd) {
  std::string log;
  EXPECT_EQ(run_command(cmd + " 2>&1", &log), 0) << cmd << "\n" << log;
  return log;
}

TEST(CliTrainReproducible, DocumentedCommandsRepeatTheirLossCurves) {
  const std::string text = corpus();
  const std::string a = test::temp_dir(), b = test::temp_dir();

  // Tokenizer: the same corpus gives the same file.
  for (const std::string& dir : {a, b})
    run_ok(dspark() + " train-tokenizer --corpus " + text + " --vocab-size 512 -o " + dir + "/tok.gguf");
  EXPECT_EQ(test::read_file(a + "/tok.gguf"), test::read_file(b + "/tok.gguf"));

  // Target: the documented architecture and seed, 3 short steps.
  const std::string lm_flags =
      " --layers 6 --dim 384 --heads 8 --kv-heads 4 --ffn 1024 --context 512 --lr 2e-3 --seed 1234"
      " --steps 3 --batch 2 --seq-len 32 --log-every 1 --eval-every 3 -t 2";
  std::vector<std::pair<int, double>> lm_curve[2];
  for (int i = 0; i < 2; ++i) {
    const std::string dir = i == 0 ? a : b;
    lm_curve[i] = loss_curve(run_ok(dspark() + " train-lm -o " + dir + "/target --corpus " + text +
                                    " --heldout " + text + " --tokenizer " + dir + "/tok.gguf" + lm_flags));
  }
  ASSERT_EQ(lm_curve[0].size(), 3u);
  EXPECT_EQ(lm_curve[0], lm_curve[1]);
  EXPECT_EQ(test::read_file(a + "/target/model.gguf"), test::read_file(b + "/target/model.gguf"));

  // Drafter: the documented options and seed on the first target, 3 short steps.
  const std::string draft_flags =
      " --seq-len 32 --kind dspark --layers 1 --block 7 --markov-rank 32 --lr 1e-2 --seed 42"
      " --steps 3 --batch 2 --log-every 1 -t 2";
  std::vector<std::pair<int, double>> draft_curve[2];
  for (int i = 0; i < 2; ++i) {
    const std::string dir = i == 0 ? a : b;
    draft_curve[i] = loss_curve(run_ok(dspark() + " train-draft -m " + a + "/target/model.gguf -o " + dir +
                                       "/dspark --corpus " + text + draft_flags));
  }
  ASSERT_EQ(draft_curve[0].size(), 3u);
  EXPECT_EQ(draft_curve[0], draft_curve[1]);
}

}  // namespace
}  // namespace dspark
