// Loading a model and its tokenizer from any supported file into one description.
//   a directory           Hugging Face: config.json + *.safetensors (+ tokenizer.json)
//   *.gguf                GGUF with its embedded tokenizer
//   anything else         llama2.c checkpoint (legacy or version 2), tokenizer beside it
#pragma once

#include <memory>
#include <string>

#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace dspark {

struct LoadedModel {
  std::shared_ptr<Model> model;
  std::shared_ptr<Tokenizer> tokenizer;
};

// `tokenizer_path` overrides the tokenizer found with the model (required for a llama2.c
// file with no tokenizer beside it). Throws Error naming the file and the problem.
LoadedModel load_model(const std::string& path, const std::string& tokenizer_path = "");

// The project's default model: $DSPARK_MODEL_DIR, else the source tree's models folder
// fixed at build time, else the install prefix's share folder. Throws Error listing where
// it looked when none has a model.
std::string default_model_path();

// The drafter that ships with a default model: the folder `default-dspark` beside it, or ""
// when there is none.
std::string default_drafter_path(const std::string& default_model);

}  // namespace dspark
