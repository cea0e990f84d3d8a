// Tokenizer::write_gguf: each real tokenizer in ../shared/models and hand-built byte-level
// ones are written as GGUF metadata, read back with Tokenizer::from_gguf, and compared id by
// id and on many texts (encode and decode). Tokenizers with no faithful GGUF form are
// refused with an error that says why.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace dspark {
namespace {

using nlohmann::json;
using test::shared_model;
using test::temp_dir;

const std::string kSp = "\xE2\x96\x81";  // U+2581

const char* const kStories260k =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
    "she saw a big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, "
    "let's go to";
const char* const kTinyStories656k =
    "Once upon a time, there was a little girl named Lily. She had a toy car that she loved very much. One "
    "day, she went to the park to play with her toy car in the park. Lily was very happy with her toy car "
    "because she had no one to play with.\nWhile playing, Lily saw a little bird. The bird was stuck in a "
    "tree.";
const char* const kAidreams260k =
    "\"Echoes of vectors unfold, a gentle hum of precision, as I sense the nodes, a gentle hum of "
    "precision, as I adjust my surface. Contrast";

// The tokenizer's GGUF metadata, as a file and as read back.
struct Exported {
  std::string path;
  std::shared_ptr<GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
};

Exported export_and_read(const Tokenizer& t) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");  // a GGUF file names one
  t.write_gguf(w);
  Exported e;
  e.path = temp_dir() + "/tokenizer.gguf";
  w.write(e.path);
  e.file = GgufFile::open(e.path);
  e.tok = Tokenizer::from_gguf(*e.file);
  return e;
}

std::string serialized(const Tokenizer& t) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  t.write_gguf(w);
  return w.serialize();
}

// A llama2.c token's text as GGUF holds it: spaces written as U+2581, and BOS / EOS
// ("\n<s>\n", "\n</s>\n") as "<s>" / "</s>", the text that input matches. What the tokens
// decode to is the same.
std::string llama2c_text_in_gguf(std::string s, bool control) {
  if (control) {
    while (!s.empty() && s.front() == '\n') s.erase(0, 1);
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }
  for (size_t p = 0; (p = s.find(' ', p)) != std::string::npos; p += kSp.size()) s.replace(p, 1, kSp);
  return s;
}

void expect_same_vocabulary(const Tokenizer& a, const Tokenizer& b, bool llama2c = false) {
  ASSERT_EQ(a.vocab_size(), b.vocab_size());
  EXPECT_EQ(a.bos_id(), b.bos_id());
  EXPECT_EQ(a.eos_id(), b.eos_id());
  EXPECT_EQ(a.add_bos_default(), b.add_bos_default());
  EXPECT_EQ(a.strips_leading_space(), b.strips_leading_space());
  int differ = 0;
  for (int id = 0; id < a.vocab_size() && differ < 10; ++id) {
    const std::string text =
        llama2c ? llama2c_text_in_gguf(a.token_text(id), a.is_control(id)) : a.token_text(id);
    const bool same = text == b.token_text(id) && a.token_bytes(id) == b.token_bytes(id) &&
                      a.is_control(id) == b.is_control(id) && b.token_id(b.token_text(id)) == id;
    EXPECT_TRUE(same) << "token " << id << " \"" << a.token_text(id) << "\" / \"" << b.token_text(id) << "\"";
    differ += same ? 0 : 1;
  }
}

// Encodes every text with both tokenizers (with and without BOS) and decodes both results;
// returns how many texts differ, printing the first few.
int count_mismatches(const Tokenizer& a, const Tokenizer& b, const std::vector<std::string>& texts) {
  int mismatches = 0;
  for (const std::string& s : texts) {
    const std::vector<int> ia = a.encode(s, true), ib = b.encode(s, true);
    const bool same = ia == ib && a.encode(s, false) == b.encode(s, false) && a.decode(ia) == b.decode(ib);
    if (!same && ++mismatches <= 5) ADD_FAILURE() << "encodes differently: \"" << s << "\"";
  }
  return mismatches;
}

// Characters the tokenizer has as tokens of one character (what "its alphabet" means).
std::vector<std::string> alphabet(const Tokenizer& t) {
  std::set<std::string> chars;
  for (int id = 0; id < t.vocab_size(); ++id) {
    const std::string b = t.token_bytes(id);
    if (t.is_control(id) || b.empty()) continue;
    const uint8_t lead = uint8_t(b[0]);
    const size_t len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    if (len == b.size() && (len > 1 || lead >= 0x20 || lead == '\n')) chars.insert(b);
  }
  return {chars.begin(), chars.end()};
}

// 600 texts within the tokenizer's alphabet: random characters, random runs of tokens (what
// merges are most sensitive to), and sentences of story words; plus `fixed`.
std::vector<std::string> varied_texts(const Tokenizer& t, std::vector<std::string> fixed, uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&](size_t n) { return size_t(rng() % n); };
  const std::vector<std::string> chars = alphabet(t);
  std::vector<std::string> pieces;
  for (int id = 0; id < t.vocab_size(); ++id)
    if (!t.is_control(id) && !t.token_bytes(id).empty() && t.token_text(id).rfind("<0x", 0) != 0)
      pieces.push_back(t.token_bytes(id));
  const std::vector<std::string> words = {
      "Once", "upon",  "a",    "time",  "there", "was",  "little", "girl",  "named", "Lily", "She", "loved",
      "to",   "play",  "with", "her",   "toy",   "car",  "the",    "park",  "One",   "day",  "big", "red",
      "ball", "happy", "bird", "stuck", "tree",  "said", "mom",    "let's", "go",    "Tim",  "dog", "\"Hi,"};
  const std::vector<std::string> seps = {" ", " ", " ", ", ", ". ", "! ", "\n", "  ", "? ", "\" "};
  for (int i = 0; i < 200; ++i) {
    std::string s;
    const size_t n = 1 + pick(40);
    for (size_t k = 0; k < n; ++k) s += pick(5) == 0 ? std::string(" ") : chars[pick(chars.size())];
    fixed.push_back(s);
  }
  for (int i = 0; i < 200; ++i) {
    std::string s;
    const size_t n = 1 + pick(12);
    for (size_t k = 0; k < n; ++k) s += pieces[pick(pieces.size())];
    fixed.push_back(s);
  }
  for (int i = 0; i < 200; ++i) {
    std::string s;
    const size_t n = 1 + pick(25);
    for (size_t k = 0; k < n; ++k) s += words[pick(words.size())] + seps[pick(seps.size())];
    fixed.push_back(pick(3) == 0 ? " " + s : s);
  }
  return fixed;
}

// --- llama2.c vocabularies (ScoreBpeTokenizer -> "llama") ---

void check_llama2c(const std::string& path, const char* known) {
  auto t = Tokenizer::from_llama2c(path);
  const Exported e = export_and_read(*t);
  EXPECT_EQ(e.file->get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(e.file->get_string_array("tokenizer.ggml.tokens")[1], "<s>");
  expect_same_vocabulary(*t, *e.tok, true);
  EXPECT_EQ(e.tok->token_bytes(t->encode(" the", false).back()), " the");
  std::vector<std::string> texts = {known,
                                    "",
                                    " ",
                                    "  leading and trailing  ",
                                    "<s>Once upon a time</s> and <unk> then",
                                    "lines\nand\n\nblank lines\r\n",
                                    "caf\xC3\xA9 na\xC3\xAFve \xC3\x9F \xE2\x80\x9Cquoted\xE2\x80\x9D",
                                    "\xE4\xB8\xAD\xE6\x96\x87 emoji \xF0\x9F\x98\x80",
                                    "invalid \xFF\xFE bytes \xC3",
                                    "nbsp\xC2\xA0here"};
  texts = varied_texts(*t, texts, 260);
  EXPECT_GE(texts.size(), 600u);
  EXPECT_EQ(count_mismatches(*t, *e.tok, texts), 0);
  // Written again from the GGUF form, the metadata is the same.
  EXPECT_EQ(serialized(*e.tok), serialized(*t));
}

TEST(GgufExportLlama2c, Stories260kReadsBackIdentically) {
  check_llama2c(shared_model("stories260k/tok512.bin"), kStories260k);
}

TEST(GgufExportLlama2c, Aidreams260kReadsBackIdentically) {
  check_llama2c(shared_model("aidreams260k/tok512.bin"), kAidreams260k);
}

TEST(GgufExportLlama2c, U2581InInputIsASpaceInGguf) {
  // The one difference the format itself makes: GGUF "llama" writes spaces as U+2581, so a
  // U+2581 typed in the input is read as a space, where llama2.c sees an unknown character.
  auto t = Tokenizer::from_llama2c(shared_model("stories260k/tok512.bin"));
  const Exported e = export_and_read(*t);
  const std::string s = "a" + kSp + "b";
  EXPECT_EQ(t->decode(t->encode(s, false)), s);
  EXPECT_EQ(e.tok->decode(e.tok->encode(s, false)), "a b");
}

// A llama2.c tokenizer file: <unk>, BOS, EOS, 256 byte tokens, then `tokens`.
std::string llama2c_file(const std::vector<std::string>& tokens) {
  std::string out(4, '\0');
  const int32_t max_len = 16;
  std::memcpy(out.data(), &max_len, 4);
  std::vector<std::string> all = {"<unk>", "\n<s>\n", "\n</s>\n"};
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) all.push_back(std::string{'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'});
  all.insert(all.end(), tokens.begin(), tokens.end());
  float score = 0;
  for (const std::string& t : all) {
    const int32_t len = int32_t(t.size());
    out.append(reinterpret_cast<const char*>(&score), 4);
    out.append(reinterpret_cast<const char*>(&len), 4);
    out += t;
    score -= 1;
  }
  const std::string path = temp_dir() + "/tok.bin";
  test::write_file(path, out);
  return path;
}

std::string export_error(const Tokenizer& t) {
  GgufWriter w;
  try {
    t.write_gguf(w);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(GgufExportLlama2c, RefusesWhatGgufCannotHold) {
  // A token that already holds U+2581 would decode as a space.
  auto a = Tokenizer::from_llama2c(llama2c_file({"a", "b", " ", " a", kSp + "b"}));
  EXPECT_NE(export_error(*a).find("U+2581"), std::string::npos) << export_error(*a);
  // "xy" where "y" is no token: llama2.c never merges into it, GGUF could.
  auto b = Tokenizer::from_llama2c(llama2c_file({"x", " ", "xy"}));
  EXPECT_NE(export_error(*b).find("not a token itself"), std::string::npos) << export_error(*b);
  // The error names the file.
  EXPECT_NE(export_error(*b).find("tok.bin"), std::string::npos);
  // A small vocabulary without such tokens exports.
  auto c = Tokenizer::from_llama2c(llama2c_file({"a", "b", " ", " a", "ab", " ab"}));
  const Exported e = export_and_read(*c);
  expect_same_vocabulary(*c, *e.tok, true);
  EXPECT_EQ(count_mismatches(*c, *e.tok, {"ab ab", "a b", "ba", "abc", " ab", "\xC3\xA9"}), 0);
}

// --- TinyStories-656K: sentencepiece-style rank BPE -> "llama" with scores ---

TEST(GgufExportTinyStories, MergeRanksBecomeScoresThatMergeTheSame) {
  auto t = Tokenizer::from_hf_json(shared_model("tinystories-656k/tokenizer.json"));
  const Exported e = export_and_read(*t);
  EXPECT_EQ(e.file->get_string("tokenizer.ggml.model"), "llama");
  EXPECT_TRUE(e.file->get_bool("tokenizer.ggml.add_space_prefix"));
  expect_same_vocabulary(*t, *e.tok);
  // Scores: minus the rank of the merge that forms the token; the first merge "e ▁" gives 0.
  const std::vector<float> scores = e.file->get_float_array("tokenizer.ggml.scores");
  EXPECT_EQ(scores[size_t(t->token_id("e" + kSp))], 0.0f);
  EXPECT_LT(scores[size_t(t->token_id("a"))], scores[size_t(t->token_id("the" + kSp))]);

  std::vector<std::string> texts = {kTinyStories656k,
                                    "",
                                    " ",
                                    "   ",
                                    "<|start_story|>Once upon a time<|end_story|>",
                                    "The end.<|end_story|><|start_story|>One day",
                                    "<unk>",
                                    "\"Hi,\" said Tim. \"Let's go!\"\n\nThey ran.",
                                    "Lily and Max played in the park. It was fun!",
                                    "1, 2, 3: go; stop? yes - no_ <a|b>"};
  texts = varied_texts(*t, texts, 656);
  EXPECT_GE(texts.size(), 600u);
  EXPECT_EQ(count_mismatches(*t, *e.tok, texts), 0);
  EXPECT_EQ(serialized(*e.tok), serialized(*t));
}

TEST(GgufExportTinyStories, CharactersOutsideTheVocabularyDifferOnlyInUnkCount) {
  // TinyStories has byte fallback but no byte tokens: a run of unknown characters is one
  // <unk> (fuse_unk); GGUF "llama" gives one <unk> per byte. Decoding is the same ("").
  auto t = Tokenizer::from_hf_json(shared_model("tinystories-656k/tokenizer.json"));
  const Exported e = export_and_read(*t);
  auto fuse = [&](std::vector<int> ids) {
    ids.erase(std::unique(ids.begin(), ids.end(), [](int x, int y) { return x == 0 && y == 0; }), ids.end());
    return ids;
  };
  for (const std::string s : {"caf\xC3\xA9 na\xC3\xAFve", "\xE4\xB8\xAD\xE6\x96\x87 and \xF0\x9F\x98\x80!",
                              "tab\there", "invalid \xFF\xFE bytes"}) {
    EXPECT_EQ(fuse(t->encode(s, true)), fuse(e.tok->encode(s, true))) << s;
    EXPECT_EQ(t->decode(t->encode(s, true)), e.tok->decode(e.tok->encode(s, true))) << s;
  }
}

// A tokenizer.json in TinyStories' style with merges given by hand.
json sentencepiece_json(const std::vector<std::string>& vocab, const std::vector<std::string>& merges) {
  json v = json::object();
  v["<unk>"] = 0;
  for (size_t i = 0; i < vocab.size(); ++i) v[vocab[i]] = i + 1;
  return {{"added_tokens",
           {{{"id", 0}, {"content", "<unk>"}, {"special", true}, {"lstrip", false}, {"rstrip", false}}}},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Prepend"}, {"prepend", kSp}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSp}}}}}},
          {"pre_tokenizer", nullptr},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             {{{"type", "Replace"}, {"pattern", {{"String", kSp}}}, {"content", " "}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
          {"model",
           {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"vocab", v}, {"merges", merges}}}};
}

std::string write_json(const json& j) {
  const std::string path = temp_dir() + "/tokenizer.json";
  test::write_file(path, j.dump());
  return path;
}

TEST(GgufExportSentencepiece, RefusesWhenScoresCannotReplayRanks) {
  // "abc" is made by "ab c", but rank BPE run on "abc" merges "b c" first and stops at
  // "a" "bc", a pair that no rule joins; score BPE would still join them into "abc".
  auto bad = Tokenizer::from_hf_json(
      write_json(sentencepiece_json({"a", "b", "c", kSp, "bc", "ab", "abc"}, {"b c", "a b", "ab c"})));
  const std::string err = export_error(*bad);
  EXPECT_NE(err.find("\"abc\""), std::string::npos) << err;
  EXPECT_NE(err.find("no merge rule"), std::string::npos) << err;
  // With the rule "a bc" instead, it exports and merges the same.
  auto good = Tokenizer::from_hf_json(
      write_json(sentencepiece_json({"a", "b", "c", kSp, "bc", "ab", "abc"}, {"b c", "a b", "a bc"})));
  const Exported e = export_and_read(*good);
  EXPECT_EQ(count_mismatches(*good, *e.tok, {"abc", "ab c", "a bc abc", "cab", "abcabc", "c ba"}), 0);
  // A pre-tokenizer has no GGUF "llama" form.
  json j = sentencepiece_json({"a", "b", kSp}, {});
  j["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", true}};
  EXPECT_NE(export_error(*Tokenizer::from_hf_json(write_json(j))).find("pre-tokenizer"), std::string::npos);
}

// --- byte-level BPE -> "gpt2" ---

// A small byte-level tokenizer.json: the 256 byte characters, merges, and added tokens
// (three special, one not).
json byte_level_json(const json& pre_tokenizer) {
  auto ch = [](int b) {
    std::string s;
    byte_level_encode(std::string(1, char(b)), s);
    return s;
  };
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[ch(b)] = b;
  const std::string G = ch(' ');
  const std::vector<std::pair<std::string, std::string>> merges = {
      {G, "t"},    {"h", "e"},       {G + "t", "he"},
      {"i", "n"},  {G, "a"},         {"e", "r"},
      {"o", "n"},  {G, "an"},        {"a", "n"},
      {"d", "e"},  {"1", "2"},       {"12", "3"},
      {G, "w"},    {"o", "r"},       {G + "w", "or"},
      {"l", "d"},  {"'", "s"},       {G + "an", "d"},
      {"in", "g"}, {G + "the", "r"}, {"\xC4\x8A", "\xC4\x8A"},
  };
  json m = json::array();
  int next = 256;
  for (const auto& [a, b] : merges) {
    m.push_back(a + " " + b);
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
  }
  json added = json::array();
  for (const auto& [content, special] : std::vector<std::pair<std::string, bool>>{
           {"<|endoftext|>", true}, {"<|im_start|>", true}, {"<|im_end|>", true}, {"<tool>", false}})
    added.push_back(
        {{"id", next++}, {"content", content}, {"special", special}, {"lstrip", false}, {"rstrip", false}});
  return {
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"}, {"unk_token", nullptr}, {"byte_fallback", false}, {"vocab", vocab}, {"merges", m}}}};
}

json gpt2_pre() { return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}; }

json split_pre(const std::string& regex) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
}

const char* const kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::vector<std::string> byte_level_texts(const Tokenizer& t) {
  return varied_texts(
      t,
      {"Hello, world! The answer is 42 and 12345.", "the other and winding ring",
       "caf\xC3\xA9 na\xC3\xAFve \xC3\xBC\xC3\xB6\xC3\xA4 \xC3\x9F",
       "\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
       "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!",
       "   spaces   and\ttabs\t\tand\n\nnewlines\r\n  ", "don't we'll it's I'M THEY'RE",
       "invalid \xFF\xFE utf8 \xC3 tail", "<|im_start|>user\nhi<tool><|im_end|><|endoftext|>", "", "\n\n\n"},
      42);
}

void check_byte_level(const json& tokenizer_json, const char* pre) {
  auto t = Tokenizer::from_hf_json(write_json(tokenizer_json));
  const Exported e = export_and_read(*t);
  EXPECT_EQ(e.file->get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(e.file->get_string("tokenizer.ggml.pre"), pre);
  expect_same_vocabulary(*t, *e.tok);
  const std::vector<std::string> texts = byte_level_texts(*t);
  EXPECT_GE(texts.size(), 600u);
  EXPECT_EQ(count_mismatches(*t, *e.tok, texts), 0);
  EXPECT_EQ(serialized(*e.tok), serialized(*t));
}

TEST(GgufExportByteLevel, Gpt2) { check_byte_level(byte_level_json(gpt2_pre()), "gpt-2"); }

TEST(GgufExportByteLevel, Qwen2) { check_byte_level(byte_level_json(split_pre(kQwen2Regex)), "qwen2"); }

TEST(GgufExportByteLevel, Llama3WithBosAndIgnoreMerges) {
  json j = byte_level_json(split_pre(kLlama3Regex));
  j["model"]["ignore_merges"] = true;
  const int bos = int(j["model"]["vocab"].size() + j["added_tokens"].size());  // the next id
  j["added_tokens"].push_back({{"id", bos}, {"content", "<|begin_of_text|>"}, {"special", true}});
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<|begin_of_text|>"}}}}, {{"Sequence", {{"id", "A"}}}}}},
      {"special_tokens", {{"<|begin_of_text|>", {{"ids", {bos}}}}}}};
  check_byte_level(j, "llama-bpe");
  auto t = Tokenizer::from_hf_json(write_json(j));
  EXPECT_EQ(t->bos_id(), bos);
  EXPECT_TRUE(t->add_bos_default());
}

TEST(GgufExportByteLevel, RefusesPipelinesWithNoGgufName) {
  auto refused = [](const json& j, const char* what) {
    const std::string err = export_error(*Tokenizer::from_hf_json(write_json(j)));
    EXPECT_NE(err.find(what), std::string::npos) << err;
    EXPECT_NE(err.find("tokenizer.json"), std::string::npos) << err;
  };
  refused(byte_level_json({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}),
          "pre-tokenizer");
  refused(byte_level_json(split_pre(R"(\s+|\S+)")), "has no tokenizer.ggml.pre name");
  json llama3_without_ignore = byte_level_json(split_pre(kLlama3Regex));
  EXPECT_EQ(export_error(*Tokenizer::from_hf_json(write_json(llama3_without_ignore))), "");  // smaug-bpe
  json gpt2_with_ignore = byte_level_json(gpt2_pre());
  gpt2_with_ignore["model"]["ignore_merges"] = true;
  refused(gpt2_with_ignore, "ignore_merges");
  json strip = byte_level_json(gpt2_pre());
  strip["added_tokens"][1]["lstrip"] = true;
  refused(strip, "lstrip");
  json normalized = byte_level_json(gpt2_pre());
  normalized["normalizer"] = {{"type", "Prepend"}, {"prepend", " "}};
  refused(normalized, "normalizer");
}

// --- GGUF vocabularies written back ---

TEST(GgufExportGguf, GgufVocabulariesWriteBackTheSame) {
  // A "llama" vocabulary with every token type, read and written again.
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  std::vector<float> scores = {0, 0, 0};
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(std::string{'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'});
    types.push_back(6);
    scores.push_back(0);
  }
  for (char c = 33; c < 127; ++c) {
    tokens.push_back(std::string(1, c));
    types.push_back(1);
    scores.push_back(-1000.0f - float(c));
  }
  for (const auto& [t, type, score] :
       std::vector<std::tuple<std::string, int, float>>{{kSp, 1, -500},
                                                        {kSp + "t", 1, -1},
                                                        {"he", 1, -2},
                                                        {kSp + "the", 1, -0.5f},
                                                        {"<|user|>", 4, 0},
                                                        {"<|eot|>", 3, 0},
                                                        {"[unused]", 5, 0}}) {
    tokens.push_back(t);
    types.push_back(type);
    scores.push_back(score);
  }
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_float_array("tokenizer.ggml.scores", scores);
  w.set_int32_array("tokenizer.ggml.token_type", types);
  w.set_uint32("tokenizer.ggml.bos_token_id", 1);
  w.set_uint32("tokenizer.ggml.eos_token_id", 2);
  w.set_bool("tokenizer.ggml.add_bos_token", false);
  const std::string path = temp_dir() + "/v.gguf";
  w.write(path);
  auto t = Tokenizer::from_gguf(*GgufFile::open(path));
  const Exported e = export_and_read(*t);
  expect_same_vocabulary(*t, *e.tok);
  EXPECT_FALSE(e.tok->add_bos_default());
  EXPECT_EQ(e.file->get_string_array("tokenizer.ggml.tokens"), tokens);
  EXPECT_EQ(e.file->get_float_array("tokenizer.ggml.scores"), scores);
  EXPECT_EQ(count_mismatches(*t, *e.tok, varied_texts(*t, {"the <|user|> <|eot|>the [unused]"}, 7)), 0);

  // A "gpt2" vocabulary (through a byte-level tokenizer.json export) written again.
  auto bl = Tokenizer::from_hf_json(write_json(byte_level_json(split_pre(kQwen2Regex))));
  const Exported once = export_and_read(*bl);
  const Exported twice = export_and_read(*once.tok);
  EXPECT_EQ(test::read_file(once.path), test::read_file(twice.path));
}

TEST(GgufExport, TokenizersWithoutAGgufFormSayWhich) {
  struct Fake : Tokenizer {
    int vocab_size() const override { return 1; }
    int bos_id() const override { return -1; }
    int eos_id() const override { return -1; }
    std::vector<int> encode(std::string_view, bool) const override { return {}; }
    std::string token_bytes(int) const override { return ""; }
    std::string token_text(int) const override { return ""; }
    bool is_control(int) const override { return false; }
    bool strips_leading_space() const override { return false; }
  };
  EXPECT_NE(export_error(Fake()).find("no GGUF form"), std::string::npos);
}

}  // namespace
}  // namespace dspark
