// What calibration and evaluation read from the engine: prompt files
// (src/engine/prompt_file.h) and the per-round record of speculative generation
// (SpecOptions::on_round), which must agree with the round statistics and stop counting at
// an accepted stop token.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "draft/replay_drafter.h"
#include "engine/generator.h"
#include "engine/prompt_file.h"
#include "engine/speculative_generator.h"
#include "test_util.h"

namespace dspark {
namespace {

using ::testing::HasSubstr;

TEST(PromptFile, OnePromptPerLineWithEscapesSkippingBlankAndCommentLines) {
  const auto p = parse_prompt_lines(
      "# a comment\n"
      "Once upon a time\n"
      "\n"
      "   \n"
      "Line one\\nline two\\tand a tab\r\n"
      "a \\\\n is not a newline, \\x stays\n"
      " # not a comment (it does not start with #)\n"
      "last line without newline");
  EXPECT_EQ(p, (std::vector<std::string>{
                   "Once upon a time", "Line one\nline two\tand a tab", "a \\n is not a newline, \\x stays",
                   " # not a comment (it does not start with #)", "last line without newline"}));
  EXPECT_TRUE(parse_prompt_lines("").empty());
  EXPECT_TRUE(parse_prompt_lines("# only\n\n").empty());
}

TEST(PromptFile, MissingOrEmptyFilesAreErrorsNamingTheFile) {
  const std::string dir = test::temp_dir();
  try {
    read_prompt_file(dir + "/missing.txt");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("missing.txt: no such prompt file"));
  }
  test::write_file(dir + "/empty.txt", "# nothing here\n\n");
  try {
    read_prompt_file(dir + "/empty.txt");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("empty.txt: no prompts"));
  }
  test::write_file(dir + "/two.txt", "a\nb\\nc\n");
  EXPECT_EQ(read_prompt_file(dir + "/two.txt"), (std::vector<std::string>{"a", "b\nc"}));
}

// A replay drafter that also reports a confidence logit per draft (k + 0.5 for draft k).
class ConfidentReplay : public ReplayDrafter {
 public:
  using ReplayDrafter::ReplayDrafter;
  bool has_confidence() const override { return true; }
  void draft(const DraftInput& in, DraftBlock& out) override {
    ReplayDrafter::draft(in, out);
    for (size_t k = 0; k < out.tokens.size(); ++k) out.confidence.push_back(float(k) + 0.5f);
  }
};

GenerateRequest greedy_request(const std::string& prompt, int n) {
  GenerateRequest r;
  r.prompt = prompt;
  r.max_tokens = n;
  r.sampling.temperature = 0;
  return r;
}

TEST(RoundRecord, AgreesWithTheStatisticsAndEndsAtAnAcceptedStopToken) {
  const LoadedModel base = load_model(test::shared_model("tinystories-656k"));
  ThreadPool pool(2);
  const GenerateRequest req = greedy_request("Once upon a time", 40);
  const GenerateResult free_run = Generator(base, pool).generate(req);
  ASSERT_GT(free_run.tokens.size(), 20u);
  std::vector<int> ref = Generator(base, pool).tokenize_prompt(req.prompt);
  ref.insert(ref.end(), free_run.tokens.begin(), free_run.tokens.end());
  // A script that goes wrong at generated token 9: some rounds end in a rejection.
  std::vector<int> wrong = ref;
  const size_t p = ref.size() - free_run.tokens.size();
  wrong[p + 9] = (wrong[p + 9] + 1) % base.model->config.vocab_size;

  for (const bool with_stop : {false, true}) {
    SCOPED_TRACE(with_stop ? "a stop token at generated token 8" : "no stop token");
    LoadedModel lm = base;
    if (with_stop) {
      auto m = std::make_shared<Model>(*base.model);
      m->tokens.eos = {free_run.tokens[8]};
      lm.model = m;
    }
    ConfidentReplay drafter(with_stop ? ref : wrong, 4);
    std::vector<RoundRecord> records;
    std::vector<std::vector<float>> logits;
    SpecOptions so;
    so.on_round = [&](const RoundRecord& r) {
      records.push_back(r);
      logits.emplace_back(r.confidence.begin(), r.confidence.end());
    };
    SpeculativeGenerator gen(lm, drafter, pool, so);
    const GenerateResult res = gen.generate(req);
    const SpecStats& st = *res.spec;
    ASSERT_EQ(int64_t(records.size()), st.rounds);
    int64_t drafted = 0, verified = 0, accepted = 0;
    for (size_t i = 0; i < records.size(); ++i) {
      const RoundRecord& r = records[i];
      drafted += r.drafted;
      verified += r.valid;
      accepted += r.accepted;
      ASSERT_EQ(logits[i].size(), size_t(r.drafted));
      for (size_t k = 0; k < logits[i].size(); ++k) EXPECT_EQ(logits[i][k], float(k) + 0.5f);
      EXPECT_LE(r.accepted, r.valid);
      EXPECT_LE(r.valid, r.verified);
      EXPECT_LE(r.verified, r.drafted);
      if (i + 1 < records.size()) {
        EXPECT_FALSE(r.stop_in_drafts);
      }
    }
    EXPECT_EQ(drafted, st.drafted);
    EXPECT_EQ(verified, st.verified);
    EXPECT_EQ(accepted, st.accepted);
    if (with_stop) {
      ASSERT_TRUE(res.stopped);
      // Rounds of block 4 after the prefill's token commit tokens 1-5 and 6-10 (4 drafts and a
      // bonus each): token 8 is the second round's third draft.
      ASSERT_EQ(res.tokens.size(), 9u) << "token 8 occurs earlier; the test needs another stop token";
      const RoundRecord& last = records.back();
      EXPECT_TRUE(last.stop_in_drafts);
      EXPECT_EQ(last.valid, last.accepted) << "every judged draft up to the stop token was accepted";
      EXPECT_LT(last.valid, last.verified) << "drafts after the stop token are not judged";
    } else {
      EXPECT_LT(st.accepted, st.verified) << "the wrong token is rejected";
    }
  }
}

}  // namespace
}  // namespace dspark
