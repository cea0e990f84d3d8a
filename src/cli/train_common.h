// What the training commands share: the optimiser flags and the progress display (a bar
// on a terminal, one JSON object per line otherwise, both on stderr).
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "train/adamw.h"

namespace dspark::cli {

// --lr, --warmup, --clip, --weight-decay, read into `config` (whose values are the defaults).
void add_optimizer_flags(CLI::App* cmd, AdamWConfig& config);

// "1h02m", "3m07s".
std::string duration_text(double seconds);

// Rewrites the terminal's status line: "step S/T [#####.....] <text> ETA 3m07s", ending the
// line at the last step.
void print_progress_line(int step, int total, const std::string& text, double eta_seconds);

// One JSON object on its own line.
void print_json_line(const nlohmann::json& j);

}  // namespace dspark::cli
