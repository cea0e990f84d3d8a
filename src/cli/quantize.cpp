// dspark quantize: a model (GGUF, Hugging Face folder or llama2.c) converted to a GGUF of
// another weight type, its tokenizer embedded.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "core/timer.h"
#include "model/gguf_export.h"
#include "model/load.h"
#include "model/synth.h"

namespace dspark::cli {

namespace {

struct QuantizeOptions {
  std::string input, output, type, tokenizer, name;
  bool no_tokenizer = false;
};

std::string join(const std::vector<std::string>& xs) {
  std::string out;
  for (const std::string& x : xs) out += (out.empty() ? "" : ", ") + x;
  return out;
}

void run_quantize(const QuantizeOptions& o) {
  const std::optional<DType> type = parse_weight_type(o.type);
  if (!type) fail("quantize: unknown weight type '", o.type, "' (known: ", join(weight_type_names()), ")");
  if (std::filesystem::exists(o.output) && std::filesystem::equivalent(o.input, o.output))
    fail(o.output, ": the output would overwrite the input");
  Timer timer;
  const LoadedModel lm = load_model(o.input, o.tokenizer);
  GgufExportOptions options;
  options.weight_type = *type;
  options.name = o.name.empty() ? std::filesystem::path(o.input).filename().string() : o.name;
  if (!o.no_tokenizer) {
    const Tokenizer& tok = *lm.tokenizer;
    options.add_tokenizer = [&tok, &o](GgufWriter& w) {
      try {
        tok.write_gguf(w);
      } catch (const Error& e) {
        fail(e.what(), " (--no-tokenizer writes the weights alone; load them with --tokenizer)");
      }
    };
  }
  try {
    export_gguf(*lm.model, o.output, options);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind(o.output, 0) == 0) throw;  // already names the file
    fail(o.output, ": ", what);
  }
  std::error_code ec;
  const uintmax_t bytes = std::filesystem::file_size(o.output, ec);
  std::fprintf(stderr, "wrote %s: %s, %s, %.1f MiB in %.1f s\n", o.output.c_str(),
               arch_name(lm.model->config.arch), std::string(dtype_name(*type)).c_str(),
               ec ? 0.0 : double(bytes) / (1 << 20), timer.seconds());
}

}  // namespace

void add_quantize(CLI::App& app) {
  auto o = std::make_shared<QuantizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Convert a model to a GGUF of another weight type (norms and biases stay F32)");
  cmd->add_option("IN", o->input, "Model: .gguf file, llama2.c .bin, or Hugging Face folder")->required();
  cmd->add_option("OUT", o->output, "GGUF file to write")->required();
  cmd->add_option("TYPE", o->type, "Weight type: " + join(weight_type_names()))->required();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file for the input (as for generate)");
  cmd->add_option("--name", o->name, "general.name of the output (default: the input's file name)");
  cmd->add_flag("--no-tokenizer", o->no_tokenizer, "Write the weights without an embedded tokenizer");
  cmd->callback([o] { run_quantize(*o); });
}

}  // namespace dspark::cli
