// Tokenizer for BPE by merge rank: Hugging Face tokenizer.json "BPE" models (both the
// sentencepiece style with U+2581 and byte fallback, and the GPT-2 byte-level style) and
// GGUF "gpt2" vocabularies. Encoding: literal (added/control) tokens are cut out first,
// each remaining fragment is normalized, split into words, optionally byte-level mapped,
// and each word merged by rank.
#pragma once

#include <array>
#include <string_view>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_merges.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/vocab.h"

namespace dspark {

struct RankBpeConfig {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  bool byte_level = false;     // words go through GPT-2's byte-to-unicode map
  bool byte_fallback = false;  // characters that are not tokens become <0xXX> tokens
  bool fuse_unk = false;       // consecutive unknown characters give one <unk>
  bool ignore_merges = false;  // a word that is a token is taken whole (Llama 3)
};

class RankBpeTokenizer : public VocabTokenizer {
 public:
  RankBpeTokenizer(Vocab vocab, RankMerges merges, LiteralTokenSplitter literals, RankBpeConfig config);

  std::vector<int> encode(std::string_view text, bool add_bos) const override;
  // GGUF "gpt2" for byte-level BPE, "llama" (scores that replay the merge order) for the
  // sentencepiece style; see gguf_vocab_writer.cpp for what each refuses.
  void write_gguf(GgufWriter& w) const override;

 private:
  void write_gguf_gpt2(GgufWriter& w) const;
  void write_gguf_llama(GgufWriter& w) const;

  // Appends the ids of one word (already normalized, pre-tokenized and mapped).
  void encode_word(std::string_view word, std::vector<int>& out, RankMerges::Scratch& scratch,
                   std::vector<int>& symbols) const;

  RankMerges merges_;
  LiteralTokenSplitter literals_;
  RankBpeConfig config_;
  std::array<int, 256> byte_ids_;  // <0xXX> token of each byte, -1 where missing
};

}  // namespace dspark
