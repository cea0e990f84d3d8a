#include "engine/cost_profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace dspark {

namespace fs = std::filesystem;

namespace {

constexpr int kFormatVersion = 1;

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  const size_t n = xs.size();
  return n % 2 ? xs[n / 2] : 0.5 * (xs[n / 2 - 1] + xs[n / 2]);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(fs::absolute(path), ec);
  return ec ? path : p.string();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The curve

double CostProfile::time(double K) const {
  if (k.empty() || k.size() != seconds.size()) fail("cost profile of ", model, ": no measurements");
  // Monotone envelope: the running maximum of the measured times.
  std::vector<double> env(seconds);
  for (size_t i = 1; i < env.size(); ++i) env[i] = std::max(env[i], env[i - 1]);
  if (K <= k.front()) return env.front();
  for (size_t i = 1; i < k.size(); ++i) {
    if (K <= k[i]) {
      const double f = (K - k[i - 1]) / double(k[i] - k[i - 1]);
      return env[i - 1] + f * (env[i] - env[i - 1]);
    }
  }
  if (k.size() == 1) return env.back() * K / k.back();  // one point: assume linear in K
  const size_t n = k.size();
  const double slope = (env[n - 1] - env[n - 2]) / double(k[n - 1] - k[n - 2]);
  return env[n - 1] + slope * (K - k[n - 1]);
}

bool CostProfile::same_identity(const CostProfile& o) const {
  return model == o.model && model_stamp == o.model_stamp && weight_type == o.weight_type && cpu == o.cpu &&
         threads == o.threads && context == o.context;
}

nlohmann::json CostProfile::to_json() const {
  nlohmann::json j;
  j["version"] = kFormatVersion;
  j["model"] = model;
  j["model_stamp"] = model_stamp;
  j["weight_type"] = weight_type;
  j["cpu"] = cpu;
  j["threads"] = threads;
  j["context"] = context;
  j["prefill_tokens"] = prefill_tokens;
  j["prefill_seconds"] = prefill_seconds;
  nlohmann::json points = nlohmann::json::array();
  for (size_t i = 0; i < k.size(); ++i)
    points.push_back({{"k", k[i]}, {"seconds", seconds[i]}, {"relative", seconds[i] / seconds[0]}});
  j["points"] = points;
  return j;
}

CostProfile CostProfile::from_json(const nlohmann::json& j, const std::string& label) {
  CostProfile p;
  try {
    if (j.at("version").get<int>() != kFormatVersion)
      fail(label, ": cost profile version ", j.at("version").get<int>(), ", expected ", kFormatVersion);
    p.model = j.at("model").get<std::string>();
    p.model_stamp = j.at("model_stamp").get<std::string>();
    p.weight_type = j.at("weight_type").get<std::string>();
    p.cpu = j.at("cpu").get<std::string>();
    p.threads = j.at("threads").get<int>();
    p.context = j.at("context").get<int>();
    p.prefill_tokens = j.at("prefill_tokens").get<int>();
    p.prefill_seconds = j.at("prefill_seconds").get<double>();
    for (const auto& pt : j.at("points")) {
      p.k.push_back(pt.at("k").get<int>());
      p.seconds.push_back(pt.at("seconds").get<double>());
    }
  } catch (const nlohmann::json::exception& e) {
    fail(label, ": not a cost profile: ", e.what());
  }
  if (p.k.empty() || p.k.front() != 1) fail(label, ": cost profile does not start at K = 1");
  for (size_t i = 0; i < p.k.size(); ++i) {
    if (i > 0 && p.k[i] <= p.k[i - 1]) fail(label, ": cost profile K values are not ascending");
    if (!(p.seconds[i] > 0)) fail(label, ": cost profile time at K = ", p.k[i], " is not positive");
  }
  return p;
}

std::vector<int> quick_profile_ks(int max_k) {
  std::vector<int> out;
  for (int k : {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48})
    if (k <= max_k) out.push_back(k);
  for (int k = 64; k <= max_k; k *= 2) {
    out.push_back(k);
    if (k + k / 2 <= max_k) out.push_back(k + k / 2);
  }
  return out;
}

std::vector<int> full_profile_ks(int max_k) {
  std::vector<int> out;
  for (int k = 1; k <= std::min(16, max_k); ++k) out.push_back(k);
  for (int k = 32; k <= max_k; k *= 2) out.push_back(k);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Identity

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(colon + 1);
    name.erase(0, name.find_first_not_of(" \t"));
    return name;
  }
  return "unknown cpu";
}

std::string model_weight_type(const Model& model) {
  std::map<std::string, size_t> bytes;
  model.for_each_tensor([&](const TensorView& t) { bytes[std::string(dtype_name(t.type))] += t.nbytes(); });
  std::string best;
  size_t most = 0;
  for (const auto& [type, n] : bytes)
    if (n > most) {
      most = n;
      best = type;
    }
  return best;
}

std::string file_stamp(const std::string& path) {
  std::error_code ec;
  std::vector<fs::path> files;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_regular_file(ec)) files.push_back(e.path());
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  uint64_t total = 0;
  // file_time_type counts from the clock's own epoch (negative for today's files with
  // libstdc++), so start below any value.
  int64_t newest = std::numeric_limits<int64_t>::min();
  std::string names;
  for (const fs::path& f : files) {
    const uintmax_t size = fs::file_size(f, ec);
    if (ec) continue;
    const auto mtime = fs::last_write_time(f, ec);
    if (ec) continue;
    total += uint64_t(size);
    newest = std::max<int64_t>(newest, int64_t(mtime.time_since_epoch().count()));
    names += f.filename().string() + ":" + std::to_string(size) + ";";
  }
  std::ostringstream os;
  os << "bytes=" << total << " files=" << files.size() << " mtime=" << newest << " names=" << std::hex
     << fnv1a(names);
  return os.str();
}

CostProfile cost_profile_identity(const Model& model, int threads, int context) {
  CostProfile p;
  p.model = absolute_path(model.source);
  p.model_stamp = file_stamp(model.source);
  p.weight_type = model_weight_type(model);
  p.cpu = cpu_model_name();
  p.threads = threads;
  p.context = context;
  return p;
}

// ---------------------------------------------------------------------------------------------
// Measurement

CostProfile measure_cost_profile(const Model& model, ThreadPool& pool, const CostProfileOptions& o) {
  const ModelConfig& c = model.config;
  CostProfile p = cost_profile_identity(model, pool.size(), o.context);
  std::vector<int> ks = o.ks.empty() ? quick_profile_ks(64) : o.ks;
  std::sort(ks.begin(), ks.end());
  ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
  if (ks.empty() || ks.front() != 1) fail("cost profile: the K values must start at 1");
  if (o.context < 1) fail("cost profile: the context must hold at least one token, got ", o.context);
  const int limit = c.max_seq_len > 0 ? c.max_seq_len : o.context + ks.back();
  while (!ks.empty() && o.context + ks.back() > limit) ks.pop_back();
  if (ks.empty())
    fail(model.source, ": a context of ", o.context, " tokens leaves no room in the model's ", limit,
         "-token window");
  const int max_k = ks.back();

  KVCache cache(c, 1, o.context + max_k);
  Transformer tf(model, pool);
  std::vector<float> logits(size_t(max_k) * size_t(c.vocab_size));  // [max_k, vocab]
  Rng rng(0x5eed);
  auto token = [&] { return int(rng.next_u64() % uint64_t(c.vocab_size)); };

  // The context, in one forward (the prefill's time is worth keeping too).
  Batch batch;
  for (int i = 0; i < o.context; ++i) batch.add(token(), i, 0, i == o.context - 1);
  Timer prefill;
  tf.forward(batch, cache, logits.data());
  p.prefill_tokens = o.context;
  p.prefill_seconds = prefill.seconds();

  auto time_forward = [&](int K) {
    batch.clear();
    for (int i = 0; i < K; ++i) batch.add(token(), o.context + i, 0, true);
    Timer t;
    tf.forward(batch, cache, logits.data());
    const double s = t.seconds();
    cache.truncate(0, o.context);
    return s;
  };
  time_forward(1);  // warm-up: scratch buffers, thread wake-up

  Timer total;
  const double per_point = o.budget_seconds > 0 ? o.budget_seconds / double(ks.size()) : 0;
  for (int K : ks) {
    const bool over = o.budget_seconds > 0 && total.seconds() > o.budget_seconds;
    if (over && K > 4) break;
    std::vector<double> times;
    Timer point;
    do {
      times.push_back(time_forward(K));
    } while (int(times.size()) < std::max(o.runs, 1) &&
             (per_point <= 0 || point.seconds() + times.back() <= per_point));
    p.k.push_back(K);
    p.seconds.push_back(median(times));
    if (o.on_point) o.on_point(K, p.seconds.back());
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Cache

std::string default_cost_profile_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return (fs::path(xdg) / "dspark").string();
  if (const char* home = std::getenv("HOME"); home && *home)
    return (fs::path(home) / ".cache" / "dspark").string();
  return "";
}

std::string cost_profile_path(const CostProfile& id, const std::string& dir) {
  std::ostringstream key;
  key << id.model << '\n' << id.weight_type << '\n' << id.cpu << '\n' << id.threads << '\n' << id.context;
  char name[64];
  std::snprintf(name, sizeof name, "cost-%016llx.json", static_cast<unsigned long long>(fnv1a(key.str())));
  return (fs::path(dir) / name).string();
}

std::optional<CostProfile> load_cached_cost_profile(const CostProfile& id, const std::string& dir) {
  if (dir.empty()) return std::nullopt;
  const std::string path = cost_profile_path(id, dir);
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    CostProfile p = CostProfile::from_json(j, path);
    if (!p.same_identity(id)) return std::nullopt;  // the model file changed, or another machine
    return p;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // a damaged cache file is measured again and replaced
  } catch (const Error&) {
    return std::nullopt;
  }
}

void store_cost_profile(const CostProfile& p, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, ": cannot create the cost profile cache folder: ", ec.message());
  const std::string path = cost_profile_path(p, dir);
  const std::string tmp = path + ".partial";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << p.to_json().dump(2) << '\n';
    if (!out) fail(tmp, ": cannot write the cost profile");
  }
  fs::rename(tmp, path, ec);
  if (ec) fail(path, ": cannot replace the cost profile: ", ec.message());
}

CostProfile load_or_measure_cost_profile(const Model& model, ThreadPool& pool, const CostProfileOptions& o,
                                         const std::optional<std::string>& dir_opt, bool* from_cache) {
  const std::string dir = dir_opt ? *dir_opt : default_cost_profile_dir();
  const CostProfile id = cost_profile_identity(model, pool.size(), o.context);
  if (std::optional<CostProfile> cached = load_cached_cost_profile(id, dir)) {
    if (from_cache) *from_cache = true;
    return *cached;
  }
  if (from_cache) *from_cache = false;
  CostProfile p = measure_cost_profile(model, pool, o);
  if (!dir.empty()) store_cost_profile(p, dir);
  return p;
}

}  // namespace dspark
