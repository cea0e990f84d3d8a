// The serve and bench serve commands as users run them: clear errors for contradictory
// options and ports that cannot be had, and a short serving benchmark whose JSON carries
// every field and whose counts add up.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace dspark {
namespace {

using test::run_command;
using ::testing::HasSubstr;

std::string dspark() { return DSPARK_BINARY; }
std::string stories() { return test::shared_model("stories260k/stories260K_q80.bin"); }

TEST(CliServe, RefusesContradictionsAndTakenPorts) {
  std::string out;
  int rc = run_command(dspark() + " serve -m " + stories() + " --spec none -d " + stories() + " 2>&1", &out);
  EXPECT_GT(rc, 0);
  EXPECT_LT(rc, 128);
  EXPECT_THAT(out, HasSubstr("contradict"));

  // A port another socket holds: a clear error, not a hang.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  rc = run_command(dspark() + " serve -m " + stories() + " --port " + std::to_string(port) + " 2>&1", &out);
  close(fd);
  EXPECT_GT(rc, 0);
  EXPECT_LT(rc, 128);
  EXPECT_THAT(out, HasSubstr("cannot listen on 127.0.0.1:" + std::to_string(port)));
}

TEST(CliServe, BenchServeReportsEverySchedulerAndLevel) {
  std::string out;
  const std::string json = test::temp_dir() + "/serve.json";
  ASSERT_EQ(
      run_command(dspark() + " bench serve -m " + stories() +
                      " --spec ngram --schedulers none,prefix --concurrency 1,3 --seconds 0.5 -n 8 --json " +
                      json + " 2>&1",
                  &out),
      0)
      << out;
  EXPECT_THAT(out, HasSubstr("agg tok/s"));
  const nlohmann::json j = nlohmann::json::parse(test::read_file(json));
  ASSERT_EQ(j["results"].size(), 4u);
  for (const auto& r : j["results"]) {
    EXPECT_EQ(r["failed"], 0);
    EXPECT_GT(r["requests"].get<int>(), 0);
    EXPECT_EQ(r["tokens"].get<long>(), 8L * r["requests"].get<long>()) << "every request ran to its 8 tokens";
    EXPECT_GT(r["aggregate_tokens_per_second"].get<double>(), 0);
    EXPECT_GT(r["per_user_tokens_per_second"].get<double>(), 0);
    EXPECT_LE(r["ttft_p50"].get<double>(), r["latency_p50"].get<double>());
    if (r["scheduler"] == "none") {
      EXPECT_EQ(r["tau"], 0.0);
    }
  }
  EXPECT_EQ(j["results"][0]["scheduler"], "none");
  EXPECT_EQ(j["results"][1]["concurrency"], 3);
  EXPECT_EQ(j["results"][2]["scheduler"], "prefix");

  EXPECT_NE(run_command(dspark() + " bench serve -m " + stories() + " --schedulers sps 2>&1", &out), 0);
  EXPECT_THAT(out, HasSubstr("unknown scheduler 'sps'"));
}

}  // namespace
}  // namespace dspark
