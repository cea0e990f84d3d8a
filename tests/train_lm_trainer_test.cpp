// Pre-training end to end: a short run lowers the loss and writes a GGUF that the inference
// code loads with the trained logits; the same seed repeats the same loss curve; an
// interrupted run resumes to the same parameters.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "model/kv_cache.h"
#include "model/load.h"
#include "model/transformer.h"
#include "test_util.h"
#include "train/lm_trainer.h"

namespace dspark {
namespace {

const std::string kTokenizer = std::string(DSPARK_SHARED_MODELS) + "/tinystories-656k/tokenizer.json";

const char* kText =
    "Once upon a time, there was a little cat named Tom. Tom liked to play with a red ball in the garden. "
    "One day, the ball rolled under a big tree. Tom looked and looked, but he could not find it. "
    "His friend the dog came to help. Together they found the ball and played all day. ";

struct Fixture {
  ThreadPool pool{2};
  std::unique_ptr<Tokenizer> tok = Tokenizer::from_hf_json(kTokenizer);
  std::vector<int> train, heldout;
  Fixture() {
    std::string text;
    for (int i = 0; i < 6; ++i) text += kText;
    train = tok->encode(text, true);
    heldout = tok->encode(kText, true);
  }
};

LmTrainOptions options(const std::string& out, int steps) {
  LmTrainOptions o;
  o.out_dir = out;
  ModelConfig& c = o.config;
  c.arch = Arch::Llama;
  c.n_layers = 2;
  c.dim = 32;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.ffn_dim = 64;
  c.vocab_size = 2048;
  c.max_seq_len = 64;
  c.tied_embeddings = true;
  o.optim.lr = 1e-2f;
  o.steps = steps;
  o.batch = 4;
  o.seq_len = 32;
  o.save_every = steps;
  o.eval_every = steps;
  o.log_every = 5;
  return o;
}

TEST(LmTrainer, ShortRunLearnsAndWritesAGgufWithTheTrainedLogits) {
  Fixture f;
  const std::string out = test::temp_dir();
  LmTrainer t(options(out, 40), f.train, f.heldout, *f.tok, f.pool);
  const double before = t.heldout_loss();
  std::vector<LmTrainProgress> reports;
  t.run([&](const LmTrainProgress& p) { reports.push_back(p); });
  ASSERT_FALSE(reports.empty());
  EXPECT_LT(reports.back().heldout_loss, before - 1.0);
  EXPECT_NEAR(reports.back().heldout_perplexity, std::exp(reports.back().heldout_loss), 1e-6);
  EXPECT_EQ(reports.back().tokens_seen, 40 * 4 * 32);

  // The GGUF (llama layout: Q/K rows permuted for adjacent-pair RoPE) gives the same logits.
  const LoadedModel loaded = load_model(out + "/model.gguf");
  EXPECT_EQ(loaded.tokenizer->vocab_size(), 2048);
  const Model view = t.model().model_view(GenerationTokens{});
  const int n = 12;
  std::vector<float> a(size_t(n) * 2048), b(a.size());
  for (auto [m, logits] :
       {std::pair<const Model*, float*>{&view, a.data()}, {loaded.model.get(), b.data()}}) {
    Transformer tf(*m, f.pool);
    KVCache cache(m->config, 1, 64);
    Batch batch;
    for (int i = 0; i < n; ++i) batch.add(f.heldout[size_t(i)], i, 0, true);
    tf.forward(batch, cache, logits);
  }
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-3 * (1 + std::fabs(a[i]))) << i;
}

TEST(LmTrainer, SameSeedSameLossCurveAndResumeRepeatsTheRun) {
  Fixture f;
  const auto curve = [&](const std::string& out, int stop_at) {
    std::vector<double> losses;
    LmTrainOptions o = options(out, 20);
    o.save_every = 10;
    LmTrainer t(o, f.train, f.heldout, *f.tok, f.pool);
    struct Stop {};
    try {
      t.run([&](const LmTrainProgress& p) {
        losses.push_back(p.loss);
        if (p.step == stop_at) throw Stop{};
      });
    } catch (const Stop&) {
    }
    std::vector<std::vector<float>> values;
    for (Param* p : t.model().params()) values.push_back(p->value);
    return std::make_pair(losses, values);
  };
  const std::string a = test::temp_dir(), b = test::temp_dir(), c = test::temp_dir();
  const auto first = curve(a, -1), second = curve(b, -1);
  EXPECT_EQ(first.first, second.first);
  EXPECT_EQ(first.second, second.second);

  curve(c, 10);  // interrupted after the checkpoint of step 10
  LmTrainOptions o = options(c, 20);
  o.save_every = 10;
  LmTrainer resumed(o, f.train, f.heldout, *f.tok, f.pool);
  EXPECT_EQ(resumed.start_step(), 10);
  resumed.run();
  std::vector<std::vector<float>> values;
  for (Param* p : resumed.model().params()) values.push_back(p->value);
  EXPECT_EQ(values, first.second);
}

TEST(LmTrainer, RefusesBadOptions) {
  Fixture f;
  LmTrainOptions o = options(test::temp_dir(), 5);
  o.seq_len = 100;  // beyond the context of 64
  EXPECT_THROW(LmTrainer(o, f.train, f.heldout, *f.tok, f.pool), Error);
  o = options(test::temp_dir(), 5);
  o.config.vocab_size = 1000;  // not the tokenizer's
  EXPECT_THROW(LmTrainer(o, f.train, f.heldout, *f.tok, f.pool), Error);
  o = options(test::temp_dir(), 5);
  EXPECT_THROW(LmTrainer(o, std::vector<int>{1, 2, 3}, f.heldout, *f.tok, f.pool), Error);
}

}  // namespace
}  // namespace dspark
