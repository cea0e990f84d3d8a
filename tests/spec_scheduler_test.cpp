// Schedulers, calibration and statistics (src/spec): the prefix scheduler's choices on
// hand-computed cases (alone and beside prompt tokens), the async top-K admission, the
// threshold rule, the draft gates (per request and per step), survival from confidences or
// from measured acceptance, calibration.json and the per-position statistics of the JSON
// contract.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "spec/calibration.h"
#include "spec/scheduler.h"
#include "spec/stats.h"
#include "spec/survival.h"

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

TEST(PrefixScheduler, PromptTokensInTheStepLeaveLessRoomForDrafts) {
  // A curve with a knee: flat (memory-bound) up to 8 tokens, then 2 more per token.
  const auto knee = [](int T) { return T <= 8 ? 1.0 : 1.0 + 2.0 * (T - 8); };
  // Sorted: (0.9, r0 p0), (0.85, r1 p0), (0.8, r0 p1), (0.7, r0 p2), (0.6, r1 p1), (0.5, r1 p2).
  const std::vector<std::vector<float>> a = {{0.9f, 0.8f, 0.7f}, {0.85f, 0.6f, 0.5f}};
  // Alone: 2 anchors + 6 drafts = 8 tokens, all on the flat part; tau* only grows -> all.
  EXPECT_THAT(schedule_prefixes(a, 0.0, knee), ElementsAre(3, 3));
  EXPECT_THAT(schedule_prefixes(a, 0.0, knee, 0), ElementsAre(3, 3));
  // With 4 prompt tokens the step starts at T = 6: 2/1 = 2, 2.9/1 = 2.9 (T = 7), 3.75/1 = 3.75
  // (T = 8), then 4.55/t(9) = 4.55/3 = 1.52: stop.
  EXPECT_THAT(schedule_prefixes(a, 0.0, knee, 4), ElementsAre(1, 1));
  // With 10 the step is past the knee already (T = 12, t = 9): 2/9 = 0.222, 2.9/11 = 0.264,
  // 3.75/13 = 0.288, 4.55/15 = 0.303, 5.25/17 = 0.309, 5.85/19 = 0.308: stop.
  EXPECT_THAT(schedule_prefixes(a, 0.0, knee, 10), ElementsAre(3, 1));
  // On a flat curve prompt tokens change nothing.
  EXPECT_THAT(schedule_prefixes(
                  a, 0.0, [](int) { return 1.0; }, 100),
              ElementsAre(3, 3));
}

TEST(TopK, CapacityZeroAdmitsNothingAndAnyLargerCapacityEveryPositiveSurvival) {
  const std::vector<std::vector<float>> a = {{0.9f, 0.5f, 0.0f}, {0.8f}, {0.0f, 0.0f}, {}};
  EXPECT_THAT(top_k_prefixes(a, 0), ElementsAre(0, 0, 0, 0));
  EXPECT_THAT(top_k_prefixes(a, -3), ElementsAre(0, 0, 0, 0));
  EXPECT_THAT(top_k_prefixes(a, 3), ElementsAre(2, 1, 0, 0));  // exactly the positive ones
  EXPECT_THAT(top_k_prefixes(a, 100), ElementsAre(2, 1, 0, 0));
  EXPECT_TRUE(top_k_prefixes({}, 5).empty());
}

TEST(TopK, TakesTheHighestSurvivalsWithoutAnEarlyStop) {
  // Sorted: (0.9, r1 p0), (0.8, r1 p1), (0.5, r0 p0), (0.2, r0 p1), (0.1, r1 p2).
  const std::vector<std::vector<float>> a = {{0.5f, 0.2f}, {0.9f, 0.8f, 0.1f}};
  EXPECT_THAT(top_k_prefixes(a, 1), ElementsAre(0, 1));
  EXPECT_THAT(top_k_prefixes(a, 2), ElementsAre(0, 2));
  EXPECT_THAT(top_k_prefixes(a, 3), ElementsAre(1, 2));
  EXPECT_THAT(top_k_prefixes(a, 4), ElementsAre(2, 2));
  EXPECT_THAT(top_k_prefixes(a, 5), ElementsAre(2, 3));  // 0.1 too: nothing asks whether it pays
}

TEST(TopK, TiesGoByPositionThenRequest) {
  const std::vector<std::vector<float>> a = {{1.0f, 1.0f, 1.0f}, {1.0f, 1.0f, 1.0f}, {1.0f}};
  // (p0 r0), (p0 r1), (p0 r2), (p1 r0), (p1 r1), (p2 r0), (p2 r1).
  EXPECT_THAT(top_k_prefixes(a, 1), ElementsAre(1, 0, 0));
  EXPECT_THAT(top_k_prefixes(a, 2), ElementsAre(1, 1, 0));
  EXPECT_THAT(top_k_prefixes(a, 3), ElementsAre(1, 1, 1));
  EXPECT_THAT(top_k_prefixes(a, 4), ElementsAre(2, 1, 1));
  EXPECT_THAT(top_k_prefixes(a, 5), ElementsAre(2, 2, 1));
  EXPECT_THAT(top_k_prefixes(a, 6), ElementsAre(3, 2, 1));
  // A tie between a later request's earlier position and an earlier request's later one.
  EXPECT_THAT(top_k_prefixes({{0.9f, 0.5f}, {0.5f}}, 2), ElementsAre(1, 1));
}

// Random survival products (quantized so that ties happen, some exactly 0): for every
// capacity, the admitted positions are exactly the first `capacity` candidates in ranked
// order; a length per request cannot express a gap, so this also shows none is needed.
TEST(TopK, AdmitsExactlyTheTopCandidatesForEveryCapacity) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> conf(0, 4), len(0, 5), reqs(1, 5);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::vector<float>> a(size_t(reqs(rng)));
    int positive = 0;
    for (auto& row : a) {
      float s = 1.0f;
      for (int j = len(rng); j > 0; --j) {
        s *= float(conf(rng)) / 4.0f;  // 0, 1/4, 1/2, 3/4, 1: exact in binary
        row.push_back(s);
        positive += s > 0.0f;
      }
    }
    // Whether (r, j) comes before (r2, j2) in the ranked order.
    const auto before = [&](size_t r, size_t j, size_t r2, size_t j2) {
      if (a[r][j] != a[r2][j2]) return a[r][j] > a[r2][j2];
      return j != j2 ? j < j2 : r < r2;
    };
    for (int capacity = 0; capacity <= positive + 2; ++capacity) {
      SCOPED_TRACE("trial " + std::to_string(trial) + " capacity " + std::to_string(capacity));
      const std::vector<int> length = top_k_prefixes(a, capacity);
      ASSERT_EQ(length.size(), a.size());
      int admitted = 0;
      for (size_t r = 0; r < a.size(); ++r) {
        ASSERT_GE(length[r], 0);
        ASSERT_LE(size_t(length[r]), a[r].size());
        admitted += length[r];
        for (int j = 0; j < length[r]; ++j) EXPECT_GT(a[r][size_t(j)], 0.0f) << "zero survival admitted";
      }
      EXPECT_EQ(admitted, std::min(capacity, positive));
      // Everything admitted ranks before every positive candidate left out.
      for (size_t r = 0; r < a.size(); ++r)
        for (size_t j = 0; j < size_t(length[r]); ++j)
          for (size_t r2 = 0; r2 < a.size(); ++r2)
            for (size_t j2 = size_t(length[r2]); j2 < a[r2].size(); ++j2)
              if (a[r2][j2] > 0.0f) {
                EXPECT_TRUE(before(r, j, r2, j2)) << r << "," << j << " vs " << r2 << "," << j2;
              }
    }
  }
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

TEST(StepDraftGate, FirstStepDraftsAndAPayingHistoryKeepsDrafting) {
  const auto flat = [](int) { return 1e-3; };
  StepDraftGate gate(4, 16);
  EXPECT_TRUE(gate.should_draft(3, 0, flat)) << "no history yet";
  // Per request tau 3 with 3 drafts verified and 0.1 ms of drafting: 3 * 3 / (0.3 ms + 1 ms)
  // = 6923 tokens/s against the plain step's 3 / 1 ms = 3000.
  for (int step = 0; step < 20; ++step) {
    gate.record_step(3, 9, 9, 3e-4, flat, 0);
    EXPECT_TRUE(gate.should_draft(3, 0, flat)) << step;
  }
}

TEST(StepDraftGate, StopsWhenDraftingDoesNotPayAndProbesBackOff) {
  const auto flat = [](int) { return 1e-3; };
  StepDraftGate gate(4, 16);
  ASSERT_TRUE(gate.should_draft(2, 0, flat));
  // tau 1 (nothing accepted) and 5 ms of drafting per request: 2 * 1 / (10 ms + 1 ms) = 182
  // tokens/s against 2 / 1 ms = 2000.
  gate.record_step(2, 2, 4, 1e-2, flat, 0);
  std::vector<int> gaps;  // skipped steps before each probe
  for (int probe = 0; probe < 4; ++probe) {
    int skipped = 0;
    while (!gate.should_draft(2, 0, flat)) ASSERT_LT(++skipped, 100);
    gaps.push_back(skipped);
    gate.record_step(2, 2, 4, 1e-2, flat, 0);  // the probe did not pay
  }
  EXPECT_THAT(gaps, ElementsAre(4, 8, 16, 16));
  // Steps that pay (tau 4, 0.1 ms drafting): after 10 of them the moving averages are tau
  // 4 - 3 * 0.8^10 = 3.68 and 0.63 ms, 7.36 / 2.25 ms = 3266 tokens/s: drafting again.
  for (int i = 0; i < 10; ++i) gate.record_step(2, 8, 8, 2e-4, flat, 0);
  EXPECT_TRUE(gate.should_draft(2, 0, flat));
  // ... and the interval started over: when drafting stops paying again, probes come after 4.
  for (int i = 0; i < 30; ++i) gate.record_step(2, 2, 4, 1e-2, flat, 0);
  int skipped = 0;
  while (!gate.should_draft(2, 0, flat)) ASSERT_LT(++skipped, 100);
  EXPECT_EQ(skipped, 4);
}

TEST(StepDraftGate, PredictsFromTheCostCurveOfThisStep) {
  // A forward of up to 24 tokens costs 1 ms, a longer one 3 ms.
  const auto curve = [](int T) { return T <= 24 ? 1e-3 : 3e-3; };
  StepDraftGate gate(1000, 1000);  // no probe in the way
  ASSERT_TRUE(gate.should_draft(1, 0, curve));
  gate.record_step(1, 2, 3, 0.0, curve, 0);  // tau 2, 3 drafts verified, free drafting
  // Alone: plain T = 1: 1000 tokens/s; drafting T = 1 + 3 = 4: 2000.
  EXPECT_TRUE(gate.should_draft(1, 0, curve));
  // Beside 21 prompt tokens: plain T = 22: 1000; drafting T = 25: 2 / 3 ms = 667 (with 20,
  // T = 24 still costs 1 ms: drafting pays).
  EXPECT_FALSE(gate.should_draft(1, 21, curve));
  EXPECT_TRUE(gate.should_draft(1, 20, curve));
  // 4 requests: plain T = 4: 4000; drafting T = 4 + 12 = 16: 8000.
  EXPECT_TRUE(gate.should_draft(4, 0, curve));
  // 8 requests: plain T = 8: 8000; drafting T = 8 + 24 = 32: 16 / 3 ms = 5333.
  EXPECT_FALSE(gate.should_draft(8, 0, curve));
}

TEST(StepDraftGate, NoRequestsNeverDraftAndBadIntervalsThrow) {
  const auto flat = [](int) { return 1e-3; };
  StepDraftGate fresh;
  EXPECT_FALSE(fresh.should_draft(0, 0, flat));
  EXPECT_FALSE(fresh.should_draft(0, 10, flat));  // a step of prompt chunks only
  EXPECT_TRUE(fresh.should_draft(1, 0, flat)) << "the first step with a request still drafts";
  fresh.record_step(2, 8, 8, 0.0, flat, 0);  // pays
  EXPECT_FALSE(fresh.should_draft(0, 0, flat));
  EXPECT_TRUE(fresh.should_draft(2, 0, flat));

  // A step without requests is not a skipped step: it does not bring a probe closer.
  StepDraftGate gate(2, 4);
  ASSERT_TRUE(gate.should_draft(1, 0, flat));
  gate.record_step(1, 1, 4, 1e-2, flat, 0);  // does not pay
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(gate.should_draft(0, 0, flat));
  EXPECT_FALSE(gate.should_draft(1, 0, flat));
  EXPECT_FALSE(gate.should_draft(1, 0, flat));
  EXPECT_TRUE(gate.should_draft(1, 0, flat));  // the probe after 2 skipped steps

  EXPECT_THAT(error_of([] { StepDraftGate(0, 8); }), HasSubstr("probe intervals"));
  EXPECT_THAT(error_of([] { StepDraftGate(8, 4); }), HasSubstr("probe intervals"));
  EXPECT_THAT(error_of([] { StepDraftGate(-1, -1); }), HasSubstr("probe intervals"));
  EXPECT_EQ(error_of([] { StepDraftGate(1, 1); }), "(no error)");
}

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

TEST(Survival, FromConfidenceLogits) {
  DraftBlock b;
  b.tokens = {5, 6, 7};
  b.confidence = {2.0f, 0.0f, -1.0f};
  std::vector<float> c(10, -1.0f), a(10, -1.0f);  // reused buffers are resized
  draft_survival(b, nullptr, SpecStats{}, c, a);
  ASSERT_EQ(c.size(), 3u);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_FLOAT_EQ(c[0], sigmoid(2.0f));
  EXPECT_FLOAT_EQ(c[1], 0.5f);
  EXPECT_FLOAT_EQ(c[2], sigmoid(-1.0f));
  EXPECT_FLOAT_EQ(a[0], sigmoid(2.0f));
  EXPECT_FLOAT_EQ(a[1], sigmoid(2.0f) * 0.5f);
  EXPECT_FLOAT_EQ(a[2], sigmoid(2.0f) * 0.5f * sigmoid(-1.0f));

  // With a head, measured acceptance plays no part.
  SpecStats measured;
  for (int i = 0; i < 20; ++i) measured.add_round(3, 3, 0, 1);
  std::vector<float> c2, a2;
  draft_survival(b, nullptr, measured, c2, a2);
  EXPECT_EQ(c2, c);
  EXPECT_EQ(a2, a);

  // Under a fit: c_k = sigma(logit_k / T_k), the last T for later positions.
  CalibrationFit fit;
  fit.temperatures = {2.0f, 4.0f};
  draft_survival(b, &fit, SpecStats{}, c, a);
  EXPECT_FLOAT_EQ(c[0], sigmoid(1.0f));
  EXPECT_FLOAT_EQ(c[1], 0.5f);
  EXPECT_FLOAT_EQ(c[2], sigmoid(-0.25f));
  EXPECT_FLOAT_EQ(a[2], sigmoid(1.0f) * 0.5f * sigmoid(-0.25f));

  b.clear();
  draft_survival(b, nullptr, SpecStats{}, c, a);
  EXPECT_TRUE(c.empty());
  EXPECT_TRUE(a.empty());
}

TEST(Survival, WithoutAHeadFollowsMeasuredAcceptance) {
  DraftBlock b;
  b.tokens = {1, 2, 3, 4};
  std::vector<float> c, a;
  const auto expect_near = [](const std::vector<float>& got, const std::vector<double>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(got[k], want[k], 1e-6) << "position " << k;
  };

  // Nothing measured: 1/2 for the first position, each later one inheriting its predecessor's.
  draft_survival(b, nullptr, SpecStats{}, c, a);
  expect_near(c, {0.5, 0.5, 0.5, 0.5});
  expect_near(a, {0.5, 0.25, 0.125, 0.0625});

  // 98 rounds verifying only position 0, always accepted: c_0 = (98 + 2 * 1/2) / (98 + 2) =
  // 0.99; positions 1..3 were never tried and inherit it: (0 + 2 * 0.99) / (0 + 2).
  SpecStats first_always;
  for (int i = 0; i < 98; ++i) first_always.add_round(4, 1, 1, 2);
  draft_survival(b, nullptr, first_always, c, a);
  expect_near(c, {0.99, 0.99, 0.99, 0.99});
  expect_near(a, {0.99, 0.99 * 0.99, 0.99 * 0.99 * 0.99, 0.99 * 0.99 * 0.99 * 0.99});
  // ... and c_0 approaches 1: 900 more such rounds give (998 + 1) / 1000.
  for (int i = 0; i < 900; ++i) first_always.add_round(4, 1, 1, 2);
  draft_survival(b, nullptr, first_always, c, a);
  EXPECT_NEAR(c[0], 0.999, 1e-6);
  EXPECT_NEAR(c[3], 0.999, 1e-6);

  // 98 rounds verifying positions 0 and 1: 0 always accepted, 1 always rejected.
  // c_1 = (0 + 2 * 0.99) / (98 + 2) = 0.0198; positions 2 and 3 inherit it.
  SpecStats second_never;
  for (int i = 0; i < 98; ++i) second_never.add_round(4, 2, 1, 2);
  draft_survival(b, nullptr, second_never, c, a);
  expect_near(c, {0.99, 0.0198, 0.0198, 0.0198});
  expect_near(a, {0.99, 0.99 * 0.0198, 0.99 * 0.0198 * 0.0198, 0.99 * 0.0198 * 0.0198 * 0.0198});
}

TEST(Scheduler, Names) {
  EXPECT_EQ(parse_scheduler("prefix"), SchedulerKind::Prefix);
  EXPECT_STREQ(scheduler_name(SchedulerKind::Threshold), "threshold");
  EXPECT_THAT(error_of([] { parse_scheduler("greedy"); }), HasSubstr("unknown scheduler 'greedy'"));
}

TEST(Scheduler, NamesRoundTripForEveryKind) {
  const std::vector<std::pair<SchedulerKind, std::string>> kinds = {{SchedulerKind::None, "none"},
                                                                    {SchedulerKind::Fixed, "fixed"},
                                                                    {SchedulerKind::Threshold, "threshold"},
                                                                    {SchedulerKind::Prefix, "prefix"},
                                                                    {SchedulerKind::Async, "async"}};
  for (const auto& [kind, name] : kinds) {
    EXPECT_EQ(scheduler_name(kind), name);
    EXPECT_EQ(parse_scheduler(name), kind) << name;
    EXPECT_EQ(parse_scheduler(scheduler_name(kind)), kind) << name;
  }
  // Names are exact: no case folding, no spaces.
  EXPECT_THAT(error_of([] { parse_scheduler("Prefix"); }), HasSubstr("unknown scheduler 'Prefix'"));
  EXPECT_THAT(error_of([] { parse_scheduler(""); }), HasSubstr("unknown scheduler ''"));
  // The message lists every choice.
  const std::string e = error_of([] { parse_scheduler("sps"); });
  const size_t expected = e.find("expected");
  ASSERT_NE(expected, std::string::npos) << e;
  for (const auto& [kind, name] : kinds)
    EXPECT_NE(e.find(name, expected), std::string::npos) << name << ": " << e;
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
