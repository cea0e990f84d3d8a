#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <queue>
#include <sstream>
#include <unordered_set>

#include "core/error.h"
#include "formats/gguf.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/rank_bpe_tokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/vocab.h"

namespace dspark {
namespace {

using gguf_vocab::PreTokenizerSpec;

// Corpus text is pre-tokenized in pieces of about this size, so that the word list of one
// piece, not of the whole file, is in memory.
constexpr size_t kPieceBytes = size_t(1) << 20;

const PreTokenizerSpec& find_spec(const std::string& name) {
  std::string known;
  for (const PreTokenizerSpec& s : gguf_vocab::pre_tokenizer_specs()) {
    if (name == s.name) return s;
    known += known.empty() ? "" : ", ";
    known += s.name;
  }
  fail("BPE training: pre-tokenizer \"", name,
       "\" is not a tokenizer.ggml.pre name this project reads (known: ", known, ")");
}

// The pre-tokenizer Tokenizer::from_gguf builds for the same name.
PreTokenizer make_pre_tokenizer(const PreTokenizerSpec& spec) {
  PreTokenizer pre;
  for (const char* pattern : spec.patterns)
    pre.add_split(std::make_shared<Regex>(pattern, false, spec.name), SplitBehavior::kIsolated, false);
  return pre;
}

std::vector<std::string> special_tokens(const BpeTrainOptions& o) {
  std::vector<std::string> s{o.bos, o.eos};
  s.insert(s.end(), o.extra_special.begin(), o.extra_special.end());
  return s;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_graph(char c) { return c > ' ' && c < 0x7F; }  // printable ASCII other than space

uint64_t pair_key(int left, int right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }
int key_left(uint64_t k) { return int(k >> 32); }
int key_right(uint64_t k) { return int(uint32_t(k)); }

// A pair of symbols and its count when pushed; entries go stale as counts change and are
// checked against the current count when popped (lazy deletion).
struct HeapEntry {
  int64_t count;
  int left, right;
  // std::priority_queue pops the largest: the highest count, then the smallest (left, right).
  bool operator<(const HeapEntry& o) const {
    if (count != o.count) return count < o.count;
    if (left != o.left) return left > o.left;
    return right > o.right;
  }
};

struct Word {
  std::vector<int> symbols;
  int64_t count;
};

// Pair counts, the words each pair occurs in (a word may be listed after its pair is gone,
// never missing while it has it) and the heap of candidate pairs.
struct PairStats {
  std::unordered_map<uint64_t, int64_t> count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;
  std::priority_queue<HeapEntry> heap;

  void note_word(uint64_t k, uint32_t word) {
    std::vector<uint32_t>& w = where[k];
    if (w.empty() || w.back() != word) w.push_back(word);
  }
};

// Replaces every (left, right) in `w`, left to right, by `merged`, and records in `delta`
// how the counts of the pairs around each occurrence change; pairs that gain occurrences
// list the word.
void merge_word(Word& w, uint32_t index, int left, int right, int merged,
                std::unordered_map<uint64_t, int64_t>& delta, PairStats& stats) {
  std::vector<int>& s = w.symbols;
  const int64_t c = w.count;
  auto change = [&](int a, int b, int64_t d) {
    const uint64_t k = pair_key(a, b);
    delta[k] += d;
    if (d > 0) stats.note_word(k, index);
  };
  size_t j = 0;  // symbols before j are rewritten (j <= i, so s[j - 1] is the new left neighbour)
  for (size_t i = 0; i < s.size();) {
    if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
      change(left, right, -c);
      if (j > 0) {
        change(s[j - 1], left, -c);
        change(s[j - 1], merged, c);
      }
      if (i + 2 < s.size()) {
        change(right, s[i + 2], -c);
        change(merged, s[i + 2], c);
      }
      s[j++] = merged;
      i += 2;
    } else {
      s[j++] = s[i++];
    }
  }
  s.resize(j);
}

}  // namespace

std::unique_ptr<Tokenizer> BpeModel::tokenizer(const std::string& label) const {
  const size_t n = token_bytes.size();
  if (special.size() != n) fail(label, ": ", special.size(), " special flags for ", n, " tokens");
  Vocab v;
  v.label = label;
  v.resize(n);
  LiteralTokenSplitter literals;
  for (size_t id = 0; id < n; ++id) {
    if (special[id]) {
      v.text[id] = token_bytes[id];
      v.control[id] = 1;
      literals.add({token_bytes[id], int(id)});
    } else {
      byte_level_encode(token_bytes[id], v.text[id]);
      v.bytes[id] = token_bytes[id];
    }
    if (!v.index.emplace(v.text[id], int(id)).second)
      fail(label, ": token ", id, " has the same text as token ", v.find(v.text[id]));
  }
  auto check_id = [&](int id, const char* what) {
    if (id < -1 || id >= int(n)) fail(label, ": ", what, " id ", id, " is outside the vocabulary of ", n);
  };
  check_id(bos, "BOS");
  check_id(eos, "EOS");
  v.bos = bos;
  v.eos = eos;
  v.add_bos = add_bos;

  RankMerges rules;
  rules.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const BpeMerge& m = merges[r];
    for (int id : {m.left, m.right, m.merged})
      if (id < 0 || id >= int(n) || special[size_t(id)])
        fail(label, ": merge ", r, " refers to token ", id, ", which is not a mergeable token");
    if (token_bytes[size_t(m.left)] + token_bytes[size_t(m.right)] != token_bytes[size_t(m.merged)])
      fail(label, ": merge ", r, " joins tokens ", m.left, " and ", m.right, " into token ", m.merged,
           ", which stands for other bytes");
    rules.add(m.left, m.right, m.merged, int(r));
  }

  const PreTokenizerSpec& spec = find_spec(pre_tokenizer);
  RankBpeConfig config;
  config.byte_level = true;
  config.ignore_merges = spec.ignore_merges;
  config.pre_tokenizer = make_pre_tokenizer(spec);
  return std::make_unique<RankBpeTokenizer>(std::move(v), std::move(rules), std::move(literals),
                                            std::move(config));
}

BpeTrainer::BpeTrainer(BpeTrainOptions options) : options_(std::move(options)) {
  const std::vector<std::string> specials = special_tokens(options_);
  const int base = 256 + int(specials.size());
  if (options_.vocab_size < base)
    fail("BPE training: a vocabulary of ", options_.vocab_size,
         " tokens is too small: the 256 byte tokens and ", specials.size(), " special tokens need at least ",
         base);
  if (options_.vocab_size > (1 << 24))
    fail("BPE training: a vocabulary of ", options_.vocab_size, " tokens is too large (at most ", 1 << 24,
         ")");
  if (options_.min_frequency < 1)
    fail("BPE training: the minimum pair frequency is ", options_.min_frequency, "; it must be at least 1");
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < specials.size(); ++i) {
    const std::string& s = specials[i];
    const char* what = i == 0 ? "the BOS token" : i == 1 ? "the EOS token" : "a special token";
    if (s.empty()) fail("BPE training: ", what, " is empty");
    if (std::any_of(s.begin(), s.end(), is_space))
      fail("BPE training: ", what, " \"", s, "\" contains whitespace, which special tokens may not");
    if (!seen.insert(s).second) fail("BPE training: the special token \"", s, "\" is given twice");
    literals_.add({s, int(i)});
  }
  pre_ = make_pre_tokenizer(find_spec(options_.pre_tokenizer));
}

void BpeTrainer::add_text(std::string_view text) {
  any_text_ = true;
  corpus_bytes_ += text.size();
  std::vector<LiteralTokenSplitter::Piece> fragments;
  std::vector<std::string> words;
  bool first = true;
  for (std::string_view piece : split_at_safe_lines(text, kPieceBytes)) {
    fragments.clear();
    literals_.split(piece, fragments);
    for (const LiteralTokenSplitter::Piece& f : fragments) {
      if (f.id >= 0) {
        first = false;
        continue;
      }
      words.clear();
      pre_.run(f.text, first, words);
      first = false;
      for (std::string& w : words) ++counts_[std::move(w)];
      words_ += words.size();
    }
  }
}

std::string read_corpus_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail(path, ": corpus file does not exist");
  if (!std::filesystem::is_regular_file(path, ec)) fail(path, ": corpus is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open the corpus file: ", std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(path, ": cannot read the corpus file: ", std::strerror(errno));
  return ss.str();
}

void BpeTrainer::add_file(const std::string& path) { add_text(read_corpus_file(path)); }

BpeModel BpeTrainer::train() const {
  if (!any_text_) fail("BPE training: no corpus text was given");
  const std::vector<std::string> specials = special_tokens(options_);
  const int n_special = int(specials.size());
  const std::unordered_set<std::string> special_text(specials.begin(), specials.end());

  // Internal ids: bytes 0..255, then merged tokens in order of creation; the model's ids
  // put the special tokens first.
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, char(b));
  std::unordered_map<std::string, int> token_of;  // tokens of two or more bytes -> id

  std::vector<Word> words;
  words.reserve(counts_.size());
  PairStats stats;
  for (const auto& [text, count] : counts_) {
    if (text.size() < 2) continue;  // nothing to merge
    Word w{{}, int64_t(count)};
    for (char c : text) w.symbols.push_back(int(uint8_t(c)));
    const uint32_t index = uint32_t(words.size());
    for (size_t i = 0; i + 1 < w.symbols.size(); ++i) {
      const uint64_t k = pair_key(w.symbols[i], w.symbols[i + 1]);
      stats.count[k] += w.count;
      stats.note_word(k, index);
    }
    words.push_back(std::move(w));
  }
  for (const auto& [k, c] : stats.count) stats.heap.push({c, key_left(k), key_right(k)});

  BpeModel model;
  std::unordered_set<uint64_t> merged_pairs, forbidden;
  std::unordered_map<uint64_t, int64_t> delta;
  const int wanted = options_.vocab_size - n_special - 256;
  int created = 0;
  while (created < wanted && !stats.heap.empty()) {
    const HeapEntry top = stats.heap.top();
    stats.heap.pop();
    const uint64_t k = pair_key(top.left, top.right);
    const auto it = stats.count.find(k);
    const int64_t now = it == stats.count.end() ? 0 : it->second;
    if (now != top.count) {  // stale: counts only fall, except for pairs just made
      if (now > 0 && !forbidden.count(k)) stats.heap.push({now, top.left, top.right});
      continue;
    }
    if (now < options_.min_frequency) break;
    std::string joined = tokens[size_t(top.left)] + tokens[size_t(top.right)];
    // Special tokens are cut out of the corpus before words are formed, so no word can hold
    // one; kept as a guard so that a merged token never shares a special token's text.
    if (special_text.count(joined)) {
      forbidden.insert(k);
      continue;
    }
    int merged;
    if (const auto t = token_of.find(joined); t != token_of.end()) {
      merged = t->second;  // the same bytes were already made by another pair
    } else {
      merged = int(tokens.size());
      token_of.emplace(joined, merged);
      tokens.push_back(std::move(joined));
      ++created;
    }
    if (merged_pairs.insert(k).second) model.merges.push_back({top.left, top.right, merged});

    std::vector<uint32_t> list = std::move(stats.where[k]);
    stats.where.erase(k);
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    delta.clear();
    for (uint32_t w : list) merge_word(words[w], w, top.left, top.right, merged, delta, stats);
    for (const auto& [pk, d] : delta) {
      if (d == 0) continue;
      int64_t& c = stats.count[pk];
      c += d;
      if (c <= 0) {
        stats.count.erase(pk);
      } else if (d > 0 && !forbidden.count(pk)) {
        stats.heap.push({c, key_left(pk), key_right(pk)});
      }
    }
    stats.count.erase(k);  // every occurrence was merged
  }

  model.pre_tokenizer = options_.pre_tokenizer;
  model.add_bos = options_.add_bos;
  model.bos = 0;
  model.eos = 1;
  for (const std::string& s : specials) {
    model.token_bytes.push_back(s);
    model.special.push_back(1);
  }
  for (std::string& t : tokens) {
    model.token_bytes.push_back(std::move(t));
    model.special.push_back(0);
  }
  for (BpeMerge& m : model.merges) {
    m.left += n_special;
    m.right += n_special;
    m.merged += n_special;
  }
  return model;
}

std::vector<std::string_view> split_at_safe_lines(std::string_view text, size_t target) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (text.size() - start > target) {
    // A cut after text[nl] == '\n' with printable characters at nl - 1 and nl + 1, leaving
    // at least `target` bytes (and never nl == start) before it.
    size_t nl = text.find('\n', start + std::max<size_t>(target, 2) - 1);
    while (nl != std::string_view::npos && nl + 1 < text.size() &&
           !(is_graph(text[nl - 1]) && is_graph(text[nl + 1])))
      nl = text.find('\n', nl + 1);
    if (nl == std::string_view::npos || nl + 1 >= text.size()) break;
    out.push_back(text.substr(start, nl + 1 - start));
    start = nl + 1;
  }
  if (start < text.size()) out.push_back(text.substr(start));
  return out;
}

uint64_t count_tokens(const Tokenizer& tok, std::string_view text) {
  uint64_t n = 0;
  for (std::string_view piece : split_at_safe_lines(text, kPieceBytes)) n += tok.encode(piece, false).size();
  return n;
}

void write_tokenizer_gguf(const Tokenizer& tok, const std::string& path, const std::string& name) {
  GgufWriter w;
  w.set_string("general.name", name);
  tok.write_gguf(w);
  w.write(path);
}

}  // namespace dspark
