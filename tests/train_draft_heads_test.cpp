// Training forward and backward of the DSpark drafter's heads and losses
// (src/train/draft_heads_train.h, src/train/losses.h): every gradient against central finite
// differences of the forward-only path, for every head type, confidence variant and loss
// term; weight-0 rows; chunked batches; and agreement with the decoder's heads
// (src/draft/dspark_heads.h) on the biased logits and confidence logits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "draft/dspark_heads.h"
#include "draft/dspark_layout.h"
#include "draft/dspark_model.h"
#include "train/draft_heads_train.h"
#include "train/losses.h"

namespace dspark {
namespace {

using ::testing::HasSubstr;

constexpr int kD = 8, kR = 4, kV = 12, kB = 3, kBlocks = 3, kRows = kB * kBlocks;

enum class Conf { Off, HiddenOnly, WithMarkov };

struct HeadCase {
  MarkovHead head;
  Conf conf;
  std::string name;
};

void PrintTo(const HeadCase& c, std::ostream* os) { *os << c.name; }

std::vector<HeadCase> head_cases() {
  std::vector<HeadCase> v;
  for (MarkovHead h : {MarkovHead::None, MarkovHead::Vanilla, MarkovHead::Gated, MarkovHead::Rnn})
    for (Conf c : {Conf::Off, Conf::HiddenOnly, Conf::WithMarkov}) {
      if (h == MarkovHead::None && c == Conf::WithMarkov) continue;  // needs markov_rank > 0
      const char* cn = c == Conf::Off ? "NoConf" : (c == Conf::HiddenOnly ? "ConfHidden" : "ConfMarkov");
      v.push_back({h, c, std::string(markov_head_name(h)) + cn});
    }
  return v;
}

// A drafter configuration small enough to check by finite differences, with a one-layer
// backbone so that the decoder's DSparkModel accepts it.
DSparkConfig tiny_config(MarkovHead head, Conf conf) {
  DSparkConfig c;
  c.backbone.arch = Arch::Qwen3;
  c.backbone.n_layers = 1;
  c.backbone.dim = kD;
  c.backbone.n_heads = 2;
  c.backbone.n_kv_heads = 1;
  c.backbone.head_dim = 4;
  c.backbone.ffn_dim = 16;
  c.backbone.vocab_size = kV;
  c.backbone.max_seq_len = 64;
  c.backbone.qk_norm = true;
  c.n_target_layers = 3;
  c.block_size = kB;
  c.target_layer_ids = {0, 1};
  c.mask_token_id = kV - 1;
  c.markov_head = head;
  c.markov_rank = head == MarkovHead::None ? 0 : kR;
  c.confidence_head = conf != Conf::Off;
  c.confidence_with_markov = conf == Conf::WithMarkov;
  return c;
}

std::vector<float> softmax_of(const float* l, int n) {
  std::vector<float> p(size_t(n), 0.0f);
  softmax_lse(l, n, p.data());
  return p;
}

// A batch with its own storage. Weights follow the trainer's: exp(-k/4) on a valid prefix of
// each block; block 1 has only its first position valid, so rows 4 and 5 weigh 0.
struct Batch {
  std::vector<float> h, U, pt, w;
  std::vector<int> prev, labels;
  double weight_sum = 0;

  HeadBatch view(int row0 = 0, int rows = kRows) const {
    HeadBatch b;
    b.n_rows = rows;
    b.block_size = kB;
    b.h = h.data() + row0 * kD;
    b.base_logits = U.data() + row0 * kV;
    b.prev = prev.data() + row0;
    b.labels = labels.data() + row0;
    b.weights = w.data() + row0;
    b.target_probs = pt.empty() ? nullptr : pt.data() + row0 * kV;
    b.weight_sum = weight_sum;
    return b;
  }
};

// Random heads with weights big enough (std 0.5) that every path of the gradient matters.
DraftHeadsTrain random_heads(const DSparkConfig& c, uint32_t seed) {
  DraftHeadsTrain heads(c);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  for (Param* p : heads.params())
    for (float& x : p->value) x = normal(rng);
  return heads;
}

Batch random_batch(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> token(0, kV - 1);
  Batch b;
  b.h.resize(kRows * kD);
  b.U.resize(kRows * kV);
  for (float& x : b.h) x = normal(rng);
  for (float& x : b.U) x = 1.5f * normal(rng);
  for (int row = 0; row < kRows; ++row) {
    const int k = row % kB, block = row / kB;
    b.prev.push_back(token(rng));
    b.labels.push_back(token(rng));
    const bool valid = block != 1 || k == 0;
    b.w.push_back(valid ? std::exp(-float(k) / 4.0f) : 0.0f);
    b.weight_sum += b.w.back();
  }
  return b;
}

// Target distributions at least 10% (relatively) away from p_d in every entry, so that no
// finite-difference step crosses a kink of |p_d - p_t|.
void add_tie_free_targets(DraftHeadsTrain& heads, Batch& b, uint32_t seed, ThreadPool& pool) {
  std::vector<float> logits(kRows * kV);
  b.pt.assign(kRows * kV, 1.0f / kV);
  HeadForwardIO io;
  io.logits = logits.data();
  heads_forward(heads, b.view(), LossWeights{1, 0, 0}, pool, io);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> shift(0.3f, 0.8f);
  for (int row = 0; row < kRows; ++row) {
    const std::vector<float> pd = softmax_of(logits.data() + row * kV, kV);
    for (int attempt = 0;; ++attempt) {
      ASSERT_LT(attempt, 100) << "no tie-free target found for row " << row;
      std::vector<float> t(kV);
      for (int i = 0; i < kV; ++i)
        t[size_t(i)] = logits[size_t(row * kV + i)] + (rng() % 2 ? 1.0f : -1.0f) * shift(rng);
      const std::vector<float> p = softmax_of(t.data(), kV);
      bool ok = true;
      for (int i = 0; i < kV; ++i) ok = ok && std::fabs(p[size_t(i)] - pd[size_t(i)]) > 0.1f * pd[size_t(i)];
      if (!ok) continue;
      std::copy(p.begin(), p.end(), b.pt.begin() + row * kV);
      break;
    }
  }
}

struct Grads {
  LossTerms loss;
  std::vector<std::vector<float>> params;
  std::vector<float> d_h, d_U;
};

Grads run_backward(DraftHeadsTrain& heads, const Batch& b, const LossWeights& lw, ThreadPool& pool) {
  heads.zero_grad();
  Grads g;
  g.d_h.assign(kRows * kD, -7.0f);  // SET by the call: any stale value must be overwritten
  g.d_U.assign(kRows * kV, -7.0f);
  g.loss = heads_forward_backward(heads, b.view(), lw, g.d_h.data(), g.d_U.data(), pool);
  for (Param* p : heads.params()) g.params.push_back(p->grad);
  return g;
}

// The largest violation of |numeric - analytic| <= atol + rtol |analytic|, as a ratio (<= 1 passes).
struct Check {
  double worst = 0;
  std::string where;
  void add(double numeric, double analytic, const std::string& what) {
    const double ratio = std::fabs(numeric - analytic) / (2e-4 + 1e-2 * std::fabs(analytic));
    if (ratio > worst) {
      worst = ratio;
      where = what + ": numeric " + std::to_string(numeric) + ", analytic " + std::to_string(analytic);
    }
  }
};

// Central differences of the total (held-constant c*) in every parameter, h and U.
void check_gradients(DraftHeadsTrain& heads, Batch& b, const LossWeights& lw, ThreadPool& pool,
                     const std::string& label) {
  const Grads g = run_backward(heads, b, lw, pool);
  std::vector<float> c_star(kRows);
  HeadForwardIO base;
  base.conf_targets = c_star.data();
  const LossTerms at = heads_forward(heads, b.view(), lw, pool, base);
  EXPECT_NEAR(at.total, g.loss.total, 1e-6) << label;
  HeadForwardIO io;
  io.fixed_conf_targets = c_star.data();
  auto loss = [&] { return heads_forward(heads, b.view(), lw, pool, io).total; };
  constexpr float kEps = 2e-3f;
  auto numeric = [&](float& x) {
    const float saved = x;
    x = saved + kEps;
    const double up = loss();
    x = saved - kEps;
    const double down = loss();
    x = saved;
    return (up - down) / (2.0 * double(kEps));
  };
  Check check;
  std::vector<Param*> params = heads.params();
  for (size_t pi = 0; pi < params.size(); ++pi)
    for (size_t i = 0; i < params[pi]->value.size(); ++i)
      check.add(numeric(params[pi]->value[i]), g.params[pi][i],
                params[pi]->name + "[" + std::to_string(i) + "]");
  for (size_t i = 0; i < b.h.size(); ++i)
    check.add(numeric(b.h[i]), g.d_h[i], "h[" + std::to_string(i) + "]");
  for (size_t i = 0; i < b.U.size(); ++i)
    check.add(numeric(b.U[i]), g.d_U[i], "U[" + std::to_string(i) + "]");
  EXPECT_LE(check.worst, 1.0) << label << ": worst " << check.where;
}

class HeadGradients : public ::testing::TestWithParam<HeadCase> {};

TEST_P(HeadGradients, MatchFiniteDifferencesForEachTermAndTheTotal) {
  const HeadCase& hc = GetParam();
  ThreadPool pool(2);
  DraftHeadsTrain heads = random_heads(tiny_config(hc.head, hc.conf), 3);
  Batch b = random_batch(4);
  add_tie_free_targets(heads, b, 5, pool);
  const std::pair<const char*, LossWeights> terms[] = {
      {"ce", {1, 0, 0}}, {"l1", {0, 1, 0}}, {"conf", {0, 0, 1}}, {"total", {}}};
  for (const auto& [name, lw] : terms) {
    if (std::string(name) == "conf" && hc.conf == Conf::Off) continue;
    check_gradients(heads, b, lw, pool, hc.name + " " + name);
  }
}

TEST_P(HeadGradients, RowsOfWeightZeroContributeNothing) {
  const HeadCase& hc = GetParam();
  ThreadPool pool(2);
  DraftHeadsTrain heads = random_heads(tiny_config(hc.head, hc.conf), 6);
  Batch b = random_batch(7);
  add_tie_free_targets(heads, b, 8, pool);
  const Grads base = run_backward(heads, b, {}, pool);
  // Change everything of the weight-0 rows that feeds only their own loss.
  Batch junk = b;
  for (int row = 0; row < kRows; ++row) {
    if (b.w[size_t(row)] != 0.0f) continue;
    junk.labels[size_t(row)] = -1;
    for (int i = 0; i < kV; ++i) {
      junk.U[size_t(row * kV + i)] = 100.0f * float(i);
      junk.pt[size_t(row * kV + i)] = i == 0 ? 1.0f : 0.0f;
    }
  }
  const Grads g = run_backward(heads, junk, {}, pool);
  EXPECT_DOUBLE_EQ(g.loss.total, base.loss.total);
  EXPECT_EQ(g.params, base.params);
  EXPECT_EQ(g.d_h, base.d_h);
  for (int row = 0; row < kRows; ++row) {
    if (b.w[size_t(row)] != 0.0f) continue;
    for (int i = 0; i < kV; ++i) EXPECT_EQ(g.d_U[size_t(row * kV + i)], 0.0f) << row;
    // Without a recurrent state, nothing of the row reaches h either.
    if (hc.head != MarkovHead::Rnn) {
      for (int i = 0; i < kD; ++i) EXPECT_EQ(g.d_h[size_t(row * kD + i)], 0.0f) << row;
    }
  }
}

TEST_P(HeadGradients, ChunkedCallsAddUpToOneCall) {
  const HeadCase& hc = GetParam();
  ThreadPool pool(2);
  DraftHeadsTrain heads = random_heads(tiny_config(hc.head, hc.conf), 9);
  Batch b = random_batch(10);
  add_tie_free_targets(heads, b, 11, pool);
  const Grads whole = run_backward(heads, b, {}, pool);

  heads.zero_grad();
  std::vector<float> d_h(kRows * kD), d_U(kRows * kV);
  const int first = 2 * kB;  // blocks 0-1, then block 2; both with the whole batch's weight_sum
  const LossTerms a = heads_forward_backward(heads, b.view(0, first), {}, d_h.data(), d_U.data(), pool);
  const LossTerms c = heads_forward_backward(heads, b.view(first, kRows - first), {}, d_h.data() + first * kD,
                                             d_U.data() + first * kV, pool);
  EXPECT_NEAR(a.total + c.total, whole.loss.total, 1e-9);
  EXPECT_NEAR(a.ce + c.ce, whole.loss.ce, 1e-9);
  EXPECT_NEAR(a.l1 + c.l1, whole.loss.l1, 1e-9);
  EXPECT_NEAR(a.conf + c.conf, whole.loss.conf, 1e-9);
  std::vector<Param*> params = heads.params();
  for (size_t pi = 0; pi < params.size(); ++pi)
    for (size_t i = 0; i < params[pi]->grad.size(); ++i)
      EXPECT_NEAR(params[pi]->grad[i], whole.params[pi][i], 1e-6f * (1.0f + std::fabs(whole.params[pi][i])))
          << params[pi]->name << "[" << i << "]";
  for (size_t i = 0; i < d_h.size(); ++i) EXPECT_NEAR(d_h[i], whole.d_h[i], 1e-6f) << i;
  for (size_t i = 0; i < d_U.size(); ++i) EXPECT_NEAR(d_U[i], whole.d_U[i], 1e-6f) << i;
}

// The decoder's DSparkHeads over the same weights: a DSparkModel in memory whose head tensors
// are views of the training parameters and whose backbone tensors are zeros.
TEST_P(HeadGradients, LogitsAndConfidenceEqualTheDecodersHeads) {
  const HeadCase& hc = GetParam();
  ThreadPool pool(2);
  const DSparkConfig config = tiny_config(hc.head, hc.conf);
  DraftHeadsTrain heads = random_heads(config, 12);
  Batch b = random_batch(13);
  add_tie_free_targets(heads, b, 14, pool);

  DSparkModel model;
  model.config = config;
  model.source = "in-memory drafter";
  heads.view_weights(model.weights);
  std::vector<std::vector<float>> zeros;
  std::vector<std::string> names;
  for (const DSparkSlot& s : dspark_layout(config, model.weights)) {
    names.push_back(s.name);
    if (!s.view->empty() || s.optional) continue;
    int64_t n = 1;
    for (int64_t x : s.shape) n *= x;
    zeros.emplace_back(size_t(n), 0.0f);
    s.view->type = DType::F32;
    s.view->shape = s.shape;
    s.view->data = zeros.back().data();
  }
  // Every training parameter is a checkpoint tensor of the same name (shapes: validate below).
  for (Param* p : heads.params()) EXPECT_THAT(names, ::testing::Contains(p->name));
  DSparkHeads decoder(model, pool);  // validates every shape against the configuration

  std::vector<float> logits(kRows * kV), conf(kRows);
  HeadForwardIO io;
  io.logits = logits.data();
  io.conf_logits = conf.data();
  heads_forward(heads, b.view(), {}, pool, io);
  for (int block = 0; block < kBlocks; ++block) {
    std::vector<float> state(size_t(decoder.state_size()), 0.0f);
    for (int k = 0; k < kB; ++k) {
      const int row = block * kB + k;
      const float* h = b.h.data() + row * kD;
      std::vector<float> l(b.U.begin() + row * kV, b.U.begin() + (row + 1) * kV);
      decoder.add_markov_bias(h, b.prev[size_t(row)], state.data(), l.data());
      for (int i = 0; i < kV; ++i)
        EXPECT_NEAR(logits[size_t(row * kV + i)], l[size_t(i)], 1e-5f) << row << " " << i;
      if (hc.conf != Conf::Off) {
        EXPECT_NEAR(conf[size_t(row)], decoder.confidence_logit(h, b.prev[size_t(row)]), 1e-5f);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Heads, HeadGradients, ::testing::ValuesIn(head_cases()),
                         [](const auto& test_info) { return test_info.param.name; });

// ---------------------------------------------------------------------------
// The loss pieces on their own.

TEST(Losses, L1GradientThroughTheSoftmaxAtATieFreePoint) {
  const std::vector<float> l = {0.3f, -1.2f, 2.0f, 0.1f, -0.4f, 1.1f};
  const std::vector<float> q = {0.05f, 0.30f, 0.10f, 0.25f, 0.20f, 0.10f};
  const int n = int(l.size());
  auto l1_of = [&](const std::vector<double>& x) {  // in double: ||softmax(x) - q||_1
    double m = x[0], s = 0, d = 0;
    for (double v : x) m = std::max(m, v);
    for (double v : x) s += std::exp(v - m);
    for (int i = 0; i < n; ++i) d += std::fabs(std::exp(x[size_t(i)] - m) / s - q[size_t(i)]);
    return d;
  };
  std::vector<float> p(l.size()), g(l.size());
  softmax_lse(l.data(), n, p.data());
  for (int i = 0; i < n; ++i) ASSERT_GT(std::fabs(p[size_t(i)] - q[size_t(i)]), 0.02f);  // tie-free
  EXPECT_NEAR(l1_distance(p.data(), q.data(), n), l1_of({l.begin(), l.end()}), 1e-6);
  logits_grad(p.data(), q.data(), 0, n, 0.0f, 1.0f, g.data());
  for (int i = 0; i < n; ++i) {
    std::vector<double> up(l.begin(), l.end()), down(l.begin(), l.end());
    up[size_t(i)] += 1e-5;
    down[size_t(i)] -= 1e-5;
    EXPECT_NEAR(g[size_t(i)], (l1_of(up) - l1_of(down)) / 2e-5, 1e-5) << i;
  }
  // The gradient of any function of the softmax sums to zero over the logits.
  double sum = 0;
  for (float x : g) sum += x;
  EXPECT_NEAR(sum, 0.0, 1e-6);
}

TEST(Losses, CrossEntropyGradientIsSoftmaxMinusOneHot) {
  const std::vector<float> l = {1.0f, 2.0f, -3.0f, 0.5f};
  std::vector<float> p(4), g(4);
  const double lse = softmax_lse(l.data(), 4, p.data());
  EXPECT_NEAR(lse - l[1], -std::log(double(p[1])), 1e-6);
  logits_grad(p.data(), nullptr, 1, 4, 0.5f, 0.0f, g.data());
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(g[size_t(i)], 0.5f * (p[size_t(i)] - (i == 1 ? 1.0f : 0.0f)));
  // In place (g aliasing p), as the training pass uses it.
  logits_grad(p.data(), nullptr, 1, 4, 0.5f, 0.0f, p.data());
  EXPECT_EQ(p, g);
}

TEST(Losses, ConfidenceTargetIsClampedToTheUnitInterval) {
  EXPECT_FLOAT_EQ(confidence_target(0.5), 0.75f);
  EXPECT_FLOAT_EQ(confidence_target(0.0), 1.0f);
  EXPECT_FLOAT_EQ(confidence_target(2.0), 0.0f);
  EXPECT_FLOAT_EQ(confidence_target(2.0 + 1e-6), 0.0f);  // fp rounding past the maximum distance
  EXPECT_FLOAT_EQ(confidence_target(-1e-6), 1.0f);
}

TEST(Losses, BinaryCrossEntropyIsStableFromTheLogit) {
  EXPECT_NEAR(bce_with_logit(0.0f, 0.3f), std::log(2.0), 1e-12);
  EXPECT_NEAR(bce_with_logit(200.0f, 1.0f), 0.0, 1e-12);
  EXPECT_NEAR(bce_with_logit(-200.0f, 1.0f), 200.0, 1e-9);
  EXPECT_NEAR(bce_with_logit(200.0f, 0.25f), 150.0, 1e-9);
  const float x = 0.7f, t = 0.4f;
  const double expect =
      -(t * std::log(1 / (1 + std::exp(-x))) + (1 - t) * std::log(1 - 1 / (1 + std::exp(-x))));
  EXPECT_NEAR(bce_with_logit(x, t), expect, 1e-7);
}

// A target far from p_d (one-hot on the draft's least likely token): c* is near 0 and inside
// [0, 1], and the confidence gradient is w/W * (sigmoid(x) - c*) on the bias.
TEST(Losses, ConfidenceTargetOfABatchAndItsBiasGradient) {
  ThreadPool pool(1);
  DraftHeadsTrain heads = random_heads(tiny_config(MarkovHead::Vanilla, Conf::WithMarkov), 15);
  Batch b = random_batch(16);
  std::vector<float> logits(kRows * kV);
  HeadForwardIO io;
  io.logits = logits.data();
  b.pt.assign(kRows * kV, 0.0f);
  heads_forward(heads, b.view(), LossWeights{1, 0, 0}, pool, io);
  for (int row = 0; row < kRows; ++row) {
    const float* l = logits.data() + row * kV;
    b.pt[size_t(row * kV + int(std::min_element(l, l + kV) - l))] = 1.0f;
  }
  std::vector<float> c_star(kRows), x(kRows);
  io = {};
  io.conf_targets = c_star.data();
  io.conf_logits = x.data();
  heads_forward(heads, b.view(), {}, pool, io);
  double expect_bias_grad = 0;
  for (int row = 0; row < kRows; ++row) {
    const float w = b.w[size_t(row)];
    if (w == 0.0f) {
      EXPECT_EQ(c_star[size_t(row)], 0.0f);
      continue;
    }
    EXPECT_GE(c_star[size_t(row)], 0.0f);
    EXPECT_LT(c_star[size_t(row)], 0.2f);
    expect_bias_grad +=
        w / b.weight_sum * (1 / (1 + std::exp(-double(x[size_t(row)]))) - c_star[size_t(row)]);
  }
  run_backward(heads, b, LossWeights{0, 0, 1}, pool);
  EXPECT_NEAR(heads.conf_b.grad[0], expect_bias_grad, 1e-6);
}

// ---------------------------------------------------------------------------
// Parameters, initialisation and errors.

TEST(DraftHeadsTrain, ParametersCarryCheckpointNamesAndShapes) {
  DraftHeadsTrain rnn(tiny_config(MarkovHead::Rnn, Conf::WithMarkov));
  std::vector<std::string> names;
  for (Param* p : rnn.params()) names.push_back(p->name);
  EXPECT_THAT(names, ::testing::ElementsAre("markov_head.markov_w1.weight", "markov_head.markov_w2.weight",
                                            "markov_head.joint_proj.weight", "markov_head.joint_proj.bias",
                                            "confidence_head.proj.weight", "confidence_head.proj.bias"));
  EXPECT_EQ(rnn.joint_w.shape, (std::vector<int64_t>{3 * kR, 2 * kR + kD}));
  EXPECT_EQ(rnn.conf_w.shape, (std::vector<int64_t>{1, kD + kR}));
  DraftHeadsTrain gated(tiny_config(MarkovHead::Gated, Conf::HiddenOnly));
  EXPECT_EQ(gated.gate_w.shape, (std::vector<int64_t>{kR, kD + kR}));
  EXPECT_EQ(gated.conf_w.shape, (std::vector<int64_t>{1, kD}));
  EXPECT_TRUE(DraftHeadsTrain(tiny_config(MarkovHead::None, Conf::Off)).params().empty());
}

TEST(DraftHeadsTrain, InitIsNormalForMatricesAndZeroForBiases) {
  DSparkConfig c = tiny_config(MarkovHead::Gated, Conf::WithMarkov);
  c.backbone.vocab_size = 4000;
  c.markov_rank = 16;
  DraftHeadsTrain heads(c);
  heads.init(42);
  double sum = 0, sq = 0;
  for (float x : heads.w2.value) sum += x, sq += double(x) * x;
  const double n = double(heads.w2.value.size());
  EXPECT_NEAR(sum / n, 0.0, 1e-3);
  EXPECT_NEAR(std::sqrt(sq / n), 0.02, 1e-3);
  for (float x : heads.gate_b.value) EXPECT_EQ(x, 0.0f);
  EXPECT_EQ(heads.conf_b.value[0], 0.0f);
  DraftHeadsTrain again(c);
  again.init(42);
  EXPECT_EQ(again.w1.value, heads.w1.value);
  EXPECT_NE(again.w1.value, heads.w2.value);
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(DraftHeadsTrain, RejectsMalformedBatches) {
  ThreadPool pool(1);
  DraftHeadsTrain heads = random_heads(tiny_config(MarkovHead::Vanilla, Conf::WithMarkov), 17);
  Batch b = random_batch(18);
  std::vector<float> d_h(kRows * kD), d_U(kRows * kV);
  auto call = [&](const HeadBatch& hb, const LossWeights& lw = {}) {
    return error_of([&] { heads_forward_backward(heads, hb, lw, d_h.data(), d_U.data(), pool); });
  };
  EXPECT_THAT(call(b.view()), HasSubstr("target_probs"));         // L1 and Conf need p_t
  EXPECT_EQ(call(b.view(), LossWeights{1, 0, 0}), "(no error)");  // CE alone does not
  b.pt.assign(kRows * kV, 1.0f / kV);
  HeadBatch hb = b.view();
  hb.n_rows = kRows - 1;
  EXPECT_THAT(call(hb), HasSubstr("whole number of blocks"));
  hb = b.view();
  hb.weight_sum = 0;
  EXPECT_THAT(call(hb), HasSubstr("weight_sum"));
  b.labels[0] = kV;
  EXPECT_THAT(call(b.view()), HasSubstr("label 12"));
  b.labels[0] = 0;
  b.prev[4] = -1;  // a weight-0 row: its previous token still feeds the heads
  EXPECT_THAT(call(b.view()), HasSubstr("previous token -1"));
  EXPECT_THAT(error_of([] { DraftHeadsTrain bad(tiny_config(MarkovHead::None, Conf::WithMarkov)); }),
              HasSubstr("markov_rank > 0"));
}

}  // namespace
}  // namespace dspark
