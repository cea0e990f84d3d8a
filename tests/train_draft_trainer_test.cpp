// The training loop end to end on TinyStories-656K: a short run lowers the loss and raises
// the acceptance length of decoding; checkpoints load in the decoder with the same drafts;
// an interrupted run resumes to the same parameters; options that do not fit are refused.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "draft/dspark_forward.h"
#include "draft/dspark_synth.h"
#include "engine/drafter_setup.h"
#include "engine/speculative_generator.h"
#include "model/load.h"
#include "test_util.h"
#include "train/draft_trainer.h"
#include "train/target_cache_builder.h"

namespace dspark {
namespace {

const std::string kTarget = std::string(DSPARK_SHARED_MODELS) + "/tinystories-656k";
const std::vector<std::string> kPrompts = {"Once upon a time, there was a little dog named Max who",
                                           "Tom and his sister found a big box in the",
                                           "Lily went to the park with her mom and"};

// A small drafter (narrow MLP, 2 heads, rank 8) with short blocks keeps the run fast under
// sanitizers.
DSparkConfig tiny_drafter(const ModelConfig& target, MarkovHead head = MarkovHead::Vanilla) {
  DSparkSynthOptions o;
  o.block_size = 4;
  o.n_layers = 1;
  o.n_taps = 1;
  o.markov_rank = 8;
  o.markov_head = head;
  o.confidence_head = true;
  DSparkConfig c = synth_dspark_config(target, o);
  c.backbone.ffn_dim = 64;
  c.backbone.n_heads = 2;
  c.backbone.n_kv_heads = 1;
  return c;
}

struct Fixture {
  ThreadPool pool{2};
  LoadedModel target = load_model(kTarget);
  std::string cache_dir = test::temp_dir();
  Fixture() {
    TargetCacheOptions o;
    o.taps = {0};
    o.dtype = CacheDType::F32;
    o.max_new_tokens = 40;
    o.sampling = SamplingParams{};
    o.sampling.temperature = 0;  // greedy responses: the decoding below replays them
    build_target_cache(target, pool, kPrompts, cache_dir, o);
  }
};

DraftTrainOptions options(const DSparkConfig& c, const std::string& out, int steps) {
  DraftTrainOptions t;
  t.out_dir = out;
  t.config = c;
  t.steps = steps;
  t.batch = 3;
  t.max_anchors = 24;
  t.optim.lr = 1e-2f;
  t.save_every = steps;
  t.save_type = DType::F32;
  return t;
}

// Mean tokens per round of greedy speculative decoding over the prompts, full blocks verified.
double greedy_tau(Fixture& f, const std::string& drafter_dir) {
  auto source = load_drafter(drafter_dir, "", f.target);
  auto drafter = make_drafter(*source, f.target, f.pool, 1, 256);
  SpecOptions so;
  so.scheduler = SchedulerKind::Fixed;
  SpeculativeGenerator gen(f.target, *drafter, f.pool, so);
  double committed = 0, rounds = 0;
  for (const std::string& p : kPrompts) {
    GenerateRequest req;
    req.prompt = p;
    req.max_tokens = 40;
    req.sampling.temperature = 0;
    const GenerateResult r = gen.generate(req);
    committed += r.spec->tau() * r.spec->rounds;
    rounds += r.spec->rounds;
  }
  return committed / rounds;
}

TEST(DraftTrainer, ShortRunLowersTheLossAndRaisesTau) {
  Fixture f;
  const TargetCacheReader cache(f.cache_dir);
  const DSparkConfig c = tiny_drafter(f.target.model->config);
  const std::string untrained = test::temp_dir(), trained = test::temp_dir();
  {
    DraftTrainer t(options(c, untrained, 1), cache, *f.target.model, f.pool);
    t.run();  // one step at a warm-up learning rate: practically the initialisation
  }
  std::vector<double> losses;
  DraftTrainer t(options(c, trained, 150), cache, *f.target.model, f.pool);
  t.run([&](const DraftTrainProgress& p) { losses.push_back(p.loss.total); });
  ASSERT_GE(losses.size(), 3u);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
  const double tau0 = greedy_tau(f, untrained), tau1 = greedy_tau(f, trained);
  EXPECT_GT(tau1, tau0 + 0.5) << "untrained " << tau0 << ", trained " << tau1;
}

TEST(DraftTrainer, CheckpointGivesTheInMemoryModelsDrafts) {
  Fixture f;
  const TargetCacheReader cache(f.cache_dir);
  const DSparkConfig c = tiny_drafter(f.target.model->config, MarkovHead::Rnn);
  const std::string out = test::temp_dir();
  DraftTrainer t(options(c, out, 5), cache, *f.target.model, f.pool);
  t.run();
  TargetSample s;
  cache.read(0, s);
  const TrainSequence seq{s.size(), s.tokens.data(), s.loss_mask.data(), s.taps.data(),
                          s.final_hidden.data()};
  const int anchor = s.size() - 6;
  t.model().forward(seq, {anchor}, f.pool);

  auto loaded = load_dspark(out);
  attach_target(*loaded, *f.target.model);
  DSparkForward fwd(*loaded, f.pool, 1, 128);
  fwd.draft(0, s.taps.data(), anchor, s.tokens[size_t(anchor)]);
  const int V = c.vocab_size();
  for (int k = 0; k < c.block_size; ++k)
    for (int v = 0; v < V; ++v)
      ASSERT_NEAR(fwd.base_logits(k)[v], t.model().base_logits()[size_t(k) * size_t(V) + size_t(v)], 1e-4)
          << "position " << k << " token " << v;
}

TEST(DraftTrainer, InterruptedRunResumesToTheSameParameters) {
  Fixture f;
  const TargetCacheReader cache(f.cache_dir);
  const DSparkConfig c = tiny_drafter(f.target.model->config);
  const std::string whole = test::temp_dir(), halves = test::temp_dir();
  DraftTrainOptions o = options(c, whole, 8);
  o.save_every = 4;
  DraftTrainer straight(o, cache, *f.target.model, f.pool);
  straight.run();

  o.out_dir = halves;
  {
    DraftTrainer first(o, cache, *f.target.model, f.pool);
    struct Stop {};
    try {
      first.run([](const DraftTrainProgress& p) {
        if (p.step == 4) throw Stop{};  // after the checkpoint of step 4
      });
    } catch (const Stop&) {
    }
  }
  DraftTrainer second(o, cache, *f.target.model, f.pool);
  EXPECT_EQ(second.start_step(), 4);
  second.run();
  std::vector<Param*> a = straight.model().params(), b = second.model().params();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i]->value, b[i]->value) << a[i]->name;

  // Another run's options in the same folder are refused, naming what differs.
  DraftTrainOptions other = o;
  other.batch = 2;
  try {
    DraftTrainer refused(other, cache, *f.target.model, f.pool);
    FAIL() << "resumed a run with another batch";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch"), std::string::npos) << e.what();
  }
}

TEST(DraftTrainer, RefusesACacheWithOtherTaps) {
  Fixture f;
  const TargetCacheReader cache(f.cache_dir);
  DSparkConfig c = tiny_drafter(f.target.model->config);
  c.target_layer_ids = {-1};
  try {
    DraftTrainer t(options(c, test::temp_dir(), 1), cache, *f.target.model, f.pool);
    FAIL() << "accepted a cache of other taps";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("taps"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dspark
