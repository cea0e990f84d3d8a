#include "train/attention_grad.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace dspark {

namespace {

// Visible key rows of one query, in order, into `keys`; returns their count.
int visible_keys(const KeyRanges& r, int* keys) {
  int n = 0;
  for (int j = r.begin0; j < r.end0; ++j) keys[n++] = j;
  for (int j = r.begin1; j < r.end1; ++j) keys[n++] = j;
  return n;
}

int max_visible(const AttentionShape& s, const KeyRanges* ranges) {
  int m = 0;
  for (int i = 0; i < s.n_queries; ++i)
    m = std::max(m, (ranges[i].end0 - ranges[i].begin0) + (ranges[i].end1 - ranges[i].begin1));
  return m;
}

float dot(const float* a, const float* b, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// p[j] = softmax over the visible keys of scale · q·k_j; returns nothing, fills p.
void attention_weights(const AttentionShape& s, const float* qh, const float* k, int kv_head, const int* keys,
                       int n, float* p) {
  const int hd = s.head_dim, kvd = s.n_kv_heads * hd;
  float mx = -INFINITY;
  for (int j = 0; j < n; ++j) {
    p[j] = s.scale * dot(qh, k + size_t(keys[j]) * size_t(kvd) + size_t(kv_head) * size_t(hd), hd);
    mx = std::max(mx, p[j]);
  }
  float sum = 0;
  for (int j = 0; j < n; ++j) sum += (p[j] = std::exp(p[j] - mx));
  for (int j = 0; j < n; ++j) p[j] /= sum;
}

void check(const AttentionShape& s, const KeyRanges* ranges) {
  for (int i = 0; i < s.n_queries; ++i) {
    const KeyRanges& r = ranges[i];
    if (r.begin0 < 0 || r.end0 > s.n_keys || r.begin1 < 0 || r.end1 > s.n_keys || r.begin0 > r.end0 ||
        r.begin1 > r.end1)
      fail("attention: query ", i, " has key ranges [", r.begin0, ", ", r.end0, ") and [", r.begin1, ", ",
           r.end1, ") outside the ", s.n_keys, " keys");
  }
}

}  // namespace

void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v,
                       const KeyRanges* ranges, float* out, ThreadPool& pool) {
  check(s, ranges);
  const int hd = s.head_dim, qd = s.n_heads * hd, kvd = s.n_kv_heads * hd, group = s.n_heads / s.n_kv_heads;
  const int width = max_visible(s, ranges);
  pool.parallel_for(s.n_queries, 4, [&](int64_t begin, int64_t end, int) {
    std::vector<int> keys(size_t(width) + 1);
    std::vector<float> p(size_t(width) + 1);
    for (int64_t i = begin; i < end; ++i) {
      const int n = visible_keys(ranges[i], keys.data());
      for (int h = 0; h < s.n_heads; ++h) {
        const float* qh = q + size_t(i) * size_t(qd) + size_t(h) * size_t(hd);
        float* o = out + size_t(i) * size_t(qd) + size_t(h) * size_t(hd);
        std::fill_n(o, hd, 0.0f);
        if (n == 0) continue;
        const int kvh = h / group;
        attention_weights(s, qh, k, kvh, keys.data(), n, p.data());
        for (int j = 0; j < n; ++j) {
          const float* vj = v + size_t(keys[size_t(j)]) * size_t(kvd) + size_t(kvh) * size_t(hd);
          for (int d = 0; d < hd; ++d) o[d] += p[size_t(j)] * vj[d];
        }
      }
    }
  });
}

void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                        const KeyRanges* ranges, const float* dout, float* dq, float* dk, float* dv,
                        ThreadPool& pool) {
  check(s, ranges);
  const int hd = s.head_dim, qd = s.n_heads * hd, kvd = s.n_kv_heads * hd, group = s.n_heads / s.n_kv_heads;
  const int width = max_visible(s, ranges);
  const size_t kv_size = size_t(s.n_keys) * size_t(kvd);
  // Many queries write the same key rows: each fixed chunk of queries sums into its own dk/dv,
  // added in chunk order at the end, so the result does not depend on thread scheduling.
  constexpr int kChunks = 8;
  const int chunks = std::max(1, std::min(kChunks, s.n_queries));
  std::vector<std::vector<float>> part_k(static_cast<size_t>(chunks)), part_v(static_cast<size_t>(chunks));
  pool.parallel_for(chunks, 1, [&](int64_t c0, int64_t c1, int) {
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      std::vector<float>& pk = part_k[size_t(chunk)];
      std::vector<float>& pv = part_v[size_t(chunk)];
      pk.assign(kv_size, 0.0f);
      pv.assign(kv_size, 0.0f);
      std::vector<int> keys(size_t(width) + 1);
      std::vector<float> p(size_t(width) + 1), dp(size_t(width) + 1);
      const int64_t begin = int64_t(s.n_queries) * chunk / chunks,
                    end = int64_t(s.n_queries) * (chunk + 1) / chunks;
      for (int64_t i = begin; i < end; ++i) {
        const int n = visible_keys(ranges[i], keys.data());
        for (int h = 0; h < s.n_heads; ++h) {
          const float* qh = q + size_t(i) * size_t(qd) + size_t(h) * size_t(hd);
          const float* doh = dout + size_t(i) * size_t(qd) + size_t(h) * size_t(hd);
          float* dqh = dq + size_t(i) * size_t(qd) + size_t(h) * size_t(hd);
          std::fill_n(dqh, hd, 0.0f);
          if (n == 0) continue;
          const int kvh = h / group;
          attention_weights(s, qh, k, kvh, keys.data(), n, p.data());
          // dp_j = dout·v_j;  ds_j = p_j (dp_j − Σ p·dp)
          float pdp = 0;
          for (int j = 0; j < n; ++j) {
            const size_t off = size_t(keys[size_t(j)]) * size_t(kvd) + size_t(kvh) * size_t(hd);
            dp[size_t(j)] = dot(doh, v + off, hd);
            pdp += p[size_t(j)] * dp[size_t(j)];
            for (int d = 0; d < hd; ++d) pv[off + size_t(d)] += p[size_t(j)] * doh[d];
          }
          for (int j = 0; j < n; ++j) {
            const size_t off = size_t(keys[size_t(j)]) * size_t(kvd) + size_t(kvh) * size_t(hd);
            const float ds = s.scale * p[size_t(j)] * (dp[size_t(j)] - pdp);
            for (int d = 0; d < hd; ++d) {
              dqh[d] += ds * k[off + size_t(d)];
              pk[off + size_t(d)] += ds * qh[d];
            }
          }
        }
      }
    }
  });
  std::fill_n(dk, kv_size, 0.0f);
  std::fill_n(dv, kv_size, 0.0f);
  for (size_t t = 0; t < part_k.size(); ++t) {
    for (size_t i = 0; i < kv_size; ++i) {
      dk[i] += part_k[t][i];
      dv[i] += part_v[t][i];
    }
  }
}

}  // namespace dspark
