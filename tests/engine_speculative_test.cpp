// Speculative decoding end to end (src/engine/speculative_generator.h) on the real models of
// ../shared/models: lossless at temperature 0 for every drafter and scheduler, lossless in
// distribution at temperature > 0 (chi-square, alpha stated below), caches equal to a clean
// recomputation after any pattern of accepts and rejects, stop tokens inside accepted drafts,
// and clear errors for drafters that do not fit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "biased_acceptance.h"
#include "chi_square.h"
#include "core/error.h"
#include "draft/dspark_drafter.h"
#include "draft/model_drafter.h"
#include "draft/ngram_drafter.h"
#include "draft/replay_drafter.h"
#include "engine/drafter_setup.h"
#include "engine/speculative_generator.h"
#include "model/transformer.h"
#include "random_drafter.h"
#include "test_util.h"

namespace dspark {
namespace {

using ::testing::HasSubstr;

constexpr double kAlpha = 1e-3;  // significance level of the distribution tests

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const char* kModels[] = {"tinystories-656k", "stories260k/stories260K_q80.bin",
                         "aidreams260k/aidreams260K.bin"};

// The target with only its first n layers: a draft model sharing the target's vocabulary.
LoadedModel first_layers(const LoadedModel& target, int n) {
  auto m = std::make_shared<Model>(*target.model);
  m->layers.resize(size_t(n));
  m->config.n_layers = n;
  return {m, target.tokenizer};
}

// Proposes the known continuation, wrong at every `wrong_every`-th position.
class SometimesWrongDrafter : public Drafter {
 public:
  SometimesWrongDrafter(std::vector<int> reference, int block, int wrong_every, int vocab)
      : ref_(std::move(reference)), block_(block), wrong_every_(wrong_every), vocab_(vocab) {}
  std::string name() const override { return "sometimes-wrong"; }
  int max_block() const override { return block_; }
  void reset(int) override {}
  void draft(const DraftInput& in, DraftBlock& out) override {
    out.clear();
    if (out.q.size() < size_t(in.max_tokens)) out.q.resize(size_t(in.max_tokens));
    for (int k = 0; k < in.max_tokens && in.n_tokens + k < int(ref_.size()); ++k) {
      int t = ref_[size_t(in.n_tokens + k)];
      if ((in.n_tokens + k) % wrong_every_ == 0) t = (t + 1) % vocab_;
      out.tokens.push_back(t);
      out.q[size_t(k)] = {{t}, {1.0f}};
    }
  }

 private:
  std::vector<int> ref_;
  int block_, wrong_every_, vocab_;
};

GenerateRequest greedy_request(const std::string& prompt, int n) {
  GenerateRequest r;
  r.prompt = prompt;
  r.max_tokens = n;
  r.sampling.temperature = 0;
  return r;
}

// A cost curve where verifying more tokens is cheap, so the prefix scheduler admits drafts.
double flat_cost(int tokens) { return 1e-3 * (1.0 + 0.05 * tokens); }

class GreedyLossless : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(GreedyLossless, OutputEqualsPlainGreedyDecoding) {
  const std::string path = test::shared_model(std::get<0>(GetParam()));
  const std::string kind = std::get<1>(GetParam());
  const LoadedModel lm = load_model(path);
  ThreadPool pool(2);
  for (const std::string prompt : {"", "Once upon a time"}) {
    const GenerateRequest req = greedy_request(prompt, 70);
    const GenerateResult plain = Generator(lm, pool).generate(req);

    SpecOptions so;
    std::unique_ptr<DrafterSource> src;
    std::unique_ptr<Drafter> drafter;
    LoadedModel small;
    const int cap = plain.n_prompt + req.max_tokens + 1;
    if (kind.rfind("dspark", 0) == 0 || kind == "dflash") {
      const std::string args = kind == "dflash"       ? "--head none --confidence 0"
                               : kind == "dspark-rnn" ? "--seed 3 --head rnn"
                                                      : "--seed 3";
      src = load_drafter(test::random_drafter(path, *lm.model, args), kind == "dflash" ? "dflash" : "dspark",
                         lm);
      drafter = make_drafter(*src, lm, pool, 1, cap);
      if (kind == "dspark-threshold") {
        so.scheduler = SchedulerKind::Threshold;
        so.conf_threshold = 0.4f;
      }
      if (kind == "dspark-prefix") {
        so.scheduler = SchedulerKind::Prefix;
        so.verify_seconds = flat_cost;
      }
    } else if (kind == "draft-model") {
      small = first_layers(lm, 1);
      drafter = std::make_unique<ModelDrafter>(*small.model, pool, 1, cap);
    } else if (kind == "ngram") {
      drafter = std::make_unique<NgramDrafter>();
    } else {  // oracles
      std::vector<int> ref = Generator(lm, pool).tokenize_prompt(prompt);
      ref.insert(ref.end(), plain.tokens.begin(), plain.tokens.end());
      if (kind == "oracle-right")
        drafter = std::make_unique<ReplayDrafter>(ref, 6);
      else
        drafter = std::make_unique<SometimesWrongDrafter>(ref, 6, 5, lm.model->config.vocab_size);
    }
    SpeculativeGenerator gen(lm, *drafter, pool, so);
    const GenerateResult spec = gen.generate(req);
    EXPECT_EQ(spec.tokens, plain.tokens) << kind << " prompt '" << prompt << "'";
    EXPECT_EQ(spec.text, plain.text);
    ASSERT_TRUE(spec.spec);
    const SpecStats& st = *spec.spec;
    EXPECT_EQ(st.committed + 1, int64_t(spec.tokens.size()));  // the first token comes from the prefill
    if (kind == "oracle-right") {
      EXPECT_EQ(st.accepted, st.verified) << "an always-right drafter is always accepted";
      EXPECT_GT(st.tau(), 5.0);
    }
    if (kind == "oracle-wrong") {
      EXPECT_LT(st.accepted, st.verified);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    SharedModels, GreedyLossless,
    ::testing::Combine(::testing::ValuesIn(kModels),
                       ::testing::Values("dspark-fixed", "dspark-rnn", "dspark-threshold", "dspark-prefix",
                                         "dflash", "draft-model", "ngram", "oracle-right", "oracle-wrong")));

// Without a confidence head the prefix scheduler goes by the acceptance measured so far: an
// always-right drafter soon has its whole block verified, an always-wrong one a short prefix
// (verification that costs more per token makes long wrong prefixes clearly not worth it).
TEST(PrefixWithoutConfidenceHead, VerifiesWhatTheMeasuredAcceptancePaysFor) {
  const LoadedModel lm = load_model(test::shared_model("tinystories-656k"));
  ThreadPool pool(2);
  const GenerateRequest req = greedy_request("Once upon a time", 120);
  const GenerateResult plain = Generator(lm, pool).generate(req);
  std::vector<int> ref = Generator(lm, pool).tokenize_prompt(req.prompt);
  ref.insert(ref.end(), plain.tokens.begin(), plain.tokens.end());

  SpecOptions so;
  so.scheduler = SchedulerKind::Prefix;
  so.draft_gate = false;  // every round drafts: the lengths alone are under test
  so.verify_seconds = [](int tokens) { return 1e-3 * (1.0 + 0.3 * tokens); };
  ReplayDrafter right(ref, 6);
  SometimesWrongDrafter wrong(ref, 6, 1, lm.model->config.vocab_size);
  const GenerateResult r = SpeculativeGenerator(lm, right, pool, so).generate(req);
  const GenerateResult w = SpeculativeGenerator(lm, wrong, pool, so).generate(req);
  EXPECT_EQ(r.tokens, plain.tokens);
  EXPECT_EQ(w.tokens, plain.tokens);
  EXPECT_GT(r.spec->tau(), 4.0);
  EXPECT_EQ(w.spec->accepted, 0);
  EXPECT_LT(double(w.spec->verified) / double(w.spec->rounds), 0.5);
}

// Copies of the caches' rows must equal a clean recomputation bit for bit.
void expect_same_rows(const KVCache& a, const KVCache& b, int n_layers, int kv_dim, int n, const char* what) {
  ASSERT_GE(a.length(0), n);
  ASSERT_GE(b.length(0), n);
  for (int l = 0; l < n_layers; ++l)
    for (int p = 0; p < n; ++p) {
      ASSERT_EQ(std::memcmp(a.key(l, 0, p), b.key(l, 0, p), size_t(kv_dim) * 4), 0)
          << what << " key l" << l << " p" << p;
      ASSERT_EQ(std::memcmp(a.value(l, 0, p), b.value(l, 0, p), size_t(kv_dim) * 4), 0)
          << what << " value l" << l << " p" << p;
    }
}

TEST(Rollback, CachesEqualACleanRecomputation) {
  const std::string path = test::shared_model("tinystories-656k");
  const LoadedModel lm = load_model(path);
  const Model& m = *lm.model;
  ThreadPool pool(2);
  GenerateRequest req;
  req.prompt = "Once upon a time";
  req.max_tokens = 60;
  req.sampling.temperature = 0.9f;  // rejections and acceptances of every length
  for (uint64_t seed : {1u, 2u, 3u}) {
    req.seed = seed;
    const auto src = load_drafter(test::random_drafter(path, m, "--seed 5 --block-size 5"), "dspark", lm);
    auto drafter = make_drafter(*src, lm, pool, 1, 128);
    const int P = int(Generator(lm, pool).tokenize_prompt(req.prompt).size());
    LoadedModel small = first_layers(lm, 1);
    ModelDrafter model_drafter(*small.model, pool, 1, 128);
    for (Drafter* d : {drafter.get(), static_cast<Drafter*>(&model_drafter)}) {
      SpeculativeGenerator gen(lm, *d, pool, SpecOptions{});
      const GenerateResult r = gen.generate(req);
      ASSERT_GT(r.spec->rounds, 5);
      std::vector<int> all = Generator(lm, pool).tokenize_prompt(req.prompt);
      all.insert(all.end(), r.tokens.begin(), r.tokens.end());
      const int cached = int(all.size()) - 1;  // the last token is never in the cache
      EXPECT_EQ(gen.cache()->length(0), cached);

      // Clean recomputation: the committed tokens in one batch, with the drafter's taps.
      KVCache clean(m.config, 1, 128);
      Transformer tf(m, pool);
      Batch b;
      for (int p = 0; p < cached; ++p) b.add(all[size_t(p)], p, 0, p == cached - 1);
      std::vector<float> logits(size_t(m.config.vocab_size));
      const std::vector<int> layers = src->dspark->config.target_layer_ids;
      std::vector<float> taps(size_t(cached) * layers.size() * size_t(m.config.dim));
      HiddenTaps ht{layers, taps.data()};
      tf.forward(b, clean, logits.data(), &ht);
      expect_same_rows(*gen.cache(), clean, m.config.n_layers, m.config.kv_dim(), cached, "target");

      if (d == drafter.get()) {
        const auto& dd = static_cast<DSparkDrafter&>(*d);
        const KVCache& dc = dd.forward().cache();
        const int ctx = dc.length(0);
        EXPECT_GE(ctx, P);
        EXPECT_LE(ctx, cached);
        DSparkForward fresh(*src->dspark, pool, 1, 128);
        fresh.absorb(0, taps.data(), ctx);
        const ModelConfig& bc = src->dspark->config.backbone;
        expect_same_rows(dc, fresh.cache(), bc.n_layers, bc.kv_dim(), ctx, "drafter");
      } else {
        const KVCache& dc = model_drafter.cache();
        const int ctx = dc.length(0);
        EXPECT_LE(ctx, cached);
        KVCache fresh(small.model->config, 1, 128);
        Batch fb;
        for (int p = 0; p < ctx; ++p) fb.add(all[size_t(p)], p, 0, p == ctx - 1);
        Transformer(*small.model, pool).forward(fb, fresh, logits.data());
        expect_same_rows(dc, fresh, 1, small.model->config.kv_dim(), ctx, "draft model");
      }
    }
  }
}

TEST(StopToken, InsideAcceptedDraftsEndsTheRoundThere) {
  const LoadedModel base = load_model(test::shared_model("tinystories-656k"));
  ThreadPool pool(2);
  const GenerateRequest req = greedy_request("Once upon a time", 60);
  const GenerateResult free_run = Generator(base, pool).generate(req);
  // Make the 12th generated token a stop token: plain decoding stops there.
  LoadedModel lm = base;
  auto m = std::make_shared<Model>(*base.model);
  m->tokens.eos = {free_run.tokens[11]};
  lm.model = m;
  const GenerateResult plain = Generator(lm, pool).generate(req);
  ASSERT_TRUE(plain.stopped);
  std::vector<int> ref = Generator(lm, pool).tokenize_prompt(req.prompt);
  ref.insert(ref.end(), free_run.tokens.begin(), free_run.tokens.end());
  ReplayDrafter oracle(ref, 6);
  SpeculativeGenerator gen(lm, oracle, pool, SpecOptions{});
  const GenerateResult spec = gen.generate(req);
  EXPECT_EQ(spec.tokens, plain.tokens);
  EXPECT_TRUE(spec.stopped);
  EXPECT_EQ(spec.text, plain.text);
}

TEST(RepetitionPenalty, AppliedAlikeToDraftsAndTarget) {
  // The penalty depends on the tokens before each position, drafts included: both sides
  // must see the same history for greedy output to stay the target's.
  const std::string path = test::shared_model("tinystories-656k");
  const LoadedModel lm = load_model(path);
  ThreadPool pool(2);
  GenerateRequest req = greedy_request("Once upon a time", 80);
  req.sampling.repeat_penalty = 1.3f;
  req.sampling.repeat_last_n = 16;
  const GenerateResult plain = Generator(lm, pool).generate(req);
  const GenerateResult unpenalized = Generator(lm, pool).generate(greedy_request("Once upon a time", 80));
  ASSERT_NE(plain.tokens, unpenalized.tokens) << "the penalty should change this output";
  NgramDrafter ngram;
  LoadedModel small = first_layers(lm, 1);
  ModelDrafter model_drafter(*small.model, pool, 1, 128);
  const auto src = load_drafter(test::random_drafter(path, *lm.model, "--seed 3"), "dspark", lm);
  auto dspark = make_drafter(*src, lm, pool, 1, 128);
  for (Drafter* d : {static_cast<Drafter*>(&ngram), static_cast<Drafter*>(&model_drafter), dspark.get()}) {
    SpeculativeGenerator gen(lm, *d, pool, SpecOptions{});
    const GenerateResult r = gen.generate(req);
    EXPECT_EQ(r.tokens, plain.tokens) << d->name();
    EXPECT_GT(r.spec->verified, 0) << d->name();
  }
}

// --- temperature > 0: the distribution of generated tokens is the target's -----------------

// Exact marginals of generated tokens 0..n-1 by enumerating every prefix the sampling
// transform allows (small with top-k), each with a fresh forward pass.
std::vector<std::map<int, double>> exact_marginals(const LoadedModel& lm, ThreadPool& pool,
                                                   const std::vector<int>& prompt, const SamplingParams& sp,
                                                   int n) {
  const Model& m = *lm.model;
  std::vector<std::map<int, double>> out(static_cast<size_t>(n));
  std::function<void(std::vector<int>&, double, int)> walk = [&](std::vector<int>& seq, double prob, int t) {
    if (t == n) return;
    KVCache cache(m.config, 1, int(seq.size()));
    Batch b;
    for (int p = 0; p < int(seq.size()); ++p) b.add(seq[size_t(p)], p, 0, p == int(seq.size()) - 1);
    std::vector<float> logits(size_t(m.config.vocab_size));
    Transformer(m, pool).forward(b, cache, logits.data());
    TokenProbs d;
    next_token_distribution(logits.data(), m.config.vocab_size, sp, seq.data(), int(seq.size()), d);
    for (size_t i = 0; i < d.ids.size(); ++i) {
      out[size_t(t)][d.ids[i]] += prob * d.probs[i];
      seq.push_back(d.ids[i]);
      walk(seq, prob * d.probs[i], t + 1);
      seq.pop_back();
    }
  };
  std::vector<int> seq = prompt;
  walk(seq, 1.0, 0);
  return out;
}

SamplingParams small_support() {
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_k = 4;
  sp.top_p = 1.0f;
  sp.min_p = 0.0f;
  return sp;
}

// Worst p-value over generated positions 0..3 of N seeded runs with the given drafter setup.
double worst_p_value(const std::string& kind, AcceptRule rule, std::string* table) {
  const std::string path = test::shared_model("aidreams260k/aidreams260K.bin");
  const LoadedModel lm = load_model(path);
  ThreadPool pool(1);
  const int n = 4, N = 2000;
  GenerateRequest req;
  req.prompt = "";
  req.max_tokens = n;
  req.sampling = small_support();
  const std::vector<int> prompt = Generator(lm, pool).tokenize_prompt(req.prompt);
  const auto expected = exact_marginals(lm, pool, prompt, req.sampling, n);

  SpecOptions so;
  so.accept = rule;
  std::unique_ptr<DrafterSource> src;
  std::unique_ptr<Drafter> drafter;
  LoadedModel small;
  if (kind.rfind("dspark", 0) == 0) {
    src = load_drafter(test::random_drafter(path, *lm.model, "--seed 9 --block-size 3"), "dspark", lm);
    drafter = make_drafter(*src, lm, pool, 1, 16);
    if (kind == "dspark-threshold") {
      so.scheduler = SchedulerKind::Threshold;
      so.conf_threshold = 0.3f;
    }
    if (kind == "dspark-prefix") {
      so.scheduler = SchedulerKind::Prefix;
      so.verify_seconds = flat_cost;
      so.draft_gate = false;  // drafting a tiny model never pays; verify drafts anyway
    }
  } else {
    small = first_layers(lm, 3);
    drafter = std::make_unique<ModelDrafter>(*small.model, pool, 1, 16);
  }
  SpeculativeGenerator gen(lm, *drafter, pool, so);
  std::vector<std::map<int, int>> counts(static_cast<size_t>(n));
  int64_t accepted = 0;
  for (int i = 0; i < N; ++i) {
    req.seed = 1000 + uint64_t(i);
    const GenerateResult r = gen.generate(req);
    EXPECT_EQ(int(r.tokens.size()), n);
    for (int t = 0; t < n && t < int(r.tokens.size()); ++t) ++counts[size_t(t)][r.tokens[size_t(t)]];
    accepted += r.spec->accepted;
  }
  // A random-weight DSpark drafter is rarely right (about 4% of runs accept a draft here), so
  // it mostly tests the residual; the draft model (3 of the target's 4 layers) tests acceptance.
  EXPECT_GT(accepted, kind == "draft-model" ? N / 10 : N / 100) << kind << ": too few accepted drafts";
  double worst = 1;
  for (int t = 0; t < n; ++t) {
    const test::ChiSquare c = test::chi_square(counts[size_t(t)], expected[size_t(t)], N);
    if (c.p_value < worst) {
      worst = c.p_value;
      *table = kind + " position " + std::to_string(t) + "\n" + c.table;
    }
  }
  return worst;
}

class SampledLossless : public ::testing::TestWithParam<const char*> {};

TEST_P(SampledLossless, GeneratedTokensFollowTheTargetDistribution) {
  std::string table;
  EXPECT_GT(worst_p_value(GetParam(), accept_drafts, &table), kAlpha) << table;
}

INSTANTIATE_TEST_SUITE_P(Drafters, SampledLossless,
                         ::testing::Values("dspark-fixed", "dspark-threshold", "dspark-prefix",
                                           "draft-model"));

TEST(SampledLossless, ABiasedAcceptanceRuleFails) {
  std::string table;
  EXPECT_LT(worst_p_value("draft-model", test::residual_is_p, &table), kAlpha)
      << "the test cannot see a biased rule";
}

// --- bad input --------------------------------------------------------------------------

TEST(SpecErrors, OptionsOutsideTheirRange) {
  NgramDrafter ngram;
  SpecOptions o;
  o.draft_max = 9;
  EXPECT_THAT(error_of([&] { validate_spec_options(o, ngram); }), HasSubstr("--draft-max 9 is outside 1..8"));
  o = {};
  o.conf_threshold = 1.5f;
  EXPECT_THAT(error_of([&] { validate_spec_options(o, ngram); }),
              HasSubstr("--conf-threshold 1.5 is outside [0, 1]"));
  o = {};
  o.scheduler = SchedulerKind::Threshold;
  EXPECT_THAT(
      error_of([&] { validate_spec_options(o, ngram); }),
      HasSubstr("the threshold scheduler needs confidences; the ngram drafter has no confidence head"));
}

TEST(SpecErrors, DrafterThatDoesNotFitItsTarget) {
  const std::string ts = test::shared_model("tinystories-656k");
  const LoadedModel tiny = load_model(ts);
  const LoadedModel aidreams = load_model(test::shared_model("aidreams260k/aidreams260K.bin"));
  const LoadedModel stories = load_model(test::shared_model("stories260k/stories260K_q80.bin"));
  // A drafter made for TinyStories-656K (hidden 128) against aidreams260K (hidden 64).
  const std::string drafter = test::random_drafter(ts, *tiny.model, "--seed 1");
  EXPECT_THAT(error_of([&] { load_drafter(drafter, "", aidreams); }), HasSubstr("hidden"));
  // No heads: dflash only.
  const std::string bare = test::random_drafter(ts, *tiny.model, "--head none --confidence 0");
  EXPECT_THAT(error_of([&] { load_drafter(bare, "dspark", tiny); }), HasSubstr("use --spec dflash"));
  EXPECT_EQ(load_drafter(bare, "", tiny)->kind, DrafterKind::DFlash);
  EXPECT_EQ(load_drafter(drafter, "", tiny)->kind, DrafterKind::DSpark);
  // A draft model with another vocabulary.
  EXPECT_THAT(
      error_of([&] { check_draft_vocabulary(*stories.tokenizer, *aidreams.tokenizer, *aidreams.model); }),
      HasSubstr("must share the target's vocabulary"));
  EXPECT_THAT(error_of([&] { check_draft_vocabulary(*tiny.tokenizer, *stories.tokenizer, *stories.model); }),
              HasSubstr("the draft model's tokenizer has 512 tokens, the target's 2048"));
  // A model folder is not a DSpark checkpoint, and the other way round.
  EXPECT_THAT(error_of([&] { load_drafter(ts, "dspark", tiny); }), HasSubstr("not a DSpark drafter folder"));
  EXPECT_THAT(error_of([&] { load_drafter(drafter, "draft-model", tiny); }), HasSubstr("use --spec dspark"));
  EXPECT_THAT(error_of([&] { load_drafter("", "", tiny); }), HasSubstr("no drafter given"));
  EXPECT_THAT(error_of([&] { load_drafter("", "dspark", tiny); }), HasSubstr("needs a drafter"));
}

}  // namespace
}  // namespace dspark
