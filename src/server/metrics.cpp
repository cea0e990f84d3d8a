#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace dspark {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}

void Histogram::observe(double v) {
  // The first bucket whose bound is >= v (Prometheus buckets are "less or equal").
  size_t i = std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin();
  ++counts[i];
  sum += v;
  ++count;
}

// Buckets: times from a fraction of a millisecond (one step of a small model) to minutes
// (a long request on a big one); batch sizes and token counts in powers of two.
Metrics::Metrics()
    : ttft_(
          {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80}),
      request_seconds_({0.1, 0.25, 0.5, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960}),
      step_requests_({1, 2, 4, 8, 16, 32, 64, 128, 256}),
      step_tokens_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192}),
      step_seconds_({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}) {
  // The usual reasons show from the start, at zero, so rates over them are defined at once.
  for (const char* r : {"stop", "length", "cancelled"}) finished_[r] = 0;
}

void Metrics::http_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mu_);
  ++http_requests_[{endpoint, status}];
}

void Metrics::request_finished(const std::string& reason, int prompt_tokens, int generated_tokens,
                               double time_to_first_token_seconds, double seconds) {
  std::lock_guard lock(mu_);
  ++finished_[reason];
  prompt_tokens_ += uint64_t(std::max(prompt_tokens, 0));
  generation_tokens_ += uint64_t(std::max(generated_tokens, 0));
  if (time_to_first_token_seconds >= 0) ttft_.observe(time_to_first_token_seconds);
  request_seconds_.observe(seconds);
}

void Metrics::step(int requests, int tokens, bool drafted, double seconds) {
  std::lock_guard lock(mu_);
  ++steps_;
  if (!drafted && requests > 0) ++skipped_steps_;
  step_requests_.observe(requests);
  step_tokens_.observe(tokens);
  step_seconds_.observe(seconds);
}

void Metrics::spec_round(int proposed, int verified, int accepted) {
  std::lock_guard lock(mu_);
  ++drafts_;
  proposed_tokens_ += uint64_t(std::max(proposed, 0));
  draft_tokens_ += uint64_t(std::max(verified, 0));
  accepted_tokens_ += uint64_t(std::max(accepted, 0));
  // Positions are "seen" once verified, so a position never accepted still shows, at zero.
  size_t seen = size_t(std::max({verified, accepted, 0}));
  if (accepted_per_pos_.size() < seen) accepted_per_pos_.resize(seen, 0);
  for (int k = 0; k < accepted; ++k) ++accepted_per_pos_[k];
}

void Metrics::set_load(int running, int waiting, int slots, double kv_usage) {
  std::lock_guard lock(mu_);
  running_ = running;
  waiting_ = waiting;
  slots_ = slots;
  kv_usage_ = kv_usage;
}

namespace {

// Go's ParseFloat reads these: shortest round-trip digits, NaN, +Inf, -Inf.
std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string label_value(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const std::string& name, const std::string& labels, const std::string& value) {
  out += name;
  if (!labels.empty()) out += '{' + labels + '}';
  out += ' ';
  out += value;
  out += '\n';
}

void counter(std::string& out, const char* name, const char* help, uint64_t v) {
  family(out, name, "counter", help);
  sample(out, name, "", std::to_string(v));
}

void gauge(std::string& out, const char* name, const char* help, double v) {
  family(out, name, "gauge", help);
  sample(out, name, "", number(v));
}

void histogram(std::string& out, const char* name, const char* help, const Histogram& h) {
  family(out, name, "histogram", help);
  std::string base = name;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    sample(out, base + "_bucket", "le=\"" + number(h.bounds[i]) + "\"", std::to_string(cumulative));
  }
  sample(out, base + "_bucket", "le=\"+Inf\"", std::to_string(h.count));
  sample(out, base + "_sum", "", number(h.sum));
  sample(out, base + "_count", "", std::to_string(h.count));
}

}  // namespace

std::string Metrics::render() const {
  std::lock_guard lock(mu_);
  std::string out;

  family(out, "dspark_http_requests_total", "counter",
         "HTTP requests answered, by endpoint and status code.");
  for (const auto& [key, n] : http_requests_) {
    sample(out, "dspark_http_requests_total",
           "endpoint=\"" + label_value(key.first) + "\",status=\"" + std::to_string(key.second) + "\"",
           std::to_string(n));
  }
  family(out, "dspark_requests_finished_total", "counter", "Generation requests finished, by reason.");
  for (const auto& [reason, n] : finished_)
    sample(out, "dspark_requests_finished_total", "reason=\"" + label_value(reason) + "\"",
           std::to_string(n));
  counter(out, "dspark_prompt_tokens_total", "Prompt tokens of finished requests.", prompt_tokens_);
  counter(out, "dspark_generation_tokens_total", "Tokens generated by finished requests.",
          generation_tokens_);
  histogram(out, "dspark_time_to_first_token_seconds", "Time from arrival to the first generated token.",
            ttft_);
  histogram(out, "dspark_request_duration_seconds", "Time from arrival to the end of generation.",
            request_seconds_);

  counter(out, "dspark_steps_total", "Engine steps run.", steps_);
  counter(out, "dspark_spec_decode_skipped_steps_total",
          "Engine steps with requests in which no request drafted (speculation judged not worth it).",
          skipped_steps_);
  histogram(out, "dspark_step_requests", "Requests in an engine step.", step_requests_);
  histogram(out, "dspark_step_tokens", "Tokens in an engine step's target forward pass.", step_tokens_);
  histogram(out, "dspark_step_duration_seconds", "Duration of an engine step.", step_seconds_);

  counter(out, "dspark_spec_decode_num_drafts_total", "Speculative rounds that drafted.", drafts_);
  counter(out, "dspark_spec_decode_num_draft_tokens_total",
          "Draft tokens sent to the target for verification (accepted / draft tokens = acceptance rate).",
          draft_tokens_);
  counter(out, "dspark_spec_decode_num_proposed_tokens_total", "Draft tokens the drafters proposed.",
          proposed_tokens_);
  counter(out, "dspark_spec_decode_num_accepted_tokens_total", "Draft tokens accepted by verification.",
          accepted_tokens_);
  family(out, "dspark_spec_decode_num_accepted_tokens_per_pos_total", "counter",
         "Draft tokens accepted at each draft position (0-based).");
  for (size_t k = 0; k < accepted_per_pos_.size(); ++k) {
    sample(out, "dspark_spec_decode_num_accepted_tokens_per_pos_total",
           "position=\"" + std::to_string(k) + "\"", std::to_string(accepted_per_pos_[k]));
  }
  gauge(out, "dspark_spec_decode_mean_verify_length",
        "Draft tokens verified per speculative round, on average.",
        drafts_ ? double(draft_tokens_) / double(drafts_) : 0.0);

  gauge(out, "dspark_requests_running", "Requests being generated.", running_);
  gauge(out, "dspark_requests_waiting", "Requests queued for a free slot.", waiting_);
  gauge(out, "dspark_slots", "Requests the engine can batch at once.", slots_);
  gauge(out, "dspark_kv_cache_usage_ratio", "Fraction of the KV cache in use.", kv_usage_);
  return out;
}

}  // namespace dspark
