// Schedulers, calibration and statistics (src/spec): the prefix scheduler's choices on
// hand-computed cases, the threshold rule, the draft gate, calibration.json and the
// per-position statistics of the JSON contract.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "core/error.h"
#include "spec/calibration.h"
#include "spec/scheduler.h"
#include "spec/stats.h"

namespace dspark {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Threshold, StopsAtTheFirstPositionBelow) {
  const float c[] = {0.9f, 0.7f, 0.3f, 0.95f};
  EXPECT_EQ(threshold_length(c, 4, 0.5f), 2);  // position 3 is not reached: per-position, in order
  EXPECT_EQ(threshold_length(c, 4, 0.0f), 4);
  EXPECT_EQ(threshold_length(c, 4, 0.95f), 0);
  EXPECT_EQ(threshold_length(c, 0, 0.5f), 0);
}

TEST(PrefixScheduler, StopsAtTheFirstDecrease) {
  const float a[] = {0.9f, 0.5f, 0.1f};
  // t(T) = T: 1/1 = 1 beats 1.9/2, so nothing is verified.
  EXPECT_EQ(prefix_length(a, 3, 0.0, [](int T) { return double(T); }), 0);
  // t(T) = 1 + 0.1 (T - 1): 1, 1.9/1.1 = 1.73, 2.4/1.2 = 2.0, 2.5/1.3 = 1.92 -> 2.
  EXPECT_EQ(prefix_length(a, 3, 0.0, [](int T) { return 1 + 0.1 * (T - 1); }), 2);
  // A flat curve admits every position with positive survival.
  EXPECT_EQ(prefix_length(a, 3, 0.0, [](int) { return 1.0; }), 3);
  // Drafting cost makes longer prefixes pay: with t_draft = 10 and t(T) = T,
  // 1/11 = 0.091, 1.9/12 = 0.158, 2.4/13 = 0.185, 2.5/14 = 0.179 -> 2.
  EXPECT_EQ(prefix_length(a, 3, 10.0, [](int T) { return double(T); }), 2);
}

TEST(PrefixScheduler, EarlyStopEvenIfALaterPositionWouldPay) {
  // 0.05 does not pay at T = 2, so the walk stops although a_2..a_3 would not be reached anyway;
  // survival products never increase, so this is also the optimum of the walk.
  const float a[] = {0.05f, 0.05f, 0.05f};
  EXPECT_EQ(prefix_length(a, 3, 0.0, [](int T) { return 1 + 0.2 * (T - 1); }), 0);
}

TEST(PrefixScheduler, PoolsRequestsBySurvival) {
  // Sorted: (0.95, r1 p0), (0.9, r0 p0), (0.8, r0 p1), (0.1, r1 p1); t(T) = 1 + 0.25 (T - 2):
  // 2/1 = 2, 2.95/1.25 = 2.36, 3.85/1.5 = 2.57, 4.65/1.75 = 2.66, 4.75/2 = 2.375 (stop).
  const auto cost = [](int T) { return 1 + 0.25 * (T - 2); };
  EXPECT_THAT(schedule_prefixes({{0.9f, 0.8f}, {0.95f, 0.1f}}, 0.0, cost), ElementsAre(2, 1));
  // Zero survival is never admitted.
  EXPECT_THAT(schedule_prefixes({{0.0f}, {0.5f}}, 0.0, [](int) { return 1.0; }), ElementsAre(0, 1));
}

TEST(PrefixScheduler, TiesGoByPositionThenRequest) {
  // Saturated sigmoids give exact ties. Budget for exactly 3 extra tokens: t(T) flat up to
  // T = 5 (2 anchors + 3), then steep.
  const auto cost = [](int T) { return T <= 5 ? 1.0 : 100.0; };
  EXPECT_THAT(schedule_prefixes({{1.0f, 1.0f, 1.0f}, {1.0f, 1.0f, 1.0f}}, 0.0, cost), ElementsAre(2, 1));
}

TEST(DraftGate, SkipsWhileSpeculationIsSlowerAndProbesAgain) {
  const double plain = 0.010;  // a plain step: 10 ms, 100 tokens/s
  DraftGate gate(4, 16);
  EXPECT_TRUE(gate.should_draft(plain));  // no data yet
  gate.record_round(1, 0.015, plain);     // 67 tokens/s
  int drafted = 0;
  for (int i = 0; i < 10; ++i) drafted += gate.should_draft(plain);
  EXPECT_EQ(drafted, 2);               // only the probes after every 4 skips
  gate.record_round(4, 0.012, plain);  // fast rounds: the average climbs above the plain rate
  gate.record_round(4, 0.012, plain);
  gate.record_round(4, 0.012, plain);
  EXPECT_GT(gate.speculative_rate(), 1 / plain);
  EXPECT_TRUE(gate.should_draft(plain));
  EXPECT_TRUE(gate.should_draft(plain));
  // Plain steps turn out much faster than thought (e.g. the machine got quieter).
  EXPECT_FALSE(gate.should_draft(0.001));
}

TEST(DraftGate, ProbesThatDoNotPayBackOff) {
  const double plain = 0.010;
  DraftGate gate(4, 16);
  ASSERT_TRUE(gate.should_draft(plain));
  gate.record_round(1, 0.015, plain);
  std::vector<int> gaps;  // skipped rounds before each probe
  for (int probe = 0; probe < 4; ++probe) {
    int skipped = 0;
    while (!gate.should_draft(plain)) ++skipped;
    gaps.push_back(skipped);
    gate.record_round(1, 0.015, plain);  // the probe did not pay
  }
  EXPECT_THAT(gaps, ElementsAre(4, 8, 16, 16));
  gate.record_round(8, 0.012, plain);  // a round that pays: the interval starts over
  gate.record_round(8, 0.012, plain);
  EXPECT_TRUE(gate.should_draft(plain));
}

TEST(Scheduler, Names) {
  EXPECT_EQ(parse_scheduler("prefix"), SchedulerKind::Prefix);
  EXPECT_STREQ(scheduler_name(SchedulerKind::Threshold), "threshold");
  EXPECT_THAT(error_of([] { parse_scheduler("greedy"); }), HasSubstr("unknown scheduler 'greedy'"));
}

TEST(Calibration, ParsesAndPicksTheNearestFit) {
  const Calibration c = Calibration::parse(
      R"({"format": "dspark-calibration", "version": 1, "ece": 0.02,
          "fits": [{"sampling_temperature": 0.0, "temperatures": [2.0, 4.0]},
                   {"sampling_temperature": 1.0, "temperatures": [0.5]}]})",
      "cal.json");
  ASSERT_EQ(c.fits.size(), 2u);
  EXPECT_EQ(c.nearest(0.0f)->sampling_temperature, 0.0f);
  EXPECT_EQ(c.nearest(0.8f)->sampling_temperature, 1.0f);
  EXPECT_EQ(c.nearest(0.5f)->sampling_temperature, 0.0f);  // ties go to the lower one
  EXPECT_EQ(c.nearest(3.0f)->sampling_temperature, 1.0f);
  const CalibrationFit* greedy = c.nearest(0.0f);
  EXPECT_FLOAT_EQ(calibrated_confidence(2.0f, greedy, 0), 1 / (1 + std::exp(-1.0f)));
  EXPECT_FLOAT_EQ(calibrated_confidence(2.0f, greedy, 1), 1 / (1 + std::exp(-0.5f)));
  EXPECT_FLOAT_EQ(calibrated_confidence(2.0f, greedy, 5), 1 / (1 + std::exp(-0.5f)));  // last T reused
  EXPECT_FLOAT_EQ(calibrated_confidence(2.0f, nullptr, 0), 1 / (1 + std::exp(-2.0f)));
  const Calibration back = Calibration::parse(c.to_json(), "round trip");
  EXPECT_EQ(back.fits[0].temperatures, c.fits[0].temperatures);
}

TEST(Calibration, BadFilesNameTheProblem) {
  const auto err = [](const std::string& text) {
    return error_of([&] { Calibration::parse(text, "c.json"); });
  };
  EXPECT_THAT(err("{"), HasSubstr("c.json: not valid JSON"));
  EXPECT_THAT(err(R"({"version": 1, "fits": []})"), HasSubstr("\"format\""));
  EXPECT_THAT(err(R"({"format": "dspark-calibration", "version": 2, "fits": []})"), HasSubstr("version"));
  EXPECT_THAT(err(R"({"format": "dspark-calibration", "version": 1, "fits": []})"), HasSubstr("fits"));
  EXPECT_THAT(err(R"({"format": "dspark-calibration", "version": 1,
                      "fits": [{"sampling_temperature": 1, "temperatures": [1, 0]}]})"),
              HasSubstr("fits[0].temperatures must hold positive finite numbers"));
  EXPECT_THAT(err(R"({"format": "dspark-calibration", "version": 1,
                      "fits": [{"sampling_temperature": -1, "temperatures": [1]}]})"),
              HasSubstr("fits[0].sampling_temperature"));
}

TEST(SpecStats, CountsPerPosition) {
  SpecStats s;
  s.add_round(4, 4, 4, 5);  // all accepted, bonus
  s.add_round(4, 3, 1, 2);  // 1 accepted of 3 verified
  s.add_round(4, 0, 0, 1);  // nothing verified
  s.add_round(4, 2, 2, 2);  // stopped at a stop token inside the drafts: verified counts up to it
  EXPECT_EQ(s.rounds, 4);
  EXPECT_DOUBLE_EQ(s.tau(), 10.0 / 4);
  EXPECT_EQ(s.drafted, 16);
  EXPECT_EQ(s.verified, 9);
  EXPECT_EQ(s.accepted, 7);
  // reached: pos0 in rounds 1,2,4; pos1 in 1,2,4; pos2 in 1; pos3 in 1.
  EXPECT_THAT(s.accept_per_pos(), ElementsAre(1.0, 2.0 / 3, 1.0, 1.0));
  EXPECT_THAT(s.survival_per_pos(), ElementsAre(0.75, 0.5, 0.25, 0.25));
  const auto j = s.to_json();
  for (const char* key : {"rounds", "tau", "drafted_tokens", "verified_tokens", "accepted_tokens",
                          "accept_per_pos", "survival_per_pos", "draft_seconds", "verify_seconds"})
    EXPECT_TRUE(j.contains(key)) << key;
}

}  // namespace
}  // namespace dspark
