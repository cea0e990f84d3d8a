// Turning a chat (system / user / assistant messages) into the prompt text a model was
// trained on, from the model's own chat template.
//
// Chat templates are Jinja programs; dspark does not run them. It recognises the family a
// template belongs to by the special tokens it writes (as llama.cpp does) and renders that
// family's format with a small hand-written function. With S, U, A the contents of a system,
// user and assistant message, [S, U, A, U] renders as (ending with the generation prompt):
//
//   chatml   <|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n
//            <|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nU<|im_end|>\n
//            <|im_start|>assistant\n
//   phi4     as chatml with <|im_sep|> instead of the newline after the role, and no newline
//            after <|im_end|>
//   llama3   <|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|> ... (user, assistant
//            likewise) <|start_header_id|>assistant<|end_header_id|>\n\n   (contents trimmed)
//   gemma    <start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n
//            <start_of_turn>user\nU<end_of_turn>\n<start_of_turn>model\n   (contents trimmed)
//   phi3     <|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\nA<|end|>\n ... <|assistant|>\n
//   zephyr   <|system|>\nS</s>\n<|user|>\nU</s>\n<|assistant|>\nA</s>\n ... <|assistant|>\n
//   llama2   [INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] U [/INST]   (trimmed)
//   mistral  [INST] S\n\nU [/INST]A</s>[INST] U [/INST]   (the spacing of Mistral 7B v0.1/v0.2
//            and Mixtral v0.1; v0.3's "[INST] U[/INST] A</s>" is not told apart)
//   plain    System: S\n\nUser: U\n\nAssistant: A\n\nUser: U\n\nAssistant:   (trimmed)
//
// "plain" is for models without a template (base models, the project's default model) and
// for templates of no known family. Families without a system role (gemma, llama2, mistral)
// put the system text into the next message when it is a user message (as shown), else into
// a user turn of its own. Consecutive messages of one role are rendered as they come:
// nothing checks that user and assistant alternate. The [INST] families need no generation
// prompt: after a user message the prompt already ends where the answer starts. No family
// writes a leading BOS (the engine adds BOS to every prompt), so "<s>" appears only between
// llama2 turns, where the real template writes it. Known simplifications: llama 3.1's
// template adds dates to the system message and Qwen3's drops the <think> part of earlier
// answers; neither is done here.
#pragma once

#include <string>
#include <vector>

namespace dspark {

struct ChatMessage {
  std::string role;  // "system", "developer" (read as system), "user", "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  struct Family;  // a family's format, defined in chat_template.cpp

  ChatTemplate();  // plain

  // Recognises the family of a model's Jinja chat template (tokenizer.chat_template in GGUF,
  // "chat_template" in tokenizer_config.json) by its distinctive markers. "" and templates
  // of no known family give plain (name() says so).
  static ChatTemplate from_source(const std::string& jinja);
  // For a --chat-template option: one of names(). Throws Error for an unknown name, listing
  // the known ones.
  static ChatTemplate named(const std::string& name);
  static std::vector<std::string> names();

  // "chatml", "phi4", "llama3", "gemma", "phi3", "zephyr", "llama2", "mistral" or "plain".
  const std::string& name() const;

  // The prompt text: the messages in the family's format, ending with the assistant's
  // opening when add_generation_prompt. Throws Error for no messages or an unknown role.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;

  // The text that ends an assistant turn ("<|im_end|>", "<|eot_id|>", "<end_of_turn>",
  // "</s>", ...); "" for plain. A server stops generation at it.
  const std::string& end_of_turn() const;

 private:
  explicit ChatTemplate(const Family* family) : family_(family) {}
  const Family* family_;
};

}  // namespace dspark
