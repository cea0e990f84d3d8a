#include "engine/generator.h"

#include <algorithm>

#include "core/error.h"
#include "core/timer.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace dspark {

Generator::Generator(const LoadedModel& model, ThreadPool& pool) : lm_(model), pool_(pool) {}

std::vector<int> Generator::tokenize_prompt(const std::string& prompt) const {
  return dspark::tokenize_prompt(lm_, prompt);
}

std::vector<int> tokenize_prompt(const LoadedModel& lm, const std::string& prompt) {
  std::vector<int> ids;
  // BOS when the tokenizer asks for it, and always for an empty prompt (-p "").
  const int bos = lm.model->tokens.bos;
  if (bos >= 0 && (lm.tokenizer->add_bos_default() || prompt.empty())) ids.push_back(bos);
  const std::vector<int> text = lm.tokenizer->encode(prompt, false);
  ids.insert(ids.end(), text.begin(), text.end());
  if (ids.empty()) fail("the prompt is empty and the model has no beginning-of-sequence token");
  return ids;
}

GenerateResult Generator::generate(const GenerateRequest& req,
                                   const std::function<void(const std::string&)>& on_text) {
  const Model& m = *lm_.model;
  const int vocab = m.config.vocab_size;
  GenerateResult res;
  std::vector<int> history = tokenize_prompt(req.prompt);
  res.n_prompt = int(history.size());
  const int context = m.config.max_seq_len > 0 ? m.config.max_seq_len : res.n_prompt + req.max_tokens;
  if (res.n_prompt >= context)
    fail("the prompt has ", res.n_prompt, " tokens; the model's context is ", context, " tokens");
  // Generation stops at the end of the model's context.
  const int max_new = std::min(req.max_tokens, context - res.n_prompt);
  res.context_limited = max_new < req.max_tokens;
  if (max_new <= 0) return res;
  const int capacity = res.n_prompt + max_new;

  KVCache cache(m.config, 1, capacity);
  Transformer tf(m, pool_);
  Sampler sampler(req.sampling, req.seed);
  std::vector<float> logits(static_cast<size_t>(vocab));
  TextStream stream(*lm_.tokenizer);
  for (int t : history) stream.push(t);  // the prompt's text is not part of the output

  Batch batch;
  for (int i = 0; i < res.n_prompt; ++i) batch.add(history[size_t(i)], i, 0, i == res.n_prompt - 1);
  Timer prefill;
  tf.forward(batch, cache, logits.data());
  res.prefill_seconds = prefill.seconds();

  Timer decode;
  const auto& eos = m.tokens.eos;
  for (;;) {
    const int next = sampler.sample(logits.data(), vocab, history);
    res.tokens.push_back(next);
    history.push_back(next);
    if (std::find(eos.begin(), eos.end(), next) != eos.end()) {
      res.stopped = true;
      break;
    }
    const std::string piece = stream.push(next);
    res.text += piece;
    if (on_text && !piece.empty()) on_text(piece);
    if (int(res.tokens.size()) >= max_new) break;
    batch.clear();
    batch.add(next, int(history.size()) - 1, 0, true);
    tf.forward(batch, cache, logits.data());
  }
  const std::string tail = stream.finish();
  res.text += tail;
  if (on_text && !tail.empty()) on_text(tail);
  // The first token comes from the prefill; the decode clock covers the rest.
  res.decode_seconds = decode.seconds();
  return res;
}

}  // namespace dspark
