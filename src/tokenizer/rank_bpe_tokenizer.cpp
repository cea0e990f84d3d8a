#include "tokenizer/rank_bpe_tokenizer.h"

#include <algorithm>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace dspark {

RankBpeTokenizer::RankBpeTokenizer(Vocab vocab, RankMerges merges, LiteralTokenSplitter literals,
                                   RankBpeConfig config)
    : VocabTokenizer(std::move(vocab)),
      merges_(std::move(merges)),
      literals_(std::move(literals)),
      config_(std::move(config)) {
  for (int b = 0; b < 256; ++b) byte_ids_[size_t(b)] = vocab_.find(byte_token_text(uint8_t(b)));
}

void RankBpeTokenizer::encode_word(std::string_view word, std::vector<int>& out, RankMerges::Scratch& scratch,
                                   std::vector<int>& symbols) const {
  if (config_.ignore_merges) {
    const int id = vocab_.find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  symbols.clear();
  bool last_unk = false;
  for (size_t i = 0; i < word.size();) {
    const size_t len = utf8::char_length(word, i);
    const std::string_view ch = word.substr(i, len);
    i += len;
    if (const int id = vocab_.find(ch); id >= 0) {
      symbols.push_back(id);
      last_unk = false;
      continue;
    }
    if (config_.byte_fallback &&
        std::all_of(ch.begin(), ch.end(), [&](char c) { return byte_ids_[uint8_t(c)] >= 0; })) {
      for (char c : ch) symbols.push_back(byte_ids_[uint8_t(c)]);
      last_unk = false;
      continue;
    }
    if (vocab_.unk < 0) continue;  // no way to represent it: dropped, as Hugging Face does
    if (!(config_.fuse_unk && last_unk)) symbols.push_back(vocab_.unk);
    last_unk = true;
  }
  merges_.apply(symbols, scratch);
  out.insert(out.end(), symbols.begin(), symbols.end());
}

std::vector<int> RankBpeTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int> out;
  if (add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
  std::vector<LiteralTokenSplitter::Piece> pieces;
  if (literals_.empty()) {
    if (!text.empty()) pieces.push_back({text, -1});
  } else {
    literals_.split(text, pieces);
  }

  RankMerges::Scratch scratch;
  std::vector<int> symbols;
  std::vector<std::string> words;
  std::string mapped;
  bool first = true;
  for (const auto& piece : pieces) {
    if (piece.id >= 0) {
      out.push_back(piece.id);
      first = false;
      continue;
    }
    const std::string normalized = config_.normalizer.apply(piece.text);
    words.clear();
    if (config_.pre_tokenizer.empty()) {
      if (!normalized.empty()) words.push_back(normalized);
    } else {
      config_.pre_tokenizer.run(normalized, first, words);
    }
    for (const std::string& w : words) {
      if (config_.byte_level) {
        mapped.clear();
        byte_level_encode(w, mapped);
        encode_word(mapped, out, scratch, symbols);
      } else {
        encode_word(w, out, scratch, symbols);
      }
    }
    first = false;
  }
  return out;
}

}  // namespace dspark
