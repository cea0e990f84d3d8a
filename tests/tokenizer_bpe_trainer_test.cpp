// BpeTrainer: merges learned on hand-checkable texts, round trips of arbitrary bytes, the
// trained tokenizer written as a tokenizer-only GGUF and read back by Tokenizer::from_gguf,
// determinism, piecewise encoding, and refusals of bad options.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/regex.h"

namespace dspark {
namespace {

using ::testing::HasSubstr;

// A short text with repeated words, punctuation, numbers, newlines and a few non-ASCII
// characters: enough pairs for a few hundred merges.
const char* const kText =
    "In the beginning the little robot counted the stars: one, two, three, 42 and 1999.\n"
    "The robot's friend, a small cat named Mia, didn't count; she slept in the sun.\n\n"
    "\"Why do you count?\" asked Mia. \"Because the stars are beautiful,\" said the robot.\n"
    "Caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xE2\x80\x94 the robot liked these words too.\n"
    "\tIndented line with  two spaces   and three.\n"
    "In the end the robot and the cat counted the stars together, every night, again and again.\n";

std::string repeated_text(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += kText;
  return s;
}

BpeTrainOptions options(int vocab, int64_t min_frequency = 2) {
  BpeTrainOptions o;
  o.vocab_size = vocab;
  o.min_frequency = min_frequency;
  return o;
}

BpeModel train(const std::string& text, const BpeTrainOptions& o) {
  BpeTrainer t(o);
  t.add_text(text);
  return t.train();
}

// Merges as "left+right" strings of bytes, in rank order.
std::vector<std::string> merge_strings(const BpeModel& m) {
  std::vector<std::string> out;
  for (const BpeMerge& x : m.merges)
    out.push_back(m.token_bytes[size_t(x.left)] + "+" + m.token_bytes[size_t(x.right)]);
  return out;
}

TEST(BpeTrainer, LearnsTheMostFrequentPairsWithTiesToTheSmallestIds) {
  // One word "aaabdaaabac": (a,a) occurs 4 times and is merged first ("aa a b d aa a b a
  // c"); then (aa,a) and (a,b) occur twice each, and (a,b) has the smaller ids; then
  // (aa,ab) twice; every pair left occurs once, below the minimum frequency of 2.
  const BpeModel m = train("aaabdaaabac", options(1000));
  EXPECT_EQ(merge_strings(m), (std::vector<std::string>{"a+a", "a+b", "aa+ab"}));
  ASSERT_EQ(m.vocab_size(), 2 + 256 + 3);
  EXPECT_EQ(m.token_bytes[0], "<s>");
  EXPECT_EQ(m.token_bytes[1], "</s>");
  EXPECT_EQ(m.token_bytes[2 + 'a'], "a");
  EXPECT_EQ(m.token_bytes[258], "aa");
  EXPECT_EQ(m.token_bytes[259], "ab");
  EXPECT_EQ(m.token_bytes[260], "aaab");
  EXPECT_EQ(m.merges[2].left, 258);
  EXPECT_EQ(m.merges[2].right, 259);
  EXPECT_EQ(m.merges[2].merged, 260);
  EXPECT_EQ(m.bos, 0);
  EXPECT_EQ(m.eos, 1);

  auto tok = m.tokenizer();
  EXPECT_EQ(tok->encode("aaabdaaabac", false), (std::vector<int>{260, 2 + 'd', 260, 2 + 'a', 2 + 'c'}));
  EXPECT_EQ(tok->encode("aaab", true), (std::vector<int>{0, 260}));
}

// The same training done the slow way: all pair counts recounted from scratch before every
// merge, words split with GPT-2's regex (the gaps between matches are words too).
std::vector<std::string> naive_merges(const std::string& text, int vocab, int64_t min_frequency) {
  std::map<std::string, int64_t> counts;
  std::vector<std::pair<size_t, size_t>> matches;
  Regex(kGpt2Pattern, false, "test").find_all(text, matches);
  size_t pos = 0;
  for (auto [b, e] : matches) {
    if (b > pos) ++counts[text.substr(pos, b - pos)];
    ++counts[text.substr(b, e - b)];
    pos = e;
  }
  if (pos < text.size()) ++counts[text.substr(pos)];
  std::vector<std::string> tokens;  // internal ids: bytes, then merged tokens
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, char(b));
  std::vector<std::pair<std::vector<int>, int64_t>> words;
  for (const auto& [w, c] : counts) {
    std::vector<int> syms;
    for (char ch : w) syms.push_back(int(uint8_t(ch)));
    words.push_back({syms, c});
  }
  std::vector<std::string> out;
  std::set<std::pair<int, int>> done;
  while (int(tokens.size()) + 2 < vocab) {
    std::map<std::pair<int, int>, int64_t> pairs;  // ordered by ids: the first maximum wins ties
    for (const auto& [syms, c] : words)
      for (size_t i = 0; i + 1 < syms.size(); ++i) pairs[{syms[i], syms[i + 1]}] += c;
    std::pair<int, int> best{-1, -1};
    int64_t best_count = 0;
    for (const auto& [p, c] : pairs)
      if (c > best_count) best = p, best_count = c;
    if (best_count < min_frequency || best_count == 0) break;
    const std::string joined = tokens[size_t(best.first)] + tokens[size_t(best.second)];
    int merged = int(std::find(tokens.begin(), tokens.end(), joined) - tokens.begin());
    if (merged == int(tokens.size())) tokens.push_back(joined);
    if (done.insert(best).second)
      out.push_back(tokens[size_t(best.first)] + "+" + tokens[size_t(best.second)]);
    for (auto& [syms, c] : words) {
      std::vector<int> next;
      for (size_t i = 0; i < syms.size(); ++i) {
        if (i + 1 < syms.size() && syms[i] == best.first && syms[i + 1] == best.second) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(syms[i]);
        }
      }
      syms = next;
    }
  }
  return out;
}

TEST(BpeTrainer, AgreesWithRecountingFromScratch) {
  const std::string text = repeated_text(2) + "aaaa aaa abab ababab xxxxxxxx";
  for (int64_t min_frequency : {1, 2, 3}) {
    for (int vocab : {300, 700}) {
      const std::vector<std::string> want = naive_merges(text, vocab, min_frequency);
      EXPECT_EQ(merge_strings(train(text, options(vocab, min_frequency))), want)
          << "vocab " << vocab << ", min frequency " << min_frequency;
      EXPECT_GT(want.size(), 30u);
    }
  }
}

TEST(BpeTrainer, StopsAtTheVocabularySizeAndHonoursMinimumFrequency) {
  EXPECT_EQ(merge_strings(train("aaabdaaabac", options(2 + 256 + 1))), (std::vector<std::string>{"a+a"}));
  // With a minimum of 1, pairs seen once are merged too; ties go to the smaller ids.
  EXPECT_EQ(merge_strings(train("abc", options(1000, 1))), (std::vector<std::string>{"a+b", "ab+c"}));
  EXPECT_TRUE(train("abc", options(1000, 2)).merges.empty());
}

TEST(BpeTrainer, MergesNeverCrossWordBoundaries) {
  // GPT-2 words: "ab", " ab", " ab". (b, ' ') would occur twice if the text were one word.
  const BpeModel m = train("ab ab ab", options(1000));
  EXPECT_EQ(merge_strings(m), (std::vector<std::string>{"a+b", " +ab"}));
  // Special tokens written in the corpus are cut out before words are formed.
  const BpeModel s = train("xy</s>xy</s>xy", options(1000));
  EXPECT_EQ(merge_strings(s), (std::vector<std::string>{"x+y"}));
  EXPECT_EQ(s.tokenizer()->encode("xy</s>xy", false), (std::vector<int>{258, 1, 258}));
}

TEST(BpeTrainer, RoundTripsEveryByteAndInvalidUtf8) {
  BpeTrainOptions o = options(400);
  o.extra_special = {"<pad>"};
  const BpeModel m = train(repeated_text(3), o);
  ASSERT_EQ(m.vocab_size(), 400);
  auto tok = m.tokenizer();
  ASSERT_EQ(tok->vocab_size(), 400);
  EXPECT_TRUE(tok->is_control(2));
  EXPECT_EQ(tok->token_text(2), "<pad>");

  // Each byte alone is its byte token (specials come first, then bytes in order).
  std::string all;
  for (int b = 0; b < 256; ++b) {
    const std::string s(1, char(b));
    EXPECT_EQ(tok->encode(s, false), (std::vector<int>{3 + b})) << b;
    all += s;
  }
  EXPECT_EQ(tok->decode(tok->encode(all, false)), all);
  EXPECT_EQ(tok->decode(tok->encode(all + all, true)), all + all);

  const std::vector<std::string> odd = {"\xFF\xFE",
                                        "\xC3",
                                        "caf\xC3",
                                        "\xE2\x82",
                                        "\xC0\xAF (overlong)",
                                        "\xED\xA0\x80 (surrogate)",
                                        "\x80\x80\x80 stars",
                                        std::string("\0\0x", 3),
                                        "  \n\n\t\r\n ",
                                        "robot\xF0",
                                        "\xF4\x90\x80\x80",
                                        kText};
  for (const std::string& s : odd) {
    const std::vector<int> ids = tok->encode(s, false);
    for (int id : ids) EXPECT_FALSE(tok->is_control(id)) << s;
    EXPECT_EQ(tok->decode(ids), s);
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string s(size_t(rng() % 64), '\0');
    for (char& c : s) c = char(rng() % 4 == 0 ? "the robot\n "[rng() % 11] : rng() % 256);
    EXPECT_EQ(tok->decode(tok->encode(s, false)), s) << i;
  }
}

TEST(BpeTrainer, CompressesItsTrainingText) {
  const std::string text = repeated_text(4);
  const BpeModel m = train(text, options(600));
  auto tok = m.tokenizer();
  const uint64_t n = count_tokens(*tok, text);
  EXPECT_EQ(n, tok->encode(text, false).size());
  EXPECT_LT(double(n), double(text.size()) / 3.0);  // merges pay: far fewer tokens than bytes
}

TEST(BpeTrainer, LoadsBackFromATokenizerOnlyGguf) {
  BpeTrainOptions o = options(450);
  o.extra_special = {"<pad>"};
  const BpeModel m = train(repeated_text(3), o);
  auto tok = m.tokenizer();
  const std::string dir = test::temp_dir();
  const std::string path = dir + "/tok.gguf";
  write_tokenizer_gguf(*tok, path, "test tokenizer");

  auto g = GgufFile::open(path);
  EXPECT_TRUE(g->tensors().empty());
  EXPECT_EQ(g->get_string("general.name"), "test tokenizer");
  EXPECT_EQ(g->get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(g->get_string("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(g->get_string_array("tokenizer.ggml.merges").size(), m.merges.size());
  EXPECT_EQ(g->get_string_array("tokenizer.ggml.tokens")[2 + 1 + ' '], "\xC4\xA0");  // byte-level space
  EXPECT_EQ(g->get_uint("tokenizer.ggml.bos_token_id"), 0u);
  EXPECT_EQ(g->get_uint("tokenizer.ggml.eos_token_id"), 1u);
  EXPECT_TRUE(g->get_bool("tokenizer.ggml.add_bos_token"));

  auto back = Tokenizer::from_gguf(*g);
  ASSERT_EQ(back->vocab_size(), tok->vocab_size());
  EXPECT_EQ(back->bos_id(), 0);
  EXPECT_EQ(back->eos_id(), 1);
  EXPECT_TRUE(back->add_bos_default());
  for (int id = 0; id < tok->vocab_size(); ++id) {
    ASSERT_EQ(back->token_text(id), tok->token_text(id)) << id;
    ASSERT_EQ(back->token_bytes(id), tok->token_bytes(id)) << id;
    ASSERT_EQ(back->is_control(id), tok->is_control(id)) << id;
  }
  const std::vector<std::string> texts = {kText, repeated_text(2), "<s>robots</s> \xFF<pad>x",
                                          "Mia's 123456 cats"};
  for (const std::string& s : texts) EXPECT_EQ(back->encode(s, true), tok->encode(s, true)) << s;

  // Copied into another GGUF (as a model exporter does) it reads back the same again.
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  back->write_gguf(w);
  const std::string bytes = w.serialize();
  auto copy = Tokenizer::from_gguf(
      *GgufFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "copy.gguf"));
  for (const std::string& s : texts) EXPECT_EQ(copy->encode(s, true), tok->encode(s, true)) << s;
  std::filesystem::remove_all(dir);
}

TEST(BpeTrainer, OtherPreTokenizersRoundTrip) {
  for (const char* pre : {"qwen2", "llama3", "starcoder"}) {
    BpeTrainOptions o = options(420);
    o.pre_tokenizer = pre;
    const BpeModel m = train(repeated_text(3), o);
    auto tok = m.tokenizer();
    GgufWriter w;
    tok->write_gguf(w);
    const std::string bytes = w.serialize();
    auto g = GgufFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "t.gguf");
    auto back = Tokenizer::from_gguf(*g);
    const std::string s = repeated_text(2) + "\xFF\xFE 12345";
    EXPECT_EQ(back->encode(s, false), tok->encode(s, false)) << pre;
    EXPECT_EQ(tok->decode(tok->encode(s, false)), s) << pre;
  }
}

TEST(BpeTrainer, IsDeterministic) {
  const std::string text = repeated_text(3);
  auto serialize = [&] {
    GgufWriter w;
    train(text, options(500)).tokenizer()->write_gguf(w);
    return w.serialize();
  };
  const std::string a = serialize();
  EXPECT_EQ(a, serialize());

  // Training again after more text sees the counts of both.
  BpeTrainer t(options(500));
  t.add_text(text);
  const BpeModel first = t.train();
  EXPECT_EQ(merge_strings(first), merge_strings(t.train()));
  t.add_text(text);
  EXPECT_EQ(t.corpus_bytes(), 2 * text.size());
}

TEST(BpeTrainer, PiecesEncodeLikeTheWholeText) {
  // Cuts only after "x\ny"; not after "\n\n", " \n" or "\n " (where some regexes differ).
  const std::string text = repeated_text(3) + "a.\n\nb\n c \nd\ne:\nf'\n's\n1\n2";
  for (size_t target : {1, 5, 40, 300}) {
    const std::vector<std::string_view> pieces = split_at_safe_lines(text, target);
    std::string joined;
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (i + 1 < pieces.size()) {
        EXPECT_GE(pieces[i].size(), target);
      }
      EXPECT_EQ(pieces[i].back() == '\n', i + 1 < pieces.size());
      joined += pieces[i];
    }
    EXPECT_EQ(joined, text);
    EXPECT_GT(pieces.size(), 1u);
    for (const char* pre : {"gpt-2", "qwen2", "llama3", "starcoder"}) {
      BpeTrainOptions o = options(400);
      o.pre_tokenizer = pre;
      auto tok = train(text, o).tokenizer();
      std::vector<int> piecewise;
      for (std::string_view p : pieces) {
        const std::vector<int> ids = tok->encode(p, false);
        piecewise.insert(piecewise.end(), ids.begin(), ids.end());
      }
      EXPECT_EQ(piecewise, tok->encode(text, false)) << pre << " " << target;
    }
  }
  EXPECT_TRUE(split_at_safe_lines("", 10).empty());
  EXPECT_EQ(split_at_safe_lines("no newline here", 2).size(), 1u);
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(BpeTrainer, RefusesBadOptions) {
  EXPECT_THAT(
      error_of([] { BpeTrainer t(options(257)); }),
      HasSubstr("a vocabulary of 257 tokens is too small: the 256 byte tokens and 2 special tokens need "
                "at least 258"));
  BpeTrainOptions o = options(1000);
  o.extra_special = {"<pad>", "<unk>"};
  EXPECT_THAT(error_of([&] {
                o.vocab_size = 259;
                BpeTrainer t(o);
              }),
              HasSubstr("need at least 260"));
  o = options(1000);
  o.bos = "";
  EXPECT_THAT(error_of([&] { BpeTrainer t(o); }), HasSubstr("the BOS token is empty"));
  o = options(1000);
  o.extra_special = {"<a b>"};
  EXPECT_THAT(error_of([&] { BpeTrainer t(o); }), HasSubstr("\"<a b>\" contains whitespace"));
  o.extra_special = {"</s>"};
  EXPECT_THAT(error_of([&] { BpeTrainer t(o); }), HasSubstr("\"</s>\" is given twice"));
  o = options(1000);
  o.pre_tokenizer = "bert";
  EXPECT_THAT(error_of([&] { BpeTrainer t(o); }), HasSubstr("pre-tokenizer \"bert\" is not"));
  EXPECT_THAT(error_of([] { BpeTrainer t(options(1000, 0)); }), HasSubstr("minimum pair frequency is 0"));

  BpeTrainer t(options(1000));
  EXPECT_THAT(error_of([&] { t.train(); }), HasSubstr("no corpus text"));
  EXPECT_THAT(error_of([&] { t.add_file("/nonexistent/corpus.txt"); }),
              HasSubstr("/nonexistent/corpus.txt: corpus file does not exist"));
  const std::string dir = test::temp_dir();
  EXPECT_THAT(error_of([&] { t.add_file(dir); }), HasSubstr("is not a regular file"));
  test::write_file(dir + "/c.txt", "aaabdaaabac");
  t.add_file(dir + "/c.txt");
  EXPECT_EQ(t.corpus_bytes(), 11u);
  EXPECT_EQ(t.train().merges.size(), 3u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dspark
