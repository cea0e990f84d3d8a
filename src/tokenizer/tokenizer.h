// Text <-> token ids. One interface over the tokenizers real models ship with:
//  - Hugging Face tokenizer.json BPE, sentencepiece-style (U+2581 for spaces, byte fallback
//    tokens <0xXX>) and GPT-2/Qwen byte-level style (pre-tokenizer regex, byte-to-unicode map);
//  - the llama2.c tokenizer file (scores; sentencepiece-style merging by score);
//  - the vocabulary embedded in a GGUF file (tokenizer.ggml.*, model "llama" or "gpt2").
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dspark {

class GgufFile;
class GgufWriter;

class Tokenizer {
 public:
  static std::unique_ptr<Tokenizer> from_hf_json(const std::string& tokenizer_json_path);
  static std::unique_ptr<Tokenizer> from_llama2c(const std::string& path);
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& gguf);

  virtual ~Tokenizer() = default;

  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;  // -1 when the tokenizer has none
  virtual int eos_id() const = 0;  // -1 when the tokenizer has none
  // Whether prompts for this model start with BOS (tokenizer_config.json add_bos_token or
  // the post-processor template, GGUF tokenizer.ggml.add_bos_token; llama2.c: always).
  // Callers pass it as encode()'s add_bos; false when there is no BOS.
  virtual bool add_bos_default() const { return bos_id() >= 0; }
  // Id of the token stored as `text` (e.g. "<|im_end|>"), or -1 when there is none.
  virtual int token_id(std::string_view /*text*/) const { return -1; }

  // Special/added tokens written literally in `text` (e.g. "<|im_start|>") map to their ids.
  // Sentencepiece-style tokenizers add their dummy-prefix space at the start of the text and
  // again after each such literal token (as llama.cpp and Hugging Face do).
  virtual std::vector<int> encode(std::string_view text, bool add_bos) const = 0;

  // The raw bytes token `id` contributes to decoded text, before any start-of-text
  // adjustment: byte tokens give their byte, U+2581 becomes a space, byte-level BPE maps
  // back to bytes. Control tokens (BOS, EOS, ...) give "". Out-of-range ids throw Error.
  virtual std::string token_bytes(int id) const = 0;
  // The token as stored in the vocabulary (for display and `dspark info`).
  virtual std::string token_text(int id) const = 0;
  virtual bool is_control(int id) const = 0;

  // Sentencepiece-style tokenizers drop one leading space from the start of decoded text.
  virtual bool strips_leading_space() const = 0;

  // Decodes a whole sequence (control tokens render as nothing). Bytes that do not form
  // valid UTF-8 are kept as they are.
  std::string decode(const std::vector<int>& ids) const;

  // The model's chat template (Jinja source) as its files give it: GGUF
  // tokenizer.chat_template, tokenizer_config.json "chat_template" (or chat_template.jinja)
  // beside tokenizer.json. "" when there is none (llama2.c files, most base models).
  // ChatTemplate::from_source recognises its family; write_gguf writes it back.
  const std::string& chat_template() const { return chat_template_; }
  void set_chat_template(std::string source) { chat_template_ = std::move(source); }

  // Writes the tokenizer as GGUF metadata (tokenizer.ggml.*) that from_gguf reads back to a
  // tokenizer with the same vocabulary, special tokens and encoding. Throws Error naming the
  // tokenizer and the reason when it has no faithful GGUF form (the default).
  virtual void write_gguf(GgufWriter& w) const;

 private:
  std::string chat_template_;
};

// Incremental decoding for streaming: push token ids one at a time, get back only text
// that is complete UTF-8 (a character split across tokens comes out once whole).
// Feed it every token of the sequence, prompt included, so start-of-text rules apply once.
class TextStream {
 public:
  explicit TextStream(const Tokenizer& tok) : tok_(tok) {}
  std::string push(int id);
  // Whatever is still held back (an incomplete character at the very end), as is.
  std::string finish();

 private:
  const Tokenizer& tok_;
  std::string pending_;
  bool at_start_ = true;
};

}  // namespace dspark
