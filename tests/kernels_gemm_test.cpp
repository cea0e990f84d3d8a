// gemm_f32 (b in both layouts) on every ISA level against a double-precision loop, over shapes that exercise
// every row and column tail of the register tiles.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"

namespace dspark {
namespace {

TEST(Gemm, MatchesAReferenceOnEveryIsaAndShape) {
  ThreadPool pool(2);
  Rng rng(1);
  for (Isa isa : supported_isas()) {
    ScopedKernelIsa force(isa);
    for (int n : {1, 5, 6, 7, 13, 50, 97})
      for (int m : {1, 8, 15, 16, 17, 31, 32, 33, 70})
        for (int k : {1, 3, 16, 37}) {
          std::vector<float> a(size_t(n) * size_t(k)), b(size_t(m) * size_t(k)), c(size_t(n) * size_t(m));
          for (float& x : a) x = 2 * rng.uniform() - 1;
          for (float& x : b) x = 2 * rng.uniform() - 1;
          for (float& x : c) x = 2 * rng.uniform() - 1;
          const std::vector<float> c0 = c;
          std::vector<float> b_plain(b.size());  // the same b as [k, m]
          for (int j = 0; j < m; ++j)
            for (int t = 0; t < k; ++t) b_plain[size_t(t * m + j)] = b[size_t(j * k + t)];
          for (auto [accumulate, plain] :
               {std::pair{false, false}, {true, false}, {false, true}, {true, true}}) {
            c = c0;
            if (plain)
              gemm_f32(a.data(), b_plain.data(), n, m, k, c.data(), accumulate, pool, GemmB::Plain);
            else
              gemm_f32(a.data(), b.data(), n, m, k, c.data(), accumulate, pool);
            for (int i = 0; i < n; ++i)
              for (int j = 0; j < m; ++j) {
                double s = accumulate ? c0[size_t(i * m + j)] : 0.0;
                for (int t = 0; t < k; ++t) s += double(a[size_t(i * k + t)]) * b[size_t(j * k + t)];
                ASSERT_NEAR(c[size_t(i * m + j)], s, 1e-4 * (1 + std::fabs(s)))
                    << isa_name(isa) << (plain ? " plain" : "") << " n " << n << " m " << m << " k " << k
                    << " at " << i << "," << j;
              }
          }
        }
  }
}

}  // namespace
}  // namespace dspark
