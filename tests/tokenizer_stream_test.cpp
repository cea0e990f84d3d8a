// Streaming decode: TextStream gives only whole UTF-8 characters, each exactly once, and
// the concatenation of its pieces equals Tokenizer::decode.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace dspark {
namespace {

std::unique_ptr<Tokenizer> stories() {
  return Tokenizer::from_llama2c(test::shared_model("stories260k/tok512.bin"));
}

// Strict UTF-8 check, written independently of the library.
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    size_t n;
    unsigned cp;
    if (c < 0x80) {
      n = 1, cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      n = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

std::vector<std::string> stream_all(const Tokenizer& t, const std::vector<int>& ids, std::string* joined) {
  TextStream stream(t);
  std::vector<std::string> parts;
  for (int id : ids) parts.push_back(stream.push(id));
  parts.push_back(stream.finish());
  joined->clear();
  for (const auto& p : parts) *joined += p;
  return parts;
}

int byte_token(int b) { return 3 + b; }  // llama2.c layout

TEST(TextStream, MultiByteCharacterComesOutWholeAndOnce) {
  auto t = stories();
  const std::string text = "a \xE4\xB8\xAD\xE6\x96\x87 b \xF0\x9F\x98\x80!";
  const auto ids = t->encode(text, true);
  std::string joined;
  const auto parts = stream_all(*t, ids, &joined);
  EXPECT_EQ(joined, text);
  EXPECT_EQ(joined, t->decode(ids));
  int zhong = 0;
  for (const auto& p : parts) {
    EXPECT_TRUE(valid_utf8(p)) << ::testing::PrintToString(p);
    if (p.find("\xE4\xB8\xAD") != std::string::npos) ++zhong;
  }
  EXPECT_EQ(zhong, 1);
}

TEST(TextStream, HoldsAnIncompleteCharacterUntilItCompletes) {
  auto t = stories();
  TextStream s(*t);
  EXPECT_EQ(s.push(1), "");  // BOS
  EXPECT_EQ(s.push(byte_token(0xF0)), "");
  EXPECT_EQ(s.push(byte_token(0x9F)), "");
  EXPECT_EQ(s.push(2), "");  // a control token in between changes nothing
  EXPECT_EQ(s.push(byte_token(0x98)), "");
  EXPECT_EQ(s.push(byte_token(0x80)), "\xF0\x9F\x98\x80");
  EXPECT_EQ(s.finish(), "");
}

TEST(TextStream, InvalidBytesAreEmittedNotHeldForever) {
  auto t = stories();
  TextStream s(*t);
  EXPECT_EQ(s.push(byte_token(0xE4)), "");
  EXPECT_EQ(s.push(byte_token('A')),
            "\xE4"
            "A");                               // E4 cannot be followed by 'A'
  EXPECT_EQ(s.push(byte_token(0xFF)), "\xFF");  // never valid: out at once
  EXPECT_EQ(s.push(byte_token(0x80)), "\x80");  // a stray continuation byte
  EXPECT_EQ(s.push(byte_token(0xE0)), "");
  EXPECT_EQ(s.push(byte_token(0x80)), "\xE0\x80");  // overlong: E0 needs A0..BF next
  EXPECT_EQ(s.push(byte_token(0xE4)), "");
  EXPECT_EQ(s.push(byte_token(0xB8)), "");
  EXPECT_EQ(s.finish(), "\xE4\xB8");  // the end of the stream: whatever is held, as is
  const std::vector<int> ids = {byte_token(0xE4), byte_token('A'), byte_token(0xFF), byte_token(0xE4)};
  std::string joined;
  stream_all(*t, ids, &joined);
  EXPECT_EQ(joined, t->decode(ids));
  EXPECT_EQ(joined,
            "\xE4"
            "A\xFF\xE4");
}

TEST(TextStream, LeadingSpaceIsStrippedOnceAtTheStart) {
  auto t = stories();
  const int once = t->encode("Once", false)[0];
  ASSERT_EQ(t->token_bytes(once), " Once");
  TextStream s(*t);
  EXPECT_EQ(s.push(1), "");
  EXPECT_EQ(s.push(once), "Once");
  EXPECT_EQ(s.push(once), " Once");
  EXPECT_EQ(t->decode({1, once, once}), "Once Once");
  EXPECT_EQ(t->decode({once, 2, once}), "Once Once");

  auto hf = Tokenizer::from_hf_json(test::shared_model("tinystories-656k/tokenizer.json"));
  const auto ids = hf->encode("Lily and Tim went home.", true);
  std::string joined;
  const auto parts = stream_all(*hf, ids, &joined);
  EXPECT_EQ(joined, "Lily and Tim went home.");
  EXPECT_EQ(joined, hf->decode(ids));
}

TEST(TextStream, RandomTokenSequencesMatchDecode) {
  std::mt19937 rng(1234);
  auto tokenizers = std::vector<std::unique_ptr<Tokenizer>>{};
  tokenizers.push_back(stories());
  tokenizers.push_back(Tokenizer::from_hf_json(test::shared_model("tinystories-656k/tokenizer.json")));
  for (const auto& t : tokenizers) {
    std::uniform_int_distribution<int> any(0, t->vocab_size() - 1);
    for (int round = 0; round < 300; ++round) {
      std::vector<int> ids(size_t(1 + rng() % 40));
      for (int& id : ids) id = round % 2 ? any(rng) : byte_token(int(rng() % 256)) % t->vocab_size();
      std::string joined;
      const auto parts = stream_all(*t, ids, &joined);
      EXPECT_EQ(joined, t->decode(ids));
      // When the whole text is valid UTF-8, so is every piece.
      if (valid_utf8(joined)) {
        for (const auto& p : parts) EXPECT_TRUE(valid_utf8(p));
      }
    }
  }
}

TEST(TextStream, OutOfRangeIdsThrow) {
  auto t = stories();
  TextStream s(*t);
  EXPECT_THROW(s.push(512), Error);
  EXPECT_THROW(s.push(-1), Error);
  EXPECT_THROW(t->decode({1, 5000}), Error);
}

}  // namespace
}  // namespace dspark
