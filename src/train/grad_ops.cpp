#include "train/grad_ops.h"

#include <cmath>
#include <vector>

#include "kernels/ops.h"

namespace dspark {

namespace {
constexpr int64_t kElementGrain = 1 << 14;
}

void rmsnorm_rows(const float* x, const float* w, int n, int dim, float eps, float* y, ThreadPool& pool) {
  pool.parallel_for(n, std::max(1, 4096 / std::max(dim, 1)), [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) rmsnorm(y + i * dim, x + i * dim, w, dim, eps);
  });
}

void rmsnorm_rows_backward(const float* x, const float* w, const float* dy, int n, int dim, float eps,
                           float* dx, float* dw, bool add_dx, ThreadPool& pool) {
  // y = w ⊙ x·r with r = (mean(x²) + eps)^-1/2:
  //   dx = r·(w⊙dy) − x·r³·Σ(w⊙dy⊙x)/dim,   dw += dy ⊙ x·r.
  // Weight gradients are summed per fixed chunk of rows, then added in chunk order: the
  // result does not depend on which thread ran which chunk (a resumed run repeats its steps).
  constexpr int kChunks = 16;
  const int chunks = std::max(1, std::min(kChunks, n));
  std::vector<double> partial(size_t(chunks) * size_t(dim), 0.0);
  pool.parallel_for(chunks, 1, [&](int64_t c0, int64_t c1, int) {
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      double* pw = partial.data() + size_t(chunk) * size_t(dim);
      for (int64_t i = int64_t(n) * chunk / chunks; i < int64_t(n) * (chunk + 1) / chunks; ++i) {
        const float* xi = x + i * dim;
        const float* dyi = dy + i * dim;
        float* dxi = dx + i * dim;
        double ss = 0, dot = 0;
        for (int j = 0; j < dim; ++j) {
          ss += double(xi[j]) * xi[j];
          dot += double(w[j]) * dyi[j] * xi[j];
        }
        const double r = 1.0 / std::sqrt(ss / dim + eps);
        const double c = r * r * r * dot / dim;
        for (int j = 0; j < dim; ++j) {
          const float g = float(r * w[j] * dyi[j] - xi[j] * c);
          dxi[j] = add_dx ? dxi[j] + g : g;
          pw[j] += double(dyi[j]) * xi[j] * r;
        }
      }
    }
  });
  for (int c = 0; c < chunks; ++c)
    for (int j = 0; j < dim; ++j) dw[j] += float(partial[size_t(c) * size_t(dim) + size_t(j)]);
}

void rope_rows(float* v, const int* positions, int n, int heads, int head_dim, float theta, bool inverse,
               ThreadPool& pool) {
  pool.parallel_for(n, 16, [&](int64_t begin, int64_t end, int) {
    std::vector<float> cs(static_cast<size_t>(head_dim));
    for (int64_t i = begin; i < end; ++i) {
      rope_angles(cs.data(), head_dim, positions[i], theta);
      if (inverse)
        for (int p = 0; p < head_dim / 2; ++p) cs[size_t(2 * p + 1)] = -cs[size_t(2 * p + 1)];
      float* row = v + i * int64_t(heads) * head_dim;
      for (int h = 0; h < heads; ++h) rope_halves(row + int64_t(h) * head_dim, head_dim, cs.data());
    }
  });
}

void swiglu_forward(const float* g, const float* u, int64_t n, float* a, ThreadPool& pool) {
  pool.parallel_for(n, kElementGrain, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) a[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  });
}

void swiglu_backward(const float* g, const float* u, const float* da, int64_t n, float* dg, float* du,
                     ThreadPool& pool) {
  // silu(g) = g·σ(g);  silu'(g) = σ(g)·(1 + g·(1 − σ(g))).
  pool.parallel_for(n, kElementGrain, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      const float s = 1.0f / (1.0f + std::exp(-g[i]));
      du[i] = da[i] * g[i] * s;
      dg[i] = da[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    }
  });
}

void add_rows(float* y, const float* x, int64_t n, ThreadPool& pool) {
  pool.parallel_for(n, kElementGrain, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) y[i] += x[i];
  });
}

}  // namespace dspark
