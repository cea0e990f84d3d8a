// The language-model trainer's forward and backward: gradients against finite differences
// (tied and untied embeddings), the training forward against the inference forward, and a
// short run that learns a sequence.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "train/adamw.h"
#include "train/lm_train_model.h"

namespace dspark {
namespace {

ModelConfig tiny_config(bool tied) {
  ModelConfig c;
  c.arch = Arch::Llama;
  c.n_layers = 2;
  c.dim = 16;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.ffn_dim = 24;
  c.vocab_size = 20;
  c.max_seq_len = 32;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.tied_embeddings = tied;
  return c;
}

std::vector<int> random_tokens(int n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int> t(static_cast<size_t>(n));
  for (int& x : t) x = int(rng.next_u64() % uint64_t(vocab));
  return t;
}

class LmGradient : public ::testing::TestWithParam<bool> {};

TEST_P(LmGradient, MatchesFiniteDifferences) {
  ThreadPool pool(2);
  LmTrainModel m(tiny_config(GetParam()));
  m.init(3);
  for (Param* p : m.params())  // larger weights: every path carries a visible gradient
    if (p->shape.size() == 2)
      for (float& x : p->value) x *= 10.0f;
  const int n_seqs = 2, length = 6;
  const std::vector<int> tokens = random_tokens(n_seqs * (length + 1), 20, 5);
  m.zero_grad();
  m.forward_backward(tokens.data(), n_seqs, length, pool);
  std::vector<std::vector<float>> grads;
  for (Param* p : m.params()) grads.push_back(p->grad);
  Rng pick(9);
  size_t index = 0;
  for (Param* p : m.params()) {
    const std::vector<float>& grad = grads[index++];
    for (int t = 0; t < 4; ++t) {
      const size_t i = size_t(pick.next_u64() % uint64_t(p->size()));
      const float saved = p->value[i], eps = 1e-2f * std::max(1.0f, std::fabs(saved));
      p->value[i] = saved + eps;
      const double up = m.loss(tokens.data(), n_seqs, length, pool);
      p->value[i] = saved - eps;
      const double down = m.loss(tokens.data(), n_seqs, length, pool);
      p->value[i] = saved;
      const double numeric = (up - down) / (2.0 * eps);
      EXPECT_NEAR(grad[i], numeric, 1e-3 + 3e-2 * std::fabs(numeric)) << p->name << "[" << i << "]";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Embeddings, LmGradient, ::testing::Values(false, true));

TEST(LmTrainModel, ForwardEqualsTheInferenceForward) {
  ThreadPool pool(2);
  const ModelConfig c = tiny_config(false);
  LmTrainModel m(c);
  m.init(4);
  const int length = 9;
  const std::vector<int> tokens = random_tokens(length + 1, c.vocab_size, 6);
  const double train_loss = m.loss(tokens.data(), 1, length, pool);

  const Model view = m.model_view(GenerationTokens{});
  Transformer tf(view, pool);
  KVCache cache(c, 1, c.max_seq_len);
  Batch b;
  for (int i = 0; i < length; ++i) b.add(tokens[size_t(i)], i, 0, true);
  std::vector<float> logits(size_t(length) * size_t(c.vocab_size));
  tf.forward(b, cache, logits.data());
  double loss = 0;
  for (int i = 0; i < length; ++i) {
    const float* l = logits.data() + size_t(i) * size_t(c.vocab_size);
    double mx = l[0], sum = 0;
    for (int v = 0; v < c.vocab_size; ++v) mx = std::max(mx, double(l[v]));
    for (int v = 0; v < c.vocab_size; ++v) sum += std::exp(double(l[v]) - mx);
    loss += mx + std::log(sum) - l[tokens[size_t(i) + 1]];
  }
  EXPECT_NEAR(train_loss, loss / length, 1e-5);
}

TEST(LmTrainModel, ShortRunMemorisesASequence) {
  ThreadPool pool(2);
  LmTrainModel m(tiny_config(true));
  m.init(1);
  const std::vector<int> tokens = random_tokens(3 * 11, 20, 8);
  AdamWConfig c;
  c.lr = 1e-2f;
  c.total_steps = 150;
  AdamW opt(m.params(), c);
  const double first = m.loss(tokens.data(), 3, 10, pool);
  for (int s = 0; s < c.total_steps; ++s) {
    m.zero_grad();
    m.forward_backward(tokens.data(), 3, 10, pool);
    opt.step(s);
  }
  const double last = m.loss(tokens.data(), 3, 10, pool);
  EXPECT_NEAR(first, std::log(20.0), 0.3);  // about uniform at the start
  EXPECT_LT(last, 0.3);
}

TEST(LmTrainModel, BadInputIsAnError) {
  ThreadPool pool(1);
  LmTrainModel m(tiny_config(false));
  const std::vector<int> bad{1, 2, 25, 3};
  EXPECT_THROW(m.loss(bad.data(), 1, 3, pool), Error);
  const std::vector<int> long_seq(40, 1);
  EXPECT_THROW(m.loss(long_seq.data(), 1, 39, pool), Error);
  ModelConfig c = tiny_config(false);
  c.n_kv_heads = 3;
  EXPECT_THROW(LmTrainModel bad_heads(c), Error);
}

}  // namespace
}  // namespace dspark
