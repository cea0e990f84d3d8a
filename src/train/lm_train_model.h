// A decoder-only language model (Llama architecture: RMSNorm, rotate-half RoPE, GQA,
// SwiGLU; optionally tied embeddings) trained from scratch: fp32 parameters, the forward
// pass over a batch of sequences with causal attention, next-token cross-entropy and the
// hand-written backward pass, embedding gradients included.
//
// Parameters carry Hugging Face names ("model.embed_tokens.weight",
// "model.layers.<i>.self_attn.q_proj.weight", ..., "model.norm.weight", "lm_head.weight"),
// and model_view() shows them as a Model the inference code runs and exports to GGUF.
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "train/decoder_layer_train.h"
#include "train/param.h"

namespace dspark {

class LmTrainModel {
 public:
  // Error for a configuration the trainer does not support (biases, adjacent-pair RoPE).
  explicit LmTrainModel(const ModelConfig& config);
  // The layers keep a reference to the configuration inside this object.
  LmTrainModel(const LmTrainModel&) = delete;
  LmTrainModel& operator=(const LmTrainModel&) = delete;

  const ModelConfig& config() const { return cfg_; }
  std::vector<Param*> params();
  int64_t parameter_count();
  // Matrices N(0, 0.02) (the output projections of each block scaled by 1/sqrt(2·layers), so
  // the residual stream's variance does not grow with depth), norm weights 1.
  void init(uint64_t seed);
  void zero_grad();

  // Mean next-token cross-entropy (nats) of n_seqs sequences of length + 1 tokens each
  // (row-major [n_seqs, length + 1]): position i predicts token i + 1. With backward, adds
  // the gradient of that mean into the parameters' grads. Error for a token outside the
  // vocabulary or a length beyond the context.
  double forward_backward(const int* tokens, int n_seqs, int length, ThreadPool& pool);
  double loss(const int* tokens, int n_seqs, int length, ThreadPool& pool);

  // The parameters as a Model (F32 views; valid while this object lives and is not moved).
  // `tokens` gives the special tokens generation needs.
  Model model_view(const GenerationTokens& tokens) const;

 private:
  double run(const int* tokens, int n_seqs, int length, bool backward, ThreadPool& pool);

  ModelConfig cfg_;
  Param embed_, norm_, output_;  // output_ empty when tied
  std::vector<DecoderLayerTrain> layers_;

  // Activations of the last batch.
  std::vector<int> inputs_, targets_, positions_;
  std::vector<KeyRanges> ranges_;
  std::vector<std::vector<float>> x_;  // [n_layers + 1][N, d]
  std::vector<float> h_;               // [N, d] final-normed
  std::vector<float> logits_;          // [N, V], then their gradient
};

}  // namespace dspark
