// The checkpoint layout of DSPARK.md 3.3 as one table: every tensor's name, its place in
// DSparkWeights and its shape for a configuration. The loader, the shape checks and the
// writer all read this table, so they cannot disagree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "draft/dspark_model.h"

namespace dspark {

struct DSparkSlot {
  std::string name;  // checkpoint name, no "model." prefix
  TensorView* view;
  std::vector<int64_t> shape;
  bool f32;       // a norm or bias: converted to fp32 on load
  bool optional;  // embed_tokens / lm_head: the target's may be used instead
};

// The tensors a checkpoint with this configuration holds, in checkpoint order.
std::vector<DSparkSlot> dspark_layout(const DSparkConfig& c, DSparkWeights& w);

}  // namespace dspark
