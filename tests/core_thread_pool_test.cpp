#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/thread_pool.h"

namespace dspark {
namespace {

TEST(ThreadPool, EveryIndexRunsExactlyOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 7, 64, 1000, 100000}) {
      for (int64_t grain : {1, 3, 1000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<bool> bad_thread{false};
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e, int thread) {
          if (thread < 0 || thread >= pool.size()) bad_thread = true;
          for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
        });
        EXPECT_FALSE(bad_thread);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << n << " " << grain << " " << i;
      }
    }
  }
}

TEST(ThreadPool, ManyShortJobsInARow) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int round = 0; round < 20000; ++round)
    pool.parallel_for(8, 1, [&](int64_t b, int64_t e, int) { sum.fetch_add(e - b); });
  EXPECT_EQ(sum.load(), 20000 * 8);
}

}  // namespace
}  // namespace dspark
