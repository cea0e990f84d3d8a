// GPT-2's byte-to-unicode map, used by byte-level BPE (GPT-2, Qwen, Llama 3): every byte is
// shown as one printable character so that merges work on text. Printable Latin-1 bytes
// map to themselves; the other 68 bytes map to U+0100.. in byte order.
#pragma once

#include <string>
#include <string_view>

namespace dspark {

// Appends the mapped characters of `bytes` to `out`.
void byte_level_encode(std::string_view bytes, std::string& out);
// Inverse map; characters outside the map (e.g. in added tokens) are kept as they are.
std::string byte_level_decode(std::string_view text);

}  // namespace dspark
