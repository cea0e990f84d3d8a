// Merge order on tiny hand-checked vocabularies, where applying merges by priority and
// merging greedily left to right give different answers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace dspark {
namespace {

using nlohmann::json;

std::vector<std::string> pieces(const Tokenizer& t, const std::vector<int>& ids) {
  std::vector<std::string> out;
  for (int id : ids) out.push_back(t.token_text(id));
  return out;
}

// A plain BPE tokenizer.json (no normalizer, no pre-tokenizer): the merges in rank order.
std::unique_ptr<Tokenizer> rank_tokenizer(const std::vector<std::string>& merges) {
  json vocab = json::object();
  for (const char* s : {"a", "b", "c", "d"}) vocab[s] = int(vocab.size());
  for (const std::string& m : merges) {
    const std::string merged = m.substr(0, m.find(' ')) + m.substr(m.find(' ') + 1);
    if (!vocab.contains(merged)) vocab[merged] = int(vocab.size());
  }
  const json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
  const std::string path = test::temp_dir() + "/tokenizer.json";
  test::write_file(path, j.dump());
  return Tokenizer::from_hf_json(path);
}

using Pieces = std::vector<std::string>;

TEST(RankMerges, LowestRankFirstNotLeftToRight) {
  auto t = rank_tokenizer({"b c", "a b"});
  EXPECT_EQ(pieces(*t, t->encode("abc", false)), (Pieces{"a", "bc"}));
  t = rank_tokenizer({"a b", "b c"});
  EXPECT_EQ(pieces(*t, t->encode("abc", false)), (Pieces{"ab", "c"}));
}

TEST(RankMerges, MergesChainInRankOrder) {
  // "c d" first, then "a b"; "b cd" (rank 2) never gets its chance because "b" is gone.
  auto t = rank_tokenizer({"c d", "a b", "b cd"});
  EXPECT_EQ(pieces(*t, t->encode("abcd", false)), (Pieces{"ab", "cd"}));
  // With "b cd" ranked before "a b" it wins.
  t = rank_tokenizer({"c d", "b cd", "a b"});
  EXPECT_EQ(pieces(*t, t->encode("abcd", false)), (Pieces{"a", "bcd"}));
}

TEST(RankMerges, SameRuleAppliesLeftmostFirst) {
  auto t = rank_tokenizer({"a a", "aa aa"});
  EXPECT_EQ(pieces(*t, t->encode("aaa", false)), (Pieces{"aa", "a"}));
  EXPECT_EQ(pieces(*t, t->encode("aaaa", false)), (Pieces{"aaaa"}));
  EXPECT_EQ(pieces(*t, t->encode("aaaaa", false)), (Pieces{"aaaa", "a"}));
  EXPECT_EQ(pieces(*t, t->encode("aaaaaaa", false)), (Pieces{"aaaa", "aa", "a"}));
}

TEST(RankMerges, LongInputIsMergedCompletely) {
  auto t = rank_tokenizer({"a b", "ab ab", "abab abab"});
  std::string text;
  for (int i = 0; i < 4096; ++i) text += "ab";
  const auto ids = t->encode(text, false);
  EXPECT_EQ(ids.size(), 1024u);
  EXPECT_EQ(t->decode(ids), text);
}

// A llama2.c tokenizer file: control tokens, the 256 byte tokens, then `extra` (text, score).
std::unique_ptr<Tokenizer> score_tokenizer(const std::vector<std::pair<std::string, float>>& extra) {
  std::vector<std::pair<std::string, float>> tokens = {{"<unk>", 0}, {"\n<s>\n", 0}, {"\n</s>\n", 0}};
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b)
    tokens.push_back({std::string{'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'}, 0});
  for (const char* s : {" ", "a", "b", "c", "d"}) tokens.push_back({s, -100});
  tokens.insert(tokens.end(), extra.begin(), extra.end());
  int32_t max_len = 16;
  std::string bytes(reinterpret_cast<const char*>(&max_len), 4);
  for (const auto& [text, score] : tokens) {
    const int32_t len = int32_t(text.size());
    bytes.append(reinterpret_cast<const char*>(&score), 4);
    bytes.append(reinterpret_cast<const char*>(&len), 4);
    bytes += text;
  }
  const std::string path = test::temp_dir() + "/tok.bin";
  test::write_file(path, bytes);
  return Tokenizer::from_llama2c(path);
}

TEST(ScoreMerges, HighestScoreFirstNotLeftToRight) {
  auto t = score_tokenizer({{"ab", -5}, {"bc", -1}});
  EXPECT_EQ(pieces(*t, t->encode("abc", false)), (Pieces{" ", "a", "bc"}));  // " " is the dummy prefix
  t = score_tokenizer({{"ab", -1}, {"bc", -5}});
  EXPECT_EQ(pieces(*t, t->encode("abc", false)), (Pieces{" ", "ab", "c"}));
}

TEST(ScoreMerges, TiesGoToTheLeftmostPair) {
  auto t = score_tokenizer({{"ab", -2}, {"bc", -2}});
  EXPECT_EQ(pieces(*t, t->encode("abc", false)), (Pieces{" ", "ab", "c"}));
  t = score_tokenizer({{"aa", -1}});
  EXPECT_EQ(pieces(*t, t->encode("aaa", false)), (Pieces{" ", "aa", "a"}));
}

TEST(ScoreMerges, OnlyConcatenationsThatAreTokensMerge) {
  // "cd" (-1) first; then "bcd" (-0.5) beats "ab" (-2), though "ab" was possible all along.
  auto t = score_tokenizer({{"ab", -2}, {"cd", -1}, {"bcd", -0.5f}, {" a", -3}});
  EXPECT_EQ(pieces(*t, t->encode("abcd", false)), (Pieces{" a", "bcd"}));
  // No "abcd" token: the result stays in pieces; the dummy prefix joins when it can.
  t = score_tokenizer({{"ab", -2}, {"cd", -1}});
  EXPECT_EQ(pieces(*t, t->encode("abcd", false)), (Pieces{" ", "ab", "cd"}));
}

}  // namespace
}  // namespace dspark
