// UTF-8 helpers for the tokenizers. Input text is never trusted to be valid UTF-8: a byte
// that does not start a well-formed sequence is treated as a unit of its own, so every
// splitter makes progress and every byte survives a round trip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dspark::utf8 {

inline bool is_continuation(uint8_t b) { return (b & 0xC0) == 0x80; }

// Length announced by a lead byte: 1..4, or 0 for a byte that cannot start a sequence
// (continuation bytes, overlong leads C0/C1, F5..FF).
inline int sequence_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Whether `b` may follow `lead` as the second byte (excludes overlongs, surrogates and
// code points above U+10FFFF); later bytes only need to be continuation bytes.
inline bool valid_second_byte(uint8_t lead, uint8_t b) {
  if (!is_continuation(b)) return false;
  if (lead == 0xE0) return b >= 0xA0;
  if (lead == 0xED) return b <= 0x9F;
  if (lead == 0xF0) return b >= 0x90;
  if (lead == 0xF4) return b <= 0x8F;
  return true;
}

// Length of the character at s[i]: the length of a well-formed sequence, else 1.
inline size_t char_length(std::string_view s, size_t i) {
  const uint8_t lead = uint8_t(s[i]);
  const int n = sequence_length(lead);
  if (n <= 1 || i + size_t(n) > s.size()) return 1;
  if (!valid_second_byte(lead, uint8_t(s[i + 1]))) return 1;
  for (int k = 2; k < n; ++k)
    if (!is_continuation(uint8_t(s[i + size_t(k)]))) return 1;
  return size_t(n);
}

// Number of bytes at the end of `s` that form a well-formed but unfinished sequence
// (0..3): the part a streaming decoder must hold back until more bytes arrive.
inline size_t incomplete_tail(std::string_view s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const uint8_t b = uint8_t(s[n - back]);
    if (is_continuation(b)) continue;
    const int need = sequence_length(b);
    if (need <= int(back)) return 0;  // complete, ASCII or invalid lead: nothing to hold
    if (back >= 2 && !valid_second_byte(b, uint8_t(s[n - back + 1]))) return 0;
    return back;
  }
  return 0;  // three continuation bytes (or fewer bytes than that): nothing to wait for
}

// Code point of the well-formed character at s[i] of length `len` (from char_length);
// a lone invalid byte gives its byte value.
inline uint32_t decode(std::string_view s, size_t i, size_t len) {
  const uint8_t b0 = uint8_t(s[i]);
  if (len == 1) return b0;
  uint32_t cp = b0 & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3F);
  return cp;
}

inline void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

}  // namespace dspark::utf8
