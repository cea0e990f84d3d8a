#include "train/train_state.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "formats/safetensors.h"

namespace dspark {

namespace fs = std::filesystem;

namespace {

TensorView f32_view(const std::string& name, const std::vector<int64_t>& shape, const float* data) {
  TensorView t;
  t.name = name;
  t.type = DType::F32;
  t.shape = shape;
  t.data = data;
  return t;
}

void check_options(const std::string& out_dir, const std::string& options_path,
                   const std::string& wanted_json) {
  std::ifstream f(options_path, std::ios::binary);
  if (!f)
    fail(options_path, ": missing beside ", kTrainStateFile,
         " (delete the folder's trainer_state.* to start over)");
  std::stringstream text;
  text << f.rdbuf();
  nlohmann::json saved;
  const nlohmann::json wanted = nlohmann::json::parse(wanted_json);
  try {
    saved = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    fail(options_path, ": not valid JSON: ", e.what());
  }
  for (const auto& [key, value] : wanted.items())
    if (!saved.contains(key) || saved[key] != value)
      fail(out_dir, " holds a training run with other '", key, "' (",
           saved.contains(key) ? saved[key].dump() : "none", ", now ", value.dump(),
           "): use another output folder, or delete its trainer_state.* to start over");
}

}  // namespace

nlohmann::json adamw_json(const AdamWConfig& c) {
  return {{"lr", c.lr},
          {"beta1", c.beta1},
          {"beta2", c.beta2},
          {"eps", c.eps},
          {"weight_decay", c.weight_decay},
          {"clip_norm", c.clip_norm},
          {"warmup_fraction", c.warmup_fraction},
          {"total_steps", c.total_steps}};
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(text.data(), std::streamsize(text.size()));
  f.close();
  if (!f) fail(path, ": cannot write");
}

void move_into_place(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) fail(to, ": cannot move the new file into place: ", ec.message());
}

void write_train_state(const std::string& dir, const std::vector<Param*>& params, AdamW& optim,
                       int steps_done, const std::string& options_json) {
  std::vector<TensorView> state;
  for (size_t i = 0; i < params.size(); ++i) {
    const Param& p = *params[i];
    state.push_back(f32_view(p.name, p.shape, p.value.data()));
    state.push_back(f32_view(p.name + ".exp_avg", p.shape, optim.first_moments()[i].data()));
    state.push_back(f32_view(p.name + ".exp_avg_sq", p.shape, optim.second_moments()[i].data()));
  }
  write_safetensors((fs::path(dir) / kTrainStateFile).string(), state,
                    {{"format", "dspark-trainer-state"},
                     {"step", std::to_string(steps_done)},
                     {"updates", std::to_string(optim.updates())}});
  write_text_file((fs::path(dir) / kTrainOptionsFile).string(), options_json);
}

int resume_train_state(const std::string& out_dir, const std::string& options_json,
                       const std::vector<Param*>& params, AdamW& optim, int max_step) {
  const std::string state_path = (fs::path(out_dir) / kTrainStateFile).string();
  if (!fs::exists(state_path)) return -1;
  // The run in the folder must be this run: same model, data, loss and schedule.
  check_options(out_dir, (fs::path(out_dir) / kTrainOptionsFile).string(), options_json);

  auto file = SafetensorsFile::open(state_path);
  auto meta = [&](const char* key) {
    auto it = file->metadata().find(key);
    if (it == file->metadata().end()) fail(state_path, ": no '", key, "' in the metadata");
    try {
      return std::stoi(it->second);
    } catch (const std::exception&) {
      fail(state_path, ": metadata '", key, "' is not a number: ", it->second);
    }
  };
  const int step = meta("step"), updates = meta("updates");
  if (step < 0 || step > max_step) fail(state_path, ": step ", step, " outside 0..", max_step);
  auto load = [&](const std::string& name, const std::vector<int64_t>& shape, std::vector<float>& out) {
    auto it = file->tensors().find(name);
    if (it == file->tensors().end()) fail(state_path, ": tensor '", name, "' is missing");
    const TensorView& t = it->second.view;
    if (t.type != DType::F32 || t.shape != shape)
      fail(state_path, ": tensor '", name, "' is ", it->second.dtype, " ", shape_str(t.shape),
           ", expected F32 ", shape_str(shape));
    std::memcpy(out.data(), t.data, out.size() * sizeof(float));  // the file need not align floats
  };
  for (size_t i = 0; i < params.size(); ++i) {
    Param& p = *params[i];
    load(p.name, p.shape, p.value);
    load(p.name + ".exp_avg", p.shape, optim.first_moments()[i]);
    load(p.name + ".exp_avg_sq", p.shape, optim.second_moments()[i]);
  }
  optim.set_updates(updates);
  return step;
}

}  // namespace dspark
