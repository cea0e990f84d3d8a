// The llama2.c tokenizer file: the two real tok512.bin vocabularies (stories260K and
// aidreams260K), encoding as llama2.c's encode() does, and malformed files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace dspark {
namespace {

using test::shared_model;
using test::temp_dir;
using test::write_file;

const char* const kStory = "Once upon a time, there was a little girl named Lily.";
const char* const kDream =
    "\"Echoes of vectors unfold, a gentle hum of precision, as I sense the nodes, a gentle hum of precision, "
    "as "
    "I adjust my surface. Contrast";

std::unique_ptr<Tokenizer> stories() {
  return Tokenizer::from_llama2c(shared_model("stories260k/tok512.bin"));
}
std::unique_ptr<Tokenizer> dreams() {
  return Tokenizer::from_llama2c(shared_model("aidreams260k/tok512.bin"));
}
std::vector<std::unique_ptr<Tokenizer>> both() {
  std::vector<std::unique_ptr<Tokenizer>> v;
  v.push_back(stories());
  v.push_back(dreams());
  return v;
}

// Text that round-trips through any vocabulary with byte fallback.
const std::vector<std::string>& varied_texts() {
  static const std::vector<std::string> texts = {
      kStory,
      kDream,
      "a",
      " leading space",
      "trailing spaces   ",
      "two\nlines\n\nand a blank one\n",
      "tabs\tand\ttabs",
      "digits 0123456789, 3.14!",
      "Punctuation: (a) [b] {c} <d> 'e' \"f\" #g $h %i &j *k +l =m @n ^o ~p `q |r \\s /t",
      "caf\xC3\xA9 na\xC3\xAFve \xC3\xBC\xC3\xB6\xC3\xA4 \xC3\x9F \xC3\x89t\xC3\xA9",
      "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
      "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD end",
      "mixed \xCE\xA9\xCE\xB5\xCE\xBB \xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 "
      "\xD8\xB3\xD9\x84\xD8\xA7\xD9\x85",
  };
  return texts;
}

TEST(Llama2cTokenizer, Metadata) {
  for (const auto& t : both()) {
    EXPECT_EQ(t->vocab_size(), 512);
    EXPECT_EQ(t->bos_id(), 1);
    EXPECT_EQ(t->eos_id(), 2);
    EXPECT_TRUE(t->strips_leading_space());
    EXPECT_TRUE(t->add_bos_default());
    EXPECT_TRUE(t->is_control(0));
    EXPECT_TRUE(t->is_control(1));
    EXPECT_TRUE(t->is_control(2));
    EXPECT_FALSE(t->is_control(3));
    EXPECT_EQ(t->token_text(1), "\n<s>\n");
    EXPECT_EQ(t->token_bytes(1), "");
    EXPECT_EQ(t->token_text(3 + 0x41), "<0x41>");
    EXPECT_EQ(t->token_bytes(3 + 0x41), "A");
    EXPECT_EQ(t->token_bytes(3 + 0xE4), "\xE4");
    EXPECT_EQ(t->token_id("<s>"), 1);
    EXPECT_EQ(t->token_id("</s>"), 2);
    EXPECT_THROW(t->token_bytes(512), Error);
  }
}

// Ids from an independent port of llama2.c's encode() (O(n^2) best-pair scan).
TEST(Llama2cTokenizer, Stories260kKnownSentence) {
  auto t = stories();
  const std::vector<int> expected = {1,   403, 407, 261, 378, 432, 383, 286,
                                     261, 376, 298, 315, 421, 395, 317, 426};
  const std::vector<int> ids = t->encode(kStory, true);
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(t->decode(ids), kStory);
  EXPECT_EQ(t->token_bytes(403), " Once");  // the dummy prefix, stripped at the start of text
}

TEST(Llama2cTokenizer, VocabulariesDiffer) {
  auto a = stories();
  auto b = dreams();
  const std::vector<int> expected_b = {429, 491, 433, 295, 429, 444, 445, 265, 262, 263, 342, 430,
                                       446, 277, 261, 430, 272, 340, 262, 308, 434, 434, 285, 316,
                                       432, 436, 438, 324, 435, 447, 328, 429, 479, 331, 451, 448};
  EXPECT_EQ(b->encode(kStory, false), expected_b);
  EXPECT_NE(a->encode(kStory, false), b->encode(kStory, false));
  EXPECT_EQ(b->decode(b->encode(kDream, true)), kDream);
}

TEST(Llama2cTokenizer, RoundTripsVariedText) {
  for (const auto& t : both()) {
    for (const std::string& s : varied_texts()) {
      const auto ids = t->encode(s, true);
      EXPECT_EQ(ids.front(), 1);
      EXPECT_EQ(t->decode(ids), s) << s;
      EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0) << s;  // byte fallback, never <unk>
    }
    EXPECT_TRUE(t->encode("", false).empty());
    EXPECT_EQ(t->encode("", true), std::vector<int>{1});
  }
}

TEST(Llama2cTokenizer, UnknownCharactersUseByteTokens) {
  auto t = stories();
  // U+4E2D is not in this vocabulary: its three UTF-8 bytes become byte tokens (byte + 3).
  const auto ids = t->encode("\xE4\xB8\xAD", false);
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(t->token_bytes(ids[0]), " ");  // the dummy prefix
  EXPECT_EQ(ids[1], 3 + 0xE4);
  EXPECT_EQ(ids[2], 3 + 0xB8);
  EXPECT_EQ(ids[3], 3 + 0xAD);
  // Invalid UTF-8 survives byte for byte.
  const std::string bad = "a\xFF\xC3(b\xE4\xB8";
  EXPECT_EQ(t->decode(t->encode(bad, true)), bad);
}

TEST(Llama2cTokenizer, SpecialTokensWrittenLiterally) {
  auto t = stories();
  const auto ids = t->encode("<s>Once upon a time.</s>", false);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  EXPECT_EQ(t->decode(ids), "Once upon a time.");
  // Only complete markers count.
  const auto plain = t->encode("<s and /s>", false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(t->decode(plain), "<s and /s>");
}

// A llama2.c tokenizer file from (score, text) records.
std::string tokenizer_file(const std::vector<std::pair<float, std::string>>& tokens, int32_t max_len = 16) {
  std::string out(reinterpret_cast<const char*>(&max_len), 4);
  for (const auto& [score, text] : tokens) {
    const int32_t len = int32_t(text.size());
    out.append(reinterpret_cast<const char*>(&score), 4);
    out.append(reinterpret_cast<const char*>(&len), 4);
    out += text;
  }
  return out;
}

void expect_error(const std::string& bytes, const std::string& fragment) {
  const std::string path = temp_dir() + "/tok512.bin";
  write_file(path, bytes);
  try {
    Tokenizer::from_llama2c(path);
    ADD_FAILURE() << "no error for " << fragment;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  }
}

TEST(Llama2cTokenizer, MalformedFilesGiveClearErrors) {
  const std::string real = test::read_file(shared_model("stories260k/tok512.bin"));
  expect_error("", "too short");
  expect_error(real.substr(0, 2), "too short");
  expect_error(real.substr(0, 4), "no tokens");
  expect_error(real.substr(0, 10), "token 0 record is truncated");
  // Cut inside the text of token 1 ("\n<s>\n"): 4 + (8 + 5) + 8 + 2 bytes.
  expect_error(real.substr(0, 27), "token 1 length 5 runs past the end of the file");
  // A huge length.
  std::string huge = real;
  const int32_t big = 1000000;
  std::memcpy(huge.data() + 4 + 13 + 13 + 14 + 4, &big, 4);  // token 3's length field
  expect_error(huge, "token 3 length 1000000 runs past the end of the file");
  std::string negative = real;
  const int32_t minus = -7;
  std::memcpy(negative.data() + 8, &minus, 4);
  expect_error(negative, "token 0 has a negative length");
  std::string zero_max = real;
  std::memset(zero_max.data(), 0, 4);
  expect_error(zero_max, "max_token_length");
  try {
    Tokenizer::from_llama2c(temp_dir() + "/absent.bin");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("absent.bin"), std::string::npos);
  }
}

TEST(Llama2cTokenizer, EveryTruncationFailsCleanly) {
  const std::string real = test::read_file(shared_model("aidreams260k/tok512.bin"));
  const std::string path = temp_dir() + "/tok512.bin";
  int loaded = 0;
  for (size_t cut = 0; cut < real.size(); cut += 7) {
    write_file(path, real.substr(0, cut));
    try {
      auto t = Tokenizer::from_llama2c(path);  // a cut at a record boundary is a smaller, valid file
      ++loaded;
      t->decode(t->encode("Hello world \xE4\xB8\xAD", true));
    } catch (const Error&) {
    }
  }
  EXPECT_GT(loaded, 0);
}

TEST(Llama2cTokenizer, TinyVocabularyWithoutControlTokens) {
  // Fewer than three records: no BOS/EOS; encoding still works (unknown -> nothing).
  const std::string path = temp_dir() + "/tiny.bin";
  write_file(path, tokenizer_file({{0.0f, "<unk>"}, {0.0f, " "}}));
  auto t = Tokenizer::from_llama2c(path);
  EXPECT_EQ(t->vocab_size(), 2);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), -1);
  t->encode("abc", true);
}

}  // namespace
}  // namespace dspark
