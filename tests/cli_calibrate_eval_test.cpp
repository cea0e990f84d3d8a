// `dspark calibrate` and `dspark eval` on the real TinyStories-656K target with random DSpark
// drafters: calibrate writes a calibration.json that the decoder reads (fits at 0 and 1) and
// generation with it keeps the output; eval reports tau, acceptance and calibration quality
// per position as a table and JSON, and PNG plots with gnuplot; bad input fails with one
// clear line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "spec/calibration.h"
#include "test_util.h"

namespace dspark {
namespace {

using test::run_command;
using ::testing::HasSubstr;

std::string dspark() { return "XDG_CACHE_HOME=" + test::temp_dir() + " " + std::string(DSPARK_BINARY); }
std::string tinystories() { return test::shared_model("tinystories-656k"); }

// A random DSpark drafter with a confidence head (block 4), written by `dspark synth`.
std::string synth_drafter(int seed) {
  const std::string out = test::temp_dir() + "/drafter";
  std::string log;
  const std::string cmd = dspark() + " synth --drafter-for " + tinystories() + " -o " + out +
                          " --block 4 --draft-layers 1 --taps 1 --rank 16 --type F32 --seed " +
                          std::to_string(seed) + " 2>&1";
  EXPECT_EQ(run_command(cmd, &log), 0) << cmd << "\n" << log;
  return out;
}

// Three prompts, with a comment, a blank line and an escaped newline.
std::string prompt_file() {
  const std::string path = test::temp_dir() + "/prompts.txt";
  test::write_file(path, "# test prompts\nOnce upon a time\n\nThe dog and the cat\nLily had a ball.\\nShe\n");
  return path;
}

struct Result {
  int rc = 0;
  std::string out;  // stdout, or stdout and stderr together
};

// `env`: variable assignments for the dspark process (e.g. "PATH=/nonexistent").
Result run(const std::string& args, bool with_stderr = true, const std::string& env = "") {
  Result r;
  r.rc = run_command(env + " " + dspark() + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null"), &r.out);
  return r;
}

bool have_gnuplot() { return std::system("gnuplot --version >/dev/null 2>&1") == 0; }

TEST(CliCalibrate, WritesFitsAtZeroAndOneThatGenerateUses) {
  const std::string drafter = synth_drafter(1), prompts = prompt_file();
  const std::string args =
      "calibrate -m " + tinystories() + " -d " + drafter + " --prompts " + prompts + " -n 16 --seed 3";
  const Result r = run(args);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("ECE raw"));
  EXPECT_THAT(r.out, HasSubstr("wrote " + drafter + "/calibration.json"));

  const std::optional<Calibration> c = Calibration::load_from_dir(drafter);
  ASSERT_TRUE(c.has_value());
  ASSERT_EQ(c->fits.size(), 2u);
  EXPECT_EQ(c->fits[0].sampling_temperature, 0.0f);
  EXPECT_EQ(c->fits[1].sampling_temperature, 1.0f);
  for (const CalibrationFit& f : c->fits) {
    ASSERT_EQ(f.temperatures.size(), 4u);
    for (float t : f.temperatures) EXPECT_GT(t, 0.0f);
  }
  const auto j = nlohmann::json::parse(test::read_file(drafter + "/calibration.json"));
  for (const auto& f : j["fits"]) {
    EXPECT_GT(f["rounds"].get<int>(), 0);
    for (const char* key : {"ece_before", "ece_after", "auroc", "brier_before", "brier_after", "samples"}) {
      ASSERT_TRUE(f.contains(key)) << key;
      EXPECT_EQ(f[key].size(), 4u) << key;
    }
    for (size_t k = 0; k < 4; ++k) {
      EXPECT_GE(f["ece_before"][k].get<double>(), 0.0);
      EXPECT_LE(f["ece_after"][k].get<double>(), f["ece_before"][k].get<double>() + 1e-9)
          << "the fit minimises this ECE, and T = 1 (the raw confidences) is on its grid";
    }
  }

  // --json prints the same document; the same seed gives the same fit.
  const Result again = run(args + " --json", false);
  ASSERT_EQ(again.rc, 0);
  EXPECT_EQ(nlohmann::json::parse(again.out), j);

  // Generation with the calibration keeps the target's greedy output.
  const std::string gen = "generate -m " + tinystories() + " -p 'Once upon a time' -n 24 --temp 0 --json";
  const Result plain = run(gen, false),
               spec = run(gen + " -d " + drafter + " --scheduler threshold --conf-threshold 0.1", false);
  ASSERT_EQ(plain.rc, 0);
  ASSERT_EQ(spec.rc, 0) << spec.out;
  EXPECT_EQ(nlohmann::json::parse(spec.out)["tokens"], nlohmann::json::parse(plain.out)["tokens"]);
  const Result with_log = run(gen + " -d " + drafter);
  EXPECT_THAT(with_log.out, HasSubstr("calibrated"));
}

// A calibration.json written by hand, so eval's calibrated columns have something to use.
void write_calibration(const std::string& drafter) {
  test::write_file(drafter + "/calibration.json",
                   R"({"format": "dspark-calibration", "version": 1, "fits": [
                       {"sampling_temperature": 0, "temperatures": [4, 3, 2, 2]},
                       {"sampling_temperature": 1, "temperatures": [2, 2, 2, 2]}]})");
}

TEST(CliEval, ReportsTauAcceptanceAndCalibrationPerPosition) {
  const std::string calibrated = synth_drafter(2), raw = synth_drafter(5), prompts = prompt_file();
  write_calibration(calibrated);
  const std::string json = test::temp_dir() + "/eval.json";
  const Result r = run("eval -m " + tinystories() + " -d " + calibrated + " -d " + raw +
                           " -d ngram --prompts " + prompts + " -n 16 --temp 0 --temp 1 --json " + json,
                       false);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("accept % per position"));
  EXPECT_THAT(r.out, HasSubstr("ECE raw"));
  EXPECT_THAT(r.out, HasSubstr("no confidence head"));

  const auto j = nlohmann::json::parse(test::read_file(json));
  EXPECT_EQ(j["prompts"], 3);
  EXPECT_EQ(j["temperatures"], nlohmann::json::parse("[0.0, 1.0]"));
  ASSERT_EQ(j["results"].size(), 6u);  // 3 drafters x 2 temperatures
  for (const auto& res : j["results"]) {
    const std::string what = res["drafter"].get<std::string>() + " at " + res["temperature"].dump();
    EXPECT_GE(res["tau"].get<double>(), 1.0) << what;
    EXPECT_GT(res["rounds"].get<int>(), 0) << what;
    EXPECT_GT(res["verify_rate"].get<double>(), 0.0) << what;
    EXPECT_LE(res["verify_rate"].get<double>(), 1.0) << what;
    EXPECT_FALSE(res["accept_per_pos"].empty()) << what;
    EXPECT_FALSE(res["survival_per_pos"].empty()) << what;
    const auto& cal = res["calibration"];
    if (res["drafter"] == "ngram") {
      EXPECT_TRUE(cal.is_null()) << what;
      continue;
    }
    EXPECT_EQ(res["kind"], "dspark");
    EXPECT_EQ(res["accept_per_pos"].size(), 4u) << what;
    for (const char* key : {"samples", "survival", "ece_raw", "auroc_raw", "brier_raw", "reliability_raw"})
      EXPECT_EQ(cal[key].size(), 4u) << what << ": " << key;
    EXPECT_EQ(cal["reliability_raw"][0].size(), 20u);
    if (res["drafter"] == calibrated) {
      ASSERT_FALSE(cal["calibration_fit"].is_null()) << what;
      EXPECT_EQ(cal["calibration_fit"]["sampling_temperature"], res["temperature"]);
      for (const char* key : {"ece_calibrated", "auroc_calibrated", "brier_calibrated"})
        EXPECT_EQ(cal[key].size(), 4u) << what << ": " << key;
    } else {
      EXPECT_TRUE(cal["calibration_fit"].is_null()) << what;
      EXPECT_FALSE(cal.contains("ece_calibrated")) << what;
    }
  }

  // --json - : exactly one JSON object on stdout, the tables on stderr.
  const Result to_stdout =
      run("eval -m " + tinystories() + " -d ngram --prompts " + prompts + " -n 8 --temp 0 --json -", false);
  ASSERT_EQ(to_stdout.rc, 0);
  EXPECT_EQ(nlohmann::json::parse(to_stdout.out)["results"].size(), 1u);
}

TEST(CliEval, PlotsArePngFiles) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot is not installed";
  const std::string drafter = synth_drafter(3), prompts = prompt_file();
  write_calibration(drafter);
  const std::string dir = test::temp_dir() + "/plots";
  const Result r = run("eval -m " + tinystories() + " -d " + drafter + " -d ngram --prompts " + prompts +
                       " -n 16 --temp 0,1 --plots " + dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  std::vector<std::string> pngs;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".png") {
      pngs.push_back(e.path().filename().string());
      EXPECT_GT(e.file_size(), 1000u) << e.path();
      EXPECT_EQ(test::read_file(e.path().string()).substr(0, 8), "\x89PNG\r\n\x1a\n") << e.path();
    }
  std::sort(pngs.begin(), pngs.end());
  EXPECT_EQ(pngs,
            (std::vector<std::string>{"acceptance_t0.png", "acceptance_t1.png",
                                      "reliability_d1_drafter_t0.png", "reliability_d1_drafter_t1.png"}));
}

TEST(CliCalibrateEval, BadInputFailsWithOneClearLine) {
  const std::string drafter = synth_drafter(4), prompts = prompt_file();
  const std::string dir = test::temp_dir();
  test::write_file(dir + "/empty.txt", "# nothing\n\n");
  const auto expect_error = [](const std::string& args, const std::string& message,
                               const std::string& env = "") {
    const Result r = run(args, true, env);
    EXPECT_GT(r.rc, 0) << args;
    EXPECT_LT(r.rc, 128) << args;
    EXPECT_THAT(r.out, HasSubstr(message)) << args;
  };
  const std::string calibrate = "calibrate -m " + tinystories() + " -n 8 ";
  expect_error(calibrate + "-d " + drafter + " --prompts " + dir + "/missing.txt",
               "missing.txt: no such prompt file");
  expect_error(calibrate + "-d " + drafter + " --prompts " + dir + "/empty.txt", "empty.txt: no prompts");
  expect_error(calibrate + "-d " + dir + " --prompts " + prompts, "not a DSpark drafter folder");
  expect_error(calibrate + "-d " + drafter + " --prompts " + prompts + " --temps 0,hot",
               "'hot' is not a temperature");
  expect_error(calibrate + "-d " + drafter + " --prompts " + prompts + " --temps -1", "not a temperature");
  expect_error(calibrate + "--prompts " + prompts, "--draft is required");

  // A DSpark drafter with a Markov head and no confidence head.
  const std::string no_conf = test::temp_dir() + "/drafter";
  std::string log;
  ASSERT_EQ(run_command("/usr/bin/python3 " + std::string(DSPARK_REFERENCE_DIR) +
                            "/make_random_drafter.py --target " + tinystories() + " --out " + no_conf +
                            " --layers 1 --block-size 4 --confidence 0 2>&1",
                        &log),
            0)
      << log;
  expect_error(calibrate + "-d " + no_conf + " --prompts " + prompts, "no confidence head");
  EXPECT_FALSE(std::filesystem::exists(no_conf + "/calibration.json"));

  const std::string eval = "eval -m " + tinystories() + " -n 8 ";
  expect_error(eval + "-d " + drafter + " --prompts " + dir + "/missing.txt", "no such prompt file");
  expect_error(eval + "--prompts " + prompts, "--draft is required");
  expect_error(eval + "-d " + drafter + " --prompts " + prompts + " --temp x", "'x' is not a temperature");
  // Without gnuplot on PATH, --plots is refused before any work; without --plots it is not needed.
  expect_error(eval + "-d ngram --prompts " + prompts + " --plots " + dir + "/plots", "--plots needs gnuplot",
               "PATH=/nonexistent");
  const Result no_plots = run(eval + "-d ngram --prompts " + prompts, true, "PATH=/nonexistent");
  EXPECT_EQ(no_plots.rc, 0) << no_plots.out;
}

}  // namespace
}  // namespace dspark
