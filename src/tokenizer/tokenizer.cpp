// Decoding shared by every tokenizer kind: token bytes, the start-of-text space rule, and
// holding back an unfinished UTF-8 character while streaming.
#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace dspark {

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  TextStream stream(*this);
  std::string out;
  for (int id : ids) out += stream.push(id);
  out += stream.finish();
  return out;
}

void Tokenizer::write_gguf(GgufWriter& /*w*/) const {
  fail("tokenizer: this kind of tokenizer has no GGUF form (tokenizer.ggml.*)");
}

std::string TextStream::push(int id) {
  std::string bytes = tok_.token_bytes(id);  // "" for control tokens
  if (bytes.empty()) return {};
  if (at_start_) {
    at_start_ = false;
    if (tok_.strips_leading_space() && bytes[0] == ' ') bytes.erase(0, 1);
  }
  pending_ += bytes;
  // Hold back only a well-formed start of a character; bytes that can no longer become
  // valid UTF-8 go out as they are instead of waiting forever.
  const size_t ready = pending_.size() - utf8::incomplete_tail(pending_);
  std::string out = pending_.substr(0, ready);
  pending_.erase(0, ready);
  return out;
}

std::string TextStream::finish() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace dspark
