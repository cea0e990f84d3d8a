// The interface between attention.cpp (dispatch) and the per-ISA attention kernels
// (attention_avx2.cpp, attention_avx512.cpp); the scalar reference lives in attention.cpp.
#pragma once

#include "kernels/attention.h"

namespace dspark::kernels {

void attention_scalar(const AttentionArgs& a);
void attention_avx2(const AttentionArgs& a);
void attention_avx512(const AttentionArgs& a);

// Scores row of query head h in the scratch.
inline float* scores_row(const AttentionArgs& a, int h) {
  return a.scores + size_t(h) * ((size_t(a.n_ctx) + 15) / 16 * 16);
}

}  // namespace dspark::kernels
