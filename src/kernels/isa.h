// Instruction sets the CPU kernels are written for, chosen once at run time from CPUID.
// Each level has its own source files (matmul_<isa>.cpp) whose functions carry
// __attribute__((target(...))), so one binary runs everywhere and never executes an
// instruction the CPU lacks. Tests and benchmarks may force any level the machine has.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace dspark {

enum class Isa : uint8_t {
  Scalar,  // portable C++: the reference every other level is tested against
  Avx2,    // AVX2 + FMA + F16C
  Avx512,  // AVX-512 F/BW/VL/DQ + VNNI (+ F16C, FMA)
};

std::string_view isa_name(Isa isa);
// Whether this machine (CPU and OS) can run kernels of this level.
bool isa_supported(Isa isa);
// Every level this machine supports, lowest first.
std::vector<Isa> supported_isas();
// The best level this machine supports.
Isa best_isa();

// The level the kernels use now: best_isa() unless forced.
Isa kernel_isa();
// Forces a level (throws dspark::Error if the machine lacks it). Meant for tests and
// benchmarks; not synchronised with kernels running on other threads.
void set_kernel_isa(Isa isa);

// Forces a level for the lifetime of the guard, then restores the previous one.
class ScopedKernelIsa {
 public:
  explicit ScopedKernelIsa(Isa isa) : previous_(kernel_isa()) { set_kernel_isa(isa); }
  ~ScopedKernelIsa() { set_kernel_isa(previous_); }
  ScopedKernelIsa(const ScopedKernelIsa&) = delete;
  ScopedKernelIsa& operator=(const ScopedKernelIsa&) = delete;

 private:
  Isa previous_;
};

}  // namespace dspark
