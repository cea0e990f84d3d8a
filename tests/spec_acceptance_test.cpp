// Acceptance (src/spec/acceptance.h): rejection sampling commits tokens with exactly the
// target's distribution, whatever the drafter proposes; a wrong rule fails the same test.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "biased_acceptance.h"
#include "chi_square.h"
#include "spec/acceptance.h"

namespace dspark {
namespace {

constexpr double kAlpha = 1e-3;  // significance level of every goodness-of-fit test here

TokenProbs dist(std::vector<int> ids, std::vector<float> probs) { return {std::move(ids), std::move(probs)}; }

// The target's distribution at each absolute position (independent of earlier tokens, so the
// committed sequence must have these marginals), and a drafter that is wrong in different ways.
struct Chain {
  std::vector<TokenProbs> p, q;
};

Chain make_chain() {
  Chain c;
  c.p = {dist({0, 1, 2, 3}, {0.4f, 0.3f, 0.2f, 0.1f}), dist({1, 2, 4}, {0.5f, 0.25f, 0.25f}),
         dist({0, 5}, {0.9f, 0.1f}), dist({3, 2, 1, 0}, {0.25f, 0.25f, 0.25f, 0.25f})};
  // Overconfident in a token, mass on a token the target never takes, near-right, one-hot.
  c.q = {dist({3, 0}, {0.8f, 0.2f}), dist({1, 6, 2}, {0.2f, 0.5f, 0.3f}), dist({0, 5}, {0.85f, 0.15f}),
         dist({2}, {1.0f})};
  return c;
}

int draw(const TokenProbs& d, Rng& rng) { return sample_from(d, rng.uniform()); }

// Runs rounds that draft the remaining positions, accept with `rule`, and commit, until the
// sequence has all positions; counts the token committed at each position.
std::vector<std::map<int, int>> simulate(AcceptRule rule, int n_sequences, uint64_t seed) {
  const Chain c = make_chain();
  const int L = int(c.p.size());
  std::vector<std::map<int, int>> counts(static_cast<size_t>(L));
  Rng rng(seed);
  AcceptScratch scratch;
  for (int i = 0; i < n_sequences; ++i) {
    int pos = 0;
    while (pos < L) {
      const int n = L - pos - 1;  // drafts for positions pos..L-2; p has one more
      std::vector<int> d;
      for (int j = 0; j < n; ++j) d.push_back(draw(c.q[size_t(pos + j)], rng));
      const Verdict v = rule(d.data(), c.q.data() + pos, c.p.data() + pos, n, rng, scratch);
      for (int j = 0; j < v.accepted; ++j) ++counts[size_t(pos + j)][d[size_t(j)]];
      ++counts[size_t(pos + v.accepted)][v.next];
      pos += v.accepted + 1;
    }
  }
  return counts;
}

std::map<int, double> as_map(const TokenProbs& d) {
  std::map<int, double> m;
  for (size_t i = 0; i < d.ids.size(); ++i) m[d.ids[i]] = d.probs[i];
  return m;
}

// The smallest p-value over positions.
double worst_p_value(AcceptRule rule, std::string* table) {
  const int N = 20000;
  const auto counts = simulate(rule, N, 1234);
  const Chain c = make_chain();
  double worst = 1;
  for (size_t pos = 0; pos < counts.size(); ++pos) {
    const test::ChiSquare r = test::chi_square(counts[pos], as_map(c.p[pos]), N);
    if (r.p_value < worst) {
      worst = r.p_value;
      *table = "position " + std::to_string(pos) + "\n" + r.table;
    }
  }
  return worst;
}

TEST(Acceptance, RejectionSamplingKeepsTheTargetDistribution) {
  std::string table;
  EXPECT_GT(worst_p_value(accept_drafts, &table), kAlpha) << table;
}

// Accepting whenever the target gives the draft any probability at all.
Verdict accept_if_possible(const int* d, const TokenProbs*, const TokenProbs* p, int n, Rng& rng,
                           AcceptScratch&) {
  Verdict v;
  while (v.accepted < n && prob_of(p[v.accepted], d[v.accepted]) > 0) ++v.accepted;
  v.next = sample_from(p[v.accepted], rng.uniform());
  return v;
}

TEST(Acceptance, BiasedRulesFailTheSameTest) {
  std::string table;
  EXPECT_LT(worst_p_value(test::residual_is_p, &table), kAlpha) << "the test cannot see a wrong residual";
  EXPECT_LT(worst_p_value(accept_if_possible, &table), kAlpha) << "the test cannot see over-acceptance";
}

TEST(Acceptance, GreedyAcceptsWhileDraftsMatchTheArgmax) {
  // One-hot distributions: targets 5, 7, 9, then bonus 11.
  const std::vector<TokenProbs> p = {dist({5}, {1}), dist({7}, {1}), dist({9}, {1}), dist({11}, {1})};
  std::vector<TokenProbs> q;
  const std::vector<int> drafts = {5, 7, 8};
  for (int d : drafts) q.push_back(dist({d}, {1}));
  Rng rng(1), untouched(1);
  AcceptScratch s;
  Verdict v = accept_drafts(drafts.data(), q.data(), p.data(), 3, rng, s);
  EXPECT_EQ(v.accepted, 2);
  EXPECT_EQ(v.next, 9);  // the target's token where the draft went wrong
  v = accept_drafts(drafts.data(), q.data(), p.data(), 2, rng, s);
  EXPECT_EQ(v.accepted, 2);
  EXPECT_EQ(v.next, 9);  // all accepted: the bonus from p_n
  v = accept_drafts(drafts.data(), q.data(), p.data(), 0, rng, s);
  EXPECT_EQ(v.accepted, 0);
  EXPECT_EQ(v.next, 5);
  EXPECT_EQ(rng.next_u64(), untouched.next_u64()) << "greedy acceptance must not consume random numbers";
}

TEST(Acceptance, DraftTheTargetNeverTakesIsAlwaysRejected) {
  // p(d) = 0: always rejected, and the residual max(p - q, 0) is p itself.
  const std::vector<TokenProbs> p = {dist({1, 2}, {0.5f, 0.5f}), dist({0}, {1})};
  const std::vector<TokenProbs> q = {dist({3}, {1})};
  const int d = 3;
  Rng rng(3);
  AcceptScratch s;
  std::map<int, int> seen;
  for (int i = 0; i < 200; ++i) {
    const Verdict v = accept_drafts(&d, q.data(), p.data(), 1, rng, s);
    EXPECT_EQ(v.accepted, 0);
    ++seen[v.next];
  }
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_GT(seen[1], 60);
  EXPECT_GT(seen[2], 60);
}

}  // namespace
}  // namespace dspark
