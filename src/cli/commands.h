// Each subcommand registers itself on the application; main() only dispatches.
#pragma once

#include <CLI/CLI.hpp>

namespace dspark::cli {

void add_generate(CLI::App& app);
void add_info(CLI::App& app);
void add_synth(CLI::App& app);
void add_quantize(CLI::App& app);
void add_bench(CLI::App& app);
void add_calibrate(CLI::App& app);
void add_eval(CLI::App& app);
void add_train_draft(CLI::App& app);
void add_train_tokenizer(CLI::App& app);
void add_train_lm(CLI::App& app);
void add_serve(CLI::App& app);

// Resolves -m: the given path, or the project's default model.
std::string model_path_or_default(const std::string& given);

}  // namespace dspark::cli
