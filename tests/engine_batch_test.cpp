// The continuous-batching engine (src/engine/batch_engine.h) on the real models of
// ../shared/models: with many requests at once, joining and leaving at different steps, each
// request's greedy output equals plain decoding of that request alone, for every scheduler and
// several drafters (a random-weight DSpark drafter with a confidence head among them, for the
// confidence-driven schedulers); sampling keeps the target's distribution; the queue,
// cancellation and bad requests behave.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "chi_square.h"
#include "core/error.h"
#include "draft/model_drafter.h"
#include "draft/ngram_drafter.h"
#include "engine/batch_engine.h"
#include "engine/drafter_setup.h"
#include "engine/engine_loop.h"
#include "engine/generator.h"
#include "random_drafter.h"
#include "test_util.h"

namespace dspark {
namespace {

using ::testing::HasSubstr;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Proposes each sequence's known continuation (found by its history among the references),
// wrong at every `wrong_every`-th position, so rounds see both accepts and rejects.
class ReferenceDrafter : public Drafter {
 public:
  ReferenceDrafter(std::vector<std::vector<int>> refs, int block, int wrong_every, int vocab)
      : refs_(std::move(refs)), block_(block), wrong_every_(wrong_every), vocab_(vocab) {}
  std::string name() const override { return "reference"; }
  int max_block() const override { return block_; }
  void reset(int) override {}
  void draft(const DraftInput& in, DraftBlock& out) override {
    out.clear();
    if (out.q.size() < size_t(in.max_tokens)) out.q.resize(size_t(in.max_tokens));
    for (const auto& ref : refs_) {
      if (ref.size() < size_t(in.n_tokens) || !std::equal(in.tokens, in.tokens + in.n_tokens, ref.begin()))
        continue;
      for (int k = 0; k < in.max_tokens && in.n_tokens + k < int(ref.size()); ++k) {
        int t = ref[size_t(in.n_tokens + k)];
        if ((in.n_tokens + k) % wrong_every_ == 0) t = (t + 1) % vocab_;
        out.tokens.push_back(t);
        out.q[size_t(k)] = {{t}, {1.0f}};
      }
      return;
    }
  }

 private:
  std::vector<std::vector<int>> refs_;
  int block_, wrong_every_, vocab_;
};

double flat_cost(int tokens) { return 1e-3 * (1.0 + 0.05 * tokens); }

struct Job {
  std::string prompt;
  int max_tokens;
  int join_step;  // submitted before this step
};

const std::vector<Job> kJobs = {{"Once upon a time", 40, 0}, {"", 25, 0},
                                {"The cat", 50, 0},          {"Lily and Tom", 30, 2},
                                {"One day", 45, 5},          {"The sun was", 20, 5},
                                {"Tim had a", 35, 9},        {"She saw a big", 28, 30}};

struct Finished {
  RequestOutput out;
  std::string text;
  bool done = false;
};

// Runs the jobs through a batch engine of 3 slots, submitting each at its step.
std::vector<Finished> run_jobs(BatchEngine& engine, const Generator& gen, float temperature,
                               uint64_t seed = 7) {
  std::vector<Finished> fin(kJobs.size());
  size_t next = 0;
  for (int step = 0; step < 100000; ++step) {
    for (; next < kJobs.size() && kJobs[next].join_step <= step; ++next) {
      EngineRequest r;
      r.prompt = gen.tokenize_prompt(kJobs[next].prompt);
      r.max_tokens = kJobs[next].max_tokens;
      r.sampling.temperature = temperature;
      r.seed = seed + next;
      Finished* f = &fin[next];
      r.on_text = [f](const std::string& t) { f->text += t; };
      r.on_done = [f](const RequestOutput& o) {
        EXPECT_FALSE(f->done) << "on_done called twice";
        f->out = o;
        f->done = true;
      };
      EXPECT_TRUE(engine.submit(int64_t(next), std::move(r)));
    }
    if (!engine.step() && next == kJobs.size()) break;
  }
  return fin;
}

// Each job decoded alone, greedily, without a drafter.
std::vector<GenerateResult> plain_greedy(Generator& gen) {
  std::vector<GenerateResult> plain;
  for (const Job& j : kJobs) {
    GenerateRequest req;
    req.prompt = j.prompt;
    req.max_tokens = j.max_tokens;
    req.sampling.temperature = 0;
    plain.push_back(gen.generate(req));
  }
  return plain;
}

// Every job finished with exactly its plain greedy tokens, text and finish reason; returns
// the jobs' statistics together.
SpecStats expect_plain(const std::vector<Finished>& fin, const std::vector<GenerateResult>& plain,
                       const std::string& label) {
  SpecStats total;
  for (size_t i = 0; i < kJobs.size(); ++i) {
    SCOPED_TRACE(label + " job " + std::to_string(i));
    EXPECT_TRUE(fin[i].done);
    EXPECT_EQ(fin[i].out.tokens, plain[i].tokens);
    EXPECT_EQ(fin[i].text, plain[i].text);
    EXPECT_EQ(fin[i].out.reason, plain[i].stopped ? FinishReason::Stop : FinishReason::Length);
    total.add(fin[i].out.spec);
  }
  return total;
}

class BatchGreedy : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(BatchGreedy, EveryRequestEqualsItsPlainGreedyDecoding) {
  const auto [model, drafter_kind] = GetParam();
  const LoadedModel lm = load_model(test::shared_model(model));
  ThreadPool pool(2);
  Generator gen(lm, pool);
  const std::vector<GenerateResult> plain = plain_greedy(gen);
  std::vector<std::vector<int>> refs;
  for (size_t i = 0; i < kJobs.size(); ++i) {
    refs.push_back(gen.tokenize_prompt(kJobs[i].prompt));
    refs.back().insert(refs.back().end(), plain[i].tokens.begin(), plain[i].tokens.end());
  }

  for (SchedulerKind kind :
       {SchedulerKind::None, SchedulerKind::Fixed, SchedulerKind::Prefix, SchedulerKind::Async}) {
    EngineOptions o;
    o.slots = 3;
    o.context = 128;
    o.prefill_chunk = 5;  // prompts arrive in several chunks, beside decoding requests
    o.scheduler = kind;
    o.verify_seconds = flat_cost;
    o.draft_gate = false;
    LoadedModel small;
    std::unique_ptr<Drafter> drafter;
    const std::string dk = drafter_kind;
    const int positions = BatchEngine::slot_context(o, *lm.model) + 1;
    if (dk == "reference") {
      drafter = std::make_unique<ReferenceDrafter>(refs, 5, 4, lm.model->config.vocab_size);
    } else if (dk == "draft-model") {
      auto m = std::make_shared<Model>(*lm.model);
      m->layers.resize(1);
      m->config.n_layers = 1;
      small = {m, lm.tokenizer};
      drafter = std::make_unique<ModelDrafter>(*small.model, pool, o.slots, positions);
    } else {
      drafter = std::make_unique<NgramDrafter>();
    }
    BatchEngine engine(lm, std::move(drafter), nullptr, pool, o);
    int max_requests = 0, drafted_steps = 0;
    engine.on_step = [&](const StepReport& r) {
      max_requests = std::max(max_requests, r.requests);
      drafted_steps += r.drafted;
    };
    const std::vector<Finished> fin = run_jobs(engine, gen, 0.0f);
    const SpecStats total =
        expect_plain(fin, plain, std::string(model) + " " + dk + " " + scheduler_name(kind));
    EXPECT_EQ(max_requests, 3) << "the slots ran requests together";
    EXPECT_EQ(engine.running(), 0);
    EXPECT_EQ(engine.kv_usage(), 0.0);
    if (kind == SchedulerKind::None) {
      EXPECT_EQ(drafted_steps, 0);
      EXPECT_EQ(total.drafted, 0);
    } else if (dk == "reference") {
      EXPECT_GT(total.accepted, 0);
      EXPECT_LT(total.accepted, total.verified) << "some drafts were rejected";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, BatchGreedy,
                         ::testing::Combine(::testing::Values("tinystories-656k",
                                                              "stories260k/stories260K_q80.bin"),
                                            ::testing::Values("reference", "draft-model", "ngram")));

// The schedulers that read the drafter's confidences, with a DSpark drafter the engine makes
// for its slots from a DrafterSource: every request still gets exactly its plain greedy output.
class BatchGreedyDSpark : public ::testing::TestWithParam<const char*> {};

TEST_P(BatchGreedyDSpark, EveryRequestEqualsItsPlainGreedyDecoding) {
  const std::string model = GetParam();
  const std::string path = test::shared_model(model);
  const LoadedModel lm = load_model(path);
  ThreadPool pool(2);
  Generator gen(lm, pool);
  const std::vector<GenerateResult> plain = plain_greedy(gen);
  const std::unique_ptr<DrafterSource> src =
      load_drafter(test::random_drafter(path, *lm.model, "--seed 3 --confidence 1"), "dspark", lm);
  ASSERT_EQ(src->kind, DrafterKind::DSpark);
  ASSERT_TRUE(make_drafter(*src, lm, pool, 1, 16)->has_confidence());

  for (SchedulerKind kind : {SchedulerKind::Threshold, SchedulerKind::Prefix, SchedulerKind::Async}) {
    EngineOptions o;
    o.slots = 3;
    o.context = 128;
    o.prefill_chunk = 5;
    o.scheduler = kind;
    o.conf_threshold = 0.4f;
    o.verify_seconds = flat_cost;
    o.draft_gate = false;  // a random drafter rarely pays: draft every step anyway
    BatchEngine engine(lm, src.get(), pool, o);
    ASSERT_TRUE(engine.speculative());
    int max_requests = 0;
    engine.on_step = [&](const StepReport& r) { max_requests = std::max(max_requests, r.requests); };
    const std::vector<Finished> fin = run_jobs(engine, gen, 0.0f);
    const SpecStats total = expect_plain(fin, plain, model + " dspark " + scheduler_name(kind));
    EXPECT_EQ(max_requests, 3) << "the slots ran requests together";
    EXPECT_EQ(engine.running(), 0);
    EXPECT_EQ(engine.kv_usage(), 0.0);
    EXPECT_GT(total.drafted, 0) << scheduler_name(kind);
    EXPECT_GT(total.verified, 0) << scheduler_name(kind) << ": some drafts reached the target";
    if (kind == SchedulerKind::Threshold) {
      EXPECT_LT(total.verified, total.drafted) << "0.4 cut some blocks short";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, BatchGreedyDSpark,
                         ::testing::Values("tinystories-656k", "stories260k/stories260K_q80.bin"));

// At temperature 1 with rejection sampling, a request's second token must follow the
// target's distribution given its first, whatever else is in the batch.
TEST(BatchSampling, SecondTokenFollowsTheTargetsDistribution) {
  const LoadedModel lm = load_model(test::shared_model("tinystories-656k"));
  ThreadPool pool(2);
  Generator gen(lm, pool);
  const std::vector<int> prompt = gen.tokenize_prompt("Once upon a time there was a");
  EngineOptions o;
  o.slots = 8;
  o.context = 64;
  o.max_waiting = 2000;
  o.scheduler = SchedulerKind::Fixed;
  auto m = std::make_shared<Model>(*lm.model);
  m->layers.resize(1);
  m->config.n_layers = 1;
  const LoadedModel small{m, lm.tokenizer};
  BatchEngine engine(lm, std::make_unique<ModelDrafter>(*small.model, pool, o.slots, 65), nullptr, pool, o);

  // Per first token: counts of second tokens.
  std::map<int, std::map<int, int>> seen;
  const int n = 1600;
  int done = 0, drafted = 0;
  for (int i = 0; i < n; ++i) {
    EngineRequest r;
    r.prompt = prompt;
    r.max_tokens = 3;  // the round after the prefill drafts one token: the second is verified
    r.sampling.temperature = 1.0f;
    r.sampling.top_k = 0;
    r.sampling.top_p = 1.0f;
    r.sampling.min_p = 0.0f;
    r.seed = 1000 + uint64_t(i);
    r.on_done = [&](const RequestOutput& out) {
      ++done;
      if (out.tokens.size() >= 2) ++seen[out.tokens[0]][out.tokens[1]];
      drafted += out.spec.drafted;
    };
    ASSERT_TRUE(engine.submit(i, std::move(r)));
  }
  while (engine.step()) {
  }
  ASSERT_EQ(done, n);
  EXPECT_GE(drafted, n) << "second tokens went through rejection sampling";
  // The most frequent first token: its second tokens against the target's distribution.
  auto top = std::max_element(seen.begin(), seen.end(), [](const auto& a, const auto& b) {
    int ca = 0, cb = 0;
    for (auto& [t, c] : a.second) ca += c;
    for (auto& [t, c] : b.second) cb += c;
    return ca < cb;
  });
  int count = 0;
  for (auto& [t, c] : top->second) count += c;
  ASSERT_GT(count, 200);
  std::vector<int> ctx = prompt;
  ctx.push_back(top->first);
  KVCache cache(lm.model->config, 1, 64);
  Transformer tf(*lm.model, pool);
  Batch b;
  for (int i = 0; i < int(ctx.size()); ++i) b.add(ctx[size_t(i)], i, 0, i == int(ctx.size()) - 1);
  std::vector<float> logits(size_t(lm.model->config.vocab_size));
  tf.forward(b, cache, logits.data());
  TokenProbs p;
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_k = 0;
  sp.top_p = 1.0f;
  sp.min_p = 0.0f;
  next_token_distribution(logits.data(), lm.model->config.vocab_size, sp, ctx.data(), int(ctx.size()), p);
  std::map<int, double> expected;
  for (size_t i = 0; i < p.ids.size(); ++i) expected[p.ids[i]] = p.probs[i];
  const test::ChiSquare chi = test::chi_square(top->second, expected, count);
  EXPECT_GT(chi.p_value, 1e-3) << chi.table;
}

TEST(BatchEngineQueue, WaitsCancelsAndRefuses) {
  const LoadedModel lm = load_model(test::shared_model("stories260k/stories260K_q80.bin"));
  ThreadPool pool(2);
  Generator gen(lm, pool);
  EngineOptions o;
  o.slots = 2;
  o.context = 64;
  o.max_waiting = 3;
  BatchEngine engine(lm, static_cast<const DrafterSource*>(nullptr), pool, o);
  std::map<int64_t, RequestOutput> done;
  auto request = [&](int max_tokens) {
    EngineRequest r;
    r.prompt = gen.tokenize_prompt("Once upon a time");
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;
    return r;
  };
  auto submit = [&](int64_t id, int max_tokens) {
    EngineRequest r = request(max_tokens);
    r.on_done = [&done, id](const RequestOutput& out) { done[id] = out; };
    return engine.submit(id, std::move(r));
  };
  for (int64_t id = 0; id < 3; ++id) ASSERT_TRUE(submit(id, 30));
  EXPECT_FALSE(submit(3, 30)) << "3 wait (the slots are taken at the first step): the queue is full";
  ASSERT_TRUE(engine.step());
  EXPECT_EQ(engine.running(), 2);
  EXPECT_EQ(engine.waiting(), 1);
  ASSERT_TRUE(submit(3, 30));
  ASSERT_TRUE(submit(4, 30));
  EXPECT_FALSE(submit(5, 30));
  engine.cancel(4);  // waiting: ends at once
  ASSERT_TRUE(done.count(4));
  EXPECT_EQ(done[4].reason, FinishReason::Cancelled);
  engine.cancel(0);  // running: ends at the next step and frees its slot for request 2
  ASSERT_TRUE(engine.step());
  ASSERT_TRUE(done.count(0));
  EXPECT_EQ(done[0].reason, FinishReason::Cancelled);
  EXPECT_EQ(engine.running(), 2);
  EXPECT_EQ(engine.waiting(), 1);
  while (engine.step()) {
  }
  for (int64_t id : {1, 2, 3}) {
    EXPECT_EQ(done[id].reason, FinishReason::Length) << id;
    EXPECT_EQ(done[id].tokens.size(), 30u) << id;
  }
  EXPECT_EQ(done.size(), 5u);

  EngineRequest bad = request(5);
  bad.prompt.assign(64, 1);
  EXPECT_THAT(error_of([&] { engine.check(bad); }), HasSubstr("the prompt has 64 tokens; a slot holds 64"));
  bad.prompt = {lm.model->config.vocab_size};
  EXPECT_THAT(error_of([&] { engine.check(bad); }), HasSubstr("outside the vocabulary"));
  bad.prompt.clear();
  EXPECT_THAT(error_of([&] { engine.check(bad); }), HasSubstr("empty"));
  EXPECT_THAT(error_of([&] { engine.check(request(0)); }), HasSubstr("max_tokens"));
  o.slots = 0;
  EXPECT_THAT(error_of([&] { BatchEngine(lm, static_cast<const DrafterSource*>(nullptr), pool, o); }),
              HasSubstr("--parallel"));
}

// The loop thread: requests from several threads, each answered once; the destructor ends
// what is still running.
TEST(EngineLoop, ServesConcurrentSubmitters) {
  const LoadedModel lm = load_model(test::shared_model("stories260k/stories260K_q80.bin"));
  ThreadPool pool(1);
  Generator gen(lm, pool);
  EngineOptions o;
  o.slots = 4;
  o.context = 96;
  BatchEngine engine(lm, static_cast<const DrafterSource*>(nullptr), pool, o);
  GenerateRequest plain_req;
  plain_req.prompt = "Once upon a time";
  plain_req.max_tokens = 20;
  plain_req.sampling.temperature = 0;
  const GenerateResult plain = gen.generate(plain_req);
  std::mutex mu;
  std::condition_variable cv;
  int finished = 0, same = 0;
  {
    EngineLoop loop(engine);
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c)
      clients.emplace_back([&] {
        for (int i = 0; i < 5; ++i) {
          EngineRequest r;
          r.prompt = gen.tokenize_prompt(plain_req.prompt);
          r.max_tokens = 20;
          r.sampling.temperature = 0;
          r.on_done = [&](const RequestOutput& out) {
            std::lock_guard lock(mu);
            ++finished;
            same += out.tokens == plain.tokens;
            cv.notify_all();
          };
          EXPECT_GE(loop.submit(std::move(r)), 0);
        }
      });
    for (auto& t : clients) t.join();
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return finished == 20; });
    EXPECT_EQ(same, 20);
    // A long request left running when the loop ends gets on_done with an error.
    EngineRequest r;
    r.prompt = gen.tokenize_prompt("Once");
    r.max_tokens = 90;
    r.on_done = [&](const RequestOutput&) { ++finished; };
    lock.unlock();
    EXPECT_GE(loop.submit(std::move(r)), 0);
  }
  EXPECT_EQ(finished, 21);
}

}  // namespace
}  // namespace dspark
