// ChatTemplate: each family recognised from a template written the way its models write
// theirs, the exact prompt each renders for one conversation, errors, named(); and the
// chat template source carried by tokenizers: read from tokenizer_config.json (or
// chat_template.jinja) and GGUF, written back by write_gguf, absent from the shared models.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "formats/gguf.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace dspark {
namespace {

using test::read_file;
using test::shared_model;
using test::temp_dir;
using test::write_file;

// Short templates in the style of each family's published ones (Jinja source, as
// tokenizer_config.json holds it once its JSON string is decoded).
const char* const kChatml =
    R"({% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})";
const char* const kPhi4 =
    R"({% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %})";
const char* const kLlama3 =
    R"({{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %})";
const char* const kGemma =
    R"({{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %})";
const char* const kPhi3 =
    R"({% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %})";
const char* const kZephyr =
    R"({% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + eos_token }}{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n'  + message['content'] + eos_token }}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}{% endfor %})";
const char* const kLlama2 =
    R"({% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %})";
const char* const kMistral =
    R"({{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %})";
const char* const kUnknown =
    R"({% for message in messages %}{{ '### ' + message['role'] + ':\n' + message['content'] + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '### assistant:\n' }}{% endif %})";

const std::vector<ChatMessage> kChat = {
    {"system", "You are terse."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Who are you?"}};

struct FamilyCase {
  const char* source;
  const char* name;
  const char* end_of_turn;
  const char* rendered;  // kChat with the generation prompt
};

const FamilyCase kFamilies[] = {
    {kChatml, "chatml", "<|im_end|>",
     "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
     "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWho are you?<|im_end|>\n"
     "<|im_start|>assistant\n"},
    {kPhi4, "phi4", "<|im_end|>",
     "<|im_start|>system<|im_sep|>You are terse.<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|>"
     "<|im_start|>assistant<|im_sep|>Hello!<|im_end|><|im_start|>user<|im_sep|>Who are you?<|im_end|>"
     "<|im_start|>assistant<|im_sep|>"},
    {kLlama3, "llama3", "<|eot_id|>",
     "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\n"},
    {kGemma, "gemma", "<end_of_turn>",
     "<start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
     "<start_of_turn>user\nWho are you?<end_of_turn>\n<start_of_turn>model\n"},
    {kPhi3, "phi3", "<|end|>",
     "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
     "<|user|>\nWho are you?<|end|>\n<|assistant|>\n"},
    {kZephyr, "zephyr", "</s>",
     "<|system|>\nYou are terse.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n"
     "<|user|>\nWho are you?</s>\n<|assistant|>\n"},
    {kLlama2, "llama2", "</s>",
     "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Who are you? [/INST]"},
    {kMistral, "mistral", "</s>", "[INST] You are terse.\n\nHi [/INST]Hello!</s>[INST] Who are you? [/INST]"},
    {kUnknown, "plain", "",
     "System: You are terse.\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: Who are you?\n\nAssistant:"},
    {"", "plain", "",
     "System: You are terse.\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: Who are you?\n\nAssistant:"},
};

TEST(ChatTemplate, RecognisesEachFamilyAndRendersItsFormat) {
  for (const FamilyCase& c : kFamilies) {
    SCOPED_TRACE(c.name);
    const ChatTemplate t = ChatTemplate::from_source(c.source);
    EXPECT_EQ(t.name(), c.name);
    EXPECT_EQ(t.end_of_turn(), c.end_of_turn);
    EXPECT_EQ(t.render(kChat), c.rendered);
    // named() gives the same family.
    EXPECT_EQ(ChatTemplate::named(c.name).render(kChat), c.rendered);
  }
}

TEST(ChatTemplate, WithoutGenerationPromptEndsAfterTheLastMessage) {
  const std::vector<ChatMessage> chat = {{"user", "Hi"}};
  EXPECT_EQ(ChatTemplate::named("chatml").render(chat, false), "<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(ChatTemplate::named("llama3").render(chat, false),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  EXPECT_EQ(ChatTemplate::named("plain").render(chat, false), "User: Hi\n\n");
  // [INST] prompts already end where the answer starts.
  EXPECT_EQ(ChatTemplate::named("mistral").render(chat, false), "[INST] Hi [/INST]");
  EXPECT_EQ(ChatTemplate::named("mistral").render(chat, true), "[INST] Hi [/INST]");
}

TEST(ChatTemplate, DeveloperIsSystem) {
  const std::vector<ChatMessage> chat = {{"developer", "Be brief."}, {"user", "Hi"}};
  EXPECT_EQ(
      ChatTemplate::named("chatml").render(chat),
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(ChatTemplate::named("gemma").render(chat),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, SystemWithoutAFollowingUserMessageIsAUserTurn) {
  EXPECT_EQ(ChatTemplate::named("gemma").render({{"system", "Be brief."}}),
            "<start_of_turn>user\nBe brief.<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(ChatTemplate::named("llama2").render({{"system", "Be brief."}}),
            "[INST] <<SYS>>\nBe brief.\n<</SYS>> [/INST]");
  // Two system messages in a row go together into the next user message.
  EXPECT_EQ(ChatTemplate::named("mistral").render({{"system", "A."}, {"system", "B."}, {"user", "Hi"}}),
            "[INST] A.\n\nB.\n\nHi [/INST]");
  // A system message before an answer stays before it.
  EXPECT_EQ(ChatTemplate::named("mistral").render({{"system", "A."}, {"assistant", "Yes."}, {"user", "Hi"}}),
            "[INST] A. [/INST]Yes.</s>[INST] Hi [/INST]");
}

TEST(ChatTemplate, TrimsContentWhereTheTemplateDoes) {
  const std::vector<ChatMessage> chat = {{"user", "  Hi \n"}};
  EXPECT_EQ(ChatTemplate::named("llama3").render(chat),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(ChatTemplate::named("chatml").render(chat),
            "<|im_start|>user\n  Hi \n<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, ErrorsNameTheProblem) {
  const ChatTemplate t = ChatTemplate::named("chatml");
  try {
    t.render({});
    FAIL() << "no error for no messages";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no messages"), std::string::npos) << e.what();
  }
  try {
    t.render({{"user", "Hi"}, {"tool", "42"}});
    FAIL() << "no error for an unknown role";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("message 1"), std::string::npos) << m;
    EXPECT_NE(m.find("\"tool\""), std::string::npos) << m;
  }
  EXPECT_THROW(ChatTemplate::named("plain").render({{"User", "Hi"}}), Error);  // roles are lower case
}

TEST(ChatTemplate, NamedKnowsEveryFamilyAndListsThemForUnknownNames) {
  const std::vector<std::string> names = ChatTemplate::names();
  EXPECT_EQ(names, (std::vector<std::string>{"chatml", "phi4", "llama3", "gemma", "phi3", "zephyr", "llama2",
                                             "mistral", "plain"}));
  for (const std::string& n : names) EXPECT_EQ(ChatTemplate::named(n).name(), n);
  EXPECT_EQ(ChatTemplate().name(), "plain");
  try {
    ChatTemplate::named("vicuna");
    FAIL() << "no error for an unknown name";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("\"vicuna\""), std::string::npos) << m;
    for (const std::string& n : names) EXPECT_NE(m.find(n), std::string::npos) << m;
  }
}

// --- The template source carried by tokenizers.

TEST(TokenizerChatTemplate, SharedModelsHaveNone) {
  EXPECT_EQ(Tokenizer::from_hf_json(shared_model("tinystories-656k/tokenizer.json"))->chat_template(), "");
  EXPECT_EQ(Tokenizer::from_llama2c(shared_model("stories260k/tok512.bin"))->chat_template(), "");
  EXPECT_EQ(Tokenizer::from_llama2c(shared_model("aidreams260k/tok512.bin"))->chat_template(), "");
}

TEST(TokenizerChatTemplate, DefaultModelHasNone) {
  // The project's default model (models/default.gguf in the source tree) was trained on
  // plain text: no template, so chats render as "plain".
  const std::string path = std::string(DSPARK_REFERENCE_DIR) + "/../../models/default.gguf";
  const auto g = GgufFile::open(path);
  EXPECT_EQ(Tokenizer::from_gguf(*g)->chat_template(), "");
}

// A Hugging Face folder: tinystories' tokenizer.json with the given tokenizer_config.json.
std::string hf_folder(const std::string& tokenizer_config) {
  const std::string dir = temp_dir();
  write_file(dir + "/tokenizer.json", read_file(shared_model("tinystories-656k/tokenizer.json")));
  if (!tokenizer_config.empty()) write_file(dir + "/tokenizer_config.json", tokenizer_config);
  return dir;
}

TEST(TokenizerChatTemplate, ReadsTokenizerConfig) {
  auto read = [](const std::string& config) {
    return Tokenizer::from_hf_json(hf_folder(config) + "/tokenizer.json")->chat_template();
  };
  EXPECT_EQ(read(R"({"add_bos_token": true, "chat_template": "{{ '<|im_start|>' }}"})"),
            "{{ '<|im_start|>' }}");
  // A list of named templates: "default", else the first.
  EXPECT_EQ(
      read(
          R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})"),
      "D");
  EXPECT_EQ(
      read(R"({"chat_template": [{"name": "rag", "template": "R"}, {"name": "tool_use", "template": "T"}]})"),
      "R");
  EXPECT_EQ(read(R"({"chat_template": null})"), "");
  EXPECT_EQ(read(R"({"add_bos_token": true})"), "");
  EXPECT_EQ(read(""), "");
}

TEST(TokenizerChatTemplate, ReadsChatTemplateJinjaBesideTheTokenizer) {
  const std::string dir = hf_folder(R"({"add_bos_token": true})");
  write_file(dir + "/chat_template.jinja", kGemma);
  const auto tok = Tokenizer::from_hf_json(dir + "/tokenizer.json");
  EXPECT_EQ(tok->chat_template(), kGemma);
  EXPECT_EQ(ChatTemplate::from_source(tok->chat_template()).name(), "gemma");
}

TEST(TokenizerChatTemplate, MalformedTokenizerConfigValuesAreErrors) {
  for (const char* config : {R"({"chat_template": 42})", R"({"chat_template": []})",
                             R"({"chat_template": {"name": "default", "template": "D"}})",
                             R"({"chat_template": [{"name": "default"}]})",
                             R"({"chat_template": [{"name": "default", "template": 1}]})"}) {
    SCOPED_TRACE(config);
    try {
      Tokenizer::from_hf_json(hf_folder(config) + "/tokenizer.json");
      FAIL() << "no error";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("tokenizer_config.json"), std::string::npos) << m;
      EXPECT_NE(m.find("\"chat_template\""), std::string::npos) << m;
    }
  }
}

// Writes the tokenizer as GGUF metadata and reads it back.
std::unique_ptr<Tokenizer> gguf_round_trip(const Tokenizer& t, std::shared_ptr<GgufFile>* file = nullptr) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  t.write_gguf(w);
  const std::string path = temp_dir() + "/tokenizer.gguf";
  w.write(path);
  auto g = GgufFile::open(path);
  auto back = Tokenizer::from_gguf(*g);
  if (file) *file = g;
  return back;
}

TEST(TokenizerChatTemplate, GgufWritesAndReadsIt) {
  // Rank BPE (tokenizer.json) and score BPE (llama2.c) tokenizers: both writers.
  std::vector<std::unique_ptr<Tokenizer>> toks;
  toks.push_back(Tokenizer::from_hf_json(shared_model("tinystories-656k/tokenizer.json")));
  toks.push_back(Tokenizer::from_llama2c(shared_model("stories260k/tok512.bin")));
  for (auto& tok : toks) {
    std::shared_ptr<GgufFile> g;
    EXPECT_EQ(gguf_round_trip(*tok, &g)->chat_template(), "");
    EXPECT_EQ(g->find("tokenizer.chat_template"), nullptr);  // none written when there is none

    tok->set_chat_template(kLlama3);
    const auto back = gguf_round_trip(*tok, &g);
    EXPECT_EQ(g->get_string("tokenizer.chat_template"), kLlama3);
    EXPECT_EQ(back->chat_template(), kLlama3);
    EXPECT_EQ(ChatTemplate::from_source(back->chat_template()).name(), "llama3");
  }
}

TEST(TokenizerChatTemplate, GgufValueOfTheWrongTypeIsAnError) {
  const auto tok = Tokenizer::from_hf_json(shared_model("tinystories-656k/tokenizer.json"));
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  tok->write_gguf(w);
  w.set_uint32("tokenizer.chat_template", 7);
  const std::string path = temp_dir() + "/bad.gguf";
  w.write(path);
  const auto g = GgufFile::open(path);
  try {
    Tokenizer::from_gguf(*g);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("tokenizer.chat_template"), std::string::npos) << m;
    EXPECT_NE(m.find("bad.gguf"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace dspark
