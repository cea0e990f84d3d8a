#include "kernels/matmul.h"

#include <algorithm>
#include <memory>

#include "kernels/isa.h"
#include "kernels/matmul_kernels.h"

namespace dspark {

namespace {

using kernels::MatmulKernel;
using kernels::RowsArgs;

const MatmulKernel& kernel_for(Isa isa, DType type) {
  switch (isa) {
    case Isa::Avx512:
      return kernels::avx512_kernels()[size_t(type)];
    case Isa::Avx2:
      return kernels::avx2_kernels()[size_t(type)];
    case Isa::Scalar:
      break;
  }
  return kernels::scalar_kernels()[size_t(type)];
}

// Grow-only, 64-byte aligned scratch for the prepared activations of one calling thread.
class Scratch {
 public:
  uint8_t* get(size_t bytes) {
    if (bytes > size_) {  // grows geometrically, so a rising token count reallocates rarely
      size_ = std::max(bytes, size_ + size_ / 2);
      data_.reset(new (std::align_val_t(64)) uint8_t[size_]);
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(uint8_t* p) const { operator delete[](p, std::align_val_t(64)); }
  };
  std::unique_ptr<uint8_t[], Free> data_;
  size_t size_ = 0;
};

// A chunk handed to another thread should carry at least this many weight bytes (times
// tokens); below it the hand-off costs more than it saves.
constexpr size_t kMinChunkBytes = size_t(1) << 15;
// With more tokens than one kernel call takes, rows are processed in blocks whose weights
// stay in the L2 cache while every token tile passes over them; a multiple of 8 rows, so
// that kernels tiling several rows at a time have no remainder inside a block.
constexpr size_t kRowBlockBytes = size_t(1) << 18;
constexpr int64_t kRowBlockMultiple = 8;

}  // namespace

void matmul(const TensorView& w, const float* x, int n_tokens, float* y, ThreadPool& pool) {
  const int64_t rows = w.rows(), cols = w.cols();
  if (n_tokens <= 0 || rows == 0) return;
  const MatmulKernel& k = kernel_for(kernel_isa(), w.type);

  // Activations are prepared once per call, in parallel over tokens when there are many.
  const uint8_t* act = reinterpret_cast<const uint8_t*>(x);
  size_t act_stride = size_t(cols) * sizeof(float);
  if (k.act_bytes) {
    thread_local Scratch scratch;
    act_stride = k.act_bytes(cols);
    uint8_t* prepared = scratch.get(act_stride * size_t(n_tokens));
    if (n_tokens == 1)
      k.prepare(x, cols, prepared);
    else
      pool.parallel_for(n_tokens, std::max<int64_t>(1, 8192 / cols), [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) k.prepare(x + t * cols, cols, prepared + size_t(t) * act_stride);
      });
    act = prepared;
  }

  const size_t row_bytes = w.row_bytes();
  const int tile = k.max_tokens;
  const int64_t grain = std::max<int64_t>(1, int64_t(kMinChunkBytes / (row_bytes * size_t(n_tokens))));
  const int64_t block =
      n_tokens <= tile
          ? rows
          : std::max<int64_t>(1, int64_t(kRowBlockBytes / row_bytes) / kRowBlockMultiple) * kRowBlockMultiple;
  pool.parallel_for(rows, grain, [&](int64_t r0, int64_t r1, int) {
    for (int64_t b0 = r0; b0 < r1; b0 += block) {
      const int64_t b1 = std::min(r1, b0 + block);
      for (int t0 = 0; t0 < n_tokens; t0 += tile) {
        RowsArgs a;
        a.w = w.row(b0);
        a.w_stride = row_bytes;
        a.n_rows = b1 - b0;
        a.cols = cols;
        a.act = act + size_t(t0) * act_stride;
        a.act_stride = act_stride;
        a.n_tokens = std::min(tile, n_tokens - t0);
        a.y = y + int64_t(t0) * rows + b0;
        a.y_stride = rows;
        k.rows(a);
      }
    }
  });
}

}  // namespace dspark
