// The HTTP server end to end on loopback (src/server/serving.h): the whole serving stack on a
// free port with a real model, spoken to with an HTTP client. Completions and chat, streamed
// and whole, equal plain greedy decoding; errors are OpenAI-style with the right status;
// /metrics passes promtool; a client that disconnects mid-stream frees its slot; and a
// bounded load of 64 concurrent streaming clients, some of them leaving early, is answered.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/timer.h"
#include "engine/generator.h"
#include "server/serving.h"
#include "test_util.h"

namespace dspark {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

// A running server; stopped and joined on destruction.
struct TestServer {
  std::unique_ptr<Serving> serving;
  std::thread listener;

  explicit TestServer(ServeConfig c) {
    c.server.port = 0;
    serving = std::make_unique<Serving>(c, [](const std::string&) {});
    listener = std::thread([this] { serving->http().listen(); });
  }
  ~TestServer() {
    serving->http().stop();
    listener.join();
  }
  int port() { return serving->http().port(); }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", port());
    c.set_read_timeout(60, 0);
    return c;
  }
};

ServeConfig config(const std::string& spec = "ngram", int slots = 4) {
  ServeConfig c;
  c.model = test::shared_model("tinystories-656k");
  c.spec = spec;
  c.threads = 2;
  c.engine.slots = slots;
  c.engine.context = 256;
  c.engine.scheduler = SchedulerKind::Fixed;
  return c;
}

// The "data:" payloads of a server-sent event stream.
std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

std::string greedy_text(const std::string& prompt, int n) {
  const LoadedModel lm = load_model(test::shared_model("tinystories-656k"));
  ThreadPool pool(1);
  GenerateRequest r;
  r.prompt = prompt;
  r.max_tokens = n;
  r.sampling.temperature = 0;
  return Generator(lm, pool).generate(r).text;
}

TEST(ServerHttp, CompletionsAndChatWholeAndStreamed) {
  TestServer server(config());
  auto cli = server.client();
  const std::string expected = greedy_text("Once upon a time", 24);

  auto res = cli.Post("/v1/completions", R"({"prompt":"Once upon a time","max_tokens":24,"temperature":0})",
                      "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json j = json::parse(res->body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], expected);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 24);

  res = cli.Post("/v1/completions",
                 R"({"prompt":"Once upon a time","max_tokens":24,"temperature":0,"stream":true,
                     "stream_options":{"include_usage":true}})",
                 "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/event-stream"));
  const auto events = sse_payloads(res->body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string streamed;
  std::string finish;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json e = json::parse(events[i]);
    if (e["choices"].empty()) {
      EXPECT_EQ(e["usage"]["completion_tokens"], 24);
      continue;
    }
    streamed += e["choices"][0]["text"].get<std::string>();
    if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(streamed, expected);
  EXPECT_EQ(finish, "length");

  // Chat: the plain template; a stop string ends the text before it.
  res =
      cli.Post("/v1/chat/completions",
               R"({"messages":[{"role":"system","content":"Tell a story."},{"role":"user","content":"A cat"}],
                     "max_tokens":20,"temperature":0,"seed":1})",
               "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  j = json::parse(res->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  const std::string chat_text = j["choices"][0]["message"]["content"];
  ASSERT_GE(chat_text.size(), 6u);

  const std::string stop = expected.substr(10, 4);
  res = cli.Post(
      "/v1/completions",
      json{{"prompt", "Once upon a time"}, {"max_tokens", 24}, {"temperature", 0}, {"stop", stop}}.dump(),
      "application/json");
  ASSERT_TRUE(res);
  j = json::parse(res->body);
  EXPECT_EQ(j["choices"][0]["text"], expected.substr(0, expected.find(stop)));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");

  res = cli.Post(
      "/v1/chat/completions",
      R"({"messages":[{"role":"user","content":"A cat"}],"max_tokens":20,"temperature":0,"stream":true})",
      "application/json");
  ASSERT_TRUE(res);
  const auto chat_events = sse_payloads(res->body);
  ASSERT_GE(chat_events.size(), 3u);
  EXPECT_EQ(json::parse(chat_events[0])["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(json::parse(chat_events[0])["object"], "chat.completion.chunk");

  res = cli.Get("/v1/models");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["data"][0]["id"], "dspark");
  res = cli.Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST(ServerHttp, ErrorsAreOpenAIStyle) {
  ServeConfig c = config("none", 1);
  c.engine.context = 64;
  c.server.api_key = "sesame";
  TestServer server(c);
  auto cli = server.client();
  auto post = [&](const std::string& path, const std::string& body, bool key = true) {
    httplib::Headers h;
    if (key) h.emplace("Authorization", "Bearer sesame");
    auto res = cli.Post(path, h, body, "application/json");
    EXPECT_TRUE(res);
    return res;
  };
  auto res = post("/v1/completions", R"({"prompt":"hi"})", false);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "invalid_api_key");
  res = post("/v1/completions", "{not json");
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(res->body)["error"]["type"], "invalid_request_error");
  res = post("/v1/completions", R"({"prompt":"hi","temperature":"hot"})");
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(res->body)["error"]["param"], "temperature");
  res = post("/v1/chat/completions", R"({"messages":[]})");
  EXPECT_EQ(res->status, 400);
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "Once upon a time ";
  res = post("/v1/completions", json{{"prompt", long_prompt}}.dump());
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(res->body)["error"]["code"], "context_length_exceeded");
  res = post("/v1/nothing", "{}");
  EXPECT_EQ(res->status, 404);
  EXPECT_THAT(json::parse(res->body)["error"]["message"].get<std::string>(), HasSubstr("/v1/nothing"));
  EXPECT_EQ(cli.Get("/health")->status, 200) << "no key needed";
  EXPECT_EQ(cli.Get("/metrics")->status, 401);
  res = post("/v1/completions", R"({"prompt":"Once","max_tokens":3})");
  EXPECT_EQ(res->status, 200) << res->body;
}

TEST(ServerHttp, MetricsPassPromtool) {
  if (!std::filesystem::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool is not installed";
  ServeConfig c = config("draft-model");
  c.draft = test::shared_model("stories260k/stories260K_q80.bin");
  c.model = test::shared_model("stories260k/stories260K_q80.bin");
  TestServer server(c);
  auto cli = server.client();
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(cli.Post("/v1/completions", R"({"prompt":"Once upon a time","max_tokens":16,"temperature":0})",
                       "application/json")
                  ->status,
              200);
  auto res = cli.Get("/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const std::string& m = res->body;
  EXPECT_THAT(m, HasSubstr("dspark_spec_decode_num_drafts_total "));
  EXPECT_THAT(m, HasSubstr("dspark_spec_decode_num_accepted_tokens_per_pos_total{position=\"0\"}"));
  EXPECT_THAT(m, HasSubstr("dspark_requests_finished_total{reason=\"length\"} 3"));
  EXPECT_THAT(m, HasSubstr("dspark_generation_tokens_total 48"));
  const std::string file = test::temp_dir() + "/metrics.txt";
  test::write_file(file, m);
  std::string out;
  EXPECT_EQ(test::run_command("/usr/bin/promtool check metrics < " + file + " 2>&1", &out), 0) << out;
  EXPECT_EQ(out, "") << "promtool warnings";
}

// POSTs a JSON body and hands the response body to `on_data` as it arrives; returning false
// from it drops the connection.
httplib::Result post_streaming(httplib::Client& cli, const std::string& body,
                               const std::function<bool(const char*, size_t)>& on_data) {
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [on_data](const char* d, size_t n, uint64_t, uint64_t) { return on_data(d, n); };
  return cli.send(req);
}

// Opens a streaming request and reads until `chunks` chunks arrived, then drops the
// connection. Returns the chunks seen.
int stream_and_leave(int port, int chunks) {
  httplib::Client cli("127.0.0.1", port);
  int seen = 0;
  post_streaming(cli, R"({"prompt":"Once upon a time","max_tokens":200,"temperature":0.8,"stream":true})",
                 [&](const char*, size_t) { return ++seen < chunks; });
  return seen;
}

TEST(ServerHttp, DisconnectFreesTheSlot) {
  TestServer server(config("none", 1));
  EXPECT_EQ(stream_and_leave(server.port(), 3), 3);
  // The only slot must be free again long before 200 tokens could have been generated.
  Timer t;
  while (server.serving->load().running > 0 && t.seconds() < 5)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto cli = server.client();
  auto res = cli.Post("/v1/completions", R"({"prompt":"Once","max_tokens":4})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  const std::string m = cli.Get("/metrics")->body;
  EXPECT_THAT(m, HasSubstr("dspark_requests_finished_total{reason=\"cancelled\"} 1"));
}

// 64 concurrent streaming clients over 8 slots, every fourth leaving early: each request is
// answered in full or cancelled, and the engine ends idle.
TEST(ServerHttp, BoundedLoadOf64StreamingClients) {
  ServeConfig c = config("ngram", 8);
  c.server.http_threads = 72;
  c.engine.scheduler = SchedulerKind::Prefix;
  TestServer server(c);
  std::atomic<int> complete{0}, left{0}, failed{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 64; ++i)
    clients.emplace_back([&, i] {
      if (i % 4 == 3) {
        stream_and_leave(server.port(), 2 + i % 5);
        ++left;
        return;
      }
      httplib::Client cli("127.0.0.1", server.port());
      cli.set_read_timeout(120, 0);
      std::string body;
      const json request = {{"prompt", "Once upon a time"},
                            {"max_tokens", 24},
                            {"temperature", 0.7},
                            {"seed", i},
                            {"stream", true}};
      auto res = post_streaming(cli, request.dump(), [&](const char* d, size_t n) {
        body.append(d, n);
        return true;
      });
      if (res && res->status == 200 && body.find("data: [DONE]") != std::string::npos)
        ++complete;
      else {
        ++failed;
        ADD_FAILURE() << "client " << i << ": "
                      << (res ? "status " + std::to_string(res->status) : httplib::to_string(res.error()))
                      << " " << body.substr(0, 300);
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(complete, 48);
  EXPECT_EQ(left, 16);
  EXPECT_EQ(failed, 0);
  Timer t;
  while (server.serving->load().running > 0 && t.seconds() < 10)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(server.serving->load().running, 0);
  EXPECT_EQ(server.serving->load().waiting, 0);
}

}  // namespace
}  // namespace dspark
