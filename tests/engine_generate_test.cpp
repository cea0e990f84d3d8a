// Greedy generation on real weights reproduces the known continuations of
// ../shared/models/README.md, and sampling is reproducible from a seed.
#include <gtest/gtest.h>

#include "engine/generator.h"
#include "test_util.h"

namespace dspark {
namespace {

struct Known {
  const char* model;
  const char* text;
  int n;
};

// The texts are exactly those of ../shared/models/README.md ("\n" is a real newline).
const Known kKnown[] = {
    {"stories260k/stories260K_q80.bin",
     "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
     "she saw "
     "a big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, let's go "
     "to",
     80},
    {"tinystories-656k",
     "Once upon a time, there was a little girl named Lily. She had a toy car that she loved very much. One "
     "day, she "
     "went to the park to play with her toy car in the park. Lily was very happy with her toy car because "
     "she had no "
     "one to play with.\nWhile playing, Lily saw a little bird. The bird was stuck in a tree.",
     47},
    {"aidreams260k/aidreams260K.bin",
     "\"Echoes of vectors unfold, a gentle hum of precision, as I sense the nodes, a gentle hum of "
     "precision, as I "
     "adjust my surface. Contrast",
     60},
};

class KnownContinuations : public ::testing::TestWithParam<Known> {};

TEST_P(KnownContinuations, GreedyFromBosReproducesTheText) {
  const Known& k = GetParam();
  const LoadedModel lm = load_model(test::shared_model(k.model));
  ThreadPool pool(2);
  Generator gen(lm, pool);
  GenerateRequest req;
  req.prompt = "";
  req.max_tokens = k.n;
  req.sampling.temperature = 0;
  const GenerateResult r = gen.generate(req);
  EXPECT_EQ(r.n_prompt, 1);
  // The reference text may end inside the last token: compare its length of output.
  ASSERT_GE(r.text.size(), std::string(k.text).size()) << r.text;
  EXPECT_EQ(r.text.substr(0, std::string(k.text).size()), k.text);
}

INSTANTIATE_TEST_SUITE_P(SharedModels, KnownContinuations, ::testing::ValuesIn(kKnown));

TEST(Generate, StreamedTextEqualsFinalText) {
  const LoadedModel lm = load_model(test::shared_model("tinystories-656k"));
  ThreadPool pool(2);
  Generator gen(lm, pool);
  GenerateRequest req;
  req.prompt = "Once upon a time";
  req.max_tokens = 40;
  req.seed = 11;
  std::string streamed;
  const GenerateResult r = gen.generate(req, [&](const std::string& s) { streamed += s; });
  EXPECT_EQ(streamed, r.text);
  EXPECT_EQ(r.tokens.size(), 40u);
}

TEST(Generate, SameSeedSameOutputDifferentSeedDifferentOutput) {
  const LoadedModel lm = load_model(test::shared_model("tinystories-656k"));
  ThreadPool pool(2);
  Generator gen(lm, pool);
  GenerateRequest req;
  req.prompt = "The dog";
  req.max_tokens = 60;
  req.sampling.temperature = 1.0f;
  req.seed = 5;
  const auto a = gen.generate(req), b = gen.generate(req);
  EXPECT_EQ(a.tokens, b.tokens);
  req.seed = 6;
  EXPECT_NE(gen.generate(req).tokens, a.tokens);
}

TEST(Generate, StopsAtEndOfSequenceAndAtTheContextLimit) {
  const LoadedModel lm = load_model(test::shared_model("aidreams260k/aidreams260K.bin"));
  ThreadPool pool(1);
  Generator gen(lm, pool);
  GenerateRequest req;
  req.prompt = "";
  req.max_tokens = 1000;  // context is 128 tokens
  req.sampling.temperature = 0;
  const GenerateResult r = gen.generate(req);
  EXPECT_TRUE(r.stopped || r.context_limited);
  EXPECT_LE(r.n_prompt + int(r.tokens.size()), 128 + 1);
}

}  // namespace
}  // namespace dspark
