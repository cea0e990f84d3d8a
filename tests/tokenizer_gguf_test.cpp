// Vocabularies embedded in GGUF files (tokenizer.ggml.*), written with GgufWriter: a
// sentencepiece-style "llama" vocabulary (scores, byte tokens) and a byte-level "gpt2"
// one (merges, pre-tokenizer by name), plus malformed metadata.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace dspark {
namespace {

const std::string kSp = "\xE2\x96\x81";  // U+2581

enum Type { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct VocabSpec {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  void add(const std::string& t, float score, int type) {
    tokens.push_back(t);
    scores.push_back(score);
    types.push_back(type);
  }
};

std::shared_ptr<GgufFile> write_and_open(const GgufWriter& w) {
  const std::string path = test::temp_dir() + "/vocab.gguf";
  w.write(path);
  return GgufFile::open(path);
}

// <unk> <s> </s>, 256 byte tokens, printable ASCII (space as U+2581), a few merges, and two
// chat markers: one control, one user-defined.
VocabSpec llama_vocab() {
  VocabSpec v;
  v.add("<unk>", 0, kUnknown);
  v.add("<s>", 0, kControl);
  v.add("</s>", 0, kControl);
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) v.add(std::string{'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'}, 0, kByte);
  for (char c = 33; c < 127; ++c) v.add(std::string(1, c), -1000.0f - float(c), kNormal);
  v.add(kSp, -500, kNormal);
  v.add(kSp + "t", -1, kNormal);
  v.add("he", -2, kNormal);
  v.add(kSp + "the", -0.5f, kNormal);
  v.add(kSp + "a", -3, kNormal);
  v.add("<|eot|>", 0, kControl);
  v.add("<|user|>", 0, kUserDefined);
  v.add("[unused]", 0, kUnused);
  return v;
}

std::shared_ptr<GgufFile> llama_gguf(const VocabSpec& v, bool space_prefix = true) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  w.set_float_array("tokenizer.ggml.scores", v.scores);
  w.set_int32_array("tokenizer.ggml.token_type", v.types);
  w.set_uint32("tokenizer.ggml.bos_token_id", 1);
  w.set_uint32("tokenizer.ggml.eos_token_id", 2);
  w.set_uint32("tokenizer.ggml.unknown_token_id", 0);
  if (!space_prefix) w.set_bool("tokenizer.ggml.add_space_prefix", false);
  return write_and_open(w);
}

std::vector<std::string> pieces(const Tokenizer& t, const std::vector<int>& ids) {
  std::vector<std::string> out;
  for (int id : ids) out.push_back(t.token_text(id));
  return out;
}

using Pieces = std::vector<std::string>;

const std::vector<std::string>& varied_texts() {
  static const std::vector<std::string> texts = {
      "Once upon a time, there was a little girl named Lily.",
      "the theme of the day",
      "  leading and trailing  ",
      "lines\nand\n\nblank lines\r\n",
      "tabs\tand\t\ttabs",
      "digits 0123456789 and 3.14159",
      "caf\xC3\xA9 na\xC3\xAFve \xC3\x9F",
      "\xE4\xB8\xAD\xE6\x96\x87 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
      "invalid \xFF\xFE bytes \xC3",
  };
  return texts;
}

TEST(GgufLlamaVocab, MetadataAndScoreMerges) {
  const VocabSpec spec = llama_vocab();
  auto g = llama_gguf(spec);
  auto t = Tokenizer::from_gguf(*g);
  EXPECT_EQ(t->vocab_size(), int(spec.tokens.size()));
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_TRUE(t->add_bos_default());
  EXPECT_TRUE(t->strips_leading_space());
  EXPECT_TRUE(t->is_control(0));
  EXPECT_TRUE(t->is_control(1));
  EXPECT_EQ(t->token_bytes(3 + 'x'), "x");  // byte token
  EXPECT_EQ(t->token_bytes(t->token_id(kSp + "the")), " the");
  // "▁t" (-1) before "he" (-2), then "▁the" (-0.5).
  EXPECT_EQ(pieces(*t, t->encode("the", true)), (Pieces{"<s>", kSp + "the"}));
  EXPECT_EQ(pieces(*t, t->encode("a the", false)), (Pieces{kSp + "a", kSp + "the"}));
  EXPECT_EQ(t->decode(t->encode("the", true)), "the");
  // Characters that are not tokens fall back to byte tokens after merging.
  EXPECT_EQ(pieces(*t, t->encode("\xC3\xA9", false)), (Pieces{kSp, "<0xC3>", "<0xA9>"}));
}

TEST(GgufLlamaVocab, RoundTripsAndLiteralTokens) {
  auto g = llama_gguf(llama_vocab());
  auto t = Tokenizer::from_gguf(*g);
  for (const std::string& s : varied_texts()) {
    const auto ids = t->encode(s, true);
    EXPECT_EQ(t->decode(ids), s) << s;
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0) << s;
  }
  const int eot = t->token_id("<|eot|>");
  const int user = t->token_id("<|user|>");
  const auto ids = t->encode("<|user|>hi<|eot|>", false);
  EXPECT_EQ(ids.front(), user);
  EXPECT_EQ(ids.back(), eot);
  EXPECT_TRUE(t->is_control(eot));
  EXPECT_FALSE(t->is_control(user));
  // A control token renders as nothing, a user-defined one as its text; the fragment after
  // a literal token gets the dummy-prefix space again (as llama.cpp does).
  EXPECT_EQ(t->decode(ids), "<|user|> hi");
  EXPECT_EQ(t->decode(t->encode("<s>the</s>", false)), "the");
}

TEST(GgufLlamaVocab, NoSpacePrefix) {
  auto g = llama_gguf(llama_vocab(), false);
  auto t = Tokenizer::from_gguf(*g);
  EXPECT_FALSE(t->strips_leading_space());
  EXPECT_EQ(pieces(*t, t->encode("the", false)), (Pieces{"t", "he"}));
  EXPECT_EQ(t->decode(t->encode(" the x", false)), " the x");
}

// GPT-2's byte-to-unicode map for one byte.
std::string byte_char(int b) {
  auto printable = [](int k) { return (k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE); };
  int cp = b;
  if (!printable(b)) {
    cp = 256;
    for (int k = 0; k < b; ++k) cp += printable(k) ? 0 : 1;
  }
  if (cp < 0x80) return std::string(1, char(cp));
  return std::string{char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
}

std::shared_ptr<GgufFile> gpt2_gguf(const std::string& pre,
                                    const std::vector<std::string>& extra_merges = {}) {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_char(b)), types.push_back(kNormal);
  const std::string G = byte_char(' ');
  std::vector<std::string> merges = {G + " t", "h e", G + "t he", "1 2", "12 3", "' s", "' S"};
  merges.insert(merges.end(), extra_merges.begin(), extra_merges.end());
  for (const std::string& m : merges) {
    const std::string merged = m.substr(0, m.find(' ', 1)) + m.substr(m.find(' ', 1) + 1);
    if (std::find(tokens.begin(), tokens.end(), merged) == tokens.end())
      tokens.push_back(merged), types.push_back(kNormal);
  }
  for (const char* c : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
    tokens.push_back(c), types.push_back(kControl);
  tokens.push_back("<tool>"), types.push_back(kUserDefined);
  GgufWriter w;
  w.set_string("general.architecture", "qwen2");
  w.set_string("tokenizer.ggml.model", "gpt2");
  if (!pre.empty()) w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_int32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", merges);
  w.set_uint32("tokenizer.ggml.eos_token_id", uint32_t(tokens.size() - 4));
  w.set_uint32("tokenizer.ggml.bos_token_id", uint32_t(tokens.size() - 4));
  w.set_bool("tokenizer.ggml.add_bos_token", false);
  return write_and_open(w);
}

TEST(GgufGpt2Vocab, PreTokenizerByName) {
  const std::string G = byte_char(' ');
  auto gpt2 = Tokenizer::from_gguf(*gpt2_gguf("gpt-2"));
  auto qwen = Tokenizer::from_gguf(*gpt2_gguf("qwen2"));
  auto llama3 = Tokenizer::from_gguf(*gpt2_gguf("llama-bpe"));
  auto absent = Tokenizer::from_gguf(*gpt2_gguf(""));  // no key: "default", GPT-2's regex
  EXPECT_EQ(pieces(*gpt2, gpt2->encode("the 1234", false)), (Pieces{"t", "he", G, "123", "4"}));
  EXPECT_EQ(pieces(*absent, absent->encode("the 1234", false)), (Pieces{"t", "he", G, "123", "4"}));
  EXPECT_EQ(pieces(*gpt2, gpt2->encode(" the", false)), (Pieces{G + "the"}));
  // Qwen2: one digit per word; Llama 3: up to three digits per word.
  EXPECT_EQ(pieces(*qwen, qwen->encode("the 1234", false)), (Pieces{"t", "he", G, "1", "2", "3", "4"}));
  EXPECT_EQ(pieces(*llama3, llama3->encode("the 1234", false)), (Pieces{"t", "he", G, "123", "4"}));
  // Contractions: case-sensitive in GPT-2's regex, not in Qwen2's.
  EXPECT_EQ(pieces(*gpt2, gpt2->encode("IT'S", false)), (Pieces{"I", "T", "'", "S"}));
  EXPECT_EQ(pieces(*qwen, qwen->encode("IT'S", false)), (Pieces{"I", "T", "'S"}));
}

TEST(GgufGpt2Vocab, RoundTripsAndControlTokens) {
  auto g = gpt2_gguf("qwen2");
  auto t = Tokenizer::from_gguf(*g);
  const int eot = t->token_id("<|endoftext|>");
  EXPECT_EQ(t->bos_id(), eot);
  EXPECT_EQ(t->eos_id(), eot);
  EXPECT_FALSE(t->add_bos_default());
  EXPECT_FALSE(t->strips_leading_space());
  for (const std::string& s : varied_texts()) EXPECT_EQ(t->decode(t->encode(s, false)), s) << s;
  const auto ids = t->encode("<|im_start|>user\nhi<tool><|im_end|>", false);
  EXPECT_EQ(ids.front(), t->token_id("<|im_start|>"));
  EXPECT_EQ(ids.back(), t->token_id("<|im_end|>"));
  EXPECT_EQ(t->decode(ids), "user\nhi<tool>");
  // A 4-byte emoji is 4 tokens here; streaming gives it once, whole.
  const auto emoji = t->encode("\xF0\x9F\x98\x80", false);
  ASSERT_EQ(emoji.size(), 4u);
  TextStream s(*t);
  EXPECT_EQ(s.push(emoji[0]), "");
  EXPECT_EQ(s.push(emoji[1]), "");
  EXPECT_EQ(s.push(emoji[2]), "");
  EXPECT_EQ(s.push(emoji[3]), "\xF0\x9F\x98\x80");
}

void expect_gguf_error(const GgufWriter& w, const std::string& fragment) {
  const std::string path = test::temp_dir() + "/bad.gguf";
  w.write(path);
  try {
    auto g = GgufFile::open(path);
    Tokenizer::from_gguf(*g);
    ADD_FAILURE() << "no error; expected " << fragment;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  }
}

GgufWriter small_gpt2(const std::string& pre) {
  GgufWriter w;
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_char(b));
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_string_array("tokenizer.ggml.merges", {});
  return w;
}

TEST(GgufVocab, BadMetadataGivesClearErrors) {
  expect_gguf_error(small_gpt2("nonsense"), "tokenizer.ggml.pre \"nonsense\" is not supported");
  {
    GgufWriter w = small_gpt2("qwen2");
    w.set_string_array("tokenizer.ggml.merges", {"a zz"});
    expect_gguf_error(w, "refers to unknown token \"zz\"");
  }
  {
    GgufWriter w = small_gpt2("qwen2");
    w.set_string_array("tokenizer.ggml.merges", {"ab"});
    expect_gguf_error(w, "not two tokens");
  }
  {
    GgufWriter w = small_gpt2("qwen2");
    w.set_string("tokenizer.ggml.model", "bert");
    expect_gguf_error(w, "tokenizer.ggml.model \"bert\" is not supported");
  }
  {
    GgufWriter w = small_gpt2("qwen2");
    w.set_int32_array("tokenizer.ggml.token_type", {1, 1, 1});
    expect_gguf_error(w, "token_type has 3 entries for 256 tokens");
  }
  {
    GgufWriter w = small_gpt2("qwen2");
    w.set_uint32("tokenizer.ggml.eos_token_id", 1000);
    expect_gguf_error(w, "tokenizer.ggml.eos_token_id is 1000");
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    expect_gguf_error(w, "tokenizer.ggml.tokens");
  }
  {
    GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
    w.set_float_array("tokenizer.ggml.scores", {0, 0});
    expect_gguf_error(w, "scores has 2 entries for 4 tokens");
  }
  {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    expect_gguf_error(w, "tokenizer.ggml.model");
  }
}

}  // namespace
}  // namespace dspark
