// The vocabulary every tokenizer kind shares: each id's stored text, the bytes it adds to
// decoded text, whether it is a control token, and a text -> id index. VocabTokenizer
// implements the Tokenizer getters from it; each kind adds only its encode().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace dspark {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
// Looked up with string_view keys without building a std::string.
using TokenIndex = std::unordered_map<std::string, int, StringHash, std::equal_to<>>;

struct Vocab {
  std::string label;               // file the vocabulary came from, for error messages
  std::vector<std::string> text;   // as stored in the file
  std::vector<std::string> bytes;  // what the token adds to decoded text ("" for control)
  std::vector<uint8_t> control;    // 1: control token (BOS, EOS, <unk>, chat markers, ...)
  TokenIndex index;                // stored text -> id (the first id with that text)
  int bos = -1;
  int eos = -1;
  int unk = -1;
  bool add_bos = true;               // whether prompts of this model start with BOS
  bool strip_leading_space = false;  // sentencepiece-style dummy prefix

  int size() const { return int(text.size()); }
  int find(std::string_view s) const {
    auto it = index.find(s);
    return it == index.end() ? -1 : it->second;
  }
  // Sizes the per-id arrays to n tokens (new entries empty, not control).
  void resize(size_t n);
  // Adds text -> id to the index unless the text is already there.
  void index_token(int id) { index.emplace(text[size_t(id)], id); }
};

// 0..255 when `s` is a byte token "<0xHH>" (hex digits in either case), else -1.
int parse_byte_token(std::string_view s);
// The byte token text for byte b: "<0x0A>".
std::string byte_token_text(uint8_t b);

class VocabTokenizer : public Tokenizer {
 public:
  explicit VocabTokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}

  int vocab_size() const override { return vocab_.size(); }
  int bos_id() const override { return vocab_.bos; }
  int eos_id() const override { return vocab_.eos; }
  bool add_bos_default() const override { return vocab_.add_bos && vocab_.bos >= 0; }
  std::string token_bytes(int id) const override { return vocab_.bytes[checked(id)]; }
  std::string token_text(int id) const override { return vocab_.text[checked(id)]; }
  bool is_control(int id) const override { return vocab_.control[checked(id)] != 0; }
  bool strips_leading_space() const override { return vocab_.strip_leading_space; }
  int token_id(std::string_view text) const override { return vocab_.find(text); }

 protected:
  size_t checked(int id) const;  // throws Error for ids outside [0, vocab_size)
  Vocab vocab_;
};

}  // namespace dspark
