// The OpenAI-compatible HTTP server (`dspark serve`), on cpp-httplib, in front of an
// EngineLoop:
//   POST /v1/completions, POST /v1/chat/completions   (stream: server-sent events)
//   GET  /v1/models, GET /health, GET /metrics         (Prometheus text format)
// Each HTTP request runs on a thread of the server's pool and waits for its engine request;
// a streaming client that goes away cancels its request at once, which frees the slot at the
// engine's next step. Errors are OpenAI-style JSON bodies: 400 for bad requests (with the
// field), 401 without the API key, 404, 413, 503 when the queue is full, 500 if the engine
// fails.
#pragma once

#include <memory>
#include <string>

#include "engine/engine_loop.h"
#include "model/load.h"
#include "server/metrics.h"
#include "tokenizer/chat_template.h"

namespace httplib {
class Server;
}

namespace dspark {

struct ServerOptions {
  std::string host = "127.0.0.1";                              // loopback unless told otherwise
  int port = 8080;                                             // 0: any free port (see HttpServer::port)
  std::string api_key;                                         // "": no authentication
  std::string model_id = "dspark";                             // the name /v1/models reports
  ChatTemplate chat_template = ChatTemplate::from_source("");  // how messages become a prompt
  int http_threads = 16;  // HTTP worker threads; each streaming request holds one
  size_t max_body_bytes = 4 << 20;
};

class HttpServer {
 public:
  // The engine's callbacks for metrics are installed by the caller (see serve).
  HttpServer(const LoadedModel& model, EngineLoop& loop, Metrics& metrics, const ServerOptions& options);
  ~HttpServer();

  // Binds the socket; Error naming host and port when that fails.
  void bind();
  int port() const { return port_; }
  // Serves until stop() (from another thread or a signal handler's thread).
  void listen();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace dspark
