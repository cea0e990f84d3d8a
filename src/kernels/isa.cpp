#include "kernels/isa.h"

#include <atomic>

#include "core/error.h"

namespace dspark {

namespace {

bool detect(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  switch (isa) {
    case Isa::Scalar:
      return true;
    case Isa::Avx2:
      return avx2;  // every AVX2 CPU has F16C
    case Isa::Avx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni");
  }
  return false;
#else
  return isa == Isa::Scalar;
#endif
}

Isa detect_best() {
  for (Isa isa : {Isa::Avx512, Isa::Avx2})
    if (detect(isa)) return isa;
  return Isa::Scalar;
}

std::atomic<Isa>& current() {
  static std::atomic<Isa> isa{best_isa()};
  return isa;
}

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return "scalar";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  static const bool supported[] = {detect(Isa::Scalar), detect(Isa::Avx2), detect(Isa::Avx512)};
  const size_t i = size_t(isa);
  return i < std::size(supported) && supported[i];
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

Isa best_isa() {
  static const Isa best = detect_best();
  return best;
}

Isa kernel_isa() { return current().load(std::memory_order_relaxed); }

void set_kernel_isa(Isa isa) {
  if (!isa_supported(isa)) fail("kernel ISA '", isa_name(isa), "' is not supported by this CPU");
  current().store(isa, std::memory_order_relaxed);
}

}  // namespace dspark
