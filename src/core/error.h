// Errors: library code reports problems by throwing dspark::Error with a message that names
// the file, the field and what was expected. Front ends catch it and decide how to show it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace dspark {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Builds the message from any streamable pieces: fail("file.gguf: tensor '", name, "' ...").
template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  throw Error(os.str());
}

}  // namespace dspark
