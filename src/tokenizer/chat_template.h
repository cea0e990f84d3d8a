// Turning a chat (system / user / assistant messages) into the prompt text a model was
// trained on, from the model's own chat template.
#pragma once

#include <string>
#include <vector>

namespace dspark {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

}  // namespace dspark
