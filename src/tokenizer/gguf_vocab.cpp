// The vocabulary embedded in a GGUF file (tokenizer.ggml.*). "llama" is sentencepiece BPE
// merged by score (U+2581 for spaces, <0xXX> byte tokens); "gpt2" is byte-level BPE merged
// by rank, with the pre-tokenizer regex named by tokenizer.ggml.pre.
// Kept in its own file so that programs that never read GGUF do not link the GGUF reader.
#include <cmath>
#include <limits>

#include "core/error.h"
#include "formats/gguf.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/rank_bpe_tokenizer.h"
#include "tokenizer/score_bpe_tokenizer.h"

namespace dspark {
namespace {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum TokenType : int64_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6
};

const char* const kSpace = "\xE2\x96\x81";  // U+2581, sentencepiece's space

// A token id from `key`: `def` when absent, -1 for "none" (-1 or 0xFFFFFFFF), else it must
// be a valid id.
int special_id(const GgufFile& g, const char* key, int def, int n) {
  if (!g.find(key)) return def < n ? def : -1;
  const int64_t v = g.get_int(key);
  if (v == -1 || v == 0xFFFFFFFF) return -1;
  if (v < 0 || v >= n) fail(g.label(), ": ", key, " is ", v, ", outside the vocabulary of ", n, " tokens");
  return int(v);
}

// Pre-tokenizers by tokenizer.ggml.pre name (llama.cpp's names): regexes applied in order,
// each splitting the pieces of the one before; Llama 3 vocabularies take a word that is a
// token whole before merging (ignore_merges).
struct PreTokenizerSpec {
  const char* name;
  std::vector<const char*> patterns;
  bool ignore_merges;
};

const std::vector<PreTokenizerSpec>& pre_tokenizer_specs() {
  static const char* const kDigit = R"(\p{N})";
  static const std::vector<PreTokenizerSpec> specs = {
      {"default", {kGpt2Pattern}, false},
      {"gpt-2", {kGpt2Pattern}, false},
      {"gpt2", {kGpt2Pattern}, false},
      {"phi-2", {kGpt2Pattern}, false},
      {"qwen2", {kQwen2Pattern}, false},
      {"stablelm2", {kQwen2Pattern}, false},
      {"deepseek-r1-qwen", {kQwen2Pattern}, false},
      {"megrez", {kQwen2Pattern}, false},
      {"llama3", {kLlama3Pattern}, true},
      {"llama-v3", {kLlama3Pattern}, true},
      {"llama-bpe", {kLlama3Pattern}, true},
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

const PreTokenizerSpec& find_pre_tokenizer(const std::string& pre, const std::string& label) {
  std::string known;
  for (const PreTokenizerSpec& s : pre_tokenizer_specs()) {
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

  Vocab vocab;
  vocab.label = label;
  vocab.text = g.get_string_array("tokenizer.ggml.tokens");
  const size_t n = vocab.text.size();
  if (n == 0) fail(label, ": tokenizer.ggml.tokens is empty");
  if (n > size_t(std::numeric_limits<int>::max() / 2))
    fail(label, ": tokenizer.ggml.tokens has too many tokens");
  vocab.bytes.resize(n);
  vocab.control.assign(n, 0);

  std::vector<int64_t> types(n, kNormal);
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
    switch (types[id]) {
      case kUnknown:
      case kControl:
        vocab.control[id] = 1;
        literals.add({t, int(id)});
        break;
      case kUnused:
        vocab.control[id] = 1;
        break;
      case kUserDefined:
        vocab.bytes[id] = t;
        mergeable[id] = 1;
        literals.add({t, int(id)});
        break;
      case kByte:
        if (const int b = parse_byte_token(t); b >= 0) {
          vocab.bytes[id] = std::string(1, char(b));
          break;
        }
        [[fallthrough]];  // a byte token that is not <0xXX>: read it as text
      default:
        mergeable[id] = 1;
        if (spm) {
          std::string s = t;
          for (size_t p = 0; (p = s.find(kSpace, p)) != std::string::npos;) s.replace(p, 3, " ");
          vocab.bytes[id] = std::move(s);
        } else {
          vocab.bytes[id] = byte_level_decode(t);
        }
    }
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
    return std::make_unique<ScoreBpeTokenizer>(std::move(vocab), std::move(scores), std::move(mergeable),
                                               std::move(literals), config);
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
  return std::make_unique<RankBpeTokenizer>(std::move(vocab), std::move(merges), std::move(literals),
                                            std::move(config));
}

}  // namespace dspark
