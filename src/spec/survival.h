// What the schedulers sort: for one draft block, the calibrated confidence c_k of each
// draft and its survival a_k = c_1 ... c_k (DSPARK.md 5).
#pragma once

#include <vector>

#include "draft/drafter.h"
#include "spec/calibration.h"
#include "spec/stats.h"

namespace dspark {

// With a confidence head: c_k = sigma(logit_k / T_k) under `fit` (null: raw). Without one,
// c_k is position k's acceptance rate measured so far (`measured`), pulled towards position
// k-1's (1/2 for the first) by two rounds' worth of weight: a position not tried yet is
// expected to do as well as the one before it, so a good drafter's block keeps growing while a
// poor one's stays short. Fills both vectors with one entry per draft.
void draft_survival(const DraftBlock& block, const CalibrationFit* fit, const SpecStats& measured,
                    std::vector<float>& confidence, std::vector<float>& survival);

}  // namespace dspark
