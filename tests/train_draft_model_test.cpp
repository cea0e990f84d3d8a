// The drafter's training forward/backward: gradients of the whole model against finite
// differences, and the training forward against the decoder's forward for the same weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "draft/dspark_forward.h"
#include "draft/dspark_synth.h"
#include "model/load.h"
#include "test_util.h"
#include "train/draft_train_model.h"

namespace dspark {
namespace {

const std::string kTarget = std::string(DSPARK_SHARED_MODELS) + "/tinystories-656k";

DSparkConfig small_config(const ModelConfig& target, MarkovHead head, bool confidence, int layers = 1) {
  DSparkSynthOptions o;
  o.block_size = 3;
  o.n_layers = layers;
  o.n_taps = 1;
  o.markov_rank = head == MarkovHead::None ? 0 : 4;
  o.markov_head = head;
  o.confidence_head = confidence;
  DSparkConfig c = synth_dspark_config(target, o);
  c.target_layer_ids = {0};
  // A narrow backbone keeps the finite differences fast; the shapes stay realistic in kind.
  c.backbone.ffn_dim = 24;
  return c;
}

// A sequence with random features: the drafter does not care where its inputs came from.
struct RandomSequence {
  std::vector<int> tokens;
  std::vector<uint8_t> mask;
  std::vector<float> taps, hidden;
  TrainSequence view() const {
    return TrainSequence{int(tokens.size()), tokens.data(), mask.data(), taps.data(), hidden.data()};
  }
};

RandomSequence random_sequence(int n, int vocab, int tap_dim, int dim, uint64_t seed) {
  Rng rng(seed);
  RandomSequence s;
  for (int i = 0; i < n; ++i) {
    s.tokens.push_back(int(rng.next_u64() % uint64_t(vocab - 1)));
    s.mask.push_back(i >= 2 ? 1 : 0);  // the first two positions are "prompt"
  }
  for (int i = 0; i < n * tap_dim; ++i) s.taps.push_back(2.0f * rng.uniform() - 1.0f);
  for (int i = 0; i < n * dim; ++i) s.hidden.push_back(2.0f * rng.uniform() - 1.0f);
  return s;
}

// Larger weights than the 0.02 default, so every path carries a gradient finite differences see.
void scale_weights(DraftTrainModel& m, float factor) {
  for (Param* p : m.params())
    if (p->shape.size() == 2)
      for (float& x : p->value) x *= factor;
}

class DraftModelGradient : public ::testing::TestWithParam<MarkovHead> {};

TEST_P(DraftModelGradient, MatchesFiniteDifferences) {
  ThreadPool pool(2);
  auto target = load_model(kTarget);
  const DSparkConfig c = small_config(target.model->config, GetParam(), GetParam() != MarkovHead::None);
  DraftTrainModel m(c, *target.model);
  m.init(7);
  scale_weights(m, 10.0f);
  const RandomSequence seq = random_sequence(12, c.vocab_size(), c.tap_dim(), c.dim(), 3);
  const std::vector<int> anchors{2, 5, 9};
  DraftLossConfig loss;
  loss.weights.conf = 0;  // its target c* depends on p_d but is held constant by the backward pass
  m.zero_grad();
  m.forward_backward(seq.view(), anchors, loss, pool);
  std::vector<std::vector<float>> grads;  // the evaluations below add more into Param::grad
  for (Param* p : m.params()) grads.push_back(p->grad);

  Rng pick(11);
  size_t param_index = 0;
  int checked = 0;
  for (Param* p : m.params()) {
    const std::vector<float>& grad = grads[param_index++];
    if (p->name.starts_with("confidence_head")) continue;  // no loss reaches it without Conf
    for (int t = 0; t < 3; ++t) {
      const size_t i = size_t(pick.next_u64() % uint64_t(p->size()));
      const float analytic = grad[i], saved = p->value[i];
      const float eps = 1e-2f * std::max(1.0f, std::fabs(saved));
      p->value[i] = saved + eps;
      const double up = m.forward_backward(seq.view(), anchors, loss, pool).total;
      p->value[i] = saved - eps;
      const double down = m.forward_backward(seq.view(), anchors, loss, pool).total;
      p->value[i] = saved;
      const double numeric = (up - down) / (2.0 * eps);
      EXPECT_NEAR(analytic, numeric, 2e-3 + 3e-2 * std::fabs(numeric)) << p->name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 30);
}

INSTANTIATE_TEST_SUITE_P(Heads, DraftModelGradient,
                         ::testing::Values(MarkovHead::Vanilla, MarkovHead::Rnn, MarkovHead::None));

TEST(DraftTrainModel, ForwardEqualsTheDecodersForward) {
  ThreadPool pool(2);
  auto target = load_model(kTarget);
  const DSparkConfig c = small_config(target.model->config, MarkovHead::Vanilla, true, 2);
  DraftTrainModel m(c, *target.model);
  m.init(5);
  scale_weights(m, 5.0f);
  const RandomSequence seq = random_sequence(20, c.vocab_size(), c.tap_dim(), c.dim(), 9);
  const std::vector<int> anchors{3, 11, 17};
  m.forward(seq.view(), anchors, pool);

  const std::string dir = test::temp_dir();
  write_dspark_checkpoint(dir, c, m.weights_view());
  auto loaded = load_dspark(dir);
  attach_target(*loaded, *target.model);
  const int B = c.block_size, d = c.dim(), V = c.vocab_size();
  for (size_t j = 0; j < anchors.size(); ++j) {
    // Decoding at anchor a: context rows 0..a-1 absorbed, then the block.
    DSparkForward f(*loaded, pool, 1, 64);
    const int a = anchors[j];
    f.draft(0, seq.taps.data(), a, seq.tokens[size_t(a)]);
    for (int k = 0; k < B; ++k) {
      const size_t row = j * size_t(B) + size_t(k);
      for (int i = 0; i < d; ++i)
        ASSERT_NEAR(f.hidden(k)[i], m.hidden()[row * size_t(d) + size_t(i)], 2e-4)
            << "block " << j << " k " << k;
      for (int v = 0; v < V; v += 7)
        ASSERT_NEAR(f.base_logits(k)[v], m.base_logits()[row * size_t(V) + size_t(v)], 2e-4)
            << "block " << j << " k " << k;
    }
  }
}

TEST(DraftTrainModel, VocabularyChunksGiveTheSameLossAndGradients) {
  ThreadPool pool(2);
  auto target = load_model(kTarget);
  const DSparkConfig c = small_config(target.model->config, MarkovHead::Rnn, true);
  DraftTrainModel whole(c, *target.model), chunked(c, *target.model);
  whole.init(2);
  chunked.init(2);
  chunked.vocab_chunk_floats = int64_t(c.vocab_size()) * c.block_size;  // one block per chunk
  const RandomSequence seq = random_sequence(16, c.vocab_size(), c.tap_dim(), c.dim(), 4);
  const std::vector<int> anchors{2, 6, 9, 13};
  const DraftLossConfig loss;
  const LossTerms a = whole.forward_backward(seq.view(), anchors, loss, pool);
  const LossTerms b = chunked.forward_backward(seq.view(), anchors, loss, pool);
  EXPECT_NEAR(a.total, b.total, 1e-9 + 1e-6 * std::fabs(a.total));
  EXPECT_NEAR(a.conf, b.conf, 1e-9 + 1e-6 * std::fabs(a.conf));
  std::vector<Param*> pa = whole.params(), pb = chunked.params();
  for (size_t i = 0; i < pa.size(); ++i)
    for (size_t j = 0; j < pa[i]->grad.size(); ++j)
      ASSERT_NEAR(pa[i]->grad[j], pb[i]->grad[j], 1e-6 + 1e-4 * std::fabs(pa[i]->grad[j]))
          << pa[i]->name << "[" << j << "]";
}

TEST(DraftTrainModel, AnchorsAreResponsePositionsWithAResponseSuccessor) {
  RandomSequence s = random_sequence(10, 50, 4, 4, 1);
  s.mask = {0, 0, 1, 1, 1, 0, 1, 1, 1, 1};
  Rng rng(3);
  const std::vector<int> all = sample_anchors(s.view(), 100, rng);
  EXPECT_EQ(all, (std::vector<int>{2, 3, 6, 7, 8}));
  const std::vector<int> some = sample_anchors(s.view(), 3, rng);
  ASSERT_EQ(some.size(), 3u);
  EXPECT_TRUE(std::is_sorted(some.begin(), some.end()));
  for (int a : some) EXPECT_NE(std::find(all.begin(), all.end(), a), all.end());
}

TEST(DraftTrainModel, RefusesADrafterThatDoesNotFitTheTarget) {
  auto target = load_model(kTarget);
  DSparkConfig c = small_config(target.model->config, MarkovHead::Vanilla, true);
  c.target_layer_ids = {1};  // the last layer may not be tapped
  EXPECT_THROW(DraftTrainModel bad(c, *target.model), Error);
}

}  // namespace
}  // namespace dspark
