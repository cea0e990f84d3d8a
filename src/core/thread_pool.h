// A persistent pool of worker threads for data-parallel loops. The caller works too.
//
// Work is split into chunks that threads claim one at a time, so a worker that the OS has
// not scheduled (two cores shared with other processes) never holds up the loop: the
// caller simply takes the chunks it would have done. Workers spin briefly for the next job
// before they sleep: a sleeping hand-off costs tens of microseconds on these machines, a
// spinning one well under one, and spinning forever would starve everything else.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace dspark {

class ThreadPool {
 public:
  // n_threads <= 0 picks the number of hardware threads.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Calls fn(begin, end, thread) over [0, n) in chunks of at least `grain` items; `thread`
  // (< size()) indexes per-thread scratch. Returns when every chunk is done. No allocation.
  template <class Fn>
  void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    // A few chunks per thread balance uneven progress without much claiming traffic.
    const int64_t chunks = std::clamp<int64_t>(std::min(n / grain, int64_t(size()) * 4), 1, kMaxChunks);
    if (chunks == 1 || size() == 1) {
      fn(int64_t(0), n, 0);
      return;
    }
    struct Ctx {
      Fn* fn;
      int64_t n, chunks;
    } ctx{&fn, n, chunks};
    auto call = [](void* p, int64_t chunk, int thread) {
      auto* c = static_cast<Ctx*>(p);
      (*c->fn)(c->n * chunk / c->chunks, c->n * (chunk + 1) / c->chunks, thread);
    };
    dispatch(call, &ctx, chunks);
  }

 private:
  using ChunkFn = void (*)(void*, int64_t chunk, int thread);
  static constexpr int64_t kMaxChunks = 0xffff;

  void dispatch(ChunkFn fn, void* ctx, int64_t chunks);
  // Claims and runs chunks of job `generation` until none is left; returns chunks run.
  int64_t work_on(uint32_t generation, int thread);
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  // The current job, packed so that claiming a chunk is one compare-and-swap that also
  // checks the job is still the one the thread saw: generation (32 bits) | chunk count
  // (16) | next chunk (16).
  std::atomic<uint64_t> job_{0};
  std::atomic<int64_t> done_{0};
  ChunkFn fn_ = nullptr;
  void* ctx_ = nullptr;
  uint32_t generation_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace dspark
