// How close a model converted to another weight type stays to the fp32 model: both read the
// same tokens teacher-forced (every position sees the true text before it, never its own
// output), and their next-token distributions are compared position by position.
#pragma once

#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "model/model.h"

namespace dspark {

// A few hundred tokens of plain English in the style of children's stories (what the small
// test models were trained on), for when the caller gives no text of its own.
const char* default_quality_text();

// Logits at every position of `tokens` ([tokens.size(), vocab]), computed from an empty
// cache. Throws Error when the tokens do not fit the model's context.
std::vector<float> teacher_forced_logits(const Model& m, const std::vector<int>& tokens, ThreadPool& pool);

// Agreement of two models' next-token distributions over the positions that have a next
// token (tokens.size() - 1 of them).
struct DistributionStats {
  int positions = 0;
  double top1_agreement = 0;  // fraction of positions where both argmaxes are the same token
  double mean_kl = 0;         // mean KL(p_ref || p) in nats
  double max_kl = 0;
  double ppl_ref = 0;  // perplexity of tokens[1..] under the reference
  double ppl = 0;      // and under the compared model
};

// `ref` and `test` are [tokens.size(), vocab] logits; needs at least two tokens.
DistributionStats compare_distributions(const std::vector<float>& ref, const std::vector<float>& test,
                                        const std::vector<int>& tokens, int vocab);

struct TypeQuality {
  DType type = DType::F32;
  std::string skipped;      // why the type was not measured; "" when it was
  size_t weight_bytes = 0;  // bytes of weights read per token in this type
  DistributionStats stats;
};

// Converts `m` to each type in memory and compares it with `m` converted to F32. A type whose
// blocks do not divide the model's rows is reported as skipped with the reason.
std::vector<TypeQuality> measure_quant_quality(const Model& m, const std::vector<int>& tokens,
                                               const std::vector<DType>& types, ThreadPool& pool);

}  // namespace dspark
