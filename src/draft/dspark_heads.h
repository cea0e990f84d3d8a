// The drafter's sequential head and confidence head (DSPARK.md 2), called by a decoding
// round once per block position k, left to right, after DSparkForward::draft:
//
//   prev = anchor; state = zeros(state_size())                 // s_{-1} = 0
//   for k in 0..B-1:
//     l_k = U_k;  heads.add_markov_bias(h_k, prev, state, l_k)  // l_k = U_k + bias_k
//     c_k = sigmoid(heads.confidence_logit(h_k, prev))
//     x_k = sample(l_k);  prev = x_k                            // (teacher-forced in training)
//
// x_{k-1} is the anchor for k = 0 and the token drafted at k-1 afterwards.
#pragma once

#include <vector>

#include "core/thread_pool.h"
#include "draft/dspark_model.h"

namespace dspark {

class DSparkHeads {
 public:
  DSparkHeads(const DSparkModel& model, ThreadPool& pool);

  MarkovHead markov_type() const { return model_.config.markov_head; }
  bool has_markov() const { return markov_type() != MarkovHead::None; }
  bool has_confidence() const { return model_.config.confidence_head; }
  // Floats of recurrent state carried from position k-1 to k: r for the RNN head, else 0.
  int state_size() const { return markov_type() == MarkovHead::Rnn ? model_.config.markov_rank : 0; }

  // bias_k into bias [V] (zeros without a Markov head):
  //   vanilla  bias = W2 · W1[x_{k-1}]
  //   gated    bias = W2 · (sigmoid(gate_proj([h_k ; W1[x_{k-1}]])) ⊙ W1[x_{k-1}])
  //   rnn      [g ; c ; o] = joint_proj([s_{k-1} ; W1[x_{k-1}] ; h_k])
  //            s_k = sigmoid(g) ⊙ s_{k-1} + (1 - sigmoid(g)) ⊙ tanh(c);  bias = W2 · tanh(o)
  // h_k: [d] (DSparkForward::hidden(k)). state: [state_size()] holds s_{k-1} on entry and
  // s_k on return (rnn only; may be null otherwise).
  void markov_bias(const float* h_k, int prev_token, float* state, float* bias);
  // l_k = U_k + bias_k, in place on logits [V] (a copy of DSparkForward::base_logits(k)).
  void add_markov_bias(const float* h_k, int prev_token, float* state, float* logits);

  // logit_k = w · [h_k ; W1[x_{k-1}]] + b (w · h_k + b without Markov input); the
  // confidence is sigmoid(logit_k). Throws Error when the drafter has no confidence head.
  float confidence_logit(const float* h_k, int prev_token);

 private:
  void check_token(int token) const;
  const float* w1_row(int token);  // W1[token] into e_

  const DSparkModel& model_;
  ThreadPool& pool_;
  const int d_, r_, V_;
  std::vector<float> e_;     // [r]        W1[x_{k-1}]
  std::vector<float> z_;     // [2r + d]   rnn input [s ; e ; h]; gated input [h ; e]
  std::vector<float> gco_;   // [3r]       rnn joint_proj output [g ; c ; o]; gated gate [r]
  std::vector<float> u_;     // [r]        vector fed to W2
  std::vector<float> bias_;  // [V]
};

}  // namespace dspark
