// Chat template families as data (the strings around roles and contents) and the two ways
// of rendering them: a header per message (chatml, llama3, gemma, ...) or [INST] pairs
// (llama2, mistral). Formats are those the families' published templates produce; see
// chat_template.h for each one written out.
#include "tokenizer/chat_template.h"

#include "core/error.h"

namespace dspark {

struct ChatTemplate::Family {
  std::string name;
  std::string end_of_turn;
  // Header formats: a message is before_role + role name + after_role, its content, close.
  std::string before_role, after_role, close;
  std::string system = "system", user = "user", assistant = "assistant";  // role names
  bool has_system = true;
  // A family without a system role puts fold_before + S + fold_after in front of the next
  // user message.
  std::string fold_before, fold_after;
  bool trim = false;  // the template trims each content (Jinja's trim / strip())
  // [INST] formats: "[INST] " + U + inst_close; an answer is answer_before + A + answer_after;
  // every [INST] but one at the start of the prompt is preceded by `between`.
  bool inst = false;
  std::string inst_close, answer_before, answer_after, between;
};

namespace {

using Family = ChatTemplate::Family;

// Listed in the order named() reports them.
const std::vector<Family>& families() {
  static const std::vector<Family> all = {
      {.name = "chatml",
       .end_of_turn = "<|im_end|>",
       .before_role = "<|im_start|>",
       .after_role = "\n",
       .close = "<|im_end|>\n"},
      {.name = "phi4",
       .end_of_turn = "<|im_end|>",
       .before_role = "<|im_start|>",
       .after_role = "<|im_sep|>",
       .close = "<|im_end|>"},
      {.name = "llama3",
       .end_of_turn = "<|eot_id|>",
       .before_role = "<|start_header_id|>",
       .after_role = "<|end_header_id|>\n\n",
       .close = "<|eot_id|>",
       .trim = true},
      {.name = "gemma",
       .end_of_turn = "<end_of_turn>",
       .before_role = "<start_of_turn>",
       .after_role = "\n",
       .close = "<end_of_turn>\n",
       .assistant = "model",
       .has_system = false,
       .fold_after = "\n\n",
       .trim = true},
      {.name = "phi3",
       .end_of_turn = "<|end|>",
       .before_role = "<|",
       .after_role = "|>\n",
       .close = "<|end|>\n"},
      {.name = "zephyr", .end_of_turn = "</s>", .before_role = "<|", .after_role = "|>\n", .close = "</s>\n"},
      {.name = "llama2",
       .end_of_turn = "</s>",
       .has_system = false,
       .fold_before = "<<SYS>>\n",
       .fold_after = "\n<</SYS>>\n\n",
       .trim = true,
       .inst = true,
       .inst_close = " [/INST]",
       .answer_before = " ",
       .answer_after = " </s>",
       .between = "<s>"},
      {.name = "mistral",
       .end_of_turn = "</s>",
       .has_system = false,
       .fold_after = "\n\n",
       .inst = true,
       .inst_close = " [/INST]",
       .answer_after = "</s>"},
      // A transcript, for models that never saw chat tokens. No end-of-turn text: the model
      // has none to produce.
      {.name = "plain",
       .after_role = ": ",
       .close = "\n\n",
       .system = "System",
       .user = "User",
       .assistant = "Assistant",
       .trim = true},
  };
  return all;
}

const Family* find_family(const std::string& name) {
  for (const Family& f : families())
    if (f.name == name) return &f;
  return nullptr;
}

const Family& family(const std::string& name) { return *find_family(name); }

enum class Role { kSystem, kUser, kAssistant };

struct Turn {
  Role role;
  std::string content;
};

std::string trimmed(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string trimmed_right(std::string s, const char* ws) {
  s.erase(s.find_last_not_of(ws) + 1);  // npos + 1 == 0: all of it
  return s;
}

Role read_role(const std::string& role, const Family& f, size_t index) {
  if (role == "system" || role == "developer") return Role::kSystem;  // OpenAI's newer name for system
  if (role == "user") return Role::kUser;
  if (role == "assistant") return Role::kAssistant;
  fail("chat template ", f.name, ": message ", index, " has role \"", role,
       "\" (expected system, developer, user or assistant)");
}

// The messages as the family's turns: roles checked, contents trimmed where the template
// trims, and system text folded into user messages where the family has no system role.
std::vector<Turn> read_turns(const std::vector<ChatMessage>& messages, const Family& f) {
  if (messages.empty()) fail("chat template ", f.name, ": no messages to render");
  std::vector<Turn> turns;
  std::string system;  // system text waiting for the next user message
  bool waiting = false;
  auto flush_system = [&] {  // no user message follows: a user turn of its own
    if (waiting) turns.push_back({Role::kUser, trimmed_right(f.fold_before + system + f.fold_after, " \n")});
    waiting = false;
  };
  for (size_t i = 0; i < messages.size(); ++i) {
    const Role role = read_role(messages[i].role, f, i);
    std::string content = f.trim ? trimmed(messages[i].content) : messages[i].content;
    if (role == Role::kSystem && !f.has_system) {
      system = waiting ? system + "\n\n" + content : content;
      waiting = true;
      continue;
    }
    if (role == Role::kUser && waiting) {
      content = f.fold_before + system + f.fold_after + content;
      waiting = false;
    }
    flush_system();
    turns.push_back({role, std::move(content)});
  }
  flush_system();
  return turns;
}

std::string render_headers(const std::vector<Turn>& turns, const Family& f, bool add_generation_prompt) {
  auto opening = [&](Role r) {
    const std::string& name = r == Role::kSystem ? f.system : r == Role::kUser ? f.user : f.assistant;
    return f.before_role + name + f.after_role;
  };
  std::string out;
  for (const Turn& t : turns) out += opening(t.role) + t.content + f.close;
  // Without its space: tokenizers put a word's space in front of the word, so the model
  // writes " Hello" after "Assistant:".
  if (add_generation_prompt) out += trimmed_right(opening(Role::kAssistant), " ");
  return out;
}

// A user message is already followed by the point where the answer starts: no generation
// prompt to add.
std::string render_inst(const std::vector<Turn>& turns, const Family& f) {
  std::string out;
  for (const Turn& t : turns) {
    if (t.role == Role::kUser) {
      out += (out.empty() ? "" : f.between) + "[INST] " + t.content + f.inst_close;
    } else {
      out += f.answer_before + t.content + f.answer_after;
    }
  }
  return out;
}

bool contains(const std::string& s, const char* marker) { return s.find(marker) != std::string::npos; }

}  // namespace

ChatTemplate::ChatTemplate() : family_(&family("plain")) {}

// Each family's templates write its special tokens literally; the checks run from the most
// specific markers to the least (a phi3 template also has <|user|>, like zephyr's).
ChatTemplate ChatTemplate::from_source(const std::string& s) {
  auto pick = [](const char* name) { return ChatTemplate(&family(name)); };
  if (contains(s, "<|im_start|>")) return pick(contains(s, "<|im_sep|>") ? "phi4" : "chatml");
  if (contains(s, "<|start_header_id|>")) return pick("llama3");
  if (contains(s, "<start_of_turn>")) return pick("gemma");
  if (contains(s, "[INST]")) return pick(contains(s, "<<SYS>>") ? "llama2" : "mistral");
  if (contains(s, "<|user|>")) return pick(contains(s, "<|end|>") ? "phi3" : "zephyr");
  return pick("plain");
}

ChatTemplate ChatTemplate::named(const std::string& name) {
  if (const Family* f = find_family(name)) return ChatTemplate(f);
  std::string known;
  for (const std::string& n : names()) known += (known.empty() ? "" : ", ") + n;
  fail("chat template \"", name, "\" is not known (known: ", known, ")");
}

std::vector<std::string> ChatTemplate::names() {
  std::vector<std::string> out;
  for (const Family& f : families()) out.push_back(f.name);
  return out;
}

const std::string& ChatTemplate::name() const { return family_->name; }

const std::string& ChatTemplate::end_of_turn() const { return family_->end_of_turn; }

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  const std::vector<Turn> turns = read_turns(messages, *family_);
  return family_->inst ? render_inst(turns, *family_)
                       : render_headers(turns, *family_, add_generation_prompt);
}

}  // namespace dspark
