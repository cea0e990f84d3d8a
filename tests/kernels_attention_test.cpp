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

// One query group over a cache whose rows hold several heads, as the KV cache does.
struct Case {
  int n_q, n_ctx, head_dim;
  float q_scale = 1.0f;  // large values make the softmax peaked and exp underflow
  std::vector<float> q, cache_k, cache_v;
  int64_t stride;

  Case(int nq, int ctx, int hd, std::mt19937& g, float qs = 1.0f)
      : n_q(nq), n_ctx(ctx), head_dim(hd), q_scale(qs) {
    stride = int64_t(3) * hd + 5;  // the group's head sits at offset hd inside each row
    q = random_vec(size_t(nq * hd), g);
    for (float& x : q) x *= qs;
    cache_k = random_vec(size_t(stride * ctx), g);
    cache_v = random_vec(size_t(stride * ctx), g);
  }

  // Output of the kernel kernel_isa() names; scratch and output filled with garbage first,
  // and guard values after both checked untouched.
  std::vector<float> run(int first_head = 0, int heads = -1, float garbage = 1e30f) const {
    if (heads < 0) heads = n_q;
    constexpr size_t kGuard = 64;
    std::vector<float> scores(attention_scratch_floats(heads, n_ctx) + kGuard, garbage);
    std::vector<float> out(size_t(heads * head_dim) + kGuard, garbage);
    AttentionArgs a;
    a.q = q.data() + size_t(first_head * head_dim);
    a.n_q = heads;
    a.k = cache_k.data() + head_dim;
    a.v = cache_v.data() + head_dim;
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
    out.resize(size_t(heads * head_dim));
    return out;
  }

  // Double-precision attention of head g.
  std::vector<double> exact(int g) const {
    std::vector<double> s(static_cast<size_t>(n_ctx)), o(static_cast<size_t>(head_dim), 0.0);
    const double scale = 1.0 / std::sqrt(double(head_dim));
    for (int p = 0; p < n_ctx; ++p) {
      double dot = 0;
      for (int i = 0; i < head_dim; ++i)
        dot += double(q[size_t(g * head_dim + i)]) * cache_k[size_t(p * stride + head_dim + i)];
      s[size_t(p)] = dot * scale;
    }
    const double mx = *std::max_element(s.begin(), s.end());
    double sum = 0;
    for (double& x : s) sum += (x = std::exp(x - mx));
    for (int p = 0; p < n_ctx; ++p)
      for (int i = 0; i < head_dim; ++i)
        o[size_t(i)] += s[size_t(p)] / sum * cache_v[size_t(p * stride + head_dim + i)];
    return o;
  }

  std::string name() const {
    return "n_q " + std::to_string(n_q) + ", n_ctx " + std::to_string(n_ctx) + ", head_dim " +
           std::to_string(head_dim) + ", q scale " + std::to_string(q_scale);
  }
};

std::vector<Case> cases() {
  std::mt19937 g(11);
  std::vector<Case> out;
  for (int hd : {1, 3, 8, 15, 16, 17, 40, 64, 72, 100, 128, 130})
    for (int ctx : {1, 2, 7, 16, 17, 33, 130}) out.emplace_back(1 + (hd + ctx) % 8, ctx, hd, g);
  for (int nq = 1; nq <= 9; ++nq) out.emplace_back(nq, 300, 128, g);
  out.emplace_back(2, 513, 64, g, 6.0f);  // peaked: most weights underflow
  out.emplace_back(4, 61, 128, g, 0.0f);  // flat: every position weighs the same
  return out;
}

TEST(Attention, ScalarReferenceMatchesDoublePrecision) {
  ScopedKernelIsa scalar(Isa::Scalar);
  for (const Case& c : cases()) {
    const std::vector<float> out = c.run();
    for (int g = 0; g < c.n_q; ++g) {
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
// own query, the cache rows and n_ctx; not on what the scratch held before, nor on which
// other heads share the call.
TEST(Attention, EveryIsaGivesEachHeadTheSameBitsWhateverSurroundsIt) {
  for (const Case& c : cases()) {
    for (Isa isa : supported_isas()) {
      ScopedKernelIsa forced(isa);
      const std::vector<float> whole = c.run(), again = c.run(0, -1, -7.0f);
      ASSERT_EQ(whole, again) << isa_name(isa) << ", " << c.name();
      for (int g = 0; g < c.n_q; ++g) {
        const std::vector<float> alone = c.run(g, 1);
        ASSERT_TRUE(std::equal(alone.begin(), alone.end(), whole.begin() + g * c.head_dim))
            << isa_name(isa) << ", " << c.name() << " head " << g;
      }
    }
  }
}

}  // namespace
}  // namespace dspark
