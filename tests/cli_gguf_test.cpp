// Models converted to GGUF by dspark carry their tokenizer: a real model is loaded with its
// tokenizer, exported with export_gguf (tokenizer written by Tokenizer::write_gguf), and the
// dspark program generates from the .gguf file alone, greedy, from BOS; the text must be
// the model's known continuation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "formats/gguf.h"
#include "model/gguf_export.h"
#include "model/load.h"
#include "test_util.h"

namespace dspark {
namespace {

using test::run_command;

const char* const kStories260k =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
    "she saw a big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, "
    "let's go to";
const char* const kTinyStories656k =
    "Once upon a time, there was a little girl named Lily. She had a toy car that she loved very much. One "
    "day, she went to the park to play with her toy car in the park. Lily was very happy with her toy car "
    "because she had no one to play with.\nWhile playing, Lily saw a little bird. The bird was stuck in a "
    "tree.";
const char* const kFirstSentence = "Once upon a time, there was a little girl named Lily.";

// Exports the model at `model_path` with its tokenizer embedded; returns the .gguf path.
std::string export_with_tokenizer(const std::string& model_path, std::optional<DType> weight_type) {
  const LoadedModel m = load_model(model_path);
  GgufExportOptions options;
  options.weight_type = weight_type;
  options.add_tokenizer = [&](GgufWriter& w) { m.tokenizer->write_gguf(w); };
  const std::string path = test::temp_dir() + "/model.gguf";
  export_gguf(*m.model, path, options);
  return path;
}

// Greedy text of `dspark generate` from BOS alone.
std::string generate(const std::string& gguf, int n) {
  std::string out;
  const int code = run_command(std::string(DSPARK_BINARY) + " generate -m " + gguf + " -p '' -n " +
                                   std::to_string(n) + " --temp 0 --json 2>/dev/null",
                               &out);
  EXPECT_EQ(code, 0) << out;
  if (code != 0) return "";
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["n_prompt"], 1);  // BOS alone
  return j["text"].get<std::string>();
}

// Characters the two texts share from the start.
size_t common_prefix(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

TEST(CliGguf, Stories260kF32ExportGeneratesTheKnownStory) {
  const std::string gguf =
      export_with_tokenizer(test::shared_model("stories260k/stories260K_q80.bin"), DType::F32);
  EXPECT_EQ(GgufFile::open(gguf)->get_string("tokenizer.ggml.model"), "llama");
  const std::string text = generate(gguf, 80);
  EXPECT_EQ(text.rfind(kStories260k, 0), 0u) << text;
}

TEST(CliGguf, Stories260kQ8ExportStartsWithTheKnownSentence) {
  // Q8_0 blocks of the export are not the llama2.c file's flat groups, so late tokens may
  // change; the first sentence must not.
  std::string gguf;
  try {
    gguf = export_with_tokenizer(test::shared_model("stories260k/stories260K_q80.bin"), DType::Q8_0);
  } catch (const Error& e) {
    // ffn_down rows are 172 values wide, not a whole number of Q8_0 blocks: until
    // export_gguf keeps such tensors in another type, there is no Q8_0 file to test.
    if (std::string(e.what()).find("cannot be stored as Q8_0") == std::string::npos) throw;
    GTEST_SKIP() << "export_gguf refuses: " << e.what();
  }
  const std::string text = generate(gguf, 80);
  EXPECT_EQ(text.rfind(kFirstSentence, 0), 0u) << text;
  std::cerr << "stories260K Q8_0 export: " << common_prefix(text, kStories260k) << " of "
            << std::string(kStories260k).size() << " characters of the known continuation match\n";
}

TEST(CliGguf, TinyStoriesF32ExportGeneratesTheKnownStory) {
  const std::string gguf = export_with_tokenizer(test::shared_model("tinystories-656k"), DType::F32);
  const std::string text = generate(gguf, 100);
  EXPECT_EQ(text.rfind(kTinyStories656k, 0), 0u) << text;
}

TEST(CliGguf, TinyStoriesQ8ExportStartsWithTheKnownSentence) {
  const std::string gguf = export_with_tokenizer(test::shared_model("tinystories-656k"), DType::Q8_0);
  const std::string text = generate(gguf, 100);
  EXPECT_EQ(text.rfind(kFirstSentence, 0), 0u) << text;
  std::cerr << "TinyStories-656K Q8_0 export: " << common_prefix(text, kTinyStories656k) << " of "
            << std::string(kTinyStories656k).size() << " characters of the known continuation match\n";
}

}  // namespace
}  // namespace dspark
