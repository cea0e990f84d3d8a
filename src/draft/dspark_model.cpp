// Loading, checking and writing DSpark drafter checkpoints (DSPARK.md 3).
#include "draft/dspark_model.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/mapped_file.h"
#include "draft/dspark_layout.h"
#include "formats/safetensors.h"
#include "kernels/matmul.h"

namespace dspark {

namespace fs = std::filesystem;

namespace {

// Why the configuration expects (or does not expect) the tensors of a head.
std::string head_reason(const std::string& name, const DSparkConfig& c) {
  std::string why;
  if (name.rfind("markov_head.", 0) == 0)
    why = " (config.json: markov_rank " + std::to_string(c.markov_rank) + ", markov_head_type " +
          markov_head_name(c.markov_head) + ")";
  if (name.rfind("confidence_head.", 0) == 0)
    why = std::string(" (config.json: enable_confidence_head ") + (c.confidence_head ? "true" : "false") +
          ", confidence_head_with_markov " + (c.confidence_with_markov ? "true" : "false") + ")";
  if (name.rfind("model.", 0) == 0) why = " (DSpark checkpoint names have no 'model.' prefix)";
  return why;
}

// Shape and type checks of every tensor against the layout of the configuration.
void check_weights(const DSparkConfig& c, const DSparkWeights& weights, const std::string& source) {
  if (int(weights.layers.size()) != c.backbone.n_layers)
    fail(source, ": ", weights.layers.size(),
         " draft layers of weights for num_hidden_layers = ", c.backbone.n_layers);
  DSparkWeights w = weights;  // the layout table points into a copy
  const std::vector<DSparkSlot> slots = dspark_layout(c, w);
  std::set<const TensorView*> expected;
  for (const DSparkSlot& s : slots) {
    expected.insert(s.view);
    const TensorView& t = *s.view;
    if (t.empty()) {
      if (s.optional) continue;
      fail(source, ": missing tensor '", s.name, "' (expected shape ", shape_str(s.shape), ")",
           head_reason(s.name, c));
    }
    if (t.shape != s.shape)
      fail(source, ": tensor '", s.name, "' has shape ", shape_str(t.shape), ", expected ",
           shape_str(s.shape), " from the drafter configuration", head_reason(s.name, c));
    if (s.f32 && t.type != DType::F32)
      fail(source, ": tensor '", s.name, "' must be F32 after loading, is ", dtype_name(t.type));
    if (t.cols() % dtype_block_elems(t.type) != 0)
      fail(source, ": tensor '", s.name, "' row of ", t.cols(), " values is not a whole number of ",
           dtype_name(t.type), " blocks");
  }
  // A head tensor the configuration does not use (e.g. markov weights with markov_rank 0).
  // Only head tensors can be unused: the backbone's are always part of the layout.
  const std::pair<const TensorView*, const char*> heads[] = {
      {&w.markov_w1, "markov_head.markov_w1.weight"},   {&w.markov_w2, "markov_head.markov_w2.weight"},
      {&w.gate_proj, "markov_head.gate_proj.weight"},   {&w.gate_bias, "markov_head.gate_proj.bias"},
      {&w.joint_proj, "markov_head.joint_proj.weight"}, {&w.joint_bias, "markov_head.joint_proj.bias"},
      {&w.confidence, "confidence_head.proj.weight"},   {&w.confidence_bias, "confidence_head.proj.bias"}};
  for (const auto& [t, name] : heads)
    if (!t->empty() && !expected.count(t))
      fail(source, ": tensor '", name, "' is not used by this drafter configuration", head_reason(name, c));
}

}  // namespace

void DSparkModel::validate() const { check_weights(config, weights, source); }

int64_t DSparkModel::parameter_count() const {
  int64_t n = 0;
  weights.for_each([&](const TensorView& t) { n += t.numel(); });
  return n;
}

std::unique_ptr<DSparkModel> load_dspark(const std::string& dir) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(config_path)) fail(dir, ": no config.json (not a DSpark drafter folder)");
  auto m = std::make_unique<DSparkModel>();
  m->source = dir;
  m->config = load_dspark_config(config_path);
  auto set = std::make_shared<SafetensorsSet>(SafetensorsSet::open_folder(dir));
  m->storage.hold(set);

  std::set<std::string> expected;
  for (const DSparkSlot& s : dspark_layout(m->config, m->weights)) {
    expected.insert(s.name);
    const SafetensorsEntry* e = set->find(s.name);
    if (!e) {
      if (s.optional) continue;
      if (set->find("model." + s.name))
        fail(dir, ": missing tensor '", s.name, "': found 'model.", s.name,
             "' instead, but DSpark checkpoint names have no 'model.' prefix");
      fail(dir, ": missing tensor '", s.name, "' (expected shape ", shape_str(s.shape), ")",
           head_reason(s.name, m->config));
    }
    if (!e->view.data) fail(dir, ": tensor '", s.name, "' has dtype ", e->dtype, ", which is not supported");
    if (e->view.shape != s.shape)
      fail(dir, ": tensor '", s.name, "' has shape ", shape_str(e->view.shape), ", expected ",
           shape_str(s.shape), " from config.json", head_reason(s.name, m->config));
    const TensorView v = m->storage.aligned(e->view);
    *s.view = s.f32 ? m->storage.as_f32(v) : v;
  }
  for (const auto& [name, entry] : set->tensors())
    if (!expected.count(name))
      fail(dir, ": unexpected tensor '", name, "' (not part of the DSpark layout for this config.json)",
           head_reason(name, m->config));
  m->validate();
  return m;
}

void check_target(const DSparkModel& draft, const Model& target) {
  const DSparkConfig& c = draft.config;
  const ModelConfig& t = target.config;
  const std::string who = "drafter " + draft.source + " and target " + target.source;
  if (c.dim() != t.dim)
    fail(who, ": drafter hidden_size ", c.dim(), " differs from the target's hidden size ", t.dim);
  if (c.vocab_size() != t.vocab_size)
    fail(who, ": drafter vocab_size ", c.vocab_size(), " differs from the target's vocabulary of ",
         t.vocab_size);
  if (c.n_target_layers != t.n_layers)
    fail(who, ": drafter num_target_layers ", c.n_target_layers, " differs from the target's ", t.n_layers,
         " layers");
  for (int id : c.target_layer_ids)
    if (id < -1 || id >= t.n_layers - 1)
      fail(who, ": drafter target_layer_ids has layer ", id, ", expected -1 .. ", t.n_layers - 2,
           " (the target has ", t.n_layers, " layers and its last may not be tapped)");
  if (c.mask_token_id < 0 || c.mask_token_id >= t.vocab_size)
    fail(who, ": drafter mask_token_id ", c.mask_token_id, " is outside the target's vocabulary of ",
         t.vocab_size);
}

void attach_target(DSparkModel& draft, const Model& target) {
  check_target(draft, target);
  draft.target_embed = target.tok_embeddings;
  draft.target_lm_head = target.output;  // the embedding itself for a tied target
}

void write_dspark_checkpoint(const std::string& dir, const DSparkConfig& config,
                             const DSparkWeights& weights) {
  validate_dspark_config(config, dir + "/config.json");
  check_weights(config, weights, dir);
  DSparkWeights w = weights;
  std::vector<TensorView> tensors;
  for (const DSparkSlot& s : dspark_layout(config, w)) {
    if (s.view->empty()) continue;
    TensorView t = *s.view;
    t.name = s.name;
    tensors.push_back(std::move(t));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, ": cannot create the folder: ", ec.message());
  const std::string config_path = (fs::path(dir) / "config.json").string();
  std::ofstream f(config_path, std::ios::binary | std::ios::trunc);
  const std::string text = dspark_config_json(config);
  f.write(text.data(), std::streamsize(text.size()));
  f.close();
  if (!f) fail(config_path, ": cannot write");
  write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors);
}

}  // namespace dspark
