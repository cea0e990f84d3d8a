// Backward passes of the training ops against central finite differences. Every check uses
// the loss L = Σ r ⊙ y with fixed random r, so dL/dy = r.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "train/adamw.h"
#include "train/attention_grad.h"
#include "train/grad_ops.h"
#include "train/products.h"

namespace dspark {
namespace {

std::vector<float> random_vec(size_t n, Rng& rng, float scale = 1.0f) {
  std::vector<float> v(n);
  for (float& x : v) x = scale * (2.0f * rng.uniform() - 1.0f);
  return v;
}

double weighted_sum(const std::vector<float>& y, const std::vector<float>& r) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += double(y[i]) * r[i];
  return s;
}

// Compares `analytic` with central differences of loss() in each element of x.
void expect_gradient(const char* what, std::vector<float>& x, const std::vector<float>& analytic,
                     const std::function<double()>& loss, float eps = 1e-2f, float tol = 2e-3f) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  for (size_t i = 0; i < x.size(); ++i) {
    const float saved = x[i];
    x[i] = saved + eps;
    const double up = loss();
    x[i] = saved - eps;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2.0 * eps);
    EXPECT_NEAR(analytic[i], numeric, tol * (1.0 + std::fabs(numeric))) << what << " element " << i;
  }
}

TEST(TrainGradOps, ProductsMatchNaiveLoops) {
  ThreadPool pool(2);
  Rng rng(1);
  const int n = 5, m = 7, k = 9;
  auto a = random_vec(size_t(n) * k, rng), b = random_vec(size_t(m) * k, rng),
       bnn = random_vec(size_t(k) * m, rng);
  std::vector<float> c(size_t(n) * m);
  matmul_nt(a.data(), b.data(), n, m, k, c.data(), pool);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j) {
      double s = 0;
      for (int t = 0; t < k; ++t) s += double(a[size_t(i * k + t)]) * b[size_t(j * k + t)];
      EXPECT_NEAR(c[size_t(i * m + j)], s, 1e-5);
    }
  std::vector<float> c2(size_t(n) * m, 1.0f);
  matmul_nn(a.data(), bnn.data(), n, m, k, c2.data(), true, pool);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j) {
      double s = 1.0;
      for (int t = 0; t < k; ++t) s += double(a[size_t(i * k + t)]) * bnn[size_t(t * m + j)];
      EXPECT_NEAR(c2[size_t(i * m + j)], s, 1e-5);
    }
  // c[m, k] += aᵀ b with a [n, m], b [n, k]
  auto at = random_vec(size_t(n) * m, rng), bt = random_vec(size_t(n) * k, rng);
  std::vector<float> c3(size_t(m) * k, 0.5f);
  matmul_tn_add(at.data(), bt.data(), n, m, k, c3.data(), pool);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < k; ++j) {
      double s = 0.5;
      for (int t = 0; t < n; ++t) s += double(at[size_t(t * m + i)]) * bt[size_t(t * k + j)];
      EXPECT_NEAR(c3[size_t(i * k + j)], s, 1e-5);
    }
}

TEST(TrainGradOps, LinearBackward) {
  ThreadPool pool(2);
  Rng rng(2);
  const int n = 4, in = 6, out = 5;
  auto x = random_vec(size_t(n) * in, rng), w = random_vec(size_t(out) * in, rng),
       r = random_vec(size_t(n) * out, rng);
  auto loss = [&] {
    std::vector<float> y(size_t(n) * out);
    matmul_nt(x.data(), w.data(), n, out, in, y.data(), pool);
    return weighted_sum(y, r);
  };
  std::vector<float> dx(x.size()), dw(w.size(), 0.0f);
  matmul_nn(r.data(), w.data(), n, in, out, dx.data(), false, pool);
  matmul_tn_add(r.data(), x.data(), n, out, in, dw.data(), pool);
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dw", w, dw, loss);
}

TEST(TrainGradOps, RmsnormBackward) {
  ThreadPool pool(2);
  Rng rng(3);
  const int n = 3, dim = 8;
  auto x = random_vec(size_t(n) * dim, rng), w = random_vec(size_t(dim), rng),
       r = random_vec(size_t(n) * dim, rng);
  auto loss = [&] {
    std::vector<float> y(x.size());
    rmsnorm_rows(x.data(), w.data(), n, dim, 1e-6f, y.data(), pool);
    return weighted_sum(y, r);
  };
  std::vector<float> dx(x.size(), 0.25f), dw(w.size(), 0.0f);
  rmsnorm_rows_backward(x.data(), w.data(), r.data(), n, dim, 1e-6f, dx.data(), dw.data(), false, pool);
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dw", w, dw, loss);
  // add_dx adds into what is there.
  std::vector<float> dx2(x.size(), 0.25f), dw2(w.size(), 0.0f);
  rmsnorm_rows_backward(x.data(), w.data(), r.data(), n, dim, 1e-6f, dx2.data(), dw2.data(), true, pool);
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_FLOAT_EQ(dx2[i], dx[i] + 0.25f);
}

TEST(TrainGradOps, RopeBackwardIsTheInverseRotation) {
  ThreadPool pool(2);
  Rng rng(4);
  const int n = 3, heads = 2, hd = 8;
  const std::vector<int> pos{0, 5, 17};
  auto x = random_vec(size_t(n) * heads * hd, rng), r = random_vec(x.size(), rng);
  auto loss = [&] {
    std::vector<float> y = x;
    rope_rows(y.data(), pos.data(), n, heads, hd, 10000.0f, false, pool);
    return weighted_sum(y, r);
  };
  std::vector<float> dx = r;
  rope_rows(dx.data(), pos.data(), n, heads, hd, 10000.0f, true, pool);
  expect_gradient("dx", x, dx, loss);
}

TEST(TrainGradOps, SwigluBackward) {
  ThreadPool pool(2);
  Rng rng(5);
  const int n = 20;
  auto g = random_vec(size_t(n), rng, 3.0f), u = random_vec(size_t(n), rng), r = random_vec(size_t(n), rng);
  auto loss = [&] {
    std::vector<float> a(static_cast<size_t>(n));
    swiglu_forward(g.data(), u.data(), n, a.data(), pool);
    return weighted_sum(a, r);
  };
  std::vector<float> dg(static_cast<size_t>(n)), du(static_cast<size_t>(n));
  swiglu_backward(g.data(), u.data(), r.data(), n, dg.data(), du.data(), pool);
  expect_gradient("dg", g, dg, loss);
  expect_gradient("du", u, du, loss);
}

// Drafter-style masks: 4 context keys, then two blocks of 3 rows anchored at 2 and 4; each
// block row sees context [0, anchor) and its own block. GQA with 4 query heads on 2 KV heads.
TEST(TrainGradOps, AttentionBackwardWithContextAndBlocks) {
  ThreadPool pool(2);
  Rng rng(6);
  const int S = 4, B = 3, blocks = 2, N = B * blocks, K = S + N, heads = 4, kv_heads = 2, hd = 4;
  const AttentionShape shape{N, K, heads, kv_heads, hd, 0.5f};
  std::vector<KeyRanges> ranges;
  const int anchors[] = {2, 4};
  for (int j = 0; j < blocks; ++j)
    for (int k = 0; k < B; ++k) ranges.push_back(KeyRanges{0, anchors[j], S + j * B, S + (j + 1) * B});
  auto q = random_vec(size_t(N) * heads * hd, rng), kk = random_vec(size_t(K) * kv_heads * hd, rng);
  auto v = random_vec(kk.size(), rng), r = random_vec(q.size(), rng);
  auto loss = [&] {
    std::vector<float> out(q.size());
    attention_forward(shape, q.data(), kk.data(), v.data(), ranges.data(), out.data(), pool);
    return weighted_sum(out, r);
  };
  std::vector<float> dq(q.size()), dk(kk.size()), dv(v.size());
  attention_backward(shape, q.data(), kk.data(), v.data(), ranges.data(), r.data(), dq.data(), dk.data(),
                     dv.data(), pool);
  expect_gradient("dq", q, dq, loss);
  expect_gradient("dk", kk, dk, loss);
  expect_gradient("dv", v, dv, loss);
  // Keys no query sees (context row 3 is seen only by the block at anchor 4) get gradient only
  // from the queries that see them: the first block's rows never reach row 2 or 3.
  const size_t kvd = size_t(kv_heads) * hd;
  std::vector<KeyRanges> first_only(ranges.begin(), ranges.begin() + B);
  const AttentionShape first{B, K, heads, kv_heads, hd, 0.5f};
  std::vector<float> dq1(size_t(B) * heads * hd), dk1(kk.size()), dv1(v.size());
  attention_backward(first, q.data(), kk.data(), v.data(), first_only.data(), r.data(), dq1.data(),
                     dk1.data(), dv1.data(), pool);
  for (size_t i = 2 * kvd; i < 4 * kvd; ++i) EXPECT_EQ(dk1[i], 0.0f);
  for (size_t i = size_t(S + B) * kvd; i < dk1.size(); ++i) EXPECT_EQ(dv1[i], 0.0f);
}

TEST(TrainGradOps, CausalAttentionIsOneRangePerQuery) {
  ThreadPool pool(1);
  Rng rng(7);
  const int T = 5, heads = 2, hd = 4;
  const AttentionShape shape{T, T, heads, heads, hd, 0.5f};
  std::vector<KeyRanges> ranges;
  for (int i = 0; i < T; ++i) ranges.push_back(KeyRanges{0, i + 1, 0, 0});
  auto q = random_vec(size_t(T) * heads * hd, rng), k = random_vec(q.size(), rng),
       v = random_vec(q.size(), rng);
  std::vector<float> out(q.size());
  attention_forward(shape, q.data(), k.data(), v.data(), ranges.data(), out.data(), pool);
  // The first query sees only itself: its output is its own value row.
  for (int h = 0; h < heads; ++h)
    for (int d = 0; d < hd; ++d) EXPECT_FLOAT_EQ(out[size_t(h * hd + d)], v[size_t(h * hd + d)]);
  std::vector<KeyRanges> bad{KeyRanges{0, T + 1, 0, 0}};
  const AttentionShape one{1, T, heads, heads, hd, 0.5f};
  EXPECT_THROW(attention_forward(one, q.data(), k.data(), v.data(), bad.data(), out.data(), pool),
               std::exception);
}

TEST(TrainAdamW, ScheduleWarmsUpThenDecaysToZero) {
  AdamWConfig c;
  c.lr = 1.0f;
  c.total_steps = 100;
  c.warmup_fraction = 0.04f;
  EXPECT_FLOAT_EQ(scheduled_lr(c, 0), 0.25f);
  EXPECT_FLOAT_EQ(scheduled_lr(c, 3), 1.0f);
  EXPECT_NEAR(scheduled_lr(c, 4), 1.0f, 1e-6);
  EXPECT_NEAR(scheduled_lr(c, 52), 0.5f, 1e-6);
  EXPECT_NEAR(scheduled_lr(c, 99), 0.0f, 1e-3);
  for (int s = 4; s < 99; ++s) EXPECT_GE(scheduled_lr(c, s), scheduled_lr(c, s + 1));
}

TEST(TrainAdamW, MinimisesAQuadraticAndClipsTheNorm) {
  Param p = make_param("w", {3});
  p.value = {3.0f, -2.0f, 1.0f};
  AdamWConfig c;
  c.lr = 0.1f;
  c.total_steps = 400;
  c.clip_norm = 1.0f;
  AdamW opt({&p}, c);
  double first_norm = 0;
  for (int s = 0; s < c.total_steps; ++s) {
    for (size_t i = 0; i < 3; ++i) p.grad[i] = 2.0f * p.value[i];  // d/dw of |w|²
    const double norm = opt.step(s);
    if (s == 0) first_norm = norm;
  }
  EXPECT_NEAR(first_norm, 2.0 * std::sqrt(14.0), 1e-4);
  for (float x : p.value) EXPECT_NEAR(x, 0.0f, 0.05f);
}

}  // namespace
}  // namespace dspark
