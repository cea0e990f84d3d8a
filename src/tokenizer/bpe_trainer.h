// Training a byte-level BPE tokenizer (GPT-2 style) on a text corpus.
//
// The base alphabet is the 256 bytes, so every input, invalid UTF-8 included, has an
// encoding (byte fallback without <0xXX> tokens). The corpus is cut the way encoding cuts
// text: special tokens written literally are taken out first, then a pre-tokenizer regex
// (a tokenizer.ggml.pre name, GPT-2's by default) splits it into words, so merges never
// cross a word boundary. Training works on the distinct words and their counts, not on the
// text: repeatedly the most frequent adjacent pair of symbols over all words becomes a new
// token, until the vocabulary has the size asked for or no pair occurs `min_frequency`
// times. Ties go to the pair whose (left id, right id) is smallest, ids being numbered in
// order of creation (bytes first, by value), so a corpus always gives the same tokenizer.
//
// Cost: reading the corpus is one regex pass and a hash-map count of its words. Training
// keeps the count of every adjacent pair, the words each pair occurs in and a max-heap of
// pairs by count with lazy deletion: a merge rewrites only the words that hold its pair and
// updates the counts of the pairs around each occurrence, so the whole run costs about the
// total length of the rewritten words plus O(log P) heap work per changed pair, never a pass
// over the corpus per merge. Memory: the distinct words and their pairs, plus the words of
// one piece of text at a time (see split_at_safe_lines; a file without safe cuts is one
// piece). Measured here (one core): the 4 MB King James Bible (900k words, 13.6k distinct)
// reads in 0.2 s and trains 3,838 merges in 0.02 s (130 MB peak RSS, one piece); 10 MB of
// text with 102k distinct words reads in 0.3 s and trains 31,742 merges in 0.8 s (75 MB).
//
// The result is a RankBpeTokenizer (Tokenizer::from_gguf's "gpt2" kind): special tokens
// first (BOS, EOS, then any extra ones, all control tokens), then the 256 byte tokens in
// byte order, then the merged tokens in the order learned (two merges that make the same
// bytes share one token). write_tokenizer_gguf() stores it as a GGUF file holding only
// tokenizer.ggml.* metadata (no tensors), which Tokenizer::from_gguf reads back and
// Tokenizer::write_gguf copies into a model GGUF.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace dspark {

struct BpeTrainOptions {
  // Tokens in all: special tokens, the 256 byte tokens and the merged tokens.
  int vocab_size = 0;
  std::string bos = "<s>";
  std::string eos = "</s>";
  std::vector<std::string> extra_special;  // more control tokens, e.g. "<pad>"
  // A tokenizer.ggml.pre name (gguf_vocab::pre_tokenizer_specs); "gpt-2" is GPT-2's regex,
  // which llama.cpp also reads under that name.
  std::string pre_tokenizer = "gpt-2";
  // A pair seen fewer times than this over the whole corpus is never merged.
  int64_t min_frequency = 2;
  bool add_bos = true;  // tokenizer.ggml.add_bos_token of the result
};

// One learned merge: tokens `left` and `right` side by side become `merged`.
struct BpeMerge {
  int left, right, merged;
};

// A trained tokenizer as plain data.
struct BpeModel {
  std::vector<std::string> token_bytes;  // id -> the bytes it stands for (a special: its text)
  std::vector<uint8_t> special;          // 1 for control tokens
  std::vector<BpeMerge> merges;          // in the order learned (= rank)
  int bos = -1, eos = -1;
  bool add_bos = true;
  std::string pre_tokenizer;  // tokenizer.ggml.pre name

  int vocab_size() const { return int(token_bytes.size()); }
  // The tokenizer that encodes with these merges; `label` names it in error messages.
  std::unique_ptr<Tokenizer> tokenizer(const std::string& label = "trained tokenizer") const;
};

class BpeTrainer {
 public:
  // Throws Error when the options cannot give a tokenizer (vocabulary too small for the
  // byte and special tokens, special tokens empty, repeated or holding whitespace, unknown
  // pre-tokenizer name, min_frequency below 1).
  explicit BpeTrainer(BpeTrainOptions options);

  // Adds one document of the corpus (text is never joined across calls).
  void add_text(std::string_view text);
  // Adds a file's bytes as one document; throws Error naming the file when it cannot be read.
  void add_file(const std::string& path);

  uint64_t corpus_bytes() const { return corpus_bytes_; }
  uint64_t words() const { return words_; }  // pre-tokenized words, special tokens excluded
  size_t distinct_words() const { return counts_.size(); }

  // Learns the merges. Throws Error when no text was added. Can be called again (with more
  // text added in between); the word counts are not consumed.
  BpeModel train() const;

 private:
  BpeTrainOptions options_;
  PreTokenizer pre_;
  LiteralTokenSplitter literals_;
  std::unordered_map<std::string, uint64_t> counts_;  // word bytes -> occurrences
  uint64_t corpus_bytes_ = 0;
  uint64_t words_ = 0;
  bool any_text_ = false;
};

// The bytes of a corpus file; throws Error naming the file when it is missing, not a regular
// file, or cannot be read.
std::string read_corpus_file(const std::string& path);

// Splits `text` into consecutive pieces of at least `target` bytes (the last one may be
// shorter), each cut made just after a '\n' that has a printable ASCII character other than
// a space on both sides ("x\ny"). No match of a tokenizer.ggml.pre regex and no special
// token without whitespace crosses such a place, so the words of the pieces are the words of
// the whole text. Text without such a place stays one piece.
std::vector<std::string_view> split_at_safe_lines(std::string_view text, size_t target);

// Number of tokens `tok` gives `text` (no BOS), encoded piece by piece
// (split_at_safe_lines) so that memory stays small for a large file.
uint64_t count_tokens(const Tokenizer& tok, std::string_view text);

// Writes `tok` as a GGUF file with general.name and tokenizer.ggml.* only (no tensors).
// Throws Error naming the path or the token that has no faithful GGUF form.
void write_tokenizer_gguf(const Tokenizer& tok, const std::string& path, const std::string& name);

}  // namespace dspark
