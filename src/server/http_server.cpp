#include "server/http_server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <random>

#include "core/error.h"
#include "engine/generator.h"
#include "server/openai_api.h"
#include "server/stop_strings.h"

namespace dspark {

namespace {

// What passes from the engine's thread to the HTTP thread of one request.
struct Channel {
  std::mutex mu;
  std::condition_variable cv;
  std::string text;  // generated text not taken yet
  bool done = false;
  RequestOutput out;
  std::atomic<bool> stopped_by_string{false};  // the HTTP side cancelled at a stop string

  // Waits up to `timeout` for text or the end; takes the text.
  std::string take(std::chrono::milliseconds timeout, bool* ended) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, timeout, [&] { return !text.empty() || done; });
    *ended = done;
    std::string t;
    t.swap(text);
    return t;
  }
};

int64_t unix_seconds() { return int64_t(std::time(nullptr)); }

std::string request_id(bool chat) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = std::random_device{}();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s-%016llx", chat ? "chatcmpl" : "cmpl",
                static_cast<unsigned long long>(salt ^ (++counter * 0x9e3779b97f4a7c15ull)));
  return buf;
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(json_text(error_body(e)), "application/json");
}

std::string finish_reason(const RequestOutput& out, bool stopped_by_string) {
  if (stopped_by_string || out.reason == FinishReason::Stop) return "stop";
  return "length";
}

// The library listens with a backlog of 5: a burst of clients connecting at once (a load
// test, many users starting together) overflows it, and the kernel then resets some of those
// connections. Its socket is not exposed, so it is found among this process's descriptors
// (the listening TCP socket on `port`); listening again on it only widens the queue.
void widen_backlog(int port) {
  for (int fd = 0; fd < 4096; ++fd) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) continue;
    int bound = -1;
    if (addr.ss_family == AF_INET) bound = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) bound = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    int listening = 0;
    socklen_t size = sizeof listening;
    if (bound == port && getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) == 0 && listening)
      ::listen(fd, SOMAXCONN);
  }
}

}  // namespace

struct HttpServer::Impl {
  const LoadedModel& lm;
  EngineLoop& loop;
  Metrics& metrics;
  ServerOptions options;
  httplib::Server http;

  Impl(const LoadedModel& model, EngineLoop& engine_loop, Metrics& m, const ServerOptions& o)
      : lm(model), loop(engine_loop), metrics(m), options(o) {}

  void authorize(const httplib::Request& req) const {
    if (options.api_key.empty()) return;
    if (req.get_header_value("Authorization") == "Bearer " + options.api_key) return;
    throw ApiError(401, "missing or incorrect API key (send 'Authorization: Bearer KEY')", "",
                   "invalid_api_key");
  }

  // The engine request for an API request: prompt tokens, sampling, stop tokens.
  EngineRequest engine_request(const ApiRequest& api, std::vector<std::string>& stops) const {
    EngineRequest er;
    stops = api.stop;
    if (api.chat) {
      std::string prompt;
      try {
        prompt = options.chat_template.render(api.messages);
      } catch (const Error& e) {
        throw ApiError(400, e.what(), "messages");
      }
      er.prompt = tokenize_prompt(lm, prompt);
      // The end of an assistant turn ends generation: as a token where it is one, else as text.
      const std::string& eot = options.chat_template.end_of_turn();
      if (!eot.empty()) {
        const int id = lm.tokenizer->token_id(eot);
        if (id >= 0)
          er.stop_tokens.push_back(id);
        else
          stops.push_back(eot);
      }
    } else if (!api.prompt_tokens.empty()) {
      er.prompt = api.prompt_tokens;
    } else {
      er.prompt = tokenize_prompt(lm, api.prompt);
    }
    er.max_tokens = api.max_tokens;
    er.sampling = api.sampling;
    er.seed = api.seed ? *api.seed : std::random_device{}();
    return er;
  }

  void generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    const char* endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
    try {
      authorize(req);
      const ApiRequest api = chat ? parse_chat_request(req.body) : parse_completion_request(req.body);
      std::vector<std::string> stops;
      EngineRequest er = engine_request(api, stops);
      auto ch = std::make_shared<Channel>();
      er.on_text = [ch](const std::string& t) {
        {
          std::lock_guard lock(ch->mu);
          ch->text += t;
        }
        ch->cv.notify_all();
      };
      Metrics* m = &metrics;
      er.on_done = [ch, m](const RequestOutput& out) {
        const bool by_string = ch->stopped_by_string;
        const char* reason = by_string ? "stop" : finish_reason_name(out.reason);
        m->request_finished(reason, out.n_prompt, int(out.tokens.size()), out.time_to_first_token,
                            out.seconds);
        {
          std::lock_guard lock(ch->mu);
          ch->out = out;
          ch->done = true;
        }
        ch->cv.notify_all();
      };
      int64_t id;
      try {
        id = loop.submit(std::move(er));
      } catch (const Error& e) {
        const std::string what = e.what();
        const bool too_long = what.find("a slot holds") != std::string::npos;
        throw ApiError(400, what, chat ? "messages" : "prompt", too_long ? "context_length_exceeded" : "");
      }
      if (id < 0)
        throw ApiError(503, "the server is busy: its queue is full; try again later", "", "", "server_error");
      const std::string rid = request_id(chat);
      const std::string model = api.model.empty() ? options.model_id : api.model;
      if (api.stream)
        stream(res, api, std::move(stops), ch, id, rid, model);
      else
        whole(res, api, stops, *ch, id, rid, model);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const Error& e) {
      send_error(res, ApiError(400, e.what()));
    }
    metrics.http_request(endpoint, res.status);
  }

  void whole(httplib::Response& res, const ApiRequest& api, const std::vector<std::string>& stops,
             Channel& ch, int64_t id, const std::string& rid, const std::string& model) {
    StopMatcher matcher(stops);
    std::string text;
    for (bool ended = false; !ended;) {
      const std::string piece = ch.take(std::chrono::milliseconds(1000), &ended);
      if (ch.stopped_by_string) continue;
      text += matcher.push(piece);
      if (matcher.stopped()) {
        ch.stopped_by_string = true;
        loop.cancel(id);  // frees the slot; the engine answers on_done at its next step
      }
    }
    if (!ch.stopped_by_string) text += matcher.finish();
    const RequestOutput& out = ch.out;
    if (out.reason == FinishReason::Error) throw ApiError(500, out.error, "", "", "server_error");
    const std::string reason = finish_reason(out, ch.stopped_by_string);
    const int completion = int(out.tokens.size());
    const nlohmann::json body =
        api.chat ? chat_response(rid, unix_seconds(), model, text, reason, out.n_prompt, completion)
                 : completion_response(rid, unix_seconds(), model, text, reason, out.n_prompt, completion);
    res.status = 200;
    res.set_content(json_text(body), "application/json");
  }

  void stream(httplib::Response& res, const ApiRequest& api, std::vector<std::string> stops,
              const std::shared_ptr<Channel>& ch, int64_t id, const std::string& rid,
              const std::string& model) {
    struct State {
      StopMatcher matcher;
      bool role_sent = false;
    };
    auto state = std::make_shared<State>(State{StopMatcher(std::move(stops))});
    const int64_t created = unix_seconds();
    EngineLoop* engine = &loop;
    const ApiRequest a = api;
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    auto chunk = [a, rid, created, model](const std::string& text) {
      return sse_event(a.chat ? chat_chunk(rid, created, model, "", text, std::nullopt)
                              : completion_chunk(rid, created, model, text, std::nullopt));
    };
    // Called again and again until it calls sink.done() (or returns false: the client is gone).
    auto provider = [=](size_t, httplib::DataSink& sink) {
      bool ended = false;
      const std::string piece = ch->take(std::chrono::milliseconds(100), &ended);
      if (!sink.is_writable()) return false;
      auto send = [&sink](const std::string& s) { return sink.write(s.data(), s.size()); };
      if (a.chat && !state->role_sent) {
        state->role_sent = true;
        if (!send(sse_event(chat_chunk(rid, created, model, "assistant", "", std::nullopt)))) return false;
      }
      if (!ch->stopped_by_string) {
        std::string text = state->matcher.push(piece);
        if (state->matcher.stopped()) {
          ch->stopped_by_string = true;
          engine->cancel(id);
        } else if (ended) {
          text += state->matcher.finish();
        }
        if (!text.empty() && !send(chunk(text))) return false;
      }
      if (!ended) return true;
      const RequestOutput& out = ch->out;
      if (out.reason == FinishReason::Error) {
        send(sse_event(error_body(ApiError(500, out.error, "", "", "server_error"))));
      } else {
        const std::string reason = finish_reason(out, ch->stopped_by_string);
        send(sse_event(a.chat ? chat_chunk(rid, created, model, "", std::nullopt, reason)
                              : completion_chunk(rid, created, model, "", reason)));
        if (a.include_usage)
          send(sse_event(usage_chunk(rid, created, model, a.chat, out.n_prompt, int(out.tokens.size()))));
      }
      send(sse_done());
      sink.done();
      return true;
    };
    // Not a success: the client went away before the end; its slot is freed at once.
    auto released = [ch, engine, id](bool success) {
      if (!success) engine->cancel(id);
    };
    res.set_chunked_content_provider("text/event-stream", provider, released);
  }

  void routes() {
    http.Post("/v1/completions",
              [this](const httplib::Request& q, httplib::Response& r) { generate(q, r, false); });
    http.Post("/v1/chat/completions",
              [this](const httplib::Request& q, httplib::Response& r) { generate(q, r, true); });
    http.Get("/v1/models", [this](const httplib::Request& q, httplib::Response& r) {
      try {
        authorize(q);
        r.status = 200;
        r.set_content(json_text(models_response(options.model_id, unix_seconds())), "application/json");
      } catch (const ApiError& e) {
        send_error(r, e);
      }
      metrics.http_request("/v1/models", r.status);
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& r) {
      r.status = 200;
      r.set_content("{\"status\":\"ok\"}", "application/json");
      metrics.http_request("/health", 200);
    });
    http.Get("/metrics", [this](const httplib::Request& q, httplib::Response& r) {
      try {
        authorize(q);
        const EngineLoop::Load l = loop.load();
        metrics.set_load(l.running, l.waiting, l.slots, l.kv_usage);
        r.status = 200;
        r.set_content(metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
      } catch (const ApiError& e) {
        send_error(r, e);
      }
      metrics.http_request("/metrics", r.status);
    });
    // Anything else, and errors httplib raises itself (413 for a body over the limit).
    http.set_error_handler([](const httplib::Request& q, httplib::Response& r) {
      if (!r.body.empty()) return;  // already an API error body
      const std::string what = r.status == 404   ? "no route " + q.method + " " + q.path
                               : r.status == 413 ? "the request body is too large"
                                                 : "request failed (HTTP " + std::to_string(r.status) + ")";
      send_error(r, ApiError(r.status, what));
    });
  }
};

HttpServer::HttpServer(const LoadedModel& model, EngineLoop& loop, Metrics& metrics,
                       const ServerOptions& options)
    : impl_(std::make_unique<Impl>(model, loop, metrics, options)) {
  // Every streaming request holds a thread: enough for the slots, the queue and a few probes.
  const int threads = std::max(options.http_threads, 1);
  impl_->http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  impl_->http.set_payload_max_length(options.max_body_bytes);
  impl_->routes();
}

HttpServer::~HttpServer() = default;

void HttpServer::bind() {
  const ServerOptions& o = impl_->options;
  if (o.port == 0)
    port_ = impl_->http.bind_to_any_port(o.host);
  else
    port_ = impl_->http.bind_to_port(o.host, o.port) ? o.port : -1;
  if (port_ < 0)
    fail("cannot listen on ", o.host, ":", o.port, " (address in use, or not an address of this host)");
  widen_backlog(port_);
}

void HttpServer::listen() { impl_->http.listen_after_bind(); }

void HttpServer::stop() { impl_->http.stop(); }

}  // namespace dspark
