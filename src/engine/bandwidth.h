// The memory read bandwidth of this machine, measured the way decoding reads weights: every
// thread streams through its share of a buffer much larger than the last-level cache.
// Decode of a large model is bound by this number, so benchmarks report achieved GB/s
// against it. On a shared machine it drifts from minute to minute: a meter keeps its
// buffer so that a benchmark can sample it next to each timed run and compare the two.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/thread_pool.h"

namespace dspark {

struct BandwidthResult {
  double gbps = 0;             // median of the passes, 1e9 bytes per second
  double best_gbps = 0;        // fastest pass: closer to the peak on a busy machine
  std::vector<double> passes;  // every pass, in GB/s
  size_t buffer_bytes = 0;
  int threads = 0;
};

class BandwidthMeter {
 public:
  // Allocates and touches `buffer_bytes` (default 256 MiB: 8x a 32 MiB L3), then reads it
  // once untimed (page tables, thread wake-up).
  explicit BandwidthMeter(ThreadPool& pool, size_t buffer_bytes = size_t(256) << 20);
  // Reads the whole buffer `passes` times with all of the pool's threads.
  BandwidthResult measure(int passes);

 private:
  void read_all();
  ThreadPool& pool_;
  size_t n_words_;
  std::unique_ptr<uint64_t[]> buf_;  // [n_words_]
  uint64_t sink_ = 0;
};

// One meter, `passes` passes.
BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t buffer_bytes = size_t(256) << 20,
                                       int passes = 15);

}  // namespace dspark
