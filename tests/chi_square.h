// Pearson's chi-square goodness-of-fit test for the statistical tests of lossless sampling.
#pragma once

#include <map>
#include <string>

namespace dspark::test {

struct ChiSquare {
  double statistic = 0;
  int dof = 0;
  double p_value = 1;
  std::string table;  // observed vs expected per bin, for failure messages
};

// observed: counts per outcome; expected: probabilities per outcome (summing to 1). Outcomes
// whose expected count is below 5 are pooled into one bin, as the test requires. An observed
// outcome with probability 0 gives p_value 0.
ChiSquare chi_square(const std::map<int, int>& observed, const std::map<int, double>& expected, int n);

}  // namespace dspark::test
