// Per-format loaders behind load_model(); shared helpers for them.
#pragma once

#include <memory>
#include <string>

#include "formats/gguf.h"
#include "model/model.h"

namespace dspark {

std::unique_ptr<Model> load_hf_folder(const std::string& dir);
std::unique_ptr<Model> load_llama2c(const std::string& path);
std::unique_ptr<Model> load_gguf_model(const std::shared_ptr<GgufFile>& gguf);

}  // namespace dspark
