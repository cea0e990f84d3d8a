// dspark bench quality: how close each weight type stays to fp32 on a model.
#pragma once

#include <string>
#include <vector>

namespace dspark::cli {

struct QualityOptions {
  std::vector<std::string> models;  // empty: the project's default model
  std::string tokenizer;
  std::string types = "F16,BF16,Q8_0,Q4_0,Q4_K,Q6_K";  // comma-separated weight types
  std::string text;                                    // -p: the text to read; empty: -f or the built-in text
  std::string text_file;                               // -f
  int threads = 0;
  bool json = false;
  std::string json_path;  // "" or "-": stdout
};

void run_bench_quality(const QualityOptions& o);

}  // namespace dspark::cli
