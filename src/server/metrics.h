// Server metrics: a thread-safe collector fed by the HTTP front end and the engine loop, and
// its rendering in the Prometheus text format (version 0.0.4) for GET /metrics. Names follow
// Prometheus' conventions (counters end in _total, times in seconds) and, for speculative
// decoding, vLLM's spec_decode metrics, so existing dashboards can read them.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace dspark {

// A fixed-bucket histogram; counts are kept per bucket and made cumulative when rendered.
struct Histogram {
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);

  std::vector<double> bounds;    // ascending upper bounds; +Inf is implicit
  std::vector<uint64_t> counts;  // per bucket, the last one for values above every bound
  double sum = 0;
  uint64_t count = 0;
};

class Metrics {
 public:
  Metrics();

  // One answered HTTP request: dspark_http_requests_total{endpoint,status}.
  void http_request(const std::string& endpoint, int status);
  // One generation request done. reason: "stop", "length" or "cancelled" (others are
  // counted under their own label). time_to_first_token_seconds < 0: no token was produced.
  void request_finished(const std::string& reason, int prompt_tokens, int generated_tokens,
                        double time_to_first_token_seconds, double seconds);
  // One engine step: `requests` in the batch, `tokens` in the target forward, whether any
  // request drafted (a step with requests that drafted nothing counts as skipped).
  void step(int requests, int tokens, bool drafted, double seconds);
  // One request's speculative round that drafted: `proposed` drafts made, `verified` of them
  // sent to the target, `accepted` of those accepted (a prefix, bonus token excluded).
  void spec_round(int proposed, int verified, int accepted);
  // The current load: requests running and queued, batch slots, KV cache usage in [0, 1].
  void set_load(int running, int waiting, int slots, double kv_usage);

  // The Prometheus text exposition of everything so far.
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> http_requests_;
  std::map<std::string, uint64_t> finished_;
  uint64_t prompt_tokens_ = 0, generation_tokens_ = 0;
  Histogram ttft_, request_seconds_;
  Histogram step_requests_, step_tokens_, step_seconds_;
  uint64_t steps_ = 0, skipped_steps_ = 0;
  uint64_t drafts_ = 0, draft_tokens_ = 0, proposed_tokens_ = 0, accepted_tokens_ = 0;
  std::vector<uint64_t> accepted_per_pos_;  // one entry per position ever verified
  int running_ = 0, waiting_ = 0, slots_ = 0;
  double kv_usage_ = 0;
};

}  // namespace dspark
