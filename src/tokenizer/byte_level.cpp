#include "tokenizer/byte_level.h"

#include <array>
#include <cstdint>

#include "tokenizer/utf8.h"

namespace dspark {
namespace {

struct ByteLevelTables {
  std::array<std::string, 256> to_text;  // byte -> UTF-8 of its character
  std::array<int16_t, 512> to_byte;      // code point (all below 512) -> byte, or -1

  ByteLevelTables() {
    to_byte.fill(-1);
    uint32_t next_extra = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? uint32_t(b) : next_extra++;
      utf8::append(to_text[size_t(b)], cp);
      to_byte[cp] = int16_t(b);
    }
  }
};

const ByteLevelTables& tables() {
  static const ByteLevelTables t;
  return t;
}

}  // namespace

void byte_level_encode(std::string_view bytes, std::string& out) {
  const auto& t = tables();
  for (char c : bytes) out += t.to_text[uint8_t(c)];
}

std::string byte_level_decode(std::string_view text) {
  const auto& t = tables();
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8::char_length(text, i);
    // A lone byte of 0x80 or above is not a character (invalid UTF-8): kept as it is.
    const bool is_char = len > 1 || uint8_t(text[i]) < 0x80;
    const uint32_t cp = is_char ? utf8::decode(text, i, len) : 0xFFFFFFFF;
    if (cp < t.to_byte.size() && t.to_byte[cp] >= 0) {
      out += char(uint8_t(t.to_byte[cp]));
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}

}  // namespace dspark
