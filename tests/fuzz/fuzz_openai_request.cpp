// libFuzzer target: the OpenAI request parsers must turn any body into an ApiRequest or an
// ApiError (nothing else may escape), and whatever they return must render as response bodies.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/openai_api.h"

namespace {

void parse_and_render(const std::string& body, bool chat) {
  try {
    dspark::ApiRequest r = chat ? dspark::parse_chat_request(body) : dspark::parse_completion_request(body);
    // The request's own strings flow back to the client in responses: they must serialise.
    std::string text = r.prompt;
    for (const dspark::ChatMessage& m : r.messages) text += m.content;
    for (const std::string& s : r.stop) text += s;
    dspark::json_text(dspark::chat_response("id", 0, r.model, text, "stop", 1, 1));
    dspark::sse_event(dspark::completion_chunk("id", 0, r.model, text, std::nullopt));
  } catch (const dspark::ApiError& e) {
    dspark::json_text(dspark::error_body(e));  // messages quote the input: it must serialise too
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  parse_and_render(body, true);
  parse_and_render(body, false);
  return 0;
}
