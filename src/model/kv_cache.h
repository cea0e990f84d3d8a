// Keys and values of every cached position, per layer and per sequence. Sequences are
// addressed by id; the cache speaks in sequence operations (append through the forward
// pass, truncate, clear, copy) and no other module touches its memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace dspark {

class KVCache {
 public:
  // Memory for n_seqs sequences of up to `capacity` positions is reserved up front.
  KVCache(const ModelConfig& config, int n_seqs, int capacity);

  int n_seqs() const { return n_seqs_; }
  int capacity() const { return capacity_; }
  int length(int seq) const { return lengths_[size_t(seq)]; }
  size_t bytes() const { return data_.size() * sizeof(float); }

  // Row of kv_dim floats for (layer, seq, pos).
  float* key(int layer, int seq, int pos) { return data_.data() + offset(layer, seq, pos, 0); }
  float* value(int layer, int seq, int pos) { return data_.data() + offset(layer, seq, pos, 1); }
  const float* key(int layer, int seq, int pos) const { return data_.data() + offset(layer, seq, pos, 0); }
  const float* value(int layer, int seq, int pos) const { return data_.data() + offset(layer, seq, pos, 1); }
  // Floats from the row of one position to the next, for a (layer, seq): the rows of a
  // sequence are contiguous, so attention can walk them from position 0.
  int64_t position_stride() const { return kv_dim_; }

  // Keeps the first n positions of a sequence (rollback of rejected drafts).
  void truncate(int seq, int n);
  void clear(int seq) { truncate(seq, 0); }
  // Makes dst a copy of src (a fork sharing a prefix).
  void copy(int src, int dst);
  // Called by the forward pass once positions [length, n) of seq are written.
  void set_length(int seq, int n);

 private:
  size_t offset(int layer, int seq, int pos, int which) const {
    return ((((size_t(layer) * 2 + size_t(which)) * size_t(n_seqs_) + size_t(seq)) * size_t(capacity_)) +
            size_t(pos)) *
           size_t(kv_dim_);
  }
  int n_layers_, n_seqs_, capacity_, kv_dim_;
  std::vector<float> data_;
  std::vector<int> lengths_;
};

}  // namespace dspark
