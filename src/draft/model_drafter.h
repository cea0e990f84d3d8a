// A classic small language model as drafter: it drafts token by token with its own KV
// cache, sampling each draft with the request's transform. It needs the target's vocabulary:
// check_draft_vocabulary refuses a model whose tokens differ.
#pragma once

#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "draft/drafter.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace dspark {

// Throws Error naming the first difference when the draft tokenizer does not map ids to the
// same bytes as the target's (sizes, a token's bytes, or control status), or when the draft
// model's vocabulary is smaller than the target tokenizer's.
void check_draft_vocabulary(const Tokenizer& target, const Tokenizer& draft, const Model& draft_model);

struct ModelDrafterOptions {
  int max_block = 8;
  // Drafts are restricted to ids below this (the target's vocabulary size), so a draft model
  // with a padded vocabulary never proposes an id the target cannot take. 0: no limit.
  int vocab_limit = 0;
};

class ModelDrafter : public Drafter {
 public:
  ModelDrafter(const Model& model, ThreadPool& pool, int n_seqs, int max_positions,
               const ModelDrafterOptions& options = {});

  std::string name() const override { return "draft-model"; }
  int max_block() const override { return options_.max_block; }
  void draft(const DraftInput& in, DraftBlock& out) override;
  void commit(int seq, int n) override;
  void reset(int seq) override { cache_.clear(seq); }

  const KVCache& cache() const { return cache_; }

 private:
  const Model& model_;
  ModelDrafterOptions options_;
  Transformer forward_;
  KVCache cache_;
  Batch batch_;
  std::vector<float> logits_;  // [V]
  std::vector<int> history_;
};

}  // namespace dspark
