// The one forward entry point over flattened batches: mixed sequences, rollback, hidden
// taps and bidirectional blocks. Batch invariance is bit for bit: speculative decoding at
// temperature 0 relies on verification logits equalling decode logits exactly.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/error.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/loaders.h"
#include "model/transformer.h"
#include "test_util.h"

namespace dspark {
namespace {

class BatchTest : public ::testing::Test {
 protected:
  void SetUp() override { model = load_hf_folder(test::shared_model("tinystories-656k")); }
  size_t vocab() const { return size_t(model->config.vocab_size); }

  // Logits of every position of one sequence, decoded one token at a time.
  std::vector<std::vector<float>> one_by_one(const std::vector<int>& tokens) {
    KVCache cache(model->config, 1, int(tokens.size()));
    Transformer tf(*model, pool);
    std::vector<std::vector<float>> out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      Batch b;
      b.add(tokens[i], int(i), 0, true);
      out.emplace_back(vocab());
      tf.forward(b, cache, out.back().data());
    }
    return out;
  }

  std::unique_ptr<Model> model;
  ThreadPool pool{2};
};

std::vector<int> random_tokens(std::mt19937& g, int n) {
  std::vector<int> t(static_cast<size_t>(n));
  for (auto& x : t) x = int(g() % 2000) + 3;
  return t;
}

TEST_F(BatchTest, MixedBatchesOfSeveralSequencesMatchDecodingBitForBit) {
  std::mt19937 g(99);
  for (int max_k : {1, 2, 3, 5, 8, 16}) {
    const int n_seqs = 3;
    std::vector<std::vector<int>> seqs;
    for (int s = 0; s < n_seqs; ++s) seqs.push_back(random_tokens(g, 20 + 7 * s));
    KVCache cache(model->config, n_seqs, 64);
    Transformer tf(*model, pool);
    std::vector<size_t> done(n_seqs, 0);
    std::vector<std::vector<std::vector<float>>> got(n_seqs);
    while (true) {
      Batch b;
      std::vector<std::pair<int, size_t>> rows;  // (seq, position) of each logit row
      for (int s = 0; s < n_seqs; ++s) {
        const size_t k = std::min<size_t>(1 + g() % size_t(max_k), seqs[size_t(s)].size() - done[size_t(s)]);
        for (size_t i = 0; i < k; ++i) {
          const size_t pos = done[size_t(s)]++;
          b.add(seqs[size_t(s)][pos], int(pos), s, true);
          rows.emplace_back(s, pos);
        }
      }
      if (b.size() == 0) break;
      std::vector<float> logits(rows.size() * vocab());
      tf.forward(b, cache, logits.data());
      for (size_t r = 0; r < rows.size(); ++r)
        got[size_t(rows[r].first)].emplace_back(logits.begin() + std::ptrdiff_t(r * vocab()),
                                                logits.begin() + std::ptrdiff_t((r + 1) * vocab()));
    }
    for (int s = 0; s < n_seqs; ++s) {
      const auto ref = one_by_one(seqs[size_t(s)]);
      ASSERT_EQ(ref.size(), got[size_t(s)].size());
      for (size_t p = 0; p < ref.size(); ++p)
        ASSERT_EQ(0, std::memcmp(ref[p].data(), got[size_t(s)][p].data(), vocab() * 4))
            << "K up to " << max_k << ", sequence " << s << ", position " << p;
    }
  }
}

TEST_F(BatchTest, RollbackThenContinueEqualsAFreshRun) {
  std::mt19937 g(5);
  const std::vector<int> prefix = random_tokens(g, 12), rejected = random_tokens(g, 6),
                         accepted = random_tokens(g, 6);
  KVCache cache(model->config, 2, 40);
  Transformer tf(*model, pool);
  // Sequence 1 is a fork of sequence 0 after the prefix; both see a rejected block.
  Batch b;
  for (size_t i = 0; i < prefix.size(); ++i) b.add(prefix[i], int(i), 0, false);
  tf.forward(b, cache, nullptr);
  cache.copy(0, 1);
  for (int round = 0; round < 3; ++round) {  // draft, reject, roll back: repeatedly
    b.clear();
    for (int s = 0; s < 2; ++s)
      for (size_t i = 0; i < rejected.size(); ++i) b.add(rejected[i], int(prefix.size() + i), s, false);
    tf.forward(b, cache, nullptr);
    cache.truncate(0, int(prefix.size()));
    cache.truncate(1, int(prefix.size()));
  }
  b.clear();
  for (int s = 0; s < 2; ++s)
    for (size_t i = 0; i < accepted.size(); ++i) b.add(accepted[i], int(prefix.size() + i), s, true);
  std::vector<float> logits(2 * accepted.size() * vocab());
  tf.forward(b, cache, logits.data());
  std::vector<int> full = prefix;
  full.insert(full.end(), accepted.begin(), accepted.end());
  const auto ref = one_by_one(full);
  for (size_t s = 0; s < 2; ++s)
    for (size_t i = 0; i < accepted.size(); ++i)
      ASSERT_EQ(0, std::memcmp(ref[prefix.size() + i].data(),
                               logits.data() + (s * accepted.size() + i) * vocab(), vocab() * 4))
          << "sequence " << s << " position " << i;
}

TEST_F(BatchTest, HiddenTapsAreTheRawLayerOutputs) {
  const std::vector<int> tokens = {1, 400, 59, 261, 12};
  const int dim = model->config.dim, L = model->config.n_layers;
  KVCache cache(model->config, 1, 8);
  Transformer tf(*model, pool);
  Batch b;
  for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], int(i), 0, true);
  HiddenTaps taps{{-1, L - 1}, nullptr};
  std::vector<float> hidden(tokens.size() * 2 * size_t(dim)), logits(tokens.size() * vocab());
  taps.out = hidden.data();
  tf.forward(b, cache, logits.data(), &taps);
  std::vector<float> row(static_cast<size_t>(dim)), normed(static_cast<size_t>(dim)), own(vocab());
  for (size_t t = 0; t < tokens.size(); ++t) {
    // Layer -1 is the embedding row itself.
    dequantize_row(model->tok_embeddings, tokens[t], row.data());
    ASSERT_EQ(0, std::memcmp(row.data(), hidden.data() + t * 2 * size_t(dim), size_t(dim) * 4));
    // The last layer's raw output, final-normed and through the head, gives the logits.
    const float* last = hidden.data() + (t * 2 + 1) * size_t(dim);
    rmsnorm(normed.data(), last, static_cast<const float*>(model->output_norm.data), dim,
            model->config.norm_eps);
    matmul(model->output, normed.data(), 1, own.data(), pool);
    ASSERT_EQ(0, std::memcmp(own.data(), logits.data() + t * vocab(), vocab() * 4)) << t;
  }
  HiddenTaps bad{{L}, hidden.data()};
  b.clear();
  b.add(1, 5, 0, false);
  EXPECT_THROW(tf.forward(b, cache, nullptr, &bad), Error);
}

TEST_F(BatchTest, BidirectionalBlockSeesItsLaterTokens) {
  const std::vector<int> context = {1, 400, 59, 261};
  auto run_block = [&](const std::vector<int>& block, bool bidirectional) {
    KVCache cache(model->config, 1, 16);
    Transformer tf(*model, pool);
    Batch b;
    for (size_t i = 0; i < context.size(); ++i) b.add(context[i], int(i), 0, false);
    tf.forward(b, cache, nullptr);
    b.clear();
    for (size_t i = 0; i < block.size(); ++i) b.add(block[i], int(context.size() + i), 0, true);
    if (bidirectional) b.make_bidirectional(0, b.size());
    std::vector<float> logits(block.size() * vocab());
    tf.forward(b, cache, logits.data());
    return logits;
  };
  const auto a = run_block({12, 13, 14}, true), changed_last = run_block({12, 13, 99}, true);
  const auto causal = run_block({12, 13, 14}, false), causal_changed = run_block({12, 13, 99}, false);
  // The first block token sees the last one only in a bidirectional block.
  EXPECT_NE(0, std::memcmp(a.data(), changed_last.data(), vocab() * 4));
  EXPECT_EQ(0, std::memcmp(causal.data(), causal_changed.data(), vocab() * 4));
  // For the first token the two masks differ.
  EXPECT_NE(0, std::memcmp(a.data(), causal.data(), vocab() * 4));
}

}  // namespace
}  // namespace dspark
