#include "server/openai_api.h"

#include <climits>
#include <cmath>
#include <set>
#include <utility>

namespace dspark {

using nlohmann::json;

ApiError::ApiError(int http_status, std::string text, std::string field, std::string error_code,
                   std::string error_type)
    : Error(text),
      status(http_status),
      message(std::move(text)),
      type(std::move(error_type)),
      param(std::move(field)),
      code(std::move(error_code)) {}

SamplingParams ApiRequest::openai_default_sampling() {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 1.0f;
  return p;
}

namespace {

[[noreturn]] void invalid(const std::string& param, const std::string& message) {
  throw ApiError(400, message, param);
}

// Refuses a field whose effect on the output we cannot reproduce.
[[noreturn]] void unsupported(const std::string& param, const std::string& what) {
  std::string field = "'" + param + "'" + (what.empty() ? "" : " " + what);
  throw ApiError(400, field + " is not supported by this server", param, "unsupported_parameter");
}

// The value as the client wrote it, shortened, for "got ..." in messages. Arrays and objects
// are only named: dumping one recurses once per nesting level, and a hostile body may nest
// deeper than the stack (the parser itself does not recurse).
std::string shown(const json& v) {
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

// The field, or nullptr when it is absent or null (OpenAI treats null as "not given").
const json* find(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& v, const std::string& param) {
  if (!v.is_number() || !std::isfinite(v.get<double>()))
    invalid(param, "'" + param + "' must be a number, got " + shown(v));
  return v.get<double>();
}

// An integer; a float with an integral value (5.0) counts, as JSON does not tell them apart.
int64_t integer(const json& v, const std::string& param) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    return u > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e18) return int64_t(d);
  }
  invalid(param, "'" + param + "' must be an integer, got " + shown(v));
}

bool boolean(const json& v, const std::string& param) {
  if (!v.is_boolean()) invalid(param, "'" + param + "' must be true or false, got " + shown(v));
  return v.get<bool>();
}

const std::string& text_of(const json& v, const std::string& param) {
  if (!v.is_string()) invalid(param, "'" + param + "' must be a string, got " + shown(v));
  return v.get_ref<const std::string&>();
}

float number_in(const json& obj, const char* key, double lo, bool lo_open, double hi, float def) {
  const json* v = find(obj, key);
  if (!v) return def;
  double d = number(*v, key);
  if (d < lo || (lo_open && d == lo) || d > hi) {
    invalid(key, std::string("'") + key + "' must be " + (lo_open ? "greater than " : "at least ") +
                     shown(json(lo)) + " and at most " + shown(json(hi)) + ", got " + shown(*v));
  }
  return float(d);
}

// A positive token budget; budgets beyond int range mean "no limit" just as well.
int max_tokens(const json& v, const char* key) {
  int64_t n = integer(v, key);
  if (n < 1) invalid(key, std::string("'") + key + "' must be at least 1, got " + shown(v));
  return int(std::min<int64_t>(n, INT_MAX));
}

json parse_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    // A parse_error ("[json.exception.parse_error.101] parse error at line 1, column 7: ...")
    // or an out_of_range for a number too large for a double ("... number overflow parsing
    // '1e999'"); the bracketed tag means nothing to a client.
    std::string why = e.what();
    if (auto p = why.find("] "); why.rfind("[json.exception", 0) == 0 && p != std::string::npos)
      why = why.substr(p + 2);
    invalid("", "request body is not valid JSON: " + why);
  }
  if (!j.is_object()) invalid("", std::string("request body must be a JSON object, got ") + j.type_name());
  return j;
}

void parse_sampling(const json& j, ApiRequest& r) {
  SamplingParams& s = r.sampling;
  s.temperature = number_in(j, "temperature", 0.0, false, 2.0, s.temperature);
  s.top_p = number_in(j, "top_p", 0.0, true, 1.0, s.top_p);
  s.min_p = number_in(j, "min_p", 0.0, false, 1.0, s.min_p);
  if (const json* v = find(j, "top_k")) {
    int64_t k = integer(*v, "top_k");
    if (k < 0) invalid("top_k", "'top_k' must be at least 0 (0: off), got " + shown(*v));
    s.top_k = int(std::min<int64_t>(k, INT_MAX));
  }
  // vLLM's name and llama.cpp's name for the same multiplicative penalty.
  for (const char* key : {"repetition_penalty", "repeat_penalty"}) {
    if (const json* v = find(j, key)) {
      double p = number(*v, key);
      if (p <= 0) invalid(key, std::string("'") + key + "' must be greater than 0, got " + shown(*v));
      s.repeat_penalty = float(p);
    }
  }
  if (const json* v = find(j, "seed")) {
    if (v->is_number_integer() && !v->is_number_unsigned())
      r.seed = uint64_t(v->get<int64_t>());  // a negative seed is still a fixed seed
    else if (v->is_number_unsigned())
      r.seed = v->get<uint64_t>();
    else
      r.seed = uint64_t(integer(*v, "seed"));
  }
}

void parse_stop(const json& j, ApiRequest& r) {
  const json* v = find(j, "stop");
  if (!v) return;
  if (v->is_string()) {
    if (v->get_ref<const std::string&>().empty()) invalid("stop", "'stop' must not be an empty string");
    r.stop.push_back(v->get<std::string>());
    return;
  }
  if (!v->is_array()) invalid("stop", "'stop' must be a string or an array of strings, got " + shown(*v));
  if (v->size() > 4) invalid("stop", "'stop' may hold at most 4 strings, got " + std::to_string(v->size()));
  for (size_t i = 0; i < v->size(); ++i) {
    std::string param = "stop[" + std::to_string(i) + "]";
    const std::string& s = text_of((*v)[i], param);
    if (s.empty()) invalid(param, "'" + param + "' must not be an empty string");
    r.stop.push_back(s);
  }
}

void parse_stream(const json& j, ApiRequest& r) {
  if (const json* v = find(j, "stream")) r.stream = boolean(*v, "stream");
  if (const json* v = find(j, "stream_options")) {
    if (!v->is_object()) invalid("stream_options", "'stream_options' must be an object, got " + shown(*v));
    if (const json* u = find(*v, "include_usage"))
      r.include_usage = boolean(*u, "stream_options.include_usage");
  }
}

// Fields both endpoints share that we can only honour at their neutral value.
void refuse_common(const json& j) {
  for (const char* key : {"frequency_penalty", "presence_penalty"}) {
    if (const json* v = find(j, key); v && number(*v, key) != 0) unsupported(key, "other than 0");
  }
  if (const json* v = find(j, "logit_bias")) {
    if (!v->is_object()) invalid("logit_bias", "'logit_bias' must be an object, got " + shown(*v));
    if (!v->empty()) unsupported("logit_bias", "with entries");
  }
  if (const json* v = find(j, "n"); v && integer(*v, "n") != 1)
    invalid("n", "'n' must be 1 (one choice per request), got " + shown(*v));
}

void parse_common(const json& j, ApiRequest& r) {
  if (const json* v = find(j, "model")) r.model = text_of(*v, "model");
  if (const json* v = find(j, "max_tokens")) r.max_tokens = max_tokens(*v, "max_tokens");
  parse_sampling(j, r);
  parse_stop(j, r);
  parse_stream(j, r);
  refuse_common(j);
}

void parse_prompt(const json& j, ApiRequest& r) {
  const json* v = find(j, "prompt");
  if (!v) invalid("prompt", "'prompt' is required");
  if (v->is_string()) {
    r.prompt = v->get<std::string>();
    return;
  }
  if (!v->is_array()) invalid("prompt", "'prompt' must be a string or an array, got " + shown(*v));
  if (v->empty()) invalid("prompt", "'prompt' must not be an empty array");
  if ((*v)[0].is_string()) {
    if (v->size() != 1)
      invalid("prompt", "'prompt' must hold one string (one prompt per request), got " +
                            std::to_string(v->size()) + " elements");
    r.prompt = (*v)[0].get<std::string>();
    return;
  }
  for (size_t i = 0; i < v->size(); ++i) {
    const json& t = (*v)[i];
    if (!t.is_number()) {
      invalid("prompt",
              "'prompt' must be a string, an array of one string or an array of token ids; element " +
                  std::to_string(i) + " is " + shown(t));
    }
    int64_t id = integer(t, "prompt[" + std::to_string(i) + "]");
    // Whether the id exists in the vocabulary is for the tokenizer's owner to check.
    if (id < 0 || id > INT_MAX) invalid("prompt", "token id " + shown(t) + " in 'prompt' is out of range");
    r.prompt_tokens.push_back(int(id));
  }
}

void refuse_completion_only(const json& j) {
  if (find(j, "logprobs")) unsupported("logprobs", "");
  if (const json* v = find(j, "echo"); v && boolean(*v, "echo")) unsupported("echo", "true");
  if (const json* v = find(j, "best_of")) {
    int64_t b = integer(*v, "best_of");
    if (b < 1) invalid("best_of", "'best_of' must be at least 1, got " + shown(*v));
    if (b > 1) unsupported("best_of", "greater than 1");
  }
  if (const json* v = find(j, "suffix"); v && !text_of(*v, "suffix").empty()) unsupported("suffix", "");
}

std::string message_content(const json& m, const std::string& param, const std::string& role) {
  const json* c = find(m, "content");
  if (!c) {
    // An assistant turn may carry no text (OpenAI sends null content beside tool calls).
    if (role == "assistant") return "";
    invalid(param + ".content", "'" + param + ".content' is required for role '" + role + "'");
  }
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) {
    invalid(param + ".content",
            "'" + param + ".content' must be a string or an array of text parts, got " + shown(*c));
  }
  std::string text;
  for (size_t i = 0; i < c->size(); ++i) {
    std::string part_param = param + ".content[" + std::to_string(i) + "]";
    const json& part = (*c)[i];
    if (!part.is_object()) invalid(part_param, "'" + part_param + "' must be an object, got " + shown(part));
    const json* type = find(part, "type");
    if (!type) invalid(part_param + ".type", "'" + part_param + ".type' is required");
    if (text_of(*type, part_param + ".type") != "text") {
      invalid(part_param + ".type", "only text content parts are supported, got '" +
                                        type->get<std::string>() + "' in '" + part_param + "'");
    }
    const json* t = find(part, "text");
    if (!t) invalid(part_param + ".text", "'" + part_param + ".text' is required");
    text += text_of(*t, part_param + ".text");
  }
  return text;
}

void parse_messages(const json& j, ApiRequest& r) {
  static const std::set<std::string> kRoles = {"system", "developer", "user", "assistant"};
  const json* v = find(j, "messages");
  if (!v) invalid("messages", "'messages' is required");
  if (!v->is_array() || v->empty())
    invalid("messages", "'messages' must be a non-empty array of messages, got " + shown(*v));
  for (size_t i = 0; i < v->size(); ++i) {
    std::string param = "messages[" + std::to_string(i) + "]";
    const json& m = (*v)[i];
    if (!m.is_object()) invalid(param, "'" + param + "' must be an object, got " + shown(m));
    const json* role = find(m, "role");
    if (!role) invalid(param + ".role", "'" + param + ".role' is required");
    const std::string& name = text_of(*role, param + ".role");
    if (!kRoles.count(name)) {
      invalid(param + ".role",
              "'" + param + ".role' must be system, developer, user or assistant, got " + shown(*role));
    }
    // "developer" is OpenAI's newer name for the system role; chat templates know only "system".
    r.messages.push_back(ChatMessage{name == "developer" ? "system" : name, message_content(m, param, name)});
  }
}

void refuse_chat_only(const json& j) {
  if (const json* v = find(j, "logprobs"); v && boolean(*v, "logprobs")) unsupported("logprobs", "true");
  if (find(j, "top_logprobs")) unsupported("top_logprobs", "");
  for (const char* key : {"tools", "functions"}) {
    if (const json* v = find(j, key)) {
      if (!v->is_array()) invalid(key, std::string("'") + key + "' must be an array, got " + shown(*v));
      if (!v->empty()) unsupported(key, "(tool calling)");
    }
  }
  if (const json* v = find(j, "response_format")) {
    const json* type = v->is_object() ? find(*v, "type") : nullptr;
    if (!type || !type->is_string())
      invalid("response_format", "'response_format' must be an object with a 'type', got " + shown(*v));
    if (type->get_ref<const std::string&>() != "text")
      unsupported("response_format", "other than {\"type\":\"text\"}");
  }
}

json usage(int prompt_tokens, int completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

json reason(const std::optional<std::string>& finish_reason) {
  return finish_reason && !finish_reason->empty() ? json(*finish_reason) : json(nullptr);
}

json head(const std::string& id, const char* object, int64_t created, const std::string& model) {
  return {{"id", id}, {"object", object}, {"created", created}, {"model", model}};
}

}  // namespace

ApiRequest parse_completion_request(const std::string& body) {
  json j = parse_body(body);
  ApiRequest r;
  parse_prompt(j, r);
  parse_common(j, r);
  refuse_completion_only(j);
  return r;
}

ApiRequest parse_chat_request(const std::string& body) {
  json j = parse_body(body);
  ApiRequest r;
  r.chat = true;
  parse_messages(j, r);
  parse_common(j, r);
  // The newer name wins: clients that send both mean the same budget.
  if (const json* v = find(j, "max_completion_tokens"))
    r.max_tokens = max_tokens(*v, "max_completion_tokens");
  refuse_chat_only(j);
  return r;
}

json completion_response(const std::string& id, int64_t created, const std::string& model,
                         const std::string& text, const std::string& finish_reason, int prompt_tokens,
                         int completion_tokens) {
  json j = head(id, "text_completion", created, model);
  j["choices"] = json::array(
      {{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", reason(finish_reason)}}});
  j["usage"] = usage(prompt_tokens, completion_tokens);
  return j;
}

json chat_response(const std::string& id, int64_t created, const std::string& model,
                   const std::string& content, const std::string& finish_reason, int prompt_tokens,
                   int completion_tokens) {
  json j = head(id, "chat.completion", created, model);
  json message = {{"role", "assistant"}, {"content", content}, {"refusal", nullptr}};
  j["choices"] = json::array({{{"index", 0},
                               {"message", message},
                               {"logprobs", nullptr},
                               {"finish_reason", reason(finish_reason)}}});
  j["usage"] = usage(prompt_tokens, completion_tokens);
  return j;
}

json completion_chunk(const std::string& id, int64_t created, const std::string& model,
                      const std::string& text, const std::optional<std::string>& finish_reason) {
  json j = head(id, "text_completion", created, model);
  j["choices"] = json::array(
      {{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", reason(finish_reason)}}});
  return j;
}

json chat_chunk(const std::string& id, int64_t created, const std::string& model, const std::string& role,
                const std::optional<std::string>& content, const std::optional<std::string>& finish_reason) {
  json j = head(id, "chat.completion.chunk", created, model);
  json delta = json::object();
  if (!role.empty()) delta["role"] = role;
  if (content) delta["content"] = *content;
  j["choices"] = json::array(
      {{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", reason(finish_reason)}}});
  return j;
}

json usage_chunk(const std::string& id, int64_t created, const std::string& model, bool chat,
                 int prompt_tokens, int completion_tokens) {
  json j = head(id, chat ? "chat.completion.chunk" : "text_completion", created, model);
  j["choices"] = json::array();
  j["usage"] = usage(prompt_tokens, completion_tokens);
  return j;
}

json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

json models_response(const std::string& id, int64_t created) {
  return {{"object", "list"},
          {"data",
           json::array({{{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "dspark"}}})}};
}

std::string json_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + json_text(j) + "\n\n"; }

std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace dspark
