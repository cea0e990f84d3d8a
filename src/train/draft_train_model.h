// A DSpark (or dflash) drafter being trained: fp32 parameters, the training forward pass over
// many blocks of one target sequence, and its hand-written backward pass (DSPARK.md 1 and 6).
//
// One sequence of S target positions gives:
//   context   c_p = RMSNorm_hidden(W_fc f_p)                       p < S, f_p = tapped target states
//   blocks    for each anchor a: inputs [x_a, MASK x (B-1)] at positions a..a+B-1, labels
//             x_{a+1..a+B}; previous tokens for the heads [x_a, x_{a+1..a+B-1}] (teacher forcing)
//   layers    Qwen3 decoder layers over all block rows at once; a block row attends to the
//             context keys [0, a) and the keys of its own block (bidirectional), never to other
//             blocks: exactly what decoding computes for anchor a (tested).
//   output    h_k = RMSNorm_final(...), U_k = lm_head(h_k); the heads and losses
//             (draft_heads_train.h) turn them into the loss and its gradients.
// The embedding and the LM head are the target's, frozen and never copied (a non-fp32 LM head
// is dequantized once, for the backward product).
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "draft/dspark_config.h"
#include "draft/dspark_model.h"
#include "model/model.h"
#include "train/attention_grad.h"
#include "train/decoder_layer_train.h"
#include "train/draft_heads_train.h"
#include "train/param.h"

namespace dspark {

// One target sequence with its recorded features (a target-cache sample).
struct TrainSequence {
  int length = 0;
  const int* tokens = nullptr;         // [S]
  const uint8_t* loss_mask = nullptr;  // [S] 1 on response tokens
  const float* taps = nullptr;  // [S, m*d] tapped layer outputs, concatenated in target_layer_ids order
  const float* target_hidden = nullptr;  // [S, d]   the target's final-normed hidden states
};

// Anchor sampling (DSPARK.md 6): positions i <= S-2 with loss_mask[i] and loss_mask[i+1] set;
// min(max_anchors, candidates) distinct ones drawn uniformly, returned sorted.
std::vector<int> sample_anchors(const TrainSequence& seq, int max_anchors, Rng& rng);

struct DraftLossConfig {
  LossWeights weights;       // 0.1 CE + 0.9 L1 + 1.0 confidence for dspark; CE only for dflash
  float decay_gamma = 4.0f;  // position weight exp(-k / gamma)
};

class DraftTrainModel {
 public:
  // A drafter of this configuration for `target` (check_target's rules apply). Parameters
  // start at zero: call init() or load values.
  DraftTrainModel(const DSparkConfig& config, const Model& target);
  // The layers keep a reference to the configuration inside this object.
  DraftTrainModel(const DraftTrainModel&) = delete;
  DraftTrainModel& operator=(const DraftTrainModel&) = delete;

  const DSparkConfig& config() const { return config_; }
  // Every trainable parameter, in checkpoint order.
  std::vector<Param*> params();
  // HF default initialisation: matrices N(0, 0.02), norm weights 1, biases 0.
  void init(uint64_t seed);
  void zero_grad();

  // Forward and backward over the blocks at `anchors` of one sequence: adds this sequence's
  // gradients (of its loss, normalised by its own Σ weights) into the parameters' grads and
  // returns the loss terms. Error for anchors that do not fit the sequence.
  LossTerms forward_backward(const TrainSequence& seq, const std::vector<int>& anchors,
                             const DraftLossConfig& loss, ThreadPool& pool);

  // The forward pass alone, for one block per anchor: h_k and U_k afterwards (tests compare
  // them with decoding).
  void forward(const TrainSequence& seq, const std::vector<int>& anchors, ThreadPool& pool);
  const std::vector<float>& hidden() const { return h_; }       // [blocks*B, d]
  const std::vector<float>& base_logits() const { return U_; }  // [blocks*B, V]

  // Floats per vocabulary-sized buffer of forward_backward (U, p_t, dU): rows are processed
  // in chunks of blocks that fit. Tests lower it to exercise the chunking.
  int64_t vocab_chunk_floats = int64_t(1) << 24;

  // Views of the parameters as a checkpoint (fp32; the heads' and backbone's names of
  // DSPARK.md 3.3). The views point into this object.
  DSparkWeights weights_view() const;

 private:
  void build_blocks(const TrainSequence& seq, const std::vector<int>& anchors, float gamma);
  void run_forward(const TrainSequence& seq, ThreadPool& pool);
  // p_t of block rows [r0, r1) into pt_.
  void target_probs(const TrainSequence& seq, int r0, int r1, ThreadPool& pool);

  DSparkConfig config_;
  const ModelConfig& bb_;  // config_.backbone
  const Model& target_;
  int d_, V_, B_;
  std::vector<float> lm_head_f32_;  // [V, d] only when the target's LM head is not fp32
  const float* lm_head_ = nullptr;  // [V, d] fp32 LM head for the backward product

  Param fc_, hidden_norm_, norm_;
  std::vector<DecoderLayerTrain> layers_;
  DraftHeadsTrain heads_;

  // The current batch of blocks.
  int S_ = 0, N_ = 0;
  std::vector<int> anchors_;
  std::vector<int> tokens_, positions_, kv_positions_;  // [N] block inputs and positions; [S+N] key positions
  std::vector<int> prev_, labels_;                      // [N]
  std::vector<float> weights_;                          // [N] w_k = valid * exp(-k / gamma)
  std::vector<KeyRanges> ranges_;                       // [N]

  // Activations.
  std::vector<float> fc_out_;          // [S, d] W_fc f
  std::vector<float> c_;               // [S, d] context rows
  std::vector<std::vector<float>> x_;  // [n_layers + 1][N, d] input of each layer, then the last output
  std::vector<float> h_;               // [N, d]
  std::vector<float> U_;               // [N, V] after forward(); one chunk of rows in forward_backward()
  std::vector<float> pt_;              // [chunk rows, V] target distributions
  // Gradients.
  std::vector<float> dc_, dh_, dU_;
};

}  // namespace dspark
