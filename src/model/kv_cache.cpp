#include "model/kv_cache.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace dspark {

namespace {
// Attention walks a head's rows kv_dim apart, one 4 KiB page after another for common
// shapes: with small pages nearly every row costs a TLB miss. Asks for 2 MiB pages over
// the whole-huge-page interior of the buffer before its first touch (a hint; without
// transparent huge pages in "madvise" or "always" mode nothing changes).
void advise_huge_pages(void* data, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(1) << 21;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}
}  // namespace

KVCache::KVCache(const ModelConfig& c, int n_seqs, int capacity)
    : n_layers_(c.n_layers), n_seqs_(n_seqs), capacity_(capacity), kv_dim_(c.kv_dim()) {
  if (n_seqs <= 0 || capacity <= 0) fail("KV cache: need at least one sequence and one position");
  const size_t n = size_t(n_layers_) * 2 * size_t(n_seqs) * size_t(capacity) * size_t(kv_dim_);
  data_.reserve(n);
  advise_huge_pages(data_.data(), n * sizeof(float));
  data_.assign(n, 0.0f);
  lengths_.assign(size_t(n_seqs), 0);
}

void KVCache::truncate(int seq, int n) {
  if (seq < 0 || seq >= n_seqs_) fail("KV cache: no sequence ", seq);
  if (n < 0 || n > lengths_[size_t(seq)])
    fail("KV cache: cannot truncate sequence ", seq, " of length ", lengths_[size_t(seq)], " to ", n);
  lengths_[size_t(seq)] = n;
}

void KVCache::copy(int src, int dst) {
  if (src < 0 || src >= n_seqs_ || dst < 0 || dst >= n_seqs_)
    fail("KV cache: no sequence ", src, " or ", dst);
  const int n = lengths_[size_t(src)];
  for (int l = 0; l < n_layers_; ++l)
    for (int w = 0; w < 2; ++w)
      std::copy_n(data_.data() + offset(l, src, 0, w), size_t(n) * size_t(kv_dim_),
                  data_.data() + offset(l, dst, 0, w));
  lengths_[size_t(dst)] = n;
}

void KVCache::set_length(int seq, int n) {
  if (n > capacity_)
    fail("KV cache: sequence ", seq, " would grow to ", n, " positions, capacity is ", capacity_);
  lengths_[size_t(seq)] = n;
}

}  // namespace dspark
