// dspark_kernels_bench: matmul speed per weight type at real model shapes.
//
// For each shape (rows x cols of W) and weight type it reports
//   - single-token (decode) weight traffic in GB/s, median of repeats, and its fraction of
//     this machine's read bandwidth, measured here by a multi-threaded streaming read of a
//     buffer much larger than the last-level cache;
//   - the time of K tokens relative to K = 1 for K = 1..16 (speculative verification).
//   - prefill throughput at K = 128 tokens.
// The machine is shared and its bandwidth drifts, so each round measures a read probe and
// K = 1..16 once each, back to back; medians over rounds compare like with like.
// Weights rotate over enough copies that every call reads them from DRAM, as a model
// larger than the cache does. Prints a table, then one JSON object on the last line.
//
//   dspark_kernels_bench [--isa scalar|avx2|avx512] [--types Q8_0,Q4_0,...]
//                        [--shapes 4096x14336,1024x3072] [--seconds S] [--threads N]
//                        [--no-prefill] [--hot]
// --hot keeps a single copy of the weights (cache-resident when small): the kernels'
// compute cost per weight byte, apart from memory.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "kernels/isa.h"
#include "kernels/matmul.h"
#include "kernels/quantize.h"

namespace dspark {
namespace {

constexpr size_t kColdBytes = size_t(256) << 20;  // rotate weights over at least this much
constexpr int kMaxK = 16;
constexpr int kPrefillK = 128;

struct Options {
  std::vector<DType> types = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0,
                              DType::Q4_0, DType::Q4_K, DType::Q6_K};
  std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 14336}, {1024, 3072}, {2048, 6144}};
  double seconds = 0.25;  // measuring time per (shape, type, K), in interleaved rounds
  int threads = 0;
  bool prefill = true;
  bool hot = false;  // one copy of the weights: cache-resident when small (compute cost)
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Streaming reads of a buffer much larger than the caches, all threads: bytes per second.
class ReadProbe {
 public:
  explicit ReadProbe(ThreadPool& pool) : pool_(pool), buf_((size_t(1) << 30) / sizeof(uint64_t)) {
    for (size_t i = 0; i < buf_.size(); i += 512) buf_[i] = i;  // touch every page
    sink_.resize(size_t(pool.size()) * 8);
  }
  // Reads `bytes` starting where the previous read stopped (wrapping around the buffer).
  double rate(size_t bytes) {
    const size_t n = bytes / sizeof(uint64_t), start = next_ % (buf_.size() - n + 1);
    next_ = start + n;
    Timer t;
    pool_.parallel_for(int64_t(n / 4096), 1, [&](int64_t b, int64_t e, int thread) {
      uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (size_t i = start + size_t(b) * 4096; i < start + size_t(e) * 4096; i += 4) {
        a0 += buf_[i];
        a1 += buf_[i + 1];
        a2 += buf_[i + 2];
        a3 += buf_[i + 3];
      }
      sink_[size_t(thread) * 8] += a0 + a1 + a2 + a3;
    });
    return double(n / 4096 * 4096 * sizeof(uint64_t)) / t.seconds();
  }

 private:
  ThreadPool& pool_;
  std::vector<uint64_t> buf_;
  std::vector<uint64_t> sink_;  // keeps the sums alive
  size_t next_ = 0;
};

struct Weights {
  std::vector<std::vector<uint8_t>> copies;
  std::vector<TensorView> views;
};

// Realistic values (Gaussian rows quantized to the type), replicated to fill the shape.
Weights make_weights(DType type, int64_t rows, int64_t cols, bool hot, std::mt19937& g) {
  const int64_t distinct = std::min<int64_t>(rows, 16);
  const size_t row_bytes = dtype_row_bytes(type, cols);
  std::vector<uint8_t> seed(row_bytes * size_t(distinct));
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> x(static_cast<size_t>(cols));
  for (int64_t r = 0; r < distinct; ++r) {
    for (float& v : x) v = nd(g);
    quantize_row(type, x.data(), cols, seed.data() + size_t(r) * row_bytes);
  }
  const size_t bytes = row_bytes * size_t(rows);
  const size_t n_copies = hot ? 1 : std::max<size_t>(1, (kColdBytes + bytes - 1) / bytes);
  Weights w;
  w.copies.resize(n_copies);
  for (auto& c : w.copies) {
    c.resize(bytes);
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(c.data() + size_t(r) * row_bytes, seed.data() + size_t(r % distinct) * row_bytes,
                  row_bytes);
    w.views.push_back(TensorView{"w", type, {rows, cols}, c.data()});
  }
  return w;
}

// Seconds of one matmul with k tokens, on the next copy of the weights.
double time_matmul(const Weights& w, size_t& next, int k, const std::vector<float>& x, std::vector<float>& y,
                   ThreadPool& pool) {
  Timer t;
  matmul(w.views[next++ % w.views.size()], x.data(), k, y.data(), pool);
  return t.seconds();
}

bool parse_type(const std::string& s, DType& out) {
  for (int t = 0; t <= int(DType::Q6_K); ++t)
    if (dtype_name(DType(t)) == s) {
      out = DType(t);
      return true;
    }
  return false;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

int usage(const char* msg) {
  std::fprintf(stderr,
               "%s\nusage: dspark_kernels_bench [--isa scalar|avx2|avx512] [--types F32,Q8_0,...]\n"
               "       [--shapes ROWSxCOLS,...] [--seconds S] [--threads N] [--no-prefill] [--hot]\n",
               msg);
  return 2;
}

int run(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage("matmul micro-benchmark");
      return 0;
    }
    if (a == "--no-prefill") {
      o.prefill = false;
      continue;
    }
    if (a == "--hot") {
      o.hot = true;
      continue;
    }
    if (i + 1 >= argc) return usage(("missing value after " + a).c_str());
    const std::string v = argv[++i];
    if (a == "--isa") {
      bool found = false;
      for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
        if (isa_name(isa) == v) {
          if (!isa_supported(isa)) return usage(("this CPU lacks " + v).c_str());
          set_kernel_isa(isa);
          found = true;
        }
      if (!found) return usage(("unknown ISA " + v).c_str());
    } else if (a == "--types") {
      o.types.clear();
      for (const std::string& t : split(v)) {
        DType d;
        if (!parse_type(t, d)) return usage(("unknown type " + t).c_str());
        o.types.push_back(d);
      }
    } else if (a == "--shapes") {
      o.shapes.clear();
      for (const std::string& s : split(v)) {
        long long r = 0, c = 0;
        if (std::sscanf(s.c_str(), "%lldx%lld", &r, &c) != 2 || r <= 0 || c <= 0)
          return usage(("bad shape " + s).c_str());
        o.shapes.push_back({r, c});
      }
    } else if (a == "--seconds") {
      o.seconds = std::atof(v.c_str());
    } else if (a == "--threads") {
      o.threads = std::atoi(v.c_str());
    } else {
      return usage(("unknown option " + a).c_str());
    }
  }

  ThreadPool pool(o.threads);
  ReadProbe probe(pool);
  std::vector<double> rates;
  for (int i = 0; i < 9; ++i) rates.push_back(probe.rate(size_t(256) << 20));
  const double bandwidth = median(rates);
  std::printf("isa %s, %d threads, measured read bandwidth %.1f GB/s\n",
              std::string(isa_name(kernel_isa())).c_str(), pool.size(), bandwidth / 1e9);
  std::printf(
      "(per row: rounds alternate a 64 MB read probe with K = 1..16 once each; medians over rounds;\n"
      " %%bw = K=1 weight GB/s / probe GB/s of the same rounds)\n\n");
  std::printf("%-12s %-5s %7s %7s %7s %5s | time(K) / time(1) for K = 1..16%s\n", "shape", "type", "MB",
              "GB/s", "probe", "%bw", o.prefill ? " | prefill tok/s" : "");

  std::string json = "{\"isa\":\"" + std::string(isa_name(kernel_isa())) +
                     "\",\"threads\":" + std::to_string(pool.size()) +
                     ",\"read_bandwidth_gbs\":" + std::to_string(bandwidth / 1e9) + ",\"results\":[";
  std::mt19937 g(1);
  bool first = true;
  for (const auto& [rows, cols] : o.shapes) {
    for (DType type : o.types) {
      if (cols % dtype_block_elems(type) != 0) continue;
      const Weights w = make_weights(type, rows, cols, o.hot, g);
      const double bytes = double(dtype_row_bytes(type, cols) * size_t(rows));
      std::normal_distribution<float> nd(0.0f, 1.0f);
      std::vector<float> x(size_t(std::max(kMaxK, kPrefillK) * cols)),
          y(size_t(std::max(kMaxK, kPrefillK) * rows));
      for (float& v : x) v = nd(g);
      size_t next = 0;
      for (int k = 1; k <= kMaxK; ++k) time_matmul(w, next, k, x, y, pool);  // warm up
      std::vector<std::vector<double>> times(kMaxK + 1);
      std::vector<double> probes;
      Timer budget;
      while (probes.size() < 7 || (budget.seconds() < o.seconds * kMaxK && probes.size() < 500)) {
        probes.push_back(probe.rate(size_t(64) << 20));
        for (int k = 1; k <= kMaxK; ++k) times[size_t(k)].push_back(time_matmul(w, next, k, x, y, pool));
      }
      std::vector<double> t(kMaxK + 1);
      for (int k = 1; k <= kMaxK; ++k) t[size_t(k)] = median(times[size_t(k)]);
      const double gbs = bytes / t[1] / 1e9, probe_gbs = median(probes) / 1e9;
      double prefill = 0;
      if (o.prefill) {
        std::vector<double> p;
        for (int i = 0; i < 3; ++i) p.push_back(time_matmul(w, next, kPrefillK, x, y, pool));
        prefill = kPrefillK / median(p);
      }
      const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
      std::printf("%-12s %-5s %7.1f %7.1f %7.1f %4.0f%% |", shape.c_str(),
                  std::string(dtype_name(type)).c_str(), bytes / 1e6, gbs, probe_gbs, 100 * gbs / probe_gbs);
      for (int k = 1; k <= kMaxK; ++k) std::printf(" %4.2f", t[size_t(k)] / t[1]);
      if (o.prefill) std::printf(" | %7.0f", prefill);
      std::printf("\n");
      std::fflush(stdout);

      json += std::string(first ? "" : ",") + "{\"rows\":" + std::to_string(rows) +
              ",\"cols\":" + std::to_string(cols) + ",\"type\":\"" + std::string(dtype_name(type)) +
              "\",\"weight_mb\":" + std::to_string(bytes / 1e6) + ",\"k1_ms\":" + std::to_string(t[1] * 1e3) +
              ",\"k1_gbs\":" + std::to_string(gbs) + ",\"probe_gbs\":" + std::to_string(probe_gbs) +
              ",\"k1_fraction_of_bandwidth\":" + std::to_string(gbs / probe_gbs) +
              ",\"rounds\":" + std::to_string(probes.size()) + ",\"time_ratio_vs_k1\":[";
      for (int k = 1; k <= kMaxK; ++k) json += (k > 1 ? "," : "") + std::to_string(t[size_t(k)] / t[1]);
      json += "]";
      if (o.prefill)
        json += ",\"prefill_k\":" + std::to_string(kPrefillK) +
                ",\"prefill_tokens_per_s\":" + std::to_string(prefill);
      json += "}";
      first = false;
    }
  }
  json += "]}";
  std::printf("\n%s\n", json.c_str());
  return 0;
}

}  // namespace
}  // namespace dspark

int main(int argc, char** argv) { return dspark::run(argc, argv); }
