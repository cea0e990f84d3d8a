// The llama2.c tokenizer file (tokenizer.bin / tok512.bin):
//   int32 max_token_length, then per token: float32 score, int32 length, `length` bytes.
// Spaces are stored as " " (not U+2581); ids 0, 1, 2 are <unk>, BOS ("\n<s>\n") and EOS
// ("\n</s>\n"), then the 256 byte tokens <0x00>..<0xFF>.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/score_bpe_tokenizer.h"

namespace dspark {
namespace {

// Trims the newlines llama2.c's exporter puts around "<s>" and "</s>".
std::string_view trim_newlines(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_llama2c(const std::string& path) {
  const std::string data = read_text_file(path);
  const size_t size = data.size();
  if (size < 4) fail(path, ": too short for a llama2.c tokenizer (", size, " bytes; the header alone is 4)");
  int32_t max_len;
  std::memcpy(&max_len, data.data(), 4);
  if (max_len <= 0) fail(path, ": max_token_length is ", max_len, "; expected a positive number");

  Vocab vocab;
  vocab.label = path;
  std::vector<float> scores;
  size_t pos = 4;
  while (pos < size) {
    const size_t id = vocab.text.size();
    if (size - pos < 8)
      fail(path, ": token ", id, " record is truncated (", size - pos,
           " bytes left, a record starts with 8)");
    float score;
    int32_t len;
    std::memcpy(&score, data.data() + pos, 4);
    std::memcpy(&len, data.data() + pos + 4, 4);
    pos += 8;
    if (len < 0) fail(path, ": token ", id, " has a negative length (", len, ")");
    if (size_t(len) > size - pos)
      fail(path, ": token ", id, " length ", len, " runs past the end of the file (", size - pos,
           " bytes left)");
    vocab.text.emplace_back(data, pos, size_t(len));
    pos += size_t(len);
    // A NaN would break the merge order; it ranks below every real score instead.
    scores.push_back(std::isnan(score) ? -std::numeric_limits<float>::infinity() : score);
  }
  const size_t n = vocab.text.size();
  if (n == 0) fail(path, ": no tokens after the header");
  if (n > size_t(std::numeric_limits<int>::max())) fail(path, ": too many tokens");

  vocab.bytes.resize(n);
  vocab.control.assign(n, 0);
  std::vector<uint8_t> mergeable(n, 1);
  LiteralTokenSplitter literals;
  for (size_t id = 0; id < n; ++id) {
    const std::string& t = vocab.text[id];
    if (id < 3) {  // <unk>, <s>, </s>: control tokens, matched literally in input
      vocab.control[id] = 1;
      mergeable[id] = 0;
      literals.add({std::string(trim_newlines(t)), int(id)});
    } else if (const int b = parse_byte_token(t); b >= 0) {
      vocab.bytes[id] = std::string(1, char(b));
      mergeable[id] = 0;
    } else {
      vocab.bytes[id] = t;
    }
    vocab.index_token(int(id));
  }
  for (size_t id = 0; id < std::min<size_t>(n, 3); ++id)  // token_id("<s>") finds BOS too
    vocab.index.emplace(std::string(trim_newlines(vocab.text[id])), int(id));
  vocab.unk = 0;
  vocab.bos = n > 1 ? 1 : -1;
  vocab.eos = n > 2 ? 2 : -1;
  vocab.add_bos = true;
  vocab.strip_leading_space = true;

  ScoreBpeConfig config;
  config.space = " ";
  config.add_space_prefix = true;
  config.bytes_first = true;
  return std::make_unique<ScoreBpeTokenizer>(std::move(vocab), std::move(scores), std::move(mergeable),
                                             std::move(literals), config);
}

}  // namespace dspark
