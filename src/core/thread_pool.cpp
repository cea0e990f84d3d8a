#include "core/thread_pool.h"

namespace dspark {

namespace {

constexpr int kSpinIterations = 1 << 14;  // on the order of 100 microseconds before sleeping

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

inline uint32_t job_generation(uint64_t j) { return uint32_t(j >> 32); }
inline int64_t job_chunks(uint64_t j) { return int64_t((j >> 16) & 0xffff); }
inline int64_t job_next(uint64_t j) { return int64_t(j & 0xffff); }

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

int64_t ThreadPool::work_on(uint32_t generation, int thread) {
  int64_t ran = 0;
  uint64_t j = job_.load(std::memory_order_acquire);
  for (;;) {
    if (job_generation(j) != generation || job_next(j) >= job_chunks(j)) return ran;
    if (!job_.compare_exchange_weak(j, j + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    fn_(ctx_, job_next(j), thread);
    done_.fetch_add(1, std::memory_order_acq_rel);
    ++ran;
    j = job_.load(std::memory_order_acquire);
  }
}

void ThreadPool::dispatch(ChunkFn fn, void* ctx, int64_t chunks) {
  fn_ = fn;
  ctx_ = ctx;
  done_.store(0, std::memory_order_relaxed);
  const uint32_t gen = ++generation_;
  {
    std::lock_guard<std::mutex> lock(mutex_);  // pairs with the sleepers' predicate check
    job_.store((uint64_t(gen) << 32) | (uint64_t(chunks) << 16), std::memory_order_release);
  }
  wake_.notify_all();
  work_on(gen, 0);
  // Only chunks that a worker has already claimed can be outstanding here.
  for (int spin = 0; done_.load(std::memory_order_acquire) != chunks; ++spin) {
    if (spin < kSpinIterations)
      cpu_relax();
    else
      std::this_thread::yield();
  }
}

void ThreadPool::worker_loop(int index) {
  uint32_t seen = 0;
  auto has_work = [&] {
    const uint64_t j = job_.load(std::memory_order_acquire);
    return job_generation(j) != seen && job_next(j) < job_chunks(j);
  };
  for (;;) {
    for (int spin = 0; spin < kSpinIterations && !has_work() && !stop_.load(std::memory_order_relaxed);
         ++spin)
      cpu_relax();
    if (!has_work()) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return has_work() || stop_.load(); });
    }
    if (stop_.load()) return;
    seen = job_generation(job_.load(std::memory_order_acquire));
    work_on(seen, index);
  }
}

}  // namespace dspark
