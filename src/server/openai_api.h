// The OpenAI-compatible wire format: request bodies of /v1/completions and
// /v1/chat/completions parsed and validated into an ApiRequest, and the response bodies
// (whole responses, streamed chunks, errors, the model list) rendered as JSON. No HTTP and
// no engine here, so every rule can be tested and fuzzed on its own.
//
// Policy for fields we do not implement: those that cannot change the output (user,
// metadata, store, service_tier, parallel_tool_calls, ...) are ignored, like any unknown
// field; those that would change the output if honoured (penalties, logit_bias, logprobs,
// echo, best_of, tools, response_format, suffix) are refused with a 400 naming the field,
// rather than silently answering something other than what was asked.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/sampling.h"
#include "tokenizer/chat_template.h"

namespace dspark {

// A request the server refuses, with what the client needs to fix it. Thrown by the parsers;
// it is a dspark::Error (what() is `message`), so a front end that catches Error sees it too.
class ApiError : public Error {
 public:
  ApiError(int http_status, std::string text, std::string field = "", std::string error_code = "",
           std::string error_type = "invalid_request_error");

  int status;           // HTTP status: 400 for every problem the parsers find
  std::string message;  // names the field and what was expected
  std::string type;     // OpenAI's error type, "invalid_request_error"
  std::string param;    // the offending field ("messages[1].content"), or "" for the body itself
  std::string code;     // OpenAI's machine-readable code, or ""
};

struct ApiRequest {
  bool chat = false;
  std::string model;               // as the client sent it ("" if absent)
  std::string prompt;              // completions: a string, or an array holding exactly one string
  std::vector<int> prompt_tokens;  // completions: an array of token ids instead (then prompt is "")
  // chat: text parts of a content array concatenated, an assistant's null content as "",
  // role "developer" (OpenAI's newer name for "system") as "system"
  std::vector<ChatMessage> messages;
  int max_tokens = -1;  // -1: until the context is full; chat also accepts max_completion_tokens
  // OpenAI's defaults where the client sends nothing: temperature 1, top_p 1, top_k and min_p
  // off, no repetition penalty (not the command line's llama.cpp defaults).
  SamplingParams sampling = openai_default_sampling();
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;  // up to 4 non-empty strings
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage

  static SamplingParams openai_default_sampling();
};

// Both throw ApiError (status 400) for a body that is not a JSON object, a known field of the
// wrong type or out of range, a missing prompt/messages, or an output-changing field we
// cannot honour. Unknown fields are ignored.
ApiRequest parse_completion_request(const std::string& body);
ApiRequest parse_chat_request(const std::string& body);

// Response bodies. `created` is Unix seconds; an empty finish_reason renders as null.
nlohmann::json completion_response(const std::string& id, int64_t created, const std::string& model,
                                   const std::string& text, const std::string& finish_reason,
                                   int prompt_tokens, int completion_tokens);
nlohmann::json chat_response(const std::string& id, int64_t created, const std::string& model,
                             const std::string& content, const std::string& finish_reason, int prompt_tokens,
                             int completion_tokens);

// Streamed chunks. A completion chunk is a "text_completion" object like the whole response;
// a chat chunk is a "chat.completion.chunk" whose delta holds `role` when non-empty and
// `content` when set (OpenAI's first chunk carries the role, the last only finish_reason).
// finish_reason: nullopt or "" renders as null. With include_usage, OpenAI also sets
// "usage": null on every chunk but the last; callers may add it, clients do not need it.
nlohmann::json completion_chunk(const std::string& id, int64_t created, const std::string& model,
                                const std::string& text, const std::optional<std::string>& finish_reason);
nlohmann::json chat_chunk(const std::string& id, int64_t created, const std::string& model,
                          const std::string& role, const std::optional<std::string>& content,
                          const std::optional<std::string>& finish_reason);
// The last chunk sent with stream_options.include_usage: no choices, the request's usage.
nlohmann::json usage_chunk(const std::string& id, int64_t created, const std::string& model, bool chat,
                           int prompt_tokens, int completion_tokens);

nlohmann::json error_body(const ApiError& e);
nlohmann::json models_response(const std::string& id, int64_t created);

// Compact JSON text for a response body. Invalid UTF-8 (which a model could produce mid
// character) is replaced by U+FFFD instead of throwing while the response is written.
std::string json_text(const nlohmann::json& j);
// One server-sent event: "data: <compact json>\n\n"; the stream ends with sse_done().
std::string sse_event(const nlohmann::json& j);
std::string sse_done();

}  // namespace dspark
