// The attention kernel on every ISA level this machine has: the scalar reference against a
// double-precision softmax, every level against the scalar reference over ragged head
// sizes, group sizes and context lengths, and the invariances the forward pass relies on.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/isa.h"

namespace dspark {
namespace {

std::vector<float> random_vec(size_t n, std::mt19937& g, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// A block of key/value heads with their query groups over a cache whose rows hold the
// block at an unaligned offset, as a slice of the KV cache.
struct Case {
  int n_kv, group, n_ctx, head_dim;
  float q_scale;  // large values make the softmax peaked and exp underflow
  std::vector<float> q, cache_k, cache_v;
  int64_t stride;
  static constexpr int kOffset = 3;

  Case(int nkv, int grp, int ctx, int hd, std::mt19937& g, float qs = 1.0f)
      : n_kv(nkv), group(grp), n_ctx(ctx), head_dim(hd), q_scale(qs) {
    stride = int64_t(nkv) * hd + kOffset + 2;
    q = random_vec(size_t(nkv * grp * hd), g);
    for (float& x : q) x *= qs;
    cache_k = random_vec(size_t(stride * ctx), g);
    cache_v = random_vec(size_t(stride * ctx), g);
  }
  int n_q() const { return n_kv * group; }

  // Output of the kernel kernel_isa() names for query heads [h0, h0 + kv * grp) (kv
  // key/value heads of grp query heads each, starting at key/value head h0 / group);
  // scratch and output filled with garbage first, guards after both checked untouched.
  std::vector<float> run(int h0, int kv, int grp, float garbage = 1e30f) const {
    constexpr size_t kGuard = 64;
    std::vector<float> scores(attention_scratch_floats(kv * grp, n_ctx) + kGuard, garbage);
    std::vector<float> out(size_t(kv * grp * head_dim) + kGuard, garbage);
    AttentionArgs a;
    a.q = q.data() + size_t(h0 * head_dim);
    a.n_kv = kv;
    a.group = grp;
    a.k = cache_k.data() + kOffset + (h0 / group) * head_dim;
    a.v = cache_v.data() + kOffset + (h0 / group) * head_dim;
    a.kv_stride = stride;
    a.n_ctx = n_ctx;
    a.head_dim = head_dim;
    a.scale = 1.0f / std::sqrt(float(head_dim));
    a.scores = scores.data();
    a.out = out.data();
    attention(a);
    for (size_t i = scores.size() - kGuard; i < scores.size(); ++i)
      EXPECT_EQ(scores[i], garbage) << "scores guard";
    for (size_t i = out.size() - kGuard; i < out.size(); ++i) EXPECT_EQ(out[i], garbage) << "output guard";
    out.resize(size_t(kv * grp * head_dim));
    return out;
  }
  std::vector<float> run(float garbage = 1e30f) const { return run(0, n_kv, group, garbage); }

  // Double-precision attention of query head h.
  std::vector<double> exact(int h) const {
    std::vector<double> s(static_cast<size_t>(n_ctx)), o(static_cast<size_t>(head_dim), 0.0);
    const double scale = 1.0 / std::sqrt(double(head_dim));
    const int64_t base = kOffset + (h / group) * head_dim;
    for (int p = 0; p < n_ctx; ++p) {
      double dot = 0;
      for (int i = 0; i < head_dim; ++i)
        dot += double(q[size_t(h * head_dim + i)]) * cache_k[size_t(p * stride + base + i)];
      s[size_t(p)] = dot * scale;
    }
    const double mx = *std::max_element(s.begin(), s.end());
    double sum = 0;
    for (double& x : s) sum += (x = std::exp(x - mx));
    for (int p = 0; p < n_ctx; ++p)
      for (int i = 0; i < head_dim; ++i)
        o[size_t(i)] += s[size_t(p)] / sum * cache_v[size_t(p * stride + base + i)];
    return o;
  }

  std::string name() const {
    return "n_kv " + std::to_string(n_kv) + ", group " + std::to_string(group) + ", n_ctx " +
           std::to_string(n_ctx) + ", head_dim " + std::to_string(head_dim) + ", q scale " +
           std::to_string(q_scale);
  }
};

std::vector<Case> cases() {
  std::mt19937 g(11);
  std::vector<Case> out;
  for (int hd : {1, 3, 8, 15, 16, 17, 40, 64, 72, 100, 128, 130})
    for (int ctx : {1, 2, 7, 16, 17, 33, 130})
      out.emplace_back(1 + (hd + ctx) % 3, 1 + (hd * ctx) % 6, ctx, hd, g);
  for (int grp = 1; grp <= 9; ++grp) out.emplace_back(2, grp, 300, 128, g);
  out.emplace_back(8, 2, 129, 128, g);       // Qwen3-0.6B's shape, a whole token
  out.emplace_back(2, 2, 513, 64, g, 6.0f);  // peaked: most weights underflow
  out.emplace_back(1, 4, 61, 128, g, 0.0f);  // flat: every position weighs the same
  return out;
}

TEST(Attention, ScalarReferenceMatchesDoublePrecision) {
  ScopedKernelIsa scalar(Isa::Scalar);
  for (const Case& c : cases()) {
    const std::vector<float> out = c.run();
    for (int g = 0; g < c.n_q(); ++g) {
      const std::vector<double> e = c.exact(g);
      for (int i = 0; i < c.head_dim; ++i)
        ASSERT_NEAR(out[size_t(g * c.head_dim + i)], e[size_t(i)], 2e-5)
            << c.name() << " head " << g << " i " << i;
    }
  }
}

TEST(Attention, EveryIsaMatchesScalarReference) {
  for (const Case& c : cases()) {
    std::vector<float> ref;
    {
      ScopedKernelIsa scalar(Isa::Scalar);
      ref = c.run();
    }
    for (Isa isa : supported_isas()) {
      ScopedKernelIsa forced(isa);
      const std::vector<float> out = c.run();
      for (size_t i = 0; i < out.size(); ++i)
        ASSERT_NEAR(out[i], ref[i], 2e-5) << isa_name(isa) << ", " << c.name() << " element " << i;
    }
  }
}

// What batch invariance needs of the kernel: a head's result depends on nothing but its
// own query, its cache rows and n_ctx; not on what the scratch held before, nor on which
// other heads share the call (the forward pass splits heads into calls by batch size).
TEST(Attention, EveryIsaGivesEachHeadTheSameBitsWhateverSurroundsIt) {
  for (const Case& c : cases()) {
    for (Isa isa : supported_isas()) {
      ScopedKernelIsa forced(isa);
      const std::vector<float> whole = c.run(), again = c.run(-7.0f);
      ASSERT_EQ(whole, again) << isa_name(isa) << ", " << c.name();
      const size_t hd = size_t(c.head_dim);
      for (int j = 0; j < c.n_kv; ++j) {
        const std::vector<float> one_kv = c.run(j * c.group, 1, c.group);
        ASSERT_TRUE(std::equal(one_kv.begin(), one_kv.end(), whole.begin() + long(j * c.group * hd)))
            << isa_name(isa) << ", " << c.name() << " key/value head " << j;
      }
      for (int h = 0; h < c.n_q(); ++h) {
        const std::vector<float> alone = c.run(h, 1, 1);
        ASSERT_TRUE(std::equal(alone.begin(), alone.end(), whole.begin() + long(h * hd)))
            << isa_name(isa) << ", " << c.name() << " head " << h;
      }
    }
  }
}

}  // namespace
}  // namespace dspark
