// The cost profile of this engine on this machine: the time of one target forward over K
// tokens of one sequence (continuing a context already in the KV cache), for K = 1, 2, ...
// While the matmuls are memory-bound, time(K) stays close to time(1); the speculative
// scheduler reads this curve to decide how many draft tokens are worth verifying.
//
// A quick profile takes a few seconds; it is cached as JSON per model file (path, size and
// modification time), weight type, CPU model and thread count, under
// $XDG_CACHE_HOME/dspark (or ~/.cache/dspark), and loaded from there while still valid.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"

namespace dspark {

struct CostProfile {
  // What the profile belongs to; a cached profile is valid only when all of these match.
  std::string model;        // absolute path of the model file or folder
  std::string model_stamp;  // bytes and modification time of its files
  std::string weight_type;  // the type holding most of the weights, e.g. "BF16"
  std::string cpu;          // model name from /proc/cpuinfo
  int threads = 0;
  int context = 0;  // tokens in the KV cache before each timed forward

  // The measurement: ascending K (k[0] == 1) and the median seconds of one forward at each.
  std::vector<int> k;
  std::vector<double> seconds;
  int prefill_tokens = 0;  // the forward that filled the context, from position 0
  double prefill_seconds = 0;

  // Seconds of a forward over K tokens: linear between the measured points of the
  // monotone envelope (a noisy dip never makes more tokens look cheaper), and along the
  // last segment's slope beyond the last point. Throws Error when the profile is empty.
  double time(double K) const;
  // time(K) / time(1): the cost of verifying K tokens in decode steps.
  double relative(double K) const { return time(K) / time(1); }

  bool same_identity(const CostProfile& other) const;
  nlohmann::json to_json() const;
  // Throws Error naming `label` when a field is missing or malformed.
  static CostProfile from_json(const nlohmann::json& j, const std::string& label);
};

// K values a profile samples: the quick list 1,2,3,4,6,8,12,16,24,32,48,64,96,128,... and
// the full list 1..16, 32, 64, 128, 256, 512, ...; both stop at max_k.
std::vector<int> quick_profile_ks(int max_k);
std::vector<int> full_profile_ks(int max_k);

struct CostProfileOptions {
  int context = 256;
  std::vector<int> ks;  // empty: quick_profile_ks(64)
  int runs = 3;         // timed forwards per K; the median is kept
  // Once this much time is spent (prefill excluded), larger K are skipped and each K gets
  // fewer repeats; K <= 4 are always measured. 0: no limit.
  double budget_seconds = 3.0;
  std::function<void(int k, double seconds)> on_point;  // progress, after each K
};

// The profile's identity fields for this model and machine (no measurement).
CostProfile cost_profile_identity(const Model& model, int threads, int context);

// Times forwards of the model over pseudo-random tokens. K values that do not fit the
// model's context after `context` tokens are left out.
CostProfile measure_cost_profile(const Model& model, ThreadPool& pool, const CostProfileOptions& options);

// $XDG_CACHE_HOME/dspark, else $HOME/.cache/dspark, else "" (no cache).
std::string default_cost_profile_dir();
// Where the profile with this identity is cached in `dir`.
std::string cost_profile_path(const CostProfile& identity, const std::string& dir);
// The cached profile when its file exists, parses and has the same identity.
std::optional<CostProfile> load_cached_cost_profile(const CostProfile& identity, const std::string& dir);
// Writes the profile (replacing any older one with its identity); creates `dir`. Throws
// Error naming the path when it cannot.
void store_cost_profile(const CostProfile& profile, const std::string& dir);

// The cached profile when valid, else a fresh measurement, stored when `dir` is not "".
// `dir` defaults to default_cost_profile_dir(). *from_cache tells which happened.
CostProfile load_or_measure_cost_profile(const Model& model, ThreadPool& pool,
                                         const CostProfileOptions& options,
                                         const std::optional<std::string>& dir = std::nullopt,
                                         bool* from_cache = nullptr);

// Helpers shared with the benchmarks.
std::string cpu_model_name();
std::string model_weight_type(const Model& model);
// "bytes=N files=F mtime=T" over the file, or over the regular files of a folder.
std::string file_stamp(const std::string& path);

}  // namespace dspark
