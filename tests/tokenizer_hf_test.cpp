// Hugging Face tokenizer.json: the real TinyStories-656K tokenizer (sentencepiece style,
// byte fallback, no pre-tokenizer) and hand-built byte-level BPE files (GPT-2 / Qwen2 /
// Llama 3 pre-tokenizers). Expected ids were checked against Hugging Face tokenizers.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace dspark {
namespace {

using nlohmann::json;
using test::shared_model;
using test::temp_dir;
using test::write_file;

const char* const kKnownStory =
    "Once upon a time, there was a little girl named Lily. She had a toy car that she loved very much. One "
    "day, she went to the park to play with her toy car in the park. Lily was very happy with her toy car "
    "because she had no one to play with.\nWhile playing, Lily saw a little bird. The bird was stuck in a "
    "tree.";

std::unique_ptr<Tokenizer> tinystories() {
  return Tokenizer::from_hf_json(shared_model("tinystories-656k/tokenizer.json"));
}

std::string write_json(const json& j) {
  const std::string path = temp_dir() + "/tokenizer.json";
  write_file(path, j.dump());
  return path;
}

// GPT-2's byte-to-unicode map, written independently of the library's.
std::string byte_char(int b) {
  const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!printable) {
    int extra = 0;
    for (int k = 0; k < b; ++k) {
      const bool p = (k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF);
      if (!p) ++extra;
    }
    cp = 256 + extra;
  }
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

// A small byte-level BPE tokenizer.json: the 256 byte characters, a handful of merges,
// and added tokens (three special, one not).
json byte_level_json(const json& pre_tokenizer) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  const std::string G = byte_char(' ');  // "Ġ"
  const std::vector<std::pair<std::string, std::string>> merges = {
      {G, "t"},   {"h", "e"},     {G + "t", "he"}, {"i", "n"},      {G, "a"},   {"e", "r"},
      {"o", "n"}, {G + "a", "n"}, {"d", "e"},      {G + "an", "d"}, {"1", "2"}, {"12", "3"},
      {G, "w"},   {"o", "r"},     {G + "w", "or"}, {"l", "d"},      {"'", "S"},
  };
  json m = json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    m.push_back(a + " " + b);
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
  }
  json added = json::array();
  const std::vector<std::pair<std::string, bool>> adds = {
      {"<|endoftext|>", true}, {"<|im_start|>", true}, {"<|im_end|>", true}, {"<tool>", false}};
  for (const auto& [content, special] : adds)
    added.push_back({{"id", next++},
                     {"content", content},
                     {"special", special},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"single_word", false}});
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre_tokenizer},
          {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}}},
          {"model",
           {{"type", "BPE"},
            {"unk_token", nullptr},
            {"byte_fallback", false},
            {"fuse_unk", false},
            {"vocab", vocab},
            {"merges", m}}}};
}

json gpt2_pre() { return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}; }

json split_pre(const char* regex) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
}

const char* const kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::vector<std::string> pieces(const Tokenizer& t, const std::vector<int>& ids) {
  std::vector<std::string> out;
  for (int id : ids) out.push_back(t.token_text(id));
  return out;
}

TEST(TinyStoriesTokenizer, Metadata) {
  auto t = tinystories();
  EXPECT_EQ(t->vocab_size(), 2048);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->token_text(1), "<|start_story|>");
  EXPECT_TRUE(t->strips_leading_space());
  EXPECT_TRUE(t->add_bos_default());
  EXPECT_TRUE(t->is_control(0));
  EXPECT_TRUE(t->is_control(1));
  EXPECT_TRUE(t->is_control(2));
  EXPECT_FALSE(t->is_control(80));
  EXPECT_EQ(t->token_bytes(1), "");
  EXPECT_EQ(t->token_bytes(108), " the ");  // "▁the▁"
  EXPECT_EQ(t->token_id("<|end_story|>"), 2);
  EXPECT_EQ(t->token_id("no such token"), -1);
  EXPECT_THROW(t->token_bytes(2048), Error);
  EXPECT_THROW(t->token_text(-1), Error);
}

TEST(TinyStoriesTokenizer, KnownStoryRoundTripsWithHuggingFaceIds) {
  auto t = tinystories();
  const std::vector<int> expected = {1,    80,   147, 201, 282,  215, 286,  598, 1662, 356,  499,  826,  1363,
                                     1145, 1652, 615, 242, 1482, 951, 628,  499, 826,  872,  921,  318,  385,
                                     628,  499,  826, 617, 242,  198, 1047, 425, 1939, 122,  1924, 1171, 94,
                                     303,  328,  229, 521, 776,  115, 1139, 312, 447,  1074, 10};
  const std::vector<int> ids = t->encode(kKnownStory, true);
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(t->decode(ids), kKnownStory);
  const std::vector<int> no_bos = t->encode(kKnownStory, false);
  EXPECT_EQ(no_bos, std::vector<int>(expected.begin() + 1, expected.end()));
  EXPECT_EQ(t->decode(no_bos), kKnownStory);
}

TEST(TinyStoriesTokenizer, RoundTripsTextWithinItsAlphabet) {
  auto t = tinystories();
  const std::vector<std::string> texts = {
      "",
      "a",
      "Hello, World! 123 4567890",
      "  two leading spaces and trailing   ",
      "line one\nline two\n\n\nafter blank lines\n",
      "Punctuation: \"quoted\"; 'single' - dash? yes! $5 <x> a_b|c",
      "ALL CAPS AND lower case mixed In Words",
      "Lily said, \"Let's go to the park!\" Tim said, \"OK.\"",
  };
  for (const std::string& s : texts) {
    const auto ids = t->encode(s, true);
    EXPECT_EQ(t->decode(ids), s) << s;
    for (int id : ids) EXPECT_NE(id, 0) << s;  // nothing unknown here
  }
  EXPECT_TRUE(t->encode("", false).empty());
  EXPECT_EQ(t->encode("", true), std::vector<int>{1});
}

TEST(TinyStoriesTokenizer, UnknownCharactersBecomeUnk) {
  auto t = tinystories();
  // No <0xXX> tokens in this vocabulary: byte fallback cannot apply, so each run of unknown
  // characters becomes one <unk> (fuse_unk).
  const auto ids = t->encode("a caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 x", false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 3) << ::testing::PrintToString(pieces(*t, ids));
  EXPECT_EQ(t->encode("\xE4\xB8\xAD\xE6\x96\x87", false), (std::vector<int>{80, 0}));  // "▁", one fused <unk>
  // <unk> is a control token: it renders as nothing, the known text around it survives.
  EXPECT_EQ(t->decode(t->encode("tab\there", false)), "tabhere");
  // Invalid UTF-8 never crashes; each invalid byte is an unknown character.
  const auto bad = t->encode("a\xFF\xFE b\xC3", false);
  EXPECT_EQ(t->decode(bad), "a b");
}

TEST(TinyStoriesTokenizer, SpecialTokensWrittenLiterallyMapToTheirIds) {
  auto t = tinystories();
  const auto ids = t->encode("<|start_story|>Once upon a time.<|end_story|>", false);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 1);
  // Control tokens render as nothing.
  EXPECT_EQ(t->decode(ids), "Once upon a time.");
  // A partial special token is ordinary text.
  const auto partial = t->encode("<|start_story", false);
  EXPECT_EQ(std::count(partial.begin(), partial.end(), 1), 0);
  EXPECT_EQ(t->decode(partial), "<|start_story");
}

TEST(ByteLevelTokenizer, Gpt2MergesAndRoundTrips) {
  auto t = Tokenizer::from_hf_json(write_json(byte_level_json(gpt2_pre())));
  EXPECT_EQ(t->vocab_size(), 256 + 17 + 4);
  EXPECT_FALSE(t->strips_leading_space());
  const std::string G = "\xC4\xA0";  // the byte-level character for a space
  // Words "the", " world", " and", " 1234"; merges never cross words.
  EXPECT_EQ(pieces(*t, t->encode("the world and 1234", false)),
            (std::vector<std::string>{"t", "he", G + "wor", "ld", G + "and", G, "123", "4"}));
  // GPT-2's contractions are lower case only: "'S" is two words, so "' S" cannot merge.
  EXPECT_EQ(pieces(*t, t->encode("IT'S", false)), (std::vector<std::string>{"I", "T", "'", "S"}));
  // "Ġthe": the merge "Ġt he" needs "he" first; rank order gets there.
  EXPECT_EQ(pieces(*t, t->encode(" the", false)), std::vector<std::string>{"\xC4\xA0the"});

  const std::vector<std::string> texts = {
      "Hello, world! The answer is 42.",
      "caf\xC3\xA9 na\xC3\xAFve \xC3\xBC\xC3\xB6\xC3\xA4 \xC3\x9F",
      "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!",
      "   spaces   and\ttabs\t\tand\n\nnewlines\r\n  ",
      "digits 0123456789 3.14159 1,000,000",
      "don't we'll it's I'M THEY'RE",
      "invalid \xFF\xFE utf8 \xC3 tail",
      "\n",
      " ",
  };
  for (const std::string& s : texts) EXPECT_EQ(t->decode(t->encode(s, false)), s) << s;
}

TEST(ByteLevelTokenizer, AddedTokensSplitFirst) {
  auto t = Tokenizer::from_hf_json(write_json(byte_level_json(gpt2_pre())));
  const int endoftext = t->token_id("<|endoftext|>");
  const int im_start = t->token_id("<|im_start|>");
  const int im_end = t->token_id("<|im_end|>");
  const int tool = t->token_id("<tool>");
  ASSERT_GE(endoftext, 0);
  EXPECT_EQ(t->eos_id(), endoftext);  // a well-known name, no template or config beside the file
  EXPECT_EQ(t->bos_id(), -1);
  EXPECT_FALSE(t->add_bos_default());
  EXPECT_TRUE(t->is_control(im_start));
  EXPECT_FALSE(t->is_control(tool));

  const auto ids = t->encode("<|im_start|>user\nhi<|im_end|><tool>x", false);
  EXPECT_EQ(ids.front(), im_start);
  EXPECT_NE(std::find(ids.begin(), ids.end(), im_end), ids.end());
  EXPECT_NE(std::find(ids.begin(), ids.end(), tool), ids.end());
  // Special tokens render as nothing; a non-special added token renders as its text.
  EXPECT_EQ(t->decode(ids), "user\nhi<tool>x");
  EXPECT_EQ(t->decode(t->encode("a<tool>b<tool>", false)), "a<tool>b<tool>");
  // Incomplete markers are plain text.
  EXPECT_EQ(t->decode(t->encode("<|im_start", false)), "<|im_start");
}

TEST(ByteLevelTokenizer, Qwen2SplitRegex) {
  auto t = Tokenizer::from_hf_json(write_json(byte_level_json(split_pre(kQwen2Regex))));
  // Qwen2 splits digits one by one, so the "12 3" merges never apply.
  EXPECT_EQ(pieces(*t, t->encode("1234", false)), (std::vector<std::string>{"1", "2", "3", "4"}));
  // Contractions match in any case: "'S" is one word and merges.
  EXPECT_EQ(pieces(*t, t->encode("IT'S", false)), (std::vector<std::string>{"I", "T", "'S"}));
  const std::vector<std::string> texts = {"Hello world, 12345!\n\n  x",
                                          "\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80", "tabs\t\there\r\n"};
  for (const std::string& s : texts) EXPECT_EQ(t->decode(t->encode(s, false)), s) << s;
}

TEST(ByteLevelTokenizer, AddPrefixSpace) {
  json j = byte_level_json({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}});
  auto t = Tokenizer::from_hf_json(write_json(j));
  EXPECT_EQ(pieces(*t, t->encode("the", false)), std::vector<std::string>{"\xC4\xA0the"});
  EXPECT_EQ(t->decode(t->encode("the", false)), " the");
}

TEST(HfJsonTokenizer, BosEosFromSideFilesAndTemplate) {
  json j = byte_level_json(gpt2_pre());
  const std::string dir = temp_dir();
  write_file(dir + "/tokenizer.json", j.dump());
  write_file(
      dir + "/tokenizer_config.json",
      R"({"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"}, "add_bos_token": true})");
  auto t = Tokenizer::from_hf_json(dir + "/tokenizer.json");
  EXPECT_EQ(t->bos_id(), t->token_id("<|im_start|>"));
  EXPECT_EQ(t->eos_id(), t->token_id("<|im_end|>"));
  EXPECT_TRUE(t->add_bos_default());
  EXPECT_EQ(t->encode("x", true).front(), t->bos_id());

  // A post-processor template wins over the side files.
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single",
                          {{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}},
                           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
  write_file(dir + "/tokenizer.json", j.dump());
  write_file(dir + "/tokenizer_config.json", R"({"bos_token": null, "eos_token": "<|im_end|>"})");
  t = Tokenizer::from_hf_json(dir + "/tokenizer.json");
  EXPECT_EQ(t->bos_id(), t->token_id("<|endoftext|>"));
  EXPECT_TRUE(t->add_bos_default());
}

// The error message must name the file and say what is wrong.
void expect_error(const std::string& path, const std::string& fragment) {
  try {
    Tokenizer::from_hf_json(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(HfJsonTokenizer, BadFilesGiveClearErrors) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/tokenizer.json";
  write_file(path, "this is not { json");
  expect_error(path, "not valid JSON");
  write_file(path, "");
  expect_error(path, "not valid JSON");
  write_file(path, "[1, 2, 3]");
  expect_error(path, "not a JSON object");
  write_file(path, R"({"version": "1.0"})");
  expect_error(path, "no \"model\"");
  write_file(path, R"({"model": {"type": "Unigram", "vocab": []}})");
  expect_error(path, "Unigram");

  json j = byte_level_json(gpt2_pre());
  j["model"]["merges"].push_back("x nosuchtoken");
  write_file(path, j.dump());
  expect_error(path, "unknown token \"nosuchtoken\"");

  j = byte_level_json(gpt2_pre());
  j["model"]["merges"].push_back("abc");
  write_file(path, j.dump());
  expect_error(path, "not two tokens");

  j = byte_level_json(gpt2_pre());
  j["model"]["vocab"]["bad"] = -4;
  write_file(path, j.dump());
  expect_error(path, "token id must be");

  j = byte_level_json(gpt2_pre());
  j["model"]["vocab"] = "nope";
  write_file(path, j.dump());
  expect_error(path, "\"vocab\" must be an object");

  j = byte_level_json({{"type", "Whitespace"}});
  write_file(path, j.dump());
  expect_error(path, "pre_tokenizer type \"Whitespace\" is not supported");

  j = byte_level_json(split_pre("(unclosed"));
  write_file(path, j.dump());
  expect_error(path, "bad regex");

  j = byte_level_json(gpt2_pre());
  j["added_tokens"][0]["id"] = "seven";
  write_file(path, j.dump());
  expect_error(path, "added_tokens[0]");

  j = byte_level_json(gpt2_pre());
  j["model"]["vocab"]["far"] = 10000000;
  write_file(path, j.dump());
  expect_error(path, "the largest token id is 10000000");

  json nested = gpt2_pre();
  for (int i = 0; i < 100; ++i) nested = {{"type", "Sequence"}, {"pretokenizers", {nested}}};
  j = byte_level_json(nested);
  write_file(path, j.dump());
  expect_error(path, "nested more than");

  j = byte_level_json(gpt2_pre());
  j["decoder"] = {{"type", "WordPiece"}};
  write_file(path, j.dump());
  expect_error(path, "decoder type \"WordPiece\" is not supported");

  expect_error(dir + "/missing.json", "cannot open");
}

TEST(HfJsonTokenizer, TruncatedFilesNeverCrash) {
  const std::string text = test::read_file(shared_model("tinystories-656k/tokenizer.json"));
  const std::string path = temp_dir() + "/tokenizer.json";
  for (size_t cut :
       {size_t(1), size_t(100), size_t(1000), text.size() / 3, text.size() / 2, text.size() - 2}) {
    write_file(path, text.substr(0, cut));
    EXPECT_THROW(Tokenizer::from_hf_json(path), Error) << cut;
  }
}

}  // namespace
}  // namespace dspark
