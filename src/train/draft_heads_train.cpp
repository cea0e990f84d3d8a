#include "train/draft_heads_train.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/gemm.h"

namespace dspark {

// Buffers of one call, kept between calls so that a steady training loop allocates nothing.
// n = rows of the batch, nb = blocks; shapes are those of the last call.
struct HeadsWorkspace {
  std::vector<float> e;       // [n, r]      W1[x_{k-1}]
  std::vector<float> z;       // gated [n, d+r] [h ; e];  rnn [n, 2r+d] [s_{k-1} ; e ; h]
  std::vector<float> eh;      // rnn [n, r+d]  [e ; h]
  std::vector<float> act;     // gated [n, r] sigmoid gate;  rnn [n, 3r] [sigmoid(g) ; tanh(c) ; tanh(o)]
  std::vector<float> u;       // [n, r]      input of W2 (gated, rnn)
  std::vector<float> state;   // rnn [n, r]  s_k
  std::vector<float> zc;      // [n, d(+r)]  confidence input [h ; e]
  std::vector<float> logits;  // [n, V]      forward only, when the caller gives no buffer
  std::vector<float> probs;   // [threads, V] forward only: p_d of the row a thread works on
  std::vector<float> conf_x, conf_t, d_conf;  // [n]
  std::vector<double> ce, l1, conf;           // [n] per-row loss terms
  std::vector<float> d_u, d_e;                // [n, r]
  std::vector<float> d_pre;             // gated [n, r] d(gate pre-activation);  rnn [n, 3r] d[g ; c ; o]
  std::vector<float> d_z;               // gated [n, d+r];  rnn [n, r+d]
  std::vector<float> w_t;               // a transposed weight: W2^T [r, V], gate_proj^T, joint_proj blocks^T
  std::vector<float> j_s, j_eh, j_s_t;  // rnn: joint_proj[:, :r] [3r, r], [:, r:] [3r, r+d], j_s^T
  std::vector<float> step_a, step_b, step_c;  // rnn: one block position of every block
  std::vector<float> tile_a, tile_b, tile_c;  // add_at_b tiles
};

namespace {

float* grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// y[n, m] = x[n, k] · w[m, k]^T (a linear layer with an [out, in] weight), on the training
// GEMM (register tiles: many rows at once, unlike the decoder's one block at a time).
void linear(const float* x, const float* w, int64_t n, int64_t m, int64_t k, float* y, ThreadPool& pool) {
  if (n == 0 || m == 0) return;
  gemm_f32(x, w, int(n), int(m), int(k), y, false, pool);
}

// out[c * rows + r] = in[r * stride + c] for r < rows, c < cols, through 16x16 tiles.
void transpose(const float* in, int64_t rows, int64_t cols, int64_t stride, float* out, ThreadPool& pool) {
  constexpr int64_t kT = 16;
  const int64_t col_tiles = (cols + kT - 1) / kT;
  pool.parallel_for(col_tiles, 4, [&](int64_t t0, int64_t t1, int) {
    float tile[kT][kT];
    for (int64_t ct = t0; ct < t1; ++ct) {
      const int64_t c0 = ct * kT, nc = std::min(kT, cols - c0);
      for (int64_t r0 = 0; r0 < rows; r0 += kT) {
        const int64_t nr = std::min(kT, rows - r0);
        if (nr == kT && nc == kT) {
          for (int64_t r = 0; r < kT; ++r)
            for (int64_t c = 0; c < kT; ++c) tile[c][r] = in[(r0 + r) * stride + c0 + c];
          for (int64_t c = 0; c < kT; ++c)
            for (int64_t r = 0; r < kT; ++r) out[(c0 + c) * rows + r0 + r] = tile[c][r];
        } else {
          for (int64_t r = 0; r < nr; ++r)
            for (int64_t c = 0; c < nc; ++c) out[(c0 + c) * rows + r0 + r] = in[(r0 + r) * stride + c0 + c];
        }
      }
    }
  });
}

// c[m, k] += a[n, m]^T · b[n, k] (a weight gradient dW += dy^T x); rows of a are lda apart.
// Tiles of at most kRows rows of a and b and a column range of a are transposed and handed
// to the GEMM, so scratch stays bounded however large n and m are; the tiling does
// not depend on the thread count, so neither does the result. kRows is no multiple of a
// large power of two: transposed rows that far apart would compete for the same cache sets.
void add_at_b(const float* a, int64_t lda, const float* b, int64_t n, int64_t m, int64_t k, float* c,
              HeadsWorkspace& ws, ThreadPool& pool) {
  if (n == 0 || m == 0 || k == 0) return;
  constexpr int64_t kRows = 1008;
  const int64_t nt_max = std::min(n, kRows);
  const int64_t mt_max = std::min(m, std::max<int64_t>(16, (int64_t(1) << 21) / nt_max));
  float* bt = grow(ws.tile_b, size_t(k * nt_max));       // [k, nt]
  float* at = grow(ws.tile_a, size_t(mt_max * nt_max));  // [mt, nt]
  float* tmp = grow(ws.tile_c, size_t(mt_max * k));      // [mt, k]
  for (int64_t n0 = 0; n0 < n; n0 += kRows) {
    const int64_t nt = std::min(kRows, n - n0);
    transpose(b + n0 * k, nt, k, k, bt, pool);
    for (int64_t m0 = 0; m0 < m; m0 += mt_max) {
      const int64_t mt = std::min(mt_max, m - m0);
      transpose(a + n0 * lda + m0, nt, mt, lda, at, pool);
      linear(at, bt, mt, k, nt, tmp, pool);  // tmp[i, j] = Σ_t a[n0 + t, m0 + i] b[n0 + t, j]
      float* cm = c + m0 * k;
      pool.parallel_for(mt * k, 1 << 14, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) cm[i] += tmp[i];
      });
    }
  }
}

// dst[n, dst_cols] (+)= src columns [col, col + cols) of src[n, src_cols], row by row.
void add_columns(const float* src, int64_t src_cols, int64_t col, int64_t n, int64_t cols, float* dst,
                 ThreadPool& pool) {
  pool.parallel_for(n, std::max<int64_t>(1, 4096 / std::max<int64_t>(cols, 1)),
                    [&](int64_t r0, int64_t r1, int) {
                      for (int64_t row = r0; row < r1; ++row) {
                        const float* s = src + row * src_cols + col;
                        float* o = dst + row * cols;
                        for (int64_t i = 0; i < cols; ++i) o[i] += s[i];
                      }
                    });
}

// bias_grad[m] += Σ_rows g[row, m], in row order.
void add_column_sums(const float* g, int64_t n, int64_t m, float* bias_grad) {
  for (int64_t i = 0; i < m; ++i) {
    double s = 0;
    for (int64_t row = 0; row < n; ++row) s += g[row * m + i];
    bias_grad[i] += float(s);
  }
}

// Normal(0, std) values from Rng (Box-Muller), deterministic for a seed.
void fill_normal(std::vector<float>& v, float std_dev, Rng& rng) {
  for (size_t i = 0; i < v.size(); i += 2) {
    const double u1 = (double(rng.uniform()) + 0x1p-25), u2 = rng.uniform();  // u1 in (0, 1)
    const double radius = std::sqrt(-2.0 * std::log(u1)), angle = 2.0 * 3.14159265358979323846 * u2;
    v[i] = float(std_dev * radius * std::cos(angle));
    if (i + 1 < v.size()) v[i + 1] = float(std_dev * radius * std::sin(angle));
  }
}

// One call over a batch: the forward pieces in order, then (optionally) the backward ones.
class HeadsPass {
 public:
  HeadsPass(DraftHeadsTrain& heads, const HeadBatch& batch, const LossWeights& lw, ThreadPool& pool)
      : H_(heads),
        b_(batch),
        lw_(lw),
        pool_(pool),
        ws_(*heads.ws),
        n_(batch.n_rows),
        d_(heads.d),
        r_(heads.r),
        V_(heads.V),
        B_(batch.block_size) {
    check();
  }

  // The forward pass up to the loss terms. L: [n, V] buffer that receives the logits; with
  // `grad` it is overwritten by d loss / d l (row by row) and d_conf is filled.
  LossTerms forward(float* L, bool grad, const HeadForwardIO& io) {
    embed();
    markov_forward();
    logits(L);
    confidence_logits();
    return losses(L, grad, io);
  }

  // After forward(L, true): d_l = L; sets d_h and adds the parameter gradients.
  void backward(const float* d_l, float* d_h) {
    std::fill_n(d_h, size_t(n_) * size_t(d_), 0.0f);
    if (H_.has_markov()) markov_backward(d_l, d_h);
    if (H_.confidence) confidence_backward(d_h);
    if (uses_prev()) {
      // dW1[x_{k-1}] += d_e, in row order (rows may share a previous token).
      const float* de = ws_.d_e.data();
      for (int64_t row = 0; row < n_; ++row) {
        float* g = H_.w1.g() + int64_t(b_.prev[row]) * r_;
        const float* s = de + row * r_;
        for (int64_t i = 0; i < r_; ++i) g[i] += s[i];
      }
    }
  }

 private:
  bool uses_prev() const { return H_.has_markov() || (H_.confidence && H_.confidence_with_markov); }
  int64_t rows_grain(int64_t width) const {
    return std::max<int64_t>(1, 16384 / std::max<int64_t>(width, 1));
  }

  void check() const {
    if (B_ <= 0) fail("drafter heads batch: block_size is ", B_, ", expected at least 1");
    if (n_ < 0 || n_ % B_ != 0)
      fail("drafter heads batch: n_rows ", n_, " is not a whole number of blocks of ", B_);
    if (!(b_.weight_sum > 0) || !std::isfinite(b_.weight_sum))
      fail("drafter heads batch: weight_sum is ", b_.weight_sum, ", expected a positive number");
    if (n_ == 0) return;
    if (!b_.h || !b_.base_logits || !b_.labels || !b_.weights)
      fail("drafter heads batch: h, base_logits, labels and weights are required");
    if (uses_prev() && !b_.prev) fail("drafter heads batch: prev (x_{k-1}) is required by the Markov head");
    const bool need_pt = lw_.l1 != 0.0f || (H_.confidence && lw_.conf != 0.0f);
    if (need_pt && !b_.target_probs)
      fail("drafter heads batch: target_probs is required for the L1 and confidence losses (weights l1 ",
           lw_.l1, ", conf ", lw_.conf, ")");
    for (int64_t row = 0; row < n_; ++row) {
      const float w = b_.weights[row];
      if (!(w >= 0.0f) || !std::isfinite(w))
        fail("drafter heads batch: row ", row, " has weight ", w, ", expected a finite number >= 0");
      if (w > 0.0f && (b_.labels[row] < 0 || b_.labels[row] >= V_))
        fail("drafter heads batch: row ", row, " has label ", b_.labels[row], ", outside the vocabulary (",
             V_, ")");
      if (uses_prev() && (b_.prev[row] < 0 || b_.prev[row] >= V_))
        fail("drafter heads batch: row ", row, " has previous token ", b_.prev[row],
             ", outside the vocabulary (", V_, ")");
    }
  }

  // e[row] = W1[x_{k-1}]
  void embed() {
    if (!uses_prev()) return;
    float* e = grow(ws_.e, size_t(n_) * size_t(r_));
    const float* w1 = H_.w1.w();
    pool_.parallel_for(n_, rows_grain(r_), [&](int64_t r0, int64_t r1, int) {
      for (int64_t row = r0; row < r1; ++row)
        std::memcpy(e + row * r_, w1 + int64_t(b_.prev[row]) * r_, size_t(r_) * sizeof(float));
    });
  }

  // The vector u that W2 multiplies (for vanilla, e itself).
  const float* w2_input() const {
    return H_.markov_type == MarkovHead::Vanilla ? ws_.e.data() : ws_.u.data();
  }

  void markov_forward() {
    const int64_t n = n_, d = d_, r = r_;
    switch (H_.markov_type) {
      case MarkovHead::None:
      case MarkovHead::Vanilla:
        return;
      case MarkovHead::Gated: {
        float* z = grow(ws_.z, size_t(n * (d + r)));  // [h ; e]
        float* gate = grow(ws_.act, size_t(n * r));
        float* u = grow(ws_.u, size_t(n * r));
        const float* e = ws_.e.data();
        concat_rows(b_.h, d, e, r, z);
        linear(z, H_.gate_w.w(), n, r, d + r, gate, pool_);
        const float* bias = H_.gate_b.w();
        pool_.parallel_for(n, rows_grain(r), [&](int64_t r0, int64_t r1, int) {
          for (int64_t row = r0; row < r1; ++row)
            for (int64_t i = 0; i < r; ++i) {
              float& g = gate[row * r + i];
              g = sigmoid(g + bias[i]);
              u[row * r + i] = g * e[row * r + i];
            }
        });
        return;
      }
      case MarkovHead::Rnn:
        rnn_forward();
        return;
    }
  }

  // out[row] = [a[row] ; b[row]]
  void concat_rows(const float* a, int64_t na, const float* b, int64_t nb, float* out) {
    pool_.parallel_for(n_, rows_grain(na + nb), [&](int64_t r0, int64_t r1, int) {
      for (int64_t row = r0; row < r1; ++row) {
        std::memcpy(out + row * (na + nb), a + row * na, size_t(na) * sizeof(float));
        std::memcpy(out + row * (na + nb) + na, b + row * nb, size_t(nb) * sizeof(float));
      }
    });
  }

  // joint_proj([s ; e ; h]) = J_s · s + J_eh · [e ; h]: the second part for every row at
  // once, then block position by block position the recurrent part for all blocks together.
  void rnn_forward() {
    const int64_t n = n_, d = d_, r = r_, nb = n_ / B_, zw = 2 * r + d;
    const float* J = H_.joint_w.w();
    float* j_s = grow(ws_.j_s, size_t(3 * r * r));
    float* j_eh = grow(ws_.j_eh, size_t(3 * r * (r + d)));
    for (int64_t i = 0; i < 3 * r; ++i) {
      std::memcpy(j_s + i * r, J + i * zw, size_t(r) * sizeof(float));
      std::memcpy(j_eh + i * (r + d), J + i * zw + r, size_t(r + d) * sizeof(float));
    }
    float* eh = grow(ws_.eh, size_t(n * (r + d)));
    float* act = grow(ws_.act, size_t(n * 3 * r));  // pre-activations, then activations
    float* z = grow(ws_.z, size_t(n * zw));
    float* state = grow(ws_.state, size_t(n * r));
    float* u = grow(ws_.u, size_t(n * r));
    float* s_prev = grow(ws_.step_a, size_t(nb * r));   // [nb, r]   s_{k-1} of each block
    float* rec = grow(ws_.step_b, size_t(nb * 3 * r));  // [nb, 3r]  J_s · s_{k-1}
    concat_rows(ws_.e.data(), r, b_.h, d, eh);
    linear(eh, j_eh, n, 3 * r, r + d, act, pool_);
    const float* bias = H_.joint_b.w();
    for (int k = 0; k < B_; ++k) {
      if (k > 0) {
        for (int64_t blk = 0; blk < nb; ++blk)
          std::memcpy(s_prev + blk * r, state + (blk * B_ + k - 1) * r, size_t(r) * sizeof(float));
        linear(s_prev, j_s, nb, 3 * r, r, rec, pool_);
      }
      pool_.parallel_for(nb, rows_grain(3 * r), [&](int64_t b0, int64_t b1, int) {
        for (int64_t blk = b0; blk < b1; ++blk) {
          const int64_t row = blk * B_ + k;
          float* a = act + row * 3 * r;
          float* zr = z + row * zw;
          float* s = state + row * r;
          for (int64_t i = 0; i < 3 * r; ++i) a[i] += bias[i] + (k > 0 ? rec[blk * 3 * r + i] : 0.0f);
          for (int64_t i = 0; i < r; ++i) {
            const float sp = k > 0 ? s_prev[blk * r + i] : 0.0f;
            const float g = sigmoid(a[i]), c = std::tanh(a[r + i]), o = std::tanh(a[2 * r + i]);
            a[i] = g;
            a[r + i] = c;
            a[2 * r + i] = o;
            s[i] = g * sp + (1.0f - g) * c;
            u[row * r + i] = o;
            zr[i] = sp;
          }
          std::memcpy(zr + r, eh + row * (r + d), size_t(r + d) * sizeof(float));
        }
      });
    }
  }

  // L = U + W2 · u
  void logits(float* L) {
    const int64_t V = V_;
    if (H_.has_markov()) linear(w2_input(), H_.w2.w(), n_, V, r_, L, pool_);
    const bool add = H_.has_markov();
    pool_.parallel_for(n_, rows_grain(V), [&](int64_t r0, int64_t r1, int) {
      for (int64_t row = r0; row < r1; ++row) {
        float* l = L + row * V;
        const float* U = b_.base_logits + row * V;
        if (add)
          for (int64_t i = 0; i < V; ++i) l[i] = U[i] + l[i];
        else
          std::memcpy(l, U, size_t(V) * sizeof(float));
      }
    });
  }

  // x = w_c · [h ; e] + b_c
  void confidence_logits() {
    if (!H_.confidence) return;
    const int64_t in = H_.conf_w.size();
    float* x = grow(ws_.conf_x, size_t(n_));
    if (H_.confidence_with_markov) {
      float* zc = grow(ws_.zc, size_t(n_ * in));
      concat_rows(b_.h, d_, ws_.e.data(), r_, zc);
      linear(zc, H_.conf_w.w(), n_, 1, in, x, pool_);
    } else {
      linear(b_.h, H_.conf_w.w(), n_, 1, in, x, pool_);
    }
    const float bias = H_.conf_b.w()[0];
    for (int64_t row = 0; row < n_; ++row) x[row] += bias;
  }

  LossTerms losses(float* L, bool grad, const HeadForwardIO& io) {
    const int64_t V = V_;
    double *ce = grow_d(ws_.ce), *l1 = grow_d(ws_.l1), *conf = grow_d(ws_.conf);
    float* conf_t = grow(ws_.conf_t, size_t(n_));
    float* d_conf = grow(ws_.d_conf, size_t(n_));
    float* probs = grad ? nullptr : grow(ws_.probs, size_t(pool_.size()) * size_t(V));
    const float* x = ws_.conf_x.data();
    const double W = b_.weight_sum;
    const bool have_pt = b_.target_probs != nullptr;
    const bool conf_on = H_.confidence && (have_pt || io.fixed_conf_targets);
    pool_.parallel_for(n_, rows_grain(V), [&](int64_t r0, int64_t r1, int thread) {
      for (int64_t row = r0; row < r1; ++row) {
        float* l = L + row * V;
        const float w = b_.weights[row];
        ce[row] = l1[row] = conf[row] = 0;
        conf_t[row] = 0;
        d_conf[row] = 0;
        if (w == 0.0f) {
          if (grad) std::fill_n(l, V, 0.0f);
          continue;
        }
        const int label = b_.labels[row];
        const float* pt = have_pt ? b_.target_probs + row * V : nullptr;
        float* p = grad ? l : probs + int64_t(thread) * V;  // in place: L becomes p_d, then d_l
        const float l_label = l[label];
        ce[row] = softmax_lse(l, int(V), p) - double(l_label);
        if (pt) {
          l1[row] = l1_distance(p, pt, int(V));
          conf_t[row] = confidence_target(l1[row]);
        }
        if (io.fixed_conf_targets) conf_t[row] = io.fixed_conf_targets[row];
        const float scale = float(double(w) / W);
        if (conf_on) {
          conf[row] = bce_with_logit(x[row], conf_t[row]);
          d_conf[row] = lw_.conf * scale * (sigmoid(x[row]) - conf_t[row]);
        }
        if (grad) logits_grad(p, pt, label, int(V), lw_.ce * scale, pt ? lw_.l1 * scale : 0.0f, l);
      }
    });
    LossTerms t;
    for (int64_t row = 0; row < n_; ++row) {
      const double w = b_.weights[row];
      t.ce += w * ce[row];
      t.l1 += w * l1[row];
      t.conf += w * conf[row];
    }
    t.ce /= W;
    t.l1 /= W;
    t.conf /= W;
    t.total = double(lw_.ce) * t.ce + double(lw_.l1) * t.l1 + double(lw_.conf) * t.conf;
    if (io.conf_logits && H_.confidence) std::copy_n(x, n_, io.conf_logits);
    if (io.conf_targets) std::copy_n(conf_t, n_, io.conf_targets);
    return t;
  }

  double* grow_d(std::vector<double>& v) {
    if (v.size() < size_t(n_)) v.resize(size_t(n_));
    return v.data();
  }

  void markov_backward(const float* d_l, float* d_h) {
    const int64_t n = n_, d = d_, r = r_, V = V_;
    // d_u = d_l · W2;  dW2 += d_l^T · u
    float* w2t = grow(ws_.w_t, size_t(r * V));
    transpose(H_.w2.w(), V, r, r, w2t, pool_);
    float* d_u = grow(ws_.d_u, size_t(n * r));
    linear(d_l, w2t, n, r, V, d_u, pool_);
    add_at_b(d_l, V, w2_input(), n, V, r, H_.w2.g(), ws_, pool_);
    float* d_e = grow(ws_.d_e, size_t(n * r));
    switch (H_.markov_type) {
      case MarkovHead::None:
        return;
      case MarkovHead::Vanilla:
        std::copy_n(d_u, n * r, d_e);
        return;
      case MarkovHead::Gated: {
        // u = g ⊙ e, g = sigmoid(a): d_a = d_u ⊙ e ⊙ g (1 - g); d_e = d_u ⊙ g + (d_a · G)[:, d:]
        const float* gate = ws_.act.data();
        const float* e = ws_.e.data();
        float* d_a = grow(ws_.d_pre, size_t(n * r));
        pool_.parallel_for(n, rows_grain(r), [&](int64_t r0, int64_t r1, int) {
          for (int64_t i = r0 * r; i < r1 * r; ++i) {
            d_a[i] = d_u[i] * e[i] * gate[i] * (1.0f - gate[i]);
            d_e[i] = d_u[i] * gate[i];
          }
        });
        add_at_b(d_a, r, ws_.z.data(), n, r, d + r, H_.gate_w.g(), ws_, pool_);
        add_column_sums(d_a, n, r, H_.gate_b.g());
        float* gt = grow(ws_.w_t, size_t((d + r) * r));  // gate_proj^T [d+r, r]
        transpose(H_.gate_w.w(), r, d + r, d + r, gt, pool_);
        float* d_z = grow(ws_.d_z, size_t(n * (d + r)));
        linear(d_a, gt, n, d + r, r, d_z, pool_);
        add_columns(d_z, d + r, 0, n, d, d_h, pool_);
        add_columns(d_z, d + r, d, n, r, d_e, pool_);
        return;
      }
      case MarkovHead::Rnn:
        rnn_backward(d_u, d_e, d_h);
        return;
    }
  }

  // Back-propagation through the block: position by position from the last, the gradient
  // of s_k (ds) for every block at once.
  void rnn_backward(const float* d_u, float* d_e, float* d_h) {
    const int64_t n = n_, d = d_, r = r_, nb = n_ / B_, zw = 2 * r + d;
    const float* act = ws_.act.data();
    const float* z = ws_.z.data();
    float* d_pre = grow(ws_.d_pre, size_t(n * 3 * r));
    float* ds = grow(ws_.step_a, size_t(nb * r));          // [nb, r]   d loss / d s_k
    float* d_step = grow(ws_.step_b, size_t(nb * 3 * r));  // [nb, 3r] d_pre of position k
    float* ds_rec = grow(ws_.step_c, size_t(nb * r));      // [nb, r]   J_s^T · d_pre
    float* j_s_t = grow(ws_.j_s_t, size_t(r * 3 * r));     // J_s^T [r, 3r]
    transpose(ws_.j_s.data(), 3 * r, r, r, j_s_t, pool_);
    std::fill_n(ds, nb * r, 0.0f);
    for (int k = B_ - 1; k >= 0; --k) {
      pool_.parallel_for(nb, rows_grain(3 * r), [&](int64_t b0, int64_t b1, int) {
        for (int64_t blk = b0; blk < b1; ++blk) {
          const int64_t row = blk * B_ + k;
          const float* a = act + row * 3 * r;  // [g ; c ; o] activations
          const float* sp = z + row * zw;      // s_{k-1}
          const float* du = d_u + row * r;
          float* dp = d_pre + row * 3 * r;
          float* dsb = ds + blk * r;
          for (int64_t i = 0; i < r; ++i) {
            const float g = a[i], c = a[r + i], o = a[2 * r + i], dsi = dsb[i];
            dp[i] = dsi * (sp[i] - c) * g * (1.0f - g);
            dp[r + i] = dsi * (1.0f - g) * (1.0f - c * c);
            dp[2 * r + i] = du[i] * (1.0f - o * o);
            dsb[i] = dsi * g;  // the direct path s_{k-1} -> s_k; the recurrent one is added below
          }
          std::memcpy(d_step + blk * 3 * r, dp, size_t(3 * r) * sizeof(float));
        }
      });
      if (k > 0) {
        linear(d_step, j_s_t, nb, r, 3 * r, ds_rec, pool_);
        for (int64_t i = 0; i < nb * r; ++i) ds[i] += ds_rec[i];
      }
    }
    add_at_b(d_pre, 3 * r, z, n, 3 * r, zw, H_.joint_w.g(), ws_, pool_);
    add_column_sums(d_pre, n, 3 * r, H_.joint_b.g());
    // [d_e ; d_h] = d_pre · J_eh
    float* j_eh_t = grow(ws_.w_t, size_t((r + d) * 3 * r));
    transpose(ws_.j_eh.data(), 3 * r, r + d, r + d, j_eh_t, pool_);
    float* d_eh = grow(ws_.d_z, size_t(n * (r + d)));
    linear(d_pre, j_eh_t, n, r + d, 3 * r, d_eh, pool_);
    std::fill_n(d_e, n * r, 0.0f);
    add_columns(d_eh, r + d, 0, n, r, d_e, pool_);
    add_columns(d_eh, r + d, r, n, d, d_h, pool_);
  }

  void confidence_backward(float* d_h) {
    const int64_t n = n_, d = d_, r = r_, in = H_.conf_w.size();
    const float* dx = ws_.d_conf.data();
    const float* zin = H_.confidence_with_markov ? ws_.zc.data() : b_.h;
    float* gw = H_.conf_w.g();
    double gb = 0;
    for (int64_t row = 0; row < n; ++row) {
      if (dx[row] == 0.0f) continue;
      for (int64_t i = 0; i < in; ++i) gw[i] += dx[row] * zin[row * in + i];
      gb += dx[row];
    }
    H_.conf_b.g()[0] += float(gb);
    const float* wc = H_.conf_w.w();
    float* d_e = H_.confidence_with_markov ? ws_.d_e.data() : nullptr;
    pool_.parallel_for(n, rows_grain(in), [&](int64_t r0, int64_t r1, int) {
      for (int64_t row = r0; row < r1; ++row) {
        const float g = dx[row];
        if (g == 0.0f) continue;
        for (int64_t i = 0; i < d; ++i) d_h[row * d + i] += g * wc[i];
        if (d_e)
          for (int64_t i = 0; i < r; ++i) d_e[row * r + i] += g * wc[d + i];
      }
    });
  }

  DraftHeadsTrain& H_;
  const HeadBatch& b_;
  const LossWeights& lw_;
  ThreadPool& pool_;
  HeadsWorkspace& ws_;
  const int64_t n_, d_, r_, V_;
  const int B_;
};

}  // namespace

DraftHeadsTrain::DraftHeadsTrain(const DSparkConfig& c)
    : markov_type(c.markov_head),
      confidence(c.confidence_head),
      confidence_with_markov(c.confidence_head && c.confidence_with_markov),
      d(c.dim()),
      r(c.markov_rank),
      V(c.vocab_size()),
      ws(std::make_unique<HeadsWorkspace>()) {
  if (d <= 0 || V <= 0) fail("drafter heads: hidden size ", d, " and vocabulary ", V, " must be positive");
  if (r < 0) fail("drafter heads: markov_rank is ", r, ", expected >= 0");
  if ((r > 0) != has_markov())
    fail("drafter heads: markov_head_type is ", markov_head_name(markov_type), " but markov_rank is ", r);
  if (confidence_with_markov && r == 0)
    fail("drafter heads: a confidence head with Markov input needs markov_rank > 0");
  const int64_t d64 = d, r64 = r, V64 = V;
  if (r > 0) {
    w1 = make_param("markov_head.markov_w1.weight", {V64, r64});
    w2 = make_param("markov_head.markov_w2.weight", {V64, r64});
  }
  if (markov_type == MarkovHead::Gated) {
    gate_w = make_param("markov_head.gate_proj.weight", {r64, d64 + r64});
    gate_b = make_param("markov_head.gate_proj.bias", {r64});
  }
  if (markov_type == MarkovHead::Rnn) {
    joint_w = make_param("markov_head.joint_proj.weight", {3 * r64, 2 * r64 + d64});
    joint_b = make_param("markov_head.joint_proj.bias", {3 * r64});
  }
  if (confidence) {
    conf_w = make_param("confidence_head.proj.weight", {1, d64 + (confidence_with_markov ? r64 : 0)});
    conf_b = make_param("confidence_head.proj.bias", {1});
  }
}

DraftHeadsTrain::~DraftHeadsTrain() = default;
DraftHeadsTrain::DraftHeadsTrain(DraftHeadsTrain&&) noexcept = default;
DraftHeadsTrain& DraftHeadsTrain::operator=(DraftHeadsTrain&&) noexcept = default;

std::vector<Param*> DraftHeadsTrain::params() {
  std::vector<Param*> out;
  for (Param* p : {&w1, &w2, &gate_w, &gate_b, &joint_w, &joint_b, &conf_w, &conf_b})
    if (!p->empty()) out.push_back(p);
  return out;
}

void DraftHeadsTrain::init(uint64_t seed) {
  Rng rng(seed);
  for (Param* p : params()) {
    if (p->shape.size() == 2)
      fill_normal(p->value, 0.02f, rng);
    else
      std::fill(p->value.begin(), p->value.end(), 0.0f);
  }
}

void DraftHeadsTrain::zero_grad() {
  for (Param* p : params()) std::fill(p->grad.begin(), p->grad.end(), 0.0f);
}

void DraftHeadsTrain::view_weights(DSparkWeights& w) const {
  auto view = [](const Param& p, TensorView& t) {
    t = TensorView{};
    if (p.empty()) return;
    t.name = p.name;
    t.type = DType::F32;
    t.shape = p.shape;
    t.data = p.w();
  };
  view(w1, w.markov_w1);
  view(w2, w.markov_w2);
  view(gate_w, w.gate_proj);
  view(gate_b, w.gate_bias);
  view(joint_w, w.joint_proj);
  view(joint_b, w.joint_bias);
  view(conf_w, w.confidence);
  view(conf_b, w.confidence_bias);
}

LossTerms heads_forward(DraftHeadsTrain& heads, const HeadBatch& batch, const LossWeights& lw,
                        ThreadPool& pool, const HeadForwardIO& io) {
  HeadsPass pass(heads, batch, lw, pool);
  float* L = io.logits ? io.logits : grow(heads.ws->logits, size_t(batch.n_rows) * size_t(heads.V));
  return pass.forward(L, false, io);
}

LossTerms heads_forward_backward(DraftHeadsTrain& heads, const HeadBatch& batch, const LossWeights& lw,
                                 float* d_h, float* d_logits, ThreadPool& pool) {
  HeadsPass pass(heads, batch, lw, pool);
  const LossTerms t = pass.forward(d_logits, true, {});
  pass.backward(d_logits, d_h);
  return t;
}

}  // namespace dspark
