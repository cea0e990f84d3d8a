// The OpenAI request parsers (every rule of validation, and the policy for fields we do not
// implement) and the shapes of the response bodies.
#include <gtest/gtest.h>

#include <string>

#include "server/openai_api.h"

namespace dspark {
namespace {

using nlohmann::json;

// The ApiError a body raises; fails the test when it parses.
ApiError chat_error(const std::string& body) {
  try {
    parse_chat_request(body);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}

ApiError completion_error(const std::string& body) {
  try {
    parse_completion_request(body);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}

const char* kHello = R"("messages":[{"role":"user","content":"hi"}])";
std::string chat_with(const std::string& fields) { return std::string("{") + kHello + "," + fields + "}"; }
std::string completion_with(const std::string& fields) { return R"({"prompt":"x",)" + fields + "}"; }

TEST(OpenAiRequest, CompletionDefaultsAreOpenAis) {
  ApiRequest r = parse_completion_request(R"({"model":"m","prompt":"Once upon"})");
  EXPECT_FALSE(r.chat);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt, "Once upon");
  EXPECT_TRUE(r.prompt_tokens.empty());
  EXPECT_EQ(r.max_tokens, -1);
  EXPECT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_EQ(r.sampling.min_p, 0.0f);
  EXPECT_EQ(r.sampling.repeat_penalty, 1.0f);
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_TRUE(r.stop.empty());
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.include_usage);
}

TEST(OpenAiRequest, CompletionFieldsAreRead) {
  ApiRequest r = parse_completion_request(
      R"({"prompt":["only one"],"max_tokens":12,"temperature":0,"top_p":0.5,"top_k":7,"min_p":0.1,
          "repetition_penalty":1.3,"seed":42,"stop":["\n","END"],"stream":true,
          "stream_options":{"include_usage":true},"n":1,"user":"u","metadata":{"a":"b"},"store":false,
          "service_tier":"auto","echo":false,"best_of":1,"logprobs":null,"suffix":null,"frequency_penalty":0,
          "presence_penalty":0.0,"logit_bias":{},"some_unknown_field":[1,2]})");
  EXPECT_EQ(r.prompt, "only one");
  EXPECT_EQ(r.max_tokens, 12);
  EXPECT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_TRUE(r.sampling.greedy());
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 7);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(r.sampling.repeat_penalty, 1.3f);
  EXPECT_EQ(r.seed, 42u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
}

TEST(OpenAiRequest, CompletionPromptForms) {
  ApiRequest t = parse_completion_request(R"({"prompt":[1,2,3]})");
  EXPECT_EQ(t.prompt, "");
  EXPECT_EQ(t.prompt_tokens, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(parse_completion_request(R"({"prompt":""})").prompt, "");  // generation from BOS alone
  EXPECT_EQ(parse_completion_request(R"({"prompt":"x","stop":"\n\n"})").stop,
            (std::vector<std::string>{"\n\n"}));

  EXPECT_EQ(completion_error("{}").param, "prompt");
  EXPECT_EQ(completion_error(R"({"prompt":null})").param, "prompt");
  EXPECT_EQ(completion_error(R"({"prompt":[]})").param, "prompt");
  EXPECT_EQ(completion_error(R"({"prompt":["a","b"]})").param, "prompt");  // one prompt per request
  EXPECT_EQ(completion_error(R"({"prompt":[[1,2]]})").param, "prompt");    // batched token prompts
  EXPECT_EQ(completion_error(R"({"prompt":[1,"a"]})").param, "prompt");
  EXPECT_EQ(completion_error(R"({"prompt":[-1]})").param, "prompt");
  EXPECT_EQ(completion_error(R"({"prompt":[1.5]})").param, "prompt[0]");
  EXPECT_EQ(completion_error(R"({"prompt":5})").param, "prompt");
}

TEST(OpenAiRequest, BadJsonNamesThePosition) {
  ApiError e = chat_error(R"({"messages": [})");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_EQ(e.param, "");
  EXPECT_NE(e.message.find("not valid JSON"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("line 1, column 15"), std::string::npos) << e.message;
  EXPECT_EQ(std::string(e.what()), e.message);

  EXPECT_NE(chat_error("").message.find("not valid JSON"), std::string::npos);
  // nlohmann reports a number beyond double range as out_of_range, not as a parse error.
  ApiError overflow = chat_error(chat_with(R"("temperature":1e999)"));
  EXPECT_EQ(overflow.param, "");
  EXPECT_NE(overflow.message.find("number overflow parsing '1e999'"), std::string::npos) << overflow.message;
  EXPECT_EQ(overflow.message.find("[json.exception"), std::string::npos) << overflow.message;
  EXPECT_NE(chat_error("[1,2]").message.find("must be a JSON object, got array"), std::string::npos);
  EXPECT_NE(completion_error("\"text\"").message.find("got string"), std::string::npos);
}

TEST(OpenAiRequest, DeepNestingIsRefusedWithoutRecursion) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  EXPECT_EQ(completion_error(R"({"prompt":[)" + deep + "]}").param, "prompt");
  EXPECT_EQ(chat_error(R"({"messages":)" + deep + "}").param, "messages[0]");
  EXPECT_EQ(chat_error(chat_with(R"("stop":)" + deep)).param, "stop[0]");
}

TEST(OpenAiRequest, ChatMessages) {
  ApiRequest r = parse_chat_request(R"({"model":"dspark","messages":[
      {"role":"developer","content":"Be brief."},
      {"role":"system","content":"S"},
      {"role":"user","content":[{"type":"text","text":"Hello, "},{"type":"text","text":"world"}],"name":"bob"},
      {"role":"assistant","content":null},
      {"role":"assistant"},
      {"role":"user","content":""}]})");
  EXPECT_TRUE(r.chat);
  EXPECT_EQ(r.model, "dspark");
  ASSERT_EQ(r.messages.size(), 6u);
  EXPECT_EQ(r.messages[0].role, "system");  // developer is the newer name of system
  EXPECT_EQ(r.messages[0].content, "Be brief.");
  EXPECT_EQ(r.messages[1].role, "system");
  EXPECT_EQ(r.messages[2].role, "user");
  EXPECT_EQ(r.messages[2].content, "Hello, world");
  EXPECT_EQ(r.messages[3].role, "assistant");
  EXPECT_EQ(r.messages[3].content, "");
  EXPECT_EQ(r.messages[4].content, "");
  EXPECT_EQ(r.messages[5].content, "");
}

TEST(OpenAiRequest, BadChatMessages) {
  EXPECT_EQ(chat_error("{}").param, "messages");
  EXPECT_EQ(chat_error(R"({"messages":[]})").param, "messages");
  EXPECT_EQ(chat_error(R"({"messages":{"role":"user"}})").param, "messages");
  EXPECT_EQ(chat_error(R"({"messages":["hi"]})").param, "messages[0]");
  EXPECT_EQ(chat_error(R"({"messages":[{"content":"hi"}]})").param, "messages[0].role");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"tool","content":"x"}]})").param, "messages[0].role");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":3,"content":"x"}]})").param, "messages[0].role");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"a"},{"role":"user"}]})").param,
            "messages[1].content");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":null}]})").param, "messages[0].content");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":7}]})").param, "messages[0].content");
  ApiError image = chat_error(
      R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x"}}]}]})");
  EXPECT_EQ(image.param, "messages[0].content[0].type");
  EXPECT_NE(image.message.find("image_url"), std::string::npos);
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":[{"type":"text"}]}]})").param,
            "messages[0].content[0].text");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":["x"]}]})").param, "messages[0].content[0]");
}

TEST(OpenAiRequest, ChatMaxCompletionTokens) {
  EXPECT_EQ(parse_chat_request(chat_with(R"("max_tokens":5)")).max_tokens, 5);
  EXPECT_EQ(parse_chat_request(chat_with(R"("max_completion_tokens":9)")).max_tokens, 9);
  EXPECT_EQ(parse_chat_request(chat_with(R"("max_tokens":5,"max_completion_tokens":9)")).max_tokens, 9);
  EXPECT_EQ(parse_chat_request(chat_with(R"("max_tokens":null)")).max_tokens, -1);
  EXPECT_EQ(parse_chat_request(chat_with(R"("max_tokens":8.0)")).max_tokens, 8);
  EXPECT_EQ(parse_chat_request(chat_with(R"("max_tokens":1e12)")).max_tokens, INT32_MAX);
  EXPECT_EQ(chat_error(chat_with(R"("max_completion_tokens":0)")).param, "max_completion_tokens");
  EXPECT_EQ(chat_error(chat_with(R"("max_tokens":0)")).param, "max_tokens");
  EXPECT_EQ(chat_error(chat_with(R"("max_tokens":-3)")).param, "max_tokens");
  EXPECT_EQ(chat_error(chat_with(R"("max_tokens":2.5)")).param, "max_tokens");
  EXPECT_EQ(chat_error(chat_with(R"("max_tokens":"10")")).param, "max_tokens");
}

// Each (field value, expected param) must be refused with a 400 naming the field.
struct Bad {
  const char* fields;
  const char* param;
};

TEST(OpenAiRequest, OutOfRangeAndWrongTypes) {
  const Bad cases[] = {
      {R"("temperature":2.5)", "temperature"},
      {R"("temperature":-0.1)", "temperature"},
      {R"("temperature":"hot")", "temperature"},
      {R"("temperature":true)", "temperature"},
      {R"("top_p":0)", "top_p"},
      {R"("top_p":1.01)", "top_p"},
      {R"("top_k":-1)", "top_k"},
      {R"("top_k":2.5)", "top_k"},
      {R"("min_p":1.5)", "min_p"},
      {R"("min_p":-0.5)", "min_p"},
      {R"("repetition_penalty":0)", "repetition_penalty"},
      {R"("repeat_penalty":-1)", "repeat_penalty"},
      {R"("seed":"7")", "seed"},
      {R"("seed":1.5)", "seed"},
      {R"("n":2)", "n"},
      {R"("n":0)", "n"},
      {R"("stop":"")", "stop"},
      {R"("stop":["a",""])", "stop[1]"},
      {R"("stop":["a",3])", "stop[1]"},
      {R"("stop":["a","b","c","d","e"])", "stop"},
      {R"("stop":{"a":1})", "stop"},
      {R"("stream":"yes")", "stream"},
      {R"("stream_options":true)", "stream_options"},
      {R"("stream_options":{"include_usage":1})", "stream_options.include_usage"},
      {R"("model":5)", "model"},
  };
  for (const Bad& b : cases) {
    ApiError e = chat_error(chat_with(b.fields));
    EXPECT_EQ(e.status, 400) << b.fields;
    EXPECT_EQ(e.param, b.param) << b.fields << ": " << e.message;
    EXPECT_NE(e.message.find(b.param), std::string::npos) << e.message;
    EXPECT_EQ(completion_error(completion_with(b.fields)).param, b.param) << b.fields;
  }
}

TEST(OpenAiRequest, BoundaryValuesAreAccepted) {
  ApiRequest r =
      parse_chat_request(chat_with(R"("temperature":2,"top_p":1,"min_p":1,"top_k":0,"seed":-1,"n":1)"));
  EXPECT_EQ(r.sampling.temperature, 2.0f);
  EXPECT_EQ(r.seed, ~uint64_t(0));  // a negative seed is a fixed seed too
  EXPECT_EQ(parse_chat_request(chat_with(R"("seed":18446744073709551615)")).seed, ~uint64_t(0));
  EXPECT_EQ(parse_chat_request(chat_with(R"("stop":null,"stream":null,"stream_options":null)")).stop.size(),
            0u);
  EXPECT_EQ(parse_chat_request(chat_with(R"("stop":[])")).stop.size(), 0u);
}

TEST(OpenAiRequest, OutputChangingFieldsAreRefused) {
  const Bad chat[] = {
      {R"("frequency_penalty":0.5)", "frequency_penalty"},
      {R"("presence_penalty":-1)", "presence_penalty"},
      {R"("logit_bias":{"50256":-100})", "logit_bias"},
      {R"("logprobs":true)", "logprobs"},
      {R"("top_logprobs":2)", "top_logprobs"},
      {R"("tools":[{"type":"function","function":{"name":"f"}}])", "tools"},
      {R"("functions":[{"name":"f"}])", "functions"},
      {R"("response_format":{"type":"json_object"})", "response_format"},
      {R"("response_format":"text")", "response_format"},
  };
  for (const Bad& b : chat) {
    ApiError e = chat_error(chat_with(b.fields));
    EXPECT_EQ(e.param, b.param) << b.fields;
    EXPECT_NE(e.message.find(b.param), std::string::npos) << e.message;
  }
  EXPECT_EQ(chat_error(chat_with(R"("logit_bias":{"1":5})")).code, "unsupported_parameter");
  const Bad completion[] = {
      {R"("logprobs":0)", "logprobs"},
      {R"("echo":true)", "echo"},
      {R"("best_of":2)", "best_of"},
      {R"("best_of":0)", "best_of"},
      {R"("suffix":" end")", "suffix"},
      {R"("frequency_penalty":1)", "frequency_penalty"},
      {R"("logit_bias":{"3":1})", "logit_bias"},
  };
  for (const Bad& b : completion)
    EXPECT_EQ(completion_error(completion_with(b.fields)).param, b.param) << b.fields;
}

TEST(OpenAiRequest, NeutralValuesOfUnsupportedFieldsAreAccepted) {
  EXPECT_NO_THROW(parse_chat_request(chat_with(
      R"("logprobs":false,"top_logprobs":null,"tools":[],"functions":null,"tool_choice":"none",
         "parallel_tool_calls":false,"response_format":{"type":"text"},"frequency_penalty":0,
         "presence_penalty":null,"logit_bias":null,"user":"x","metadata":null,"store":true,
         "service_tier":"default","reasoning_effort":"low")")));
  EXPECT_NO_THROW(parse_completion_request(completion_with(R"("suffix":"","echo":null,"best_of":null)")));
}

TEST(OpenAiResponse, CompletionShape) {
  json j = completion_response("cmpl-1", 1700000000, "m", "text", "length", 3, 4);
  json expected = json::parse(R"({"id":"cmpl-1","object":"text_completion","created":1700000000,"model":"m",
      "choices":[{"index":0,"text":"text","logprobs":null,"finish_reason":"length"}],
      "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})");
  EXPECT_EQ(j, expected) << j.dump();
}

TEST(OpenAiResponse, ChatShape) {
  json j = chat_response("chatcmpl-1", 5, "m", "Hi!", "stop", 10, 2);
  json expected = json::parse(R"({"id":"chatcmpl-1","object":"chat.completion","created":5,"model":"m",
      "choices":[{"index":0,"message":{"role":"assistant","content":"Hi!","refusal":null},"logprobs":null,
                  "finish_reason":"stop"}],
      "usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}})");
  EXPECT_EQ(j, expected) << j.dump();
}

TEST(OpenAiResponse, Chunks) {
  json first = chat_chunk("c", 5, "m", "assistant", "", std::nullopt);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"], json::parse(R"({"role":"assistant","content":""})"));
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(first.contains("usage"));

  json middle = chat_chunk("c", 5, "m", "", "tok", std::nullopt);
  EXPECT_EQ(middle["choices"][0]["delta"], json::parse(R"({"content":"tok"})"));
  json last = chat_chunk("c", 5, "m", "", std::nullopt, "stop");
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(last["choices"][0]["index"], 0);
  EXPECT_TRUE(chat_chunk("c", 5, "m", "", "x", "")["choices"][0]["finish_reason"].is_null());

  json text = completion_chunk("cmpl", 6, "m", "abc", std::nullopt);
  json expected = json::parse(R"({"id":"cmpl","object":"text_completion","created":6,"model":"m",
      "choices":[{"index":0,"text":"abc","logprobs":null,"finish_reason":null}]})");
  EXPECT_EQ(text, expected) << text.dump();
  EXPECT_EQ(completion_chunk("cmpl", 6, "m", "", "length")["choices"][0]["finish_reason"], "length");

  json usage = usage_chunk("c", 5, "m", true, 7, 8);
  EXPECT_EQ(usage["object"], "chat.completion.chunk");
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"], json::parse(R"({"prompt_tokens":7,"completion_tokens":8,"total_tokens":15})"));
  EXPECT_EQ(usage_chunk("c", 5, "m", false, 1, 1)["object"], "text_completion");
}

TEST(OpenAiResponse, ErrorsModelsAndEvents) {
  json e = error_body(ApiError(400, "'n' must be 1", "n"));
  EXPECT_EQ(e, json::parse(R"({"error":{"message":"'n' must be 1","type":"invalid_request_error","param":"n",
                                        "code":null}})"));
  json bare = error_body(ApiError(404, "no such route", "", "", "not_found_error"));
  EXPECT_TRUE(bare["error"]["param"].is_null());
  EXPECT_EQ(bare["error"]["type"], "not_found_error");

  EXPECT_EQ(models_response("default", 9), json::parse(R"({"object":"list","data":[
      {"id":"default","object":"model","created":9,"owned_by":"dspark"}]})"));

  EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
  // A model may emit half a character; the body must still be written, not throw.
  EXPECT_EQ(json_text(json("a\xE2\x82")), "\"a\xEF\xBF\xBD\"");
}

}  // namespace
}  // namespace dspark
