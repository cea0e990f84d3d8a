#include "tokenizer/score_bpe_tokenizer.h"

namespace dspark {
namespace {

std::array<int, 256> byte_token_ids(const Vocab& vocab) {
  std::array<int, 256> ids;
  for (int b = 0; b < 256; ++b) ids[size_t(b)] = vocab.find(byte_token_text(uint8_t(b)));
  return ids;
}

}  // namespace

ScoreBpeTokenizer::ScoreBpeTokenizer(Vocab vocab, std::vector<float> scores, std::vector<uint8_t> mergeable,
                                     LiteralTokenSplitter literals, ScoreBpeConfig config)
    : VocabTokenizer(std::move(vocab)),
      literals_(std::move(literals)),
      config_(std::move(config)),
      merger_(vocab_, std::move(scores), std::move(mergeable), byte_token_ids(vocab_), config_.bytes_first) {}

std::vector<int> ScoreBpeTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int> out;
  if (add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
  std::vector<LiteralTokenSplitter::Piece> pieces;
  if (literals_.empty()) {
    if (!text.empty()) pieces.push_back({text, -1});
  } else {
    literals_.split(text, pieces);
  }
  bool prefix = config_.add_space_prefix;  // at the start, and again after each literal token
  std::string buf;
  for (const auto& piece : pieces) {
    if (piece.id >= 0) {
      out.push_back(piece.id);
      prefix = config_.add_space_prefix;
      continue;
    }
    buf.clear();
    if (prefix) buf += config_.space;
    for (char c : piece.text) {
      if (c == ' ') {
        buf += config_.space;
      } else {
        buf += c;
      }
    }
    merger_.encode(buf, out);
    prefix = false;
  }
  return out;
}

}  // namespace dspark
