// libFuzzer target: the safetensors reader must turn any input into a SafetensorsFile or an
// Error, and every view it hands out must lie inside the input.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = dspark::SafetensorsFile::parse(data, size, "fuzz");
    // Touch the first and last byte of every view: AddressSanitizer flags one that escapes.
    volatile uint8_t sink = 0;
    for (const auto& [name, e] : f->tensors()) {
      if (e.view.empty() || e.view.nbytes() == 0) continue;
      const auto* p = static_cast<const uint8_t*>(e.view.data);
      sink = sink ^ p[0] ^ p[e.view.nbytes() - 1];
    }
  } catch (const dspark::Error&) {
  }
  return 0;
}
