// What makes a training run resumable, shared by the trainers: the optimiser state (fp32
// parameters, AdamW moments, the step) and the options of the run, saved beside the
// model the run writes.
//   trainer_state.safetensors  "<name>", "<name>.exp_avg", "<name>.exp_avg_sq" per parameter;
//                              metadata: format, step, updates
//   trainer_state.json         the run's options; a run with other options is refused
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/adamw.h"
#include "train/param.h"

namespace dspark {

constexpr const char* kTrainStateFile = "trainer_state.safetensors";
constexpr const char* kTrainOptionsFile = "trainer_state.json";

// Writes both files into `dir` (a staging folder: the caller moves them into place, the
// state file last, so a crash leaves the previous checkpoint or the new one).
void write_train_state(const std::string& dir, const std::vector<Param*>& params, AdamW& optim,
                       int steps_done, const std::string& options_json);

// When `out_dir` holds a state: checks that its options equal `options_json` (Error naming
// the first key that differs), loads the parameters and moments and returns the step it
// was saved at (at most max_step). Returns -1, changing nothing, when there is no state.
int resume_train_state(const std::string& out_dir, const std::string& options_json,
                       const std::vector<Param*>& params, AdamW& optim, int max_step);

// The optimiser's settings as a run's options record them.
nlohmann::json adamw_json(const AdamWConfig& c);

// File helpers of checkpoint writing: Error naming the path on failure.
void write_text_file(const std::string& path, const std::string& text);
void move_into_place(const std::string& from, const std::string& to);

}  // namespace dspark
