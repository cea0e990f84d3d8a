// The vocabulary embedded in a GGUF file (tokenizer.ggml.*). "llama" is sentencepiece BPE
// merged by score (U+2581 for spaces, <0xXX> byte tokens); "gpt2" is byte-level BPE merged
// by rank, with the pre-tokenizer regex named by tokenizer.ggml.pre.
// gguf_vocab_writer.cpp writes the same form back; both follow gguf_vocab.h.
#include "tokenizer/gguf_vocab.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "formats/gguf.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/rank_bpe_tokenizer.h"
#include "tokenizer/score_bpe_tokenizer.h"

namespace dspark {

namespace gguf_vocab {

TokenRole token_role(const std::string& text, int64_t type, bool spm) {
  TokenRole r;
  switch (type) {
    case kUnknown:
    case kControl:
      r.control = true;
      r.literal = true;
      return r;
    case kUnused:
      r.control = true;
      return r;
    case kUserDefined:
      r.bytes = text;
      r.mergeable = true;
      r.literal = true;
      return r;
    case kByte:
      if (const int b = parse_byte_token(text); b >= 0) {
        r.bytes = std::string(1, char(b));
        return r;
      }
      [[fallthrough]];  // a byte token that is not <0xXX>: read it as text
    default:
      r.mergeable = true;
      if (spm) {
        r.bytes = text;
        for (size_t p = 0; (p = r.bytes.find(kSpace, p)) != std::string::npos;) r.bytes.replace(p, 3, " ");
      } else {
        r.bytes = byte_level_decode(text);
      }
      return r;
  }
}

const std::vector<PreTokenizerSpec>& pre_tokenizer_specs() {
  static const char* const kDigit = R"(\p{N})";
  static const std::vector<PreTokenizerSpec> specs = {
      {"gpt-2", {kGpt2Pattern}, false},
      {"default", {kGpt2Pattern}, false},
      {"gpt2", {kGpt2Pattern}, false},
      {"phi-2", {kGpt2Pattern}, false},
      {"qwen2", {kQwen2Pattern}, false},
      {"stablelm2", {kQwen2Pattern}, false},
      {"deepseek-r1-qwen", {kQwen2Pattern}, false},
      {"megrez", {kQwen2Pattern}, false},
      {"llama-bpe", {kLlama3Pattern}, true},
      {"llama3", {kLlama3Pattern}, true},
      {"llama-v3", {kLlama3Pattern}, true},
      {"falcon3", {kLlama3Pattern}, true},
      {"smaug-bpe", {kLlama3Pattern}, false},
      {"dbrx", {kLlama3Pattern}, false},
      {"starcoder", {kDigit, kGpt2Pattern}, false},
      {"refact", {kDigit, kGpt2Pattern}, false},
      {"smollm", {kDigit, kGpt2Pattern}, false},
      {"codeshell", {kDigit, kGpt2Pattern}, false},
  };
  return specs;
}

}  // namespace gguf_vocab

namespace {

using gguf_vocab::kSpace;
using gguf_vocab::PreTokenizerSpec;

// A token id from `key`: `def` when absent, -1 for "none" (-1 or 0xFFFFFFFF), else it must
// be a valid id.
int special_id(const GgufFile& g, const char* key, int def, int n) {
  if (!g.find(key)) return def < n ? def : -1;
  const int64_t v = g.get_int(key);
  if (v == -1 || v == gguf_vocab::kNoToken) return -1;
  if (v < 0 || v >= n) fail(g.label(), ": ", key, " is ", v, ", outside the vocabulary of ", n, " tokens");
  return int(v);
}

const PreTokenizerSpec& find_pre_tokenizer(const std::string& pre, const std::string& label) {
  std::string known;
  for (const PreTokenizerSpec& s : gguf_vocab::pre_tokenizer_specs()) {
    if (pre == s.name) return s;
    known += known.empty() ? "" : ", ";
    known += s.name;
  }
  fail(label, ": tokenizer.ggml.pre \"", pre, "\" is not supported (known: ", known, ")");
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& g) {
  const std::string& label = g.label();
  const std::string model = g.get_string("tokenizer.ggml.model");
  if (model != "llama" && model != "gpt2")
    fail(label, ": tokenizer.ggml.model \"", model, "\" is not supported (expected \"llama\" or \"gpt2\")");
  const bool spm = model == "llama";
  const std::string chat_template = g.get_string_or("tokenizer.chat_template", "");

  Vocab vocab;
  vocab.label = label;
  vocab.text = g.get_string_array("tokenizer.ggml.tokens");
  const size_t n = vocab.text.size();
  if (n == 0) fail(label, ": tokenizer.ggml.tokens is empty");
  if (n > size_t(std::numeric_limits<int>::max() / 2))
    fail(label, ": tokenizer.ggml.tokens has too many tokens");
  vocab.bytes.resize(n);
  vocab.control.assign(n, 0);

  std::vector<int64_t> types(n, gguf_vocab::kNormal);
  if (g.find("tokenizer.ggml.token_type")) {
    types = g.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != n)
      fail(label, ": tokenizer.ggml.token_type has ", types.size(), " entries for ", n, " tokens");
  }

  LiteralTokenSplitter literals;
  std::vector<uint8_t> mergeable(n, 0);
  for (size_t id = 0; id < n; ++id) {
    const std::string& t = vocab.text[id];
    vocab.index_token(int(id));
    gguf_vocab::TokenRole role = gguf_vocab::token_role(t, types[id], spm);
    vocab.bytes[id] = std::move(role.bytes);
    vocab.control[id] = role.control ? 1 : 0;
    mergeable[id] = role.mergeable ? 1 : 0;
    if (role.literal) literals.add({t, int(id)});
  }

  const int ni = int(n);
  vocab.bos = special_id(g, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, ni);
  vocab.eos = special_id(g, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, ni);
  vocab.unk = special_id(g, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, ni);
  vocab.add_bos = g.get_bool_or("tokenizer.ggml.add_bos_token", spm);

  if (spm) {
    std::vector<float> scores(n, 0.0f);
    if (g.find("tokenizer.ggml.scores")) {
      scores = g.get_float_array("tokenizer.ggml.scores");
      if (scores.size() != n)
        fail(label, ": tokenizer.ggml.scores has ", scores.size(), " entries for ", n, " tokens");
      for (float& s : scores)
        if (std::isnan(s)) s = -std::numeric_limits<float>::infinity();
    }
    vocab.strip_leading_space = g.get_bool_or("tokenizer.ggml.add_space_prefix", true);
    ScoreBpeConfig config;
    config.space = kSpace;
    config.add_space_prefix = vocab.strip_leading_space;
    config.bytes_first = false;
    auto tok = std::make_unique<ScoreBpeTokenizer>(std::move(vocab), std::move(scores), std::move(mergeable),
                                                   std::move(literals), config);
    tok->set_chat_template(chat_template);
    return tok;
  }

  const std::vector<std::string> merge_rules = g.get_string_array("tokenizer.ggml.merges");
  RankMerges merges;
  merges.reserve(merge_rules.size());
  for (size_t i = 0; i < merge_rules.size(); ++i) {
    const std::string& s = merge_rules[i];
    const size_t space = s.size() >= 3 ? s.find(' ', 1) : std::string::npos;
    if (space == std::string::npos)
      fail(label, ": tokenizer.ggml.merges[", i, "] \"", s, "\" is not two tokens separated by a space");
    const std::string a = s.substr(0, space), b = s.substr(space + 1);
    const int ia = vocab.find(a), ib = vocab.find(b), im = vocab.find(a + b);
    if (ia < 0 || ib < 0 || im < 0)
      fail(label, ": tokenizer.ggml.merges[", i, "] \"", s, "\" refers to unknown token \"",
           ia < 0   ? a
           : ib < 0 ? b
                    : a + b,
           "\"");
    merges.add(ia, ib, im, int(i));
  }

  RankBpeConfig config;
  config.byte_level = true;
  const PreTokenizerSpec& pre = find_pre_tokenizer(g.get_string_or("tokenizer.ggml.pre", "default"), label);
  config.ignore_merges = pre.ignore_merges;
  for (const char* pattern : pre.patterns)
    config.pre_tokenizer.add_split(std::make_shared<Regex>(pattern, false, label), SplitBehavior::kIsolated,
                                   false);
  auto tok = std::make_unique<RankBpeTokenizer>(std::move(vocab), std::move(merges), std::move(literals),
                                                std::move(config));
  tok->set_chat_template(chat_template);
  return tok;
}

}  // namespace dspark
