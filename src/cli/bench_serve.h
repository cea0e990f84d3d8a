// dspark bench serve: the whole server on loopback, driven by N concurrent streaming
// clients for a bounded time per concurrency level, once per scheduler: aggregate tokens/s,
// tokens/s per user, tau and mean verification length (from the server's own /metrics),
// latency percentiles; a table, JSON, and a PNG of aggregate throughput against per-user
// speed across concurrency levels.
#pragma once

#include <string>
#include <vector>

namespace dspark::cli {

struct ServeBenchOptions {
  std::string model, draft, spec;  // as for serve (model "": the default; spec "none" allowed)
  std::string schedulers = "none,fixed,prefix,async";
  std::string concurrency = "1,4,16,64";
  double seconds = 20;  // per concurrency level: clients start requests until then
  int repeat = 1;       // rounds over all schedulers and levels (the median is reported)
  int n = 64;           // max_tokens per request
  float temperature = 0;
  int parallel = 0;  // slots (0: the largest concurrency)
  int ctx_size = 0;  // positions per slot (0: the model's)
  int threads = 0;
  std::string prompt_file;  // one prompt per line; empty: built-in prompts
  std::string plot;         // PNG path ("" : no plot)
  bool json = false;
  std::string json_path;
};

void run_bench_serve(const ServeBenchOptions& o);

}  // namespace dspark::cli
