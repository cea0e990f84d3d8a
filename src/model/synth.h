// Random-weight models of real architectures and sizes, written as GGUF with an embedded
// tokenizer, so that speed can be measured at the sizes that matter: the speed of a kernel
// never depends on the values of the weights. The text they produce is noise.
//
// Weights are drawn from a bell-shaped distribution with standard deviation 0.02 (norm
// weights are 1), so activations stay finite through every layer, and are produced tensor
// by tensor while the file is written: a model larger than memory can be made.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "model/config.h"

namespace dspark {

struct SynthPreset {
  std::string name;
  std::string description;  // what real model it has the shape of
  ModelConfig config;
  std::string pre_tokenizer;  // tokenizer.ggml.pre
};

// The known presets: qwen3-0.6b, qwen3-1.7b, qwen3-4b, llama-110m (llama2.c stories110M),
// and tiny / tiny-llama for tests (dimensions multiples of 256, so every block type fits).
const std::vector<SynthPreset>& synth_presets();
// Throws Error listing the known names.
const SynthPreset& find_synth_preset(const std::string& name);

// A weight type by its name (dtype_name, any case), for every DType that has a GGUF type id.
std::optional<DType> parse_weight_type(std::string_view name);
// Every such type's name, in DType order.
std::vector<std::string> weight_type_names();

// A synthetic GPT-2-style byte-level BPE vocabulary of exactly `vocab_size` tokens: the 256
// byte symbols, then tokens merged from them (space-prefixed and plain lowercase strings,
// common letters first, shorter strings first) each with its merge rule "a b" (rank order),
// then two control tokens: BOS "<|startoftext|>" and EOS "<|endoftext|>" at the end.
struct SynthVocab {
  std::vector<std::string> tokens;   // byte-level text
  std::vector<std::string> merges;   // "left right", rank order
  std::vector<int32_t> token_types;  // llama.cpp token types: 1 normal, 3 control
  int bos = -1, eos = -1;
};
// vocab_size must be at least 258.
SynthVocab make_synth_vocab(int vocab_size);
// Adds the vocabulary as tokenizer.ggml.* metadata (model "gpt2", the given pre-tokenizer).
void add_synth_tokenizer(GgufWriter& w, const SynthVocab& vocab, const std::string& pre_tokenizer);

struct SynthOptions {
  DType weight_type = DType::BF16;  // every matrix (embeddings included); norms stay F32
  uint64_t seed = 0;
  int n_layers = 0;    // > 0 overrides the preset's layer count
  int context = 0;     // > 0 overrides the preset's context length
  bool stream = true;  // false: produce every tensor now (the writer then holds them)
};

// The preset's configuration with the options' overrides applied.
ModelConfig synth_config(const SynthPreset& preset, const SynthOptions& options);

// Adds the architecture metadata, the tokenizer and every tensor of the model to `w`.
// With options.stream, tensors are produced when `w` is written or serialized, using
// `pool` (which must then outlive those calls; nullptr: one thread). Bytes depend only on
// the preset, the options and the seed, never on the thread count. Throws Error when a
// matrix's rows are not whole blocks of the weight type.
void add_synth_model(GgufWriter& w, const SynthPreset& preset, const SynthOptions& options,
                     ThreadPool* pool = nullptr);

// Writes the model to `path` (streaming, one tensor in memory at a time). Returns the size
// of the file in bytes.
uint64_t write_synth_model(const std::string& path, const SynthPreset& preset, const SynthOptions& options,
                           ThreadPool* pool = nullptr);

}  // namespace dspark
