#include "chi_square.h"

#include <cmath>
#include <sstream>

namespace dspark::test {

namespace {

// Regularised upper incomplete gamma Q(a, x) (Numerical Recipes' series / continued fraction).
double gamma_q(double a, double x) {
  if (x <= 0) return 1.0;
  const double gln = std::lgamma(a);
  if (x < a + 1) {
    double sum = 1.0 / a, del = sum, ap = a;
    for (int i = 0; i < 1000 && std::fabs(del) > std::fabs(sum) * 1e-15; ++i) sum += del *= x / ++ap;
    return 1.0 - sum * std::exp(-x + a * std::log(x) - gln);
  }
  double b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
  for (int i = 1; i < 1000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (std::fabs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < 1e-15) break;
  }
  return std::exp(-x + a * std::log(x) - gln) * h;
}

}  // namespace

ChiSquare chi_square(const std::map<int, int>& observed, const std::map<int, double>& expected, int n) {
  ChiSquare r;
  std::ostringstream t;
  for (const auto& [id, count] : observed)
    if (!expected.count(id) || expected.at(id) <= 0) {
      t << "token " << id << " observed " << count << " times, expected probability 0\n";
      r.p_value = 0;
      r.table = t.str();
      return r;
    }
  double pooled_obs = 0, pooled_exp = 0;
  int bins = 0;
  for (const auto& [id, p] : expected) {
    const double e = p * n;
    const double o = observed.count(id) ? observed.at(id) : 0;
    t << "token " << id << ": observed " << o << ", expected " << e << "\n";
    if (e < 5) {
      pooled_obs += o;
      pooled_exp += e;
      continue;
    }
    r.statistic += (o - e) * (o - e) / e;
    ++bins;
  }
  if (pooled_exp > 0) {
    r.statistic += (pooled_obs - pooled_exp) * (pooled_obs - pooled_exp) / pooled_exp;
    ++bins;
  }
  r.dof = bins - 1;
  r.p_value = r.dof > 0 ? gamma_q(r.dof / 2.0, r.statistic / 2.0) : 1.0;
  r.table = t.str();
  return r;
}

}  // namespace dspark::test
