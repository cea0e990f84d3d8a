#include "tokenizer/vocab.h"

#include "core/error.h"

namespace dspark {

void Vocab::resize(size_t n) {
  text.resize(n);
  bytes.resize(n);
  control.resize(n, 0);
}

int parse_byte_token(std::string_view s) {
  if (s.size() != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = s[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return -1;
    }
    value = value * 16 + d;
  }
  return value;
}

std::string byte_token_text(uint8_t b) {
  static const char* hex = "0123456789ABCDEF";
  return std::string{'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
}

size_t VocabTokenizer::checked(int id) const {
  if (id < 0 || id >= vocab_.size())
    fail(vocab_.label, ": token id ", id, " is out of range (vocabulary of ", vocab_.size(), " tokens)");
  return size_t(id);
}

}  // namespace dspark
