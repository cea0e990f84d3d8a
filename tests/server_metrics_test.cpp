// Metrics: exact values after a known sequence of calls, and the exposition accepted by
// Prometheus' own linter (promtool check metrics) without a single warning.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "server/metrics.h"
#include "test_util.h"

namespace dspark {
namespace {

// The value of the sample written exactly as `series` (name with its labels), or "" if absent.
std::string value_of(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ')
      return line.substr(series.size() + 1);
  }
  return "";
}

Metrics& busy_metrics() {
  static Metrics m;
  static bool filled = false;
  if (filled) return m;
  filled = true;
  m.http_request("/v1/chat/completions", 200);
  m.http_request("/v1/chat/completions", 200);
  m.http_request("/v1/completions", 400);
  m.http_request("/weird\"path\\", 404);  // escaped in the label value
  m.request_finished("stop", 10, 5, 0.02, 0.3);
  m.request_finished("length", 7, 16, 0.5, 2.0);
  m.request_finished("cancelled", 3, 0, -1, 0.01);  // no token: no time to first token
  m.step(2, 9, true, 0.004);
  m.step(1, 1, false, 0.002);   // skipped: a request but no drafts
  m.step(0, 0, false, 0.0001);  // idle: not a skipped speculation
  m.spec_round(7, 4, 2);
  m.spec_round(7, 3, 3);
  m.spec_round(5, 5, 0);
  m.set_load(2, 3, 8, 0.25);
  return m;
}

TEST(Metrics, CountersAfterAKnownSequence) {
  std::string t = busy_metrics().render();
  EXPECT_EQ(value_of(t, R"(dspark_http_requests_total{endpoint="/v1/chat/completions",status="200"})"), "2");
  EXPECT_EQ(value_of(t, R"(dspark_http_requests_total{endpoint="/v1/completions",status="400"})"), "1");
  EXPECT_EQ(value_of(t, R"(dspark_http_requests_total{endpoint="/weird\"path\\",status="404"})"), "1");
  EXPECT_EQ(value_of(t, R"(dspark_requests_finished_total{reason="stop"})"), "1");
  EXPECT_EQ(value_of(t, R"(dspark_requests_finished_total{reason="length"})"), "1");
  EXPECT_EQ(value_of(t, R"(dspark_requests_finished_total{reason="cancelled"})"), "1");
  EXPECT_EQ(value_of(t, "dspark_prompt_tokens_total"), "20");
  EXPECT_EQ(value_of(t, "dspark_generation_tokens_total"), "21");

  EXPECT_EQ(value_of(t, "dspark_time_to_first_token_seconds_count"), "2");
  EXPECT_EQ(value_of(t, "dspark_time_to_first_token_seconds_sum"), "0.52");
  EXPECT_EQ(value_of(t, R"(dspark_time_to_first_token_seconds_bucket{le="0.01"})"), "0");
  EXPECT_EQ(value_of(t, R"(dspark_time_to_first_token_seconds_bucket{le="0.02"})"), "1");  // le is inclusive
  EXPECT_EQ(value_of(t, R"(dspark_time_to_first_token_seconds_bucket{le="0.5"})"), "2");
  EXPECT_EQ(value_of(t, R"(dspark_time_to_first_token_seconds_bucket{le="+Inf"})"), "2");
  EXPECT_EQ(value_of(t, "dspark_request_duration_seconds_count"), "3");

  EXPECT_EQ(value_of(t, "dspark_steps_total"), "3");
  EXPECT_EQ(value_of(t, "dspark_spec_decode_skipped_steps_total"), "1");
  EXPECT_EQ(value_of(t, "dspark_step_requests_count"), "3");
  EXPECT_EQ(value_of(t, "dspark_step_requests_sum"), "3");
  EXPECT_EQ(value_of(t, R"(dspark_step_requests_bucket{le="1"})"), "2");
  EXPECT_EQ(value_of(t, R"(dspark_step_tokens_bucket{le="8"})"), "2");
  EXPECT_EQ(value_of(t, R"(dspark_step_tokens_bucket{le="16"})"), "3");
  EXPECT_EQ(value_of(t, "dspark_step_duration_seconds_count"), "3");

  EXPECT_EQ(value_of(t, "dspark_spec_decode_num_drafts_total"), "3");
  EXPECT_EQ(value_of(t, "dspark_spec_decode_num_draft_tokens_total"), "12");
  EXPECT_EQ(value_of(t, "dspark_spec_decode_num_proposed_tokens_total"), "19");
  EXPECT_EQ(value_of(t, "dspark_spec_decode_num_accepted_tokens_total"), "5");
  EXPECT_EQ(value_of(t, R"(dspark_spec_decode_num_accepted_tokens_per_pos_total{position="0"})"), "2");
  EXPECT_EQ(value_of(t, R"(dspark_spec_decode_num_accepted_tokens_per_pos_total{position="1"})"), "2");
  EXPECT_EQ(value_of(t, R"(dspark_spec_decode_num_accepted_tokens_per_pos_total{position="2"})"), "1");
  // Positions verified but never accepted still show, at zero; none beyond the longest verify.
  EXPECT_EQ(value_of(t, R"(dspark_spec_decode_num_accepted_tokens_per_pos_total{position="3"})"), "0");
  EXPECT_EQ(value_of(t, R"(dspark_spec_decode_num_accepted_tokens_per_pos_total{position="4"})"), "0");
  EXPECT_EQ(value_of(t, R"(dspark_spec_decode_num_accepted_tokens_per_pos_total{position="5"})"), "");
  EXPECT_EQ(value_of(t, "dspark_spec_decode_mean_verify_length"), "4");

  EXPECT_EQ(value_of(t, "dspark_requests_running"), "2");
  EXPECT_EQ(value_of(t, "dspark_requests_waiting"), "3");
  EXPECT_EQ(value_of(t, "dspark_slots"), "8");
  EXPECT_EQ(value_of(t, "dspark_kv_cache_usage_ratio"), "0.25");
}

TEST(Metrics, FreshCollectorShowsZeros) {
  std::string t = Metrics().render();
  EXPECT_EQ(value_of(t, R"(dspark_requests_finished_total{reason="stop"})"), "0");
  EXPECT_EQ(value_of(t, "dspark_steps_total"), "0");
  EXPECT_EQ(value_of(t, "dspark_spec_decode_mean_verify_length"), "0");
  EXPECT_EQ(value_of(t, R"(dspark_step_duration_seconds_bucket{le="+Inf"})"), "0");
  EXPECT_NE(t.find("# TYPE dspark_http_requests_total counter\n"), std::string::npos);
}

TEST(Metrics, EveryFamilyOnceWithHelpAndType) {
  std::string t = busy_metrics().render();
  std::istringstream in(t);
  std::string line;
  std::vector<std::string> types;
  int helps = 0;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) types.push_back(line.substr(7, line.find(' ', 7) - 7));
    if (line.rfind("# HELP ", 0) == 0) ++helps;
  }
  EXPECT_EQ(int(types.size()), helps);
  std::vector<std::string> sorted = types;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << "a family appears twice";
  EXPECT_EQ(types.size(), 21u);
}

TEST(Metrics, CountsFromManyThreads) {
  Metrics m;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&m] {
      for (int k = 0; k < 1000; ++k) {
        m.http_request("/v1/completions", 200);
        m.spec_round(3, 2, 1);
        if (k % 100 == 0) m.render();
      }
    });
  }
  for (auto& t : threads) t.join();
  std::string t = m.render();
  EXPECT_EQ(value_of(t, R"(dspark_http_requests_total{endpoint="/v1/completions",status="200"})"), "4000");
  EXPECT_EQ(value_of(t, "dspark_spec_decode_num_accepted_tokens_total"), "4000");
}

TEST(Metrics, PromtoolAcceptsTheExpositionWithoutWarnings) {
  const char* promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) GTEST_SKIP() << promtool << " is not installed";
  for (const std::string& text : {Metrics().render(), busy_metrics().render()}) {
    std::string dir = test::temp_dir();
    test::write_file(dir + "/metrics.txt", text);
    std::string out;
    int status =
        test::run_command(std::string(promtool) + " check metrics < " + dir + "/metrics.txt 2>&1", &out);
    EXPECT_EQ(status, 0) << out;
    EXPECT_EQ(out, "") << out;
    std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace dspark
