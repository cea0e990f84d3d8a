// Text-level stop sequences for a streamed generation. A stop string may span several
// pieces, so text that could still be the start of one is held back until the next piece
// decides it; what is emitted never contains a stop string or anything after it.
#pragma once

#include <string>
#include <vector>

namespace dspark {

class StopMatcher {
 public:
  // Empty strings are ignored (one would stop before any text); no stops: everything passes.
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends a piece of generated text and returns the text now safe to emit. When a stop
  // string completes, returns the text before it and stopped() becomes true; later pushes
  // return "". If this piece completes several, the one starting earliest ends the text (a
  // longer stop that started even earlier but is not complete yet does not: generation ends
  // here, as it does for a server that checks the whole text after each token). Held-back text always starts
  // where a stop string could start, so a piece of whole UTF-8 characters never comes back cut inside a
  // character.
  std::string push(const std::string& piece);
  // The text still held back when generation ends for another reason ("" once stopped).
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;  // no stop string inside; its only part that could begin one is a suffix
  bool stopped_ = false;
};

}  // namespace dspark
