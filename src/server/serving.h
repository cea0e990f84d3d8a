// Everything `dspark serve` runs, assembled in order: the target and its drafter, the
// batching engine on its thread, the metrics it feeds, and the HTTP server in front. The
// serving benchmark builds the same stack on a free loopback port.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/thread_pool.h"
#include "engine/batch_engine.h"
#include "engine/drafter_setup.h"
#include "engine/engine_loop.h"
#include "model/load.h"
#include "server/http_server.h"
#include "server/metrics.h"

namespace dspark {

struct ServeConfig {
  std::string model, tokenizer;  // resolved paths
  std::string draft;             // drafter path ("" with spec "ngram", or none)
  std::string spec;              // drafter kind, "" from the path; "none": no drafter
  std::string chat_template;     // a template family name; "": the model's own
  int threads = 0;
  EngineOptions engine;
  ServerOptions server;
};

class Serving {
 public:
  // Loads, measures the cost curve when a scheduler needs it (cached per machine), starts
  // the engine's thread and binds the server. `log` gets progress lines. Error on failure.
  Serving(const ServeConfig& config, const std::function<void(const std::string&)>& log);
  ~Serving();

  HttpServer& http() { return *http_; }
  EngineLoop::Load load() const { return loop_->load(); }  // safe from any thread
  const LoadedModel& model() const { return lm_; }
  std::string drafter_name() const;  // "none" without a drafter

 private:
  LoadedModel lm_;
  std::unique_ptr<DrafterSource> source_;
  std::unique_ptr<ThreadPool> pool_;
  Metrics metrics_;
  std::unique_ptr<BatchEngine> engine_;
  std::unique_ptr<EngineLoop> loop_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace dspark
