#include "draft/dspark_synth.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "draft/dspark_layout.h"
#include "draft/dspark_model.h"
#include "kernels/quantize.h"

namespace dspark {

DSparkConfig synth_dspark_config(const ModelConfig& target, const DSparkSynthOptions& o) {
  if (o.n_taps < 1) fail("synth drafter: at least one tapped layer is needed");
  // Taps at layers 1 .. L-2 (the last layer must never be tapped), evenly spread.
  const int lo = std::min(1, target.n_layers - 2), hi = target.n_layers - 2;
  if (hi < 0 || hi - lo + 1 < o.n_taps)
    fail("synth drafter: a target with ", target.n_layers, " layers cannot give ", o.n_taps,
         " tapped layers");
  DSparkConfig c;
  c.backbone = target;
  c.backbone.arch = Arch::Qwen3;
  c.backbone.qk_norm = true;
  c.backbone.qkv_bias = false;
  c.backbone.tied_embeddings = false;
  c.backbone.rope_style = RopeStyle::Halves;
  c.backbone.n_layers = o.n_layers;
  c.n_target_layers = target.n_layers;
  c.block_size = o.block_size;
  for (int i = 0; i < o.n_taps; ++i)
    c.target_layer_ids.push_back(o.n_taps == 1 ? hi : lo + i * (hi - lo) / (o.n_taps - 1));
  c.mask_token_id = target.vocab_size - 1;
  c.markov_rank = o.markov_head == MarkovHead::None ? 0 : o.markov_rank;
  c.markov_head = o.markov_head;
  c.confidence_head = o.confidence_head;
  c.confidence_with_markov = o.confidence_head && c.markov_rank > 0;
  validate_dspark_config(c, "synthetic drafter");
  return c;
}

void write_synth_dspark(const std::string& dir, const ModelConfig& target, const DSparkSynthOptions& o) {
  if (o.weight_type != DType::F32 && o.weight_type != DType::F16 && o.weight_type != DType::BF16)
    fail("synth drafter: weight type ", dtype_name(o.weight_type),
         " (DeepSpec checkpoints are F32, F16 or BF16)");
  if (!(o.confidence > 0 && o.confidence < 1)) fail("synth drafter: the confidence must be in (0, 1)");
  const DSparkConfig c = synth_dspark_config(target, o);
  DSparkWeights w;
  WeightStorage storage;
  Rng rng(o.seed);
  for (const DSparkSlot& s : dspark_layout(c, w)) {
    if (s.optional) continue;  // embedding and LM head come from the target
    const int64_t cols = s.shape.back(), rows = s.shape.size() == 1 ? 1 : s.shape[0];
    const DType type = s.f32 ? DType::F32 : o.weight_type;
    const size_t row_bytes = dtype_row_bytes(type, cols);
    std::vector<uint8_t> bytes(row_bytes * size_t(rows));
    std::vector<float> row(static_cast<size_t>(cols));
    const bool bias = s.name.ends_with(".bias");
    for (int64_t r = 0; r < rows; ++r) {
      for (float& x : row) {
        if (!s.f32) {  // N(0, 0.02) by Box-Muller
          const float u1 = std::max(rng.uniform(), 1e-7f), u2 = rng.uniform();
          x = 0.02f * std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
        } else {
          x = bias ? 0.0f : 1.0f;  // norms 1, biases 0
        }
      }
      if (s.name == "confidence_head.proj.bias") row[0] = std::log(o.confidence / (1 - o.confidence));
      quantize_row(type, row.data(), cols, bytes.data() + size_t(r) * row_bytes);
    }
    *s.view = storage.own(s.name, type, s.shape, std::move(bytes));
  }
  write_dspark_checkpoint(dir, c, w);
}

}  // namespace dspark
