#include "engine/bandwidth.h"

#include <algorithm>
#include <atomic>

#include "core/error.h"
#include "core/timer.h"

namespace dspark {

namespace {

// Each thread's share is claimed in contiguous chunks of at least 1 MiB, so hardware
// prefetchers see long streams.
constexpr int64_t kGrainWords = int64_t(1) << 17;

// Sums 64-bit words with eight independent accumulators: enough loads in flight to
// saturate the memory system, and a result the compiler cannot drop.
uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += p[i + size_t(l)];
  for (; i < n; ++i) acc[0] += p[i];
  uint64_t s = 0;
  for (uint64_t a : acc) s += a;
  return s;
}

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  const size_t n = xs.size();
  return n % 2 ? xs[n / 2] : 0.5 * (xs[n / 2 - 1] + xs[n / 2]);
}

}  // namespace

BandwidthMeter::BandwidthMeter(ThreadPool& pool, size_t buffer_bytes)
    : pool_(pool),
      n_words_(std::max<size_t>(buffer_bytes / sizeof(uint64_t), 1024)),
      buf_(new uint64_t[n_words_]) {
  uint64_t* buf = buf_.get();
  pool_.parallel_for(int64_t(n_words_), kGrainWords, [buf](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) buf[size_t(i)] = uint64_t(i) * 0x9e3779b97f4a7c15ull;
  });
  read_all();
}

void BandwidthMeter::read_all() {
  std::atomic<uint64_t> sink{0};
  const uint64_t* buf = buf_.get();
  pool_.parallel_for(int64_t(n_words_), kGrainWords, [buf, &sink](int64_t begin, int64_t end, int) {
    sink.fetch_add(sum_words(buf + begin, size_t(end - begin)), std::memory_order_relaxed);
  });
  sink_ += sink.load();
}

BandwidthResult BandwidthMeter::measure(int passes) {
  if (passes <= 0) fail("bandwidth: passes must be positive, got ", passes);
  BandwidthResult r;
  r.buffer_bytes = n_words_ * sizeof(uint64_t);
  r.threads = pool_.size();
  for (int p = 0; p < passes; ++p) {
    Timer t;
    read_all();
    r.passes.push_back(double(r.buffer_bytes) / t.seconds() / 1e9);
  }
  r.gbps = median(r.passes);
  r.best_gbps = *std::max_element(r.passes.begin(), r.passes.end());
  return r;
}

BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t buffer_bytes, int passes) {
  if (passes <= 0) fail("bandwidth: passes must be positive, got ", passes);
  return BandwidthMeter(pool, buffer_bytes).measure(passes);
}

}  // namespace dspark
