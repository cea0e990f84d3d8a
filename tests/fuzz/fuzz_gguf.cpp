// libFuzzer target: the GGUF reader must turn any input into a GgufFile or an Error, and
// every view it hands out must lie inside the input.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = dspark::GgufFile::parse(data, size, "fuzz");
    // Touch the first and last byte of every view: AddressSanitizer flags one that escapes.
    volatile uint8_t sink = 0;
    for (const dspark::GgufTensor& t : f->tensors()) {
      if (!t.supported() || t.view.nbytes() == 0) continue;
      const auto* p = static_cast<const uint8_t*>(t.view.data);
      sink = sink ^ p[0] ^ p[t.view.nbytes() - 1];
    }
    // The getters must fail cleanly on whatever types the keys turned out to have.
    for (const auto& kv : f->metadata()) {
      try {
        f->get_float(kv.first);
      } catch (const dspark::Error&) {
      }
      try {
        f->get_int_array(kv.first);
      } catch (const dspark::Error&) {
      }
    }
  } catch (const dspark::Error&) {
  }
  return 0;
}
