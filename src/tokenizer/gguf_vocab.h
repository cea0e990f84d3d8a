// tokenizer.ggml.* conventions shared by the GGUF vocabulary reader (gguf_vocab.cpp) and
// writer (gguf_vocab_writer.cpp), so that what one writes the other reads back the same.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dspark::gguf_vocab {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6
};

inline constexpr const char* kSpace = "\xE2\x96\x81";  // U+2581, sentencepiece's space
// A special token id key (tokenizer.ggml.bos_token_id, ...) holding this means "none".
inline constexpr uint32_t kNoToken = 0xFFFFFFFF;

// How the reader takes one token of the vocabulary.
struct TokenRole {
  std::string bytes;       // what it adds to decoded text
  bool control = false;    // renders as nothing
  bool mergeable = false;  // merges may produce it ("llama" vocabularies)
  bool literal = false;    // matched literally in input before merging
};
// `spm`: a "llama" vocabulary (U+2581 is a space), else "gpt2" (byte-level text).
TokenRole token_role(const std::string& text, int64_t type, bool spm);

// Pre-tokenizers by tokenizer.ggml.pre name (llama.cpp's names): regexes applied in order,
// each splitting the pieces of the one before; Llama 3 vocabularies take a word that is a
// token whole before merging (ignore_merges). Names with the same pipeline are grouped, the
// one a writer uses first.
struct PreTokenizerSpec {
  const char* name;
  std::vector<const char*> patterns;
  bool ignore_merges;
};
const std::vector<PreTokenizerSpec>& pre_tokenizer_specs();

}  // namespace dspark::gguf_vocab
