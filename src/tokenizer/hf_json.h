// Pieces of Hugging Face tokenizer.json parsing shared by hf_json.cpp (model, vocabulary,
// special tokens) and hf_pipeline.cpp (normalizer, pre-tokenizer, decoder, post-processor).
// Every reader checks the JSON types it relies on and reports problems as
// "<file>: <json path>: <what was expected>".
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/pre_tokenizer.h"

namespace dspark::hf {

using nlohmann::json;

// Member `key` of `obj` when obj is an object that has it and it is not null.
const json* member(const json& obj, const char* key);
bool get_bool(const json& obj, const char* key, bool def, const std::string& where);
std::string get_string(const json& obj, const char* key, const std::string& def, const std::string& where);
// A value shown in an error message, cut short.
std::string brief(const json& v);

// How token text becomes decoded bytes, read from the "decoder" section.
struct DecoderSpec {
  bool byte_level = false;                                   // ByteLevel
  bool byte_fallback = false;                                // ByteFallback: <0xXX> -> byte
  std::vector<std::pair<std::string, std::string>> replace;  // Replace / Metaspace
  bool strip_leading_space = false;                          // Strip start / Metaspace prefix
};

// `where` names the section in error messages ("tokenizer.json: normalizer"); `depth`
// counts nested Sequences, which are refused past a small limit.
void read_normalizer(const json& j, const std::string& where, Normalizer& out, int depth = 0);
// Sets *byte_level when a ByteLevel step is present.
void read_pre_tokenizer(const json& j, const std::string& where, PreTokenizer& out, bool* byte_level,
                        int depth = 0);
void read_decoder(const json& j, const std::string& where, DecoderSpec& out, int depth = 0);

// Special tokens of a post-processor template: the one before the sequence is BOS, one
// after it EOS. Names are token strings; ids are filled when the template gives them.
struct TemplateTokens {
  std::string bos, eos;
  int bos_id = -1, eos_id = -1;
};
void read_post_processor(const json& j, const std::string& where, TemplateTokens& out, int depth = 0);

}  // namespace dspark::hf
