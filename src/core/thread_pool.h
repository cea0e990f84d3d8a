// A persistent pool of worker threads. The caller is thread 0 and works too. Workers spin
// briefly on each new job before they sleep: a sleeping hand-off costs tens of microseconds
// on these machines, a spinning one well under one, and spinning forever would starve the
// other processes sharing two cores.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
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

  // Calls fn(thread_index, n_threads) on every thread and returns when all are done.
  // No allocation: the callable is passed by address.
  template <class Fn>
  void run(Fn&& fn) {
    auto call = [](void* ctx, int i, int n) { (*static_cast<std::remove_reference_t<Fn>*>(ctx))(i, n); };
    dispatch(call, const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Splits [0, n) into one contiguous chunk per thread: fn(begin, end).
  template <class Fn>
  void parallel_for(int64_t n, Fn&& fn) {
    run([&](int i, int nt) {
      const int64_t chunk = (n + nt - 1) / nt;
      const int64_t b = std::min<int64_t>(n, chunk * i), e = std::min<int64_t>(n, b + chunk);
      if (b < e) fn(b, e);
    });
  }

 private:
  using CallFn = void (*)(void*, int, int);
  void dispatch(CallFn call, void* ctx);
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  CallFn call_ = nullptr;
  void* ctx_ = nullptr;
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace dspark
