// dspark serve: the OpenAI-compatible server with continuous batching (see server/).
#include <csignal>
#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "core/error.h"
#include "server/serving.h"

namespace dspark::cli {

namespace {

struct ServeOptions {
  std::string model, tokenizer, draft, spec, scheduler, chat_template, alias;
  std::string host = "127.0.0.1";
  int port = 8080;
  int parallel = 4;
  int ctx_size = 0;
  int threads = 0;
  int draft_max = 0;
  float conf_threshold = 0.5f;
  int prefill_chunk = 256;
  int queue = 256;
  int http_threads = 0;
  std::string api_key;
  bool no_draft_gate = false;
};

ServeConfig serve_config(const ServeOptions& o) {
  ServeConfig c;
  c.model = model_path_or_default(o.model);
  c.tokenizer = o.tokenizer;
  c.draft = o.draft;
  c.spec = o.spec;
  const bool checkpoint_kind = o.spec.empty() || o.spec == "dspark" || o.spec == "dflash";
  if (o.model.empty() && o.draft.empty() && checkpoint_kind) c.draft = default_drafter_path(c.model);
  if (o.spec == "none" && !o.draft.empty()) fail("--spec none and -d ", o.draft, " contradict each other");
  c.chat_template = o.chat_template;
  c.threads = o.threads;
  c.engine.slots = o.parallel;
  c.engine.context = o.ctx_size;
  c.engine.scheduler = parse_scheduler(o.scheduler.empty() ? "prefix" : o.scheduler);
  c.engine.draft_max = o.draft_max;
  c.engine.conf_threshold = o.conf_threshold;
  c.engine.prefill_chunk = o.prefill_chunk;
  c.engine.max_waiting = o.queue;
  c.engine.draft_gate = !o.no_draft_gate;
  c.server.host = o.host;
  c.server.port = o.port;
  c.server.api_key = o.api_key;
  // Each streaming request holds an HTTP thread while it runs or waits in the queue.
  c.server.http_threads = o.http_threads > 0 ? o.http_threads : std::max(16, 2 * o.parallel + 8);
  if (!o.alias.empty()) c.server.model_id = o.alias;
  return c;
}

void run_serve(const ServeOptions& o) {
  // SIGINT / SIGTERM stop the server from a thread of their own (httplib is not
  // async-signal-safe); blocked here so that every thread started later inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const ServeConfig config = serve_config(o);
  Serving serving(config, [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
  std::fprintf(stderr, "listening on http://%s:%d (OpenAI API under /v1, /health, /metrics)%s\n",
               o.host.c_str(), serving.http().port(), o.api_key.empty() ? "" : ", API key required");
  std::thread stopper([&serving, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::fprintf(stderr, "stopping (signal %d)\n", sig);
    serving.http().stop();
  });
  serving.http().listen();
  // listen() also returns when the socket fails; wake the stopper so it can be joined.
  pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
}

}  // namespace

void add_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching");
  cmd->add_option("-m,--model", o->model, "Target model (default: the project's model)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file, when not found with the model");
  cmd->add_option("-d,--draft", o->draft,
                  "Drafter: DSpark/DFlash checkpoint folder or a small model (default: the default "
                  "model's own drafter when -m is not given)");
  cmd->add_option("--spec", o->spec, "Drafter kind (default: from -d); none: plain decoding")
      ->check(CLI::IsMember({"dspark", "dflash", "draft-model", "ngram", "none"}));
  cmd->add_option("--host", o->host, "Address to listen on (loopback unless told)")->capture_default_str();
  cmd->add_option("--port", o->port, "Port (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--parallel", o->parallel, "Requests decoded at once (slots)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--ctx-size", o->ctx_size,
                  "Positions per slot, prompt and completion (default: the model's)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--scheduler", o->scheduler,
                  "How many drafts to verify: prefix (default), async, fixed, threshold, none")
      ->check(CLI::IsMember({"none", "fixed", "threshold", "prefix", "async"}));
  cmd->add_option("--draft-max", o->draft_max, "Drafts verified per request with --scheduler fixed")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--conf-threshold", o->conf_threshold,
                  "Smallest confidence verified with --scheduler threshold")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--no-draft-gate", o->no_draft_gate,
                "Draft in every step (prefix, async) even when the cost curve says it does not pay");
  cmd->add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens per step over all joining requests")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--queue", o->queue, "Requests that may wait for a slot; more get HTTP 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' (all routes but /health)");
  cmd->add_option("--alias", o->alias, "Model name reported by /v1/models (default: dspark)");
  cmd->add_option("--chat-template", o->chat_template,
                  "Chat format: chatml, llama2, llama3, mistral, gemma, zephyr, phi3, plain (default: the "
                  "model's own template, plain when it has none)");
  cmd->add_option("--http-threads", o->http_threads, "HTTP worker threads (default: 2 * parallel + 8)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("-t,--threads", o->threads, "Compute threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([o] { run_serve(*o); });
}

}  // namespace dspark::cli
