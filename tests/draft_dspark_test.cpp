// The DSpark drafter (src/draft): its forward pass and heads against the independent NumPy
// oracle tests/reference/dspark_ref.py on small random checkpoints, configuration and
// checkpoint errors, and the writer's round trip.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/thread_pool.h"
#include "draft/dspark_forward.h"
#include "draft/dspark_heads.h"
#include "draft/dspark_model.h"
#include "formats/safetensors.h"
#include "model/loaders.h"
#include "test_util.h"

namespace dspark {
namespace {

namespace fs = std::filesystem;
using test::run_command;
using ::testing::AllOf;
using ::testing::HasSubstr;

const std::string kPython = "/usr/bin/python3";
const std::string kRef = DSPARK_REFERENCE_DIR;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void run_python(const std::string& args) {
  std::string log;
  ASSERT_EQ(run_command(kPython + " " + args + " 2>&1", &log), 0) << args << "\n" << log;
}

// A random Qwen3 target (hidden 64, 4 heads, 2 KV heads, head_dim 16, vocab 96, 2 layers).
std::string make_target(int seed, bool tied) {
  const std::string dir = test::temp_dir() + "/target";
  run_python(kRef + "/make_random_model.py --arch qwen3 --out " + dir + " --seed " + std::to_string(seed) +
             " --tied " + (tied ? "1" : "0"));
  return dir;
}

std::string make_drafter(const std::string& target, const std::string& args) {
  const std::string dir = test::temp_dir() + "/drafter";
  run_python(kRef + "/make_random_drafter.py --target " + target + " --out " + dir + " " + args);
  return dir;
}

std::vector<float> read_floats(const std::string& path) {
  const std::string bytes = test::read_file(path);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

std::vector<float> random_taps(int rows, int width, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(size_t(rows) * size_t(width));
  for (float& x : v) x = normal(rng);
  return v;
}

// One drafting round as the decoding loop will see it; prev = x_{k-1} (teacher forced).
struct Round {
  int pending;  // context rows absorbed before the block
  int anchor;
  std::vector<int> prev;
};

// Outputs of one round, each flattened row-major.
struct Outputs {
  std::vector<float> h, U, l, state, conf;
};

Outputs engine_round(DSparkForward& drafter, DSparkHeads& heads, int seq, const float* taps, const Round& r) {
  drafter.draft(seq, taps, r.pending, r.anchor);
  const DSparkConfig& c = drafter.model().config;
  const size_t B = size_t(c.block_size), d = size_t(c.dim()), V = size_t(c.vocab_size());
  Outputs o;
  o.h.assign(drafter.hidden(), drafter.hidden() + B * d);
  o.U.assign(drafter.base_logits(), drafter.base_logits() + B * V);
  o.l = o.U;
  std::vector<float> state(size_t(heads.state_size()), 0.0f);  // s_{-1} = 0
  for (size_t k = 0; k < B; ++k) {
    heads.add_markov_bias(drafter.hidden(int(k)), r.prev[k], state.data(), o.l.data() + k * V);
    o.state.insert(o.state.end(), state.begin(), state.end());
    if (heads.has_confidence()) o.conf.push_back(heads.confidence_logit(drafter.hidden(int(k)), r.prev[k]));
  }
  return o;
}

// The rounds, one after another, on one drafter sequence.
std::vector<Outputs> engine_rounds(const DSparkModel& m, const std::vector<float>& taps,
                                   const std::vector<Round>& rounds, int n_threads = 2) {
  ThreadPool pool(n_threads);
  int total = 0;
  for (const Round& r : rounds) total += r.pending;
  DSparkForward drafter(m, pool, 1, total + m.config.block_size);
  DSparkHeads heads(m, pool);
  std::vector<Outputs> out;
  int done = 0;
  for (const Round& r : rounds) {
    out.push_back(
        engine_round(drafter, heads, 0, taps.data() + size_t(done) * size_t(m.config.tap_dim()), r));
    done += r.pending;
    EXPECT_EQ(drafter.context_length(0), done) << "the block's K/V must be dropped again";
  }
  return out;
}

std::vector<Outputs> reference_rounds(const std::string& drafter, const std::string& target,
                                      const std::vector<float>& taps, int width,
                                      const std::vector<Round>& rounds) {
  const std::string dir = test::temp_dir();
  test::write_file(dir + "/taps.bin",
                   std::string(reinterpret_cast<const char*>(taps.data()), taps.size() * sizeof(float)));
  nlohmann::json blocks = nlohmann::json::array();
  int s = 0;
  for (const Round& r : rounds) {
    s += r.pending;
    blocks.push_back({{"s", s}, {"anchor", r.anchor}, {"prev", r.prev}});
  }
  const nlohmann::json in = {{"taps", "taps.bin"}, {"n_rows", int(taps.size()) / width}, {"blocks", blocks}};
  test::write_file(dir + "/in.json", in.dump());
  run_python(kRef + "/dspark_ref.py --drafter " + drafter + " --target " + target + " --input " + dir +
             "/in.json --out " + dir + "/out");
  std::vector<Outputs> out(rounds.size());
  for (size_t i = 0; i < rounds.size(); ++i) {
    const std::string p = dir + "/out/block" + std::to_string(i) + ".";
    out[i].h = read_floats(p + "h.bin");
    out[i].U = read_floats(p + "U.bin");
    out[i].l = read_floats(p + "l.bin");
    if (fs::exists(p + "state.bin")) out[i].state = read_floats(p + "state.bin");
    if (fs::exists(p + "conf.bin")) out[i].conf = read_floats(p + "conf.bin");
  }
  return out;
}

// Rounds for a block size: 10 context rows, then 3 more (the cache keeps the first 10 and
// drops the first block's K/V).
std::vector<Round> two_rounds(int B, int vocab, int first_context = 10) {
  std::vector<Round> rounds = {{first_context, 5, {}}, {3, 41, {}}};
  for (Round& r : rounds) {
    r.prev.push_back(r.anchor);
    for (int k = 1; k < B; ++k) r.prev.push_back((r.anchor * 7 + k * 13) % vocab);
  }
  return rounds;
}

struct Case {
  std::string name;
  std::string drafter_args;
  bool tied_target = false;
  int first_context = 10;
};

class AgainstReference : public ::testing::TestWithParam<Case> {};

TEST_P(AgainstReference, BlockOutputsAndHeadsMatchNumpy) {
  const Case& p = GetParam();
  const std::string target_dir = make_target(11, p.tied_target);
  const std::string drafter_dir = make_drafter(target_dir, "--seed 7 " + p.drafter_args);
  auto target = load_hf_folder(target_dir);
  auto m = load_dspark(drafter_dir);
  attach_target(*m, *target);
  const DSparkConfig& c = m->config;
  const std::vector<Round> rounds = two_rounds(c.block_size, c.vocab_size(), p.first_context);
  const std::vector<float> taps = random_taps(p.first_context + 3, c.tap_dim(), 3);

  const std::vector<Outputs> ours = engine_rounds(*m, taps, rounds);
  const std::vector<Outputs> ref = reference_rounds(drafter_dir, target_dir, taps, c.tap_dim(), rounds);
  for (size_t i = 0; i < rounds.size(); ++i) {
    SCOPED_TRACE("round " + std::to_string(i));
    // fp32 activations against a float64 oracle over two draft layers, with weights that
    // both read exactly (bf16 and f16 widen to fp32 without rounding): one bound for all.
    EXPECT_LT(max_abs_diff(ours[i].h, ref[i].h), 1e-4f);
    EXPECT_LT(max_abs_diff(ours[i].U, ref[i].U), 1e-4f);
    EXPECT_LT(max_abs_diff(ours[i].l, ref[i].l), 1e-4f);
    EXPECT_LT(max_abs_diff(ours[i].state, ref[i].state), 1e-4f);
    EXPECT_LT(max_abs_diff(ours[i].conf, ref[i].conf), 1e-4f);
    EXPECT_EQ(ours[i].state.size(),
              size_t(c.block_size) * size_t(c.markov_head == MarkovHead::Rnn ? c.markov_rank : 0));
    EXPECT_EQ(ours[i].conf.size(), c.confidence_head ? size_t(c.block_size) : 0u);
    std::printf("[ diffs    ] round %zu: h %.2e  U %.2e  l %.2e  state %.2e  conf %.2e\n", i,
                double(max_abs_diff(ours[i].h, ref[i].h)), double(max_abs_diff(ours[i].U, ref[i].U)),
                double(max_abs_diff(ours[i].l, ref[i].l)), double(max_abs_diff(ours[i].state, ref[i].state)),
                double(max_abs_diff(ours[i].conf, ref[i].conf)));
    if (c.markov_rank > 0) {
      EXPECT_GT(max_abs_diff(ours[i].l, ours[i].U), 1e-3f) << "the Markov bias must show";
    }
  }
}

std::vector<Case> reference_cases() {
  std::vector<Case> cases;
  // The matrix the brief asks for: vanilla and rnn heads, confidence on and off, f32 and bf16.
  int b = 4;
  for (const char* head : {"vanilla", "rnn"})
    for (int conf : {1, 0})
      for (const char* dtype : {"f32", "bf16"}) {
        cases.push_back({std::string(head) + (conf ? "_conf_" : "_noconf_") + dtype,
                         std::string("--head ") + head + " --confidence " + std::to_string(conf) +
                             " --dtype " + dtype + " --block-size " + std::to_string(b) +
                             " --layer-ids=-1,0"});
        b = b == 7 ? 4 : b + 1;  // block sizes 4..7
      }
  // Embedding and LM head stored in the checkpoint (a bf16 copy that differs from the f32 target).
  cases.push_back(
      {"vanilla_embed_in_checkpoint_bf16", "--head vanilla --embed 1 --dtype bf16 --block-size 7"});
  // A tied target: with no lm_head in the checkpoint, the head is the target's embedding.
  cases.push_back({"rnn_tied_target_sharded", "--head rnn --shards 2 --layer-ids=0 --block-size 5", true});
  cases.push_back({"gated_conf_f16", "--head gated --dtype f16 --layer-ids=-1,0"});
  cases.push_back({"confidence_without_markov_input", "--head vanilla --conf-markov 0 --block-size 6"});
  cases.push_back({"no_markov_head_dflash_style", "--head none --confidence 0 --block-size 7"});
  // A context longer than the drafter's absorption chunk (64 rows).
  cases.push_back({"long_context_rnn", "--head rnn --layer-ids=-1,0 --block-size 5", false, 70});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Drafters, AgainstReference, ::testing::ValuesIn(reference_cases()),
                         [](const auto& param_info) { return param_info.param.name; });

// ---------------------------------------------------------------------------
// Behaviour of the forward pass that the decoding loop relies on.

struct Fixture {
  std::string target_dir, drafter_dir;
  std::unique_ptr<Model> target;
  std::unique_ptr<DSparkModel> drafter;
};

Fixture small_fixture(const std::string& args = "--head rnn --layer-ids=-1,0 --block-size 5") {
  Fixture f;
  f.target_dir = make_target(21, false);
  f.drafter_dir = make_drafter(f.target_dir, "--seed 9 " + args);
  f.target = load_hf_folder(f.target_dir);
  f.drafter = load_dspark(f.drafter_dir);
  attach_target(*f.drafter, *f.target);
  return f;
}

void expect_same(const Outputs& a, const Outputs& b) {
  EXPECT_EQ(a.h, b.h);
  EXPECT_EQ(a.U, b.U);
  EXPECT_EQ(a.l, b.l);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.conf, b.conf);
}

TEST(DSparkForward, BitIdenticalHoweverContextIsAbsorbedOrThreaded) {
  Fixture f = small_fixture();
  const DSparkModel& m = *f.drafter;
  const std::vector<float> taps = random_taps(13, m.config.tap_dim(), 5);
  const std::vector<Round> rounds = two_rounds(m.config.block_size, m.config.vocab_size());
  const std::vector<Outputs> base = engine_rounds(m, taps, rounds, 2);
  expect_same(engine_rounds(m, taps, rounds, 1)[1], base[1]);

  // Absorb row by row, then draft with nothing pending: the same second round.
  ThreadPool pool(2);
  DSparkForward drafter(m, pool, 3, 32);
  DSparkHeads heads(m, pool);
  for (int p = 0; p < 13; ++p) drafter.absorb(2, taps.data() + size_t(p) * size_t(m.config.tap_dim()), 1);
  Round r = rounds[1];
  r.pending = 0;
  expect_same(engine_round(drafter, heads, 2, nullptr, r), base[1]);
  // Another sequence of the same drafter is independent of it.
  expect_same(engine_round(drafter, heads, 0, taps.data(), rounds[0]), base[0]);
  EXPECT_EQ(drafter.context_length(2), 13);
  EXPECT_EQ(drafter.context_length(1), 0);
}

TEST(DSparkForward, RejectsBadCallsWithoutChangingTheCache) {
  Fixture f = small_fixture();
  const DSparkModel& m = *f.drafter;
  ThreadPool pool(1);
  DSparkForward drafter(m, pool, 1, 12);
  const std::vector<float> taps = random_taps(10, m.config.tap_dim(), 1);
  EXPECT_THAT(error_of([&] { drafter.draft(0, taps.data(), 4, 96); }), HasSubstr("anchor token 96"));
  EXPECT_THAT(error_of([&] { drafter.draft(1, taps.data(), 4, 3); }), HasSubstr("no sequence 1"));
  // 8 context rows + a block of 5 do not fit 12 positions.
  EXPECT_THAT(error_of([&] { drafter.draft(0, taps.data(), 8, 3); }), HasSubstr("holds 12"));
  EXPECT_THAT(error_of([&] { drafter.absorb(0, nullptr, 2); }), HasSubstr("no tap data"));
  EXPECT_EQ(drafter.context_length(0), 0);
  drafter.draft(0, taps.data(), 7, 3);  // 7 + 5 = 12 fits
  EXPECT_EQ(drafter.context_length(0), 7);

  DSparkHeads heads(m, pool);
  std::vector<float> state(size_t(heads.state_size())), bias(size_t(m.config.vocab_size()));
  EXPECT_THAT(error_of([&] { heads.markov_bias(drafter.hidden(0), -1, state.data(), bias.data()); }),
              HasSubstr("previous token -1"));
}

TEST(DSparkForward, NeedsAnEmbeddingFromTheCheckpointOrTheTarget) {
  Fixture f = small_fixture();
  auto bare = load_dspark(f.drafter_dir);  // no embed_tokens / lm_head, no target attached
  ThreadPool pool(1);
  EXPECT_THAT(error_of([&] { DSparkForward d(*bare, pool, 1, 16); }),
              AllOf(HasSubstr(f.drafter_dir), HasSubstr("embedding"), HasSubstr("attach_target")));
}

TEST(DSparkForward, CheckpointMatricesWinOverTheTargets) {
  Fixture f = small_fixture("--head vanilla --embed 1 --dtype bf16");
  EXPECT_FALSE(f.drafter->weights.embed_tokens.empty());
  EXPECT_EQ(f.drafter->embedding().data, f.drafter->weights.embed_tokens.data);
  EXPECT_EQ(f.drafter->output().data, f.drafter->weights.lm_head.data);
  EXPECT_EQ(f.drafter->embedding().type, DType::BF16);
  Fixture g = small_fixture("--head vanilla");
  EXPECT_EQ(g.drafter->embedding().data, g.target->tok_embeddings.data);
  EXPECT_EQ(g.drafter->output().data, g.target->output.data);
}

// ---------------------------------------------------------------------------
// Configuration and checkpoint errors.

void edit_config(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(test::read_file(dir + "/config.json"));
  edit(j);
  test::write_file(dir + "/config.json", j.dump());
}

// A copy of a drafter folder whose config.json the test edits.
std::string drafter_copy(const std::string& dir) {
  const std::string copy = test::temp_dir() + "/d";
  fs::copy(dir, copy);
  return copy;
}

class DSparkErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    target_dir_ = new std::string(make_target(31, false));
    with_heads_ =
        new std::string(make_drafter(*target_dir_, "--head vanilla --confidence 1 --layer-ids=-1,0"));
    no_heads_ = new std::string(make_drafter(*target_dir_, "--head none --confidence 0"));
  }
  static void TearDownTestSuite() {
    delete target_dir_;
    delete with_heads_;
    delete no_heads_;
  }
  // The load error after an edit of a copy of `dir`'s config.json.
  static std::string load_error(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
    const std::string copy = drafter_copy(dir);
    edit_config(copy, edit);
    return error_of([&] { load_dspark(copy); });
  }
  static std::string* target_dir_;
  static std::string* with_heads_;
  static std::string* no_heads_;
};
std::string* DSparkErrors::target_dir_ = nullptr;
std::string* DSparkErrors::with_heads_ = nullptr;
std::string* DSparkErrors::no_heads_ = nullptr;

TEST_F(DSparkErrors, ConfigRules) {
  const std::string& d = *with_heads_;
  EXPECT_THAT(
      load_error(d, [](auto& j) { j["architectures"] = {"Gemma4DSparkModel"}; }),
      AllOf(HasSubstr("config.json"), HasSubstr("Gemma4DSparkModel"), HasSubstr("not supported yet")));
  EXPECT_THAT(load_error(d, [](auto& j) { j["architectures"] = {"Qwen3ForCausalLM"}; }),
              AllOf(HasSubstr("architectures"), HasSubstr("Qwen3DSparkModel")));
  EXPECT_THAT(load_error(d,
                         [](auto& j) {
                           j["target_layer_ids"] = {0, 0};
                         }),
              AllOf(HasSubstr("target_layer_ids"), HasSubstr("strictly increasing")));
  EXPECT_THAT(load_error(d,
                         [](auto& j) {
                           j["target_layer_ids"] = {0, 1};
                         }),
              AllOf(HasSubstr("target_layer_ids"), HasSubstr("last"), HasSubstr("never be tapped")));
  EXPECT_THAT(load_error(d,
                         [](auto& j) {
                           j["target_layer_ids"] = {-2, 0};
                         }),
              AllOf(HasSubstr("target_layer_ids"), HasSubstr("-2")));
  EXPECT_THAT(load_error(d, [](auto& j) { j["target_layer_ids"] = nlohmann::json::array(); }),
              AllOf(HasSubstr("target_layer_ids"), HasSubstr("empty")));
  EXPECT_THAT(load_error(d, [](auto& j) { j["markov_rank"] = -1; }),
              AllOf(HasSubstr("markov_rank"), HasSubstr(">= 0")));
  EXPECT_THAT(load_error(d,
                         [](auto& j) {
                           j["markov_rank"] = 0;
                           j.erase("markov_head_type");
                         }),
              AllOf(HasSubstr("confidence_head_with_markov"), HasSubstr("markov_rank")));
  EXPECT_THAT(load_error(d, [](auto& j) { j["markov_head_type"] = "lstm"; }),
              AllOf(HasSubstr("markov_head_type"), HasSubstr("lstm"), HasSubstr("vanilla")));
  EXPECT_THAT(load_error(d, [](auto& j) { j["attention_bias"] = true; }),
              AllOf(HasSubstr("attention_bias"), HasSubstr("false")));
  EXPECT_THAT(load_error(d, [](auto& j) { j.erase("block_size"); }),
              AllOf(HasSubstr("missing field"), HasSubstr("block_size")));
  EXPECT_THAT(load_error(d, [](auto& j) { j["block_size"] = 0; }), HasSubstr("block_size"));
  EXPECT_THAT(load_error(d, [](auto& j) { j.erase("num_target_layers"); }), HasSubstr("num_target_layers"));
  EXPECT_THAT(load_error(d, [](auto& j) { j["mask_token_id"] = 96; }),
              AllOf(HasSubstr("mask_token_id"), HasSubstr("96")));
  EXPECT_THAT(load_error(d, [](auto& j) { j["enable_confidence_head"] = "yes"; }),
              HasSubstr("enable_confidence_head"));
  EXPECT_THAT(load_error(d,
                         [](auto& j) {
                           j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4}};
                         }),
              AllOf(HasSubstr("RoPE scaling"), HasSubstr("yarn")));
  EXPECT_THAT(error_of([&] { parse_dspark_config("{\"architectures\": [", "x/config.json"); }),
              AllOf(HasSubstr("x/config.json"), HasSubstr("invalid JSON")));
}

TEST_F(DSparkErrors, HeadTensorsMustMatchTheConfig) {
  // Confidence head on in config.json, but no confidence tensors in the checkpoint.
  EXPECT_THAT(load_error(*no_heads_,
                         [](auto& j) {
                           j["enable_confidence_head"] = true;
                           j["confidence_head_with_markov"] = false;
                         }),
              AllOf(HasSubstr("missing tensor 'confidence_head.proj.weight'"), HasSubstr("[1, 64]"),
                    HasSubstr("enable_confidence_head true")));
  // Head tensors present that the configuration switches off.
  EXPECT_THAT(load_error(*with_heads_,
                         [](auto& j) {
                           j["markov_rank"] = 0;
                           j.erase("markov_head_type");
                           j["enable_confidence_head"] = false;
                         }),
              AllOf(HasSubstr("unexpected tensor 'confidence_head.proj.bias'"),
                    HasSubstr("enable_confidence_head false")));
  EXPECT_THAT(load_error(*with_heads_,
                         [](auto& j) {
                           j["markov_rank"] = 0;
                           j.erase("markov_head_type");
                           j["confidence_head_with_markov"] = false;
                         }),
              AllOf(HasSubstr("confidence_head.proj.weight"), HasSubstr("[1, 72]"), HasSubstr("[1, 64]")));
  // The RNN head needs joint_proj, which a vanilla checkpoint lacks.
  EXPECT_THAT(load_error(*with_heads_, [](auto& j) { j["markov_head_type"] = "rnn"; }),
              AllOf(HasSubstr("missing tensor 'markov_head.joint_proj.weight'"), HasSubstr("[24, 80]"),
                    HasSubstr("markov_head_type rnn")));
  // A wrong rank shows in the Markov shapes.
  EXPECT_THAT(load_error(*with_heads_, [](auto& j) { j["markov_rank"] = 16; }),
              AllOf(HasSubstr("markov_head.markov_w1.weight"), HasSubstr("[96, 8]"), HasSubstr("[96, 16]")));
  EXPECT_THAT(
      load_error(*with_heads_, [](auto& j) { j["intermediate_size"] = 128; }),
      AllOf(HasSubstr("layers.0.mlp.gate_proj.weight"), HasSubstr("[96, 64]"), HasSubstr("[128, 64]")));
  EXPECT_THAT(load_error(*with_heads_, [](auto& j) { j["target_layer_ids"] = {0}; }),
              AllOf(HasSubstr("fc.weight"), HasSubstr("[64, 128]"), HasSubstr("[64, 64]")));
}

TEST_F(DSparkErrors, MarkovTensorsWithRankZeroAreRefused) {
  // A checkpoint with Markov weights (and no confidence head) whose config.json says rank 0:
  // refused, naming the tensor and the field.
  auto m = load_dspark(*with_heads_);
  DSparkWeights w = m->weights;
  w.confidence = w.confidence_bias = TensorView{};
  DSparkConfig c = m->config;
  c.confidence_head = c.confidence_with_markov = false;
  const std::string dir = test::temp_dir() + "/rank0";
  write_dspark_checkpoint(dir, c, w);
  EXPECT_NO_THROW(load_dspark(dir));
  edit_config(dir, [](auto& j) {
    j["markov_rank"] = 0;
    j.erase("markov_head_type");
  });
  EXPECT_THAT(
      error_of([&] { load_dspark(dir); }),
      AllOf(HasSubstr("unexpected tensor 'markov_head.markov_w1.weight'"), HasSubstr("markov_rank 0")));
  // The writer refuses the same mismatch.
  c.markov_rank = 0;
  c.markov_head = MarkovHead::None;
  EXPECT_THAT(error_of([&] { write_dspark_checkpoint(test::temp_dir() + "/w", c, w); }),
              AllOf(HasSubstr("markov_head.markov_w1.weight"), HasSubstr("not used")));
}

TEST_F(DSparkErrors, TargetMismatch) {
  auto target = load_hf_folder(*target_dir_);
  auto m = load_dspark(*with_heads_);
  check_target(*m, *target);  // fits
  Model other;
  other.source = "other-target";
  other.config = target->config;
  other.config.dim = 32;
  EXPECT_THAT(error_of([&] { check_target(*m, other); }),
              AllOf(HasSubstr(*with_heads_), HasSubstr("other-target"), HasSubstr("hidden_size 64"),
                    HasSubstr("32")));
  other.config = target->config;
  other.config.vocab_size = 100;
  EXPECT_THAT(error_of([&] { check_target(*m, other); }),
              AllOf(HasSubstr("vocab_size 96"), HasSubstr("100"), HasSubstr("other-target")));
  other.config = target->config;
  other.config.n_layers = 4;
  EXPECT_THAT(error_of([&] { check_target(*m, other); }),
              AllOf(HasSubstr("num_target_layers 2"), HasSubstr("4 layers")));
  // Rules the config parser already enforces, checked again against the target itself.
  m->config.target_layer_ids = {0, 1};
  EXPECT_THAT(error_of([&] { check_target(*m, *target); }),
              AllOf(HasSubstr("target_layer_ids"), HasSubstr("layer 1"), HasSubstr("last")));
  m->config.target_layer_ids = {-1, 0};
  m->config.mask_token_id = 96;
  EXPECT_THAT(error_of([&] { check_target(*m, *target); }), AllOf(HasSubstr("mask_token_id 96")));
}

TEST_F(DSparkErrors, BrokenFolders) {
  EXPECT_THAT(error_of([&] { load_dspark(test::temp_dir()); }), HasSubstr("no config.json"));
  const std::string copy = drafter_copy(*with_heads_);
  fs::remove(copy + "/model.safetensors");
  EXPECT_THAT(error_of([&] { load_dspark(copy); }), HasSubstr("model.safetensors"));
  // Tensors under "model." (a target-style name) are named with the reason.
  auto m = load_dspark(*with_heads_);
  std::vector<TensorView> tensors;
  m->weights.for_each([&](const TensorView& t) { tensors.push_back(t); });
  tensors[0].name = "model." + tensors[0].name;
  write_safetensors(copy + "/model.safetensors", tensors);
  EXPECT_THAT(error_of([&] { load_dspark(copy); }), AllOf(HasSubstr("model.fc.weight"), HasSubstr("prefix")));
}

// ---------------------------------------------------------------------------
// The writer.

class RoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(RoundTrip, WriteThenLoadGivesIdenticalOutputs) {
  Fixture f = small_fixture(GetParam());
  const std::string out = test::temp_dir() + "/written";
  write_dspark_checkpoint(out, f.drafter->config, f.drafter->weights);
  auto back = load_dspark(out);
  attach_target(*back, *f.target);
  const DSparkConfig &a = f.drafter->config, &b = back->config;
  EXPECT_EQ(a.target_layer_ids, b.target_layer_ids);
  EXPECT_EQ(a.block_size, b.block_size);
  EXPECT_EQ(a.markov_head, b.markov_head);
  EXPECT_EQ(a.markov_rank, b.markov_rank);
  EXPECT_EQ(a.confidence_head, b.confidence_head);
  EXPECT_EQ(a.confidence_with_markov, b.confidence_with_markov);
  EXPECT_EQ(a.backbone.rope_theta, b.backbone.rope_theta);
  EXPECT_EQ(a.backbone.norm_eps, b.backbone.norm_eps);
  EXPECT_EQ(f.drafter->parameter_count(), back->parameter_count());
  EXPECT_EQ(back->weights.embed_tokens.empty(), f.drafter->weights.embed_tokens.empty());
  const std::vector<float> taps = random_taps(13, a.tap_dim(), 8);
  const std::vector<Round> rounds = two_rounds(a.block_size, a.vocab_size());
  const std::vector<Outputs> x = engine_rounds(*f.drafter, taps, rounds),
                             y = engine_rounds(*back, taps, rounds);
  for (size_t i = 0; i < x.size(); ++i) expect_same(x[i], y[i]);
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, RoundTrip,
                         ::testing::Values("--head rnn --layer-ids=-1,0 --dtype bf16",
                                           "--head vanilla --embed 1 --shards 2",
                                           "--head gated --confidence 0 --dtype f16",
                                           "--head none --confidence 1 --conf-markov 0"));

}  // namespace
}  // namespace dspark
