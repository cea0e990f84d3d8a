// dspark train-tokenizer as users and scripts see it: a tokenizer trained on a tiny corpus,
// written as a tokenizer-only GGUF, read back, embedded in a model GGUF by `quantize
// --tokenizer` and used by `generate`; statistics on stderr; clear errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace dspark {
namespace {

using test::run_command;
using ::testing::HasSubstr;

struct ScopedDir {
  std::string path = test::temp_dir();
  ScopedDir() = default;
  ScopedDir(const ScopedDir&) = delete;
  ScopedDir& operator=(const ScopedDir&) = delete;
  ~ScopedDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

std::string dspark() { return DSPARK_BINARY; }

// A small corpus of sentences with many distinct made-up words, so that a few hundred merges
// exist even in a few kilobytes.
std::string corpus_text() {
  const char* const syllables[] = {"ka", "lo",  "mi",  "ne", "ru", "sta", "the",
                                   "vo", "pri", "dun", "el", "or", "yx"};
  std::string s;
  for (int i = 0; i < 400; ++i) {
    s += i % 9 == 0 ? "The " : "the ";
    s += std::string(syllables[i % 13]) + syllables[(i / 13) % 13] + syllables[(i * 7 / 5) % 13];
    s += i % 4 == 0 ? " sang by the river.\n" : i % 4 == 1 ? ", and " : " slept; ";
  }
  return s + "Caf\xC3\xA9 \xE2\x80\x94 na\xC3\xAFve \xFF\xFE bytes.\n";
}

TEST(CliTrainTokenizer, AnswersHelp) {
  std::string out;
  EXPECT_EQ(run_command(dspark() + " train-tokenizer --help", &out), 0);
  EXPECT_THAT(out, HasSubstr("--vocab-size"));
  EXPECT_THAT(out, HasSubstr("--corpus"));
}

TEST(CliTrainTokenizer, TrainsLoadsAndEmbedsInAModel) {
  const ScopedDir scoped;
  const std::string dir = scoped.path, corpus = dir + "/corpus.txt", heldout = dir + "/heldout.txt";
  const std::string text = corpus_text();
  test::write_file(corpus, text);
  test::write_file(heldout, "There were six lamps by the river.\n");  // 35 bytes
  const std::string tok_path = dir + "/tok.gguf";
  std::string err;
  ASSERT_EQ(
      run_command(dspark() + " train-tokenizer --corpus " + corpus + " --corpus " + heldout + " --eval " +
                      heldout + " --vocab-size 512 --special '<pad>' --min-frequency 1 -o " + tok_path +
                      " 2>&1 >/dev/null",
                  &err),
      0)
      << err;
  EXPECT_THAT(err, HasSubstr("corpus: 2 file(s), " + std::to_string(text.size() + 35) + " bytes"));
  EXPECT_THAT(err, HasSubstr("vocabulary: 512 tokens (3 special, 256 bytes, 253 merged)"));
  EXPECT_THAT(err, HasSubstr("merges learned in"));
  EXPECT_THAT(err, HasSubstr("bytes/token"));
  EXPECT_THAT(err, HasSubstr("eval text: "));

  auto g = GgufFile::open(tok_path);
  EXPECT_TRUE(g->tensors().empty());
  EXPECT_EQ(g->get_string("general.name"), "dspark BPE 512");
  auto tok = Tokenizer::from_gguf(*g);
  ASSERT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->token_text(0), "<s>");
  EXPECT_EQ(tok->token_text(1), "</s>");
  EXPECT_EQ(tok->token_text(2), "<pad>");
  EXPECT_EQ(tok->decode(tok->encode(text, true)), text);
  EXPECT_LT(tok->encode(text, false).size(), text.size() / 3);

  // Embedded in a model GGUF with quantize --tokenizer, then used by generate.
  const std::string model = dir + "/m.gguf", with_tok = dir + "/m-tok.gguf";
  ASSERT_EQ(run_command(dspark() + " synth --preset tiny-llama --type F32 -o " + model + " 2>/dev/null"), 0);
  ASSERT_EQ(run_command(dspark() + " quantize " + model + " " + with_tok + " F32 --tokenizer " + tok_path +
                        " 2>/dev/null"),
            0);
  auto embedded = Tokenizer::from_gguf(*GgufFile::open(with_tok));
  EXPECT_EQ(embedded->encode(text, true), tok->encode(text, true));
  std::string out;
  ASSERT_EQ(run_command(dspark() + " generate -m " + with_tok +
                            " -p 'the kalomi sang' -n 3 --temp 0 --json 2>/dev/null",
                        &out),
            0);
  const nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["n_prompt"].get<size_t>(), tok->encode("the kalomi sang", true).size());
}

TEST(CliTrainTokenizer, ReportsAVocabularyTheCorpusCannotFill) {
  const ScopedDir scoped;
  test::write_file(scoped.path + "/c.txt", "aaabdaaabac");
  std::string err;
  ASSERT_EQ(run_command(dspark() + " train-tokenizer --corpus " + scoped.path +
                            "/c.txt --vocab-size 1000 -o " + scoped.path + "/t.gguf 2>&1 >/dev/null",
                        &err),
            0);
  EXPECT_THAT(err, HasSubstr("vocabulary: 261 tokens (2 special, 256 bytes, 3 merged), 3 merges"));
  EXPECT_THAT(err, HasSubstr("note: no pair occurs at least 2 times (--min-frequency) any more: the "
                             "vocabulary has 261 tokens, not 1000"));
}

TEST(CliTrainTokenizer, ErrorsAreOneLineWithExitCodeOne) {
  const ScopedDir scoped;
  const std::string dir = scoped.path, corpus = dir + "/c.txt";
  test::write_file(corpus, "some text\n");
  test::write_file(dir + "/empty.txt", "");
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--corpus /nonexistent/corpus.txt --vocab-size 300 -o " + dir + "/t.gguf",
       "/nonexistent/corpus.txt: corpus file does not exist"},
      {"--corpus " + corpus + " --vocab-size 100 -o " + dir + "/t.gguf",
       "a vocabulary of 100 tokens is too small: the 256 byte tokens and 2 special tokens need at least 258"},
      {"--corpus " + corpus + " --vocab-size 300 -o " + dir + "/t.txt", "name a file ending in .gguf"},
      {"--corpus " + dir + "/empty.txt --vocab-size 300 -o " + dir + "/t.gguf", "the corpus is empty"},
      {"--corpus " + corpus + " --vocab-size 300 --pre bert -o " + dir + "/t.gguf", "pre-tokenizer \"bert\""},
      {"--corpus " + corpus + " --vocab-size 300 --eval /nonexistent/h.txt -o " + dir + "/t.gguf",
       "/nonexistent/h.txt: corpus file does not exist"},
  };
  for (const auto& [args, want] : bad) {
    std::string err;
    EXPECT_EQ(run_command(dspark() + " train-tokenizer " + args + " 2>&1 >/dev/null", &err), 1) << args;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << args << ": " << err;
    EXPECT_THAT(err, HasSubstr(want)) << args;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/t.gguf"));
  std::string err;
  const int code =
      run_command(dspark() + " train-tokenizer --vocab-size 300 -o " + dir + "/t.gguf 2>&1", &err);
  EXPECT_GT(code, 0);
  EXPECT_LT(code, 128);
  EXPECT_THAT(err, HasSubstr("--corpus"));
}

}  // namespace
}  // namespace dspark
