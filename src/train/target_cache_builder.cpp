#include "train/target_cache_builder.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "core/timer.h"
#include "engine/generator.h"
#include "kernels/matmul.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace dspark {

namespace {

uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// The longest sequence the model reads (0: no limit).
int model_context(const Model& m) { return m.config.max_seq_len > 0 ? m.config.max_seq_len : 0; }

int auto_forward_rows(const Model& m) {
  constexpr int64_t kLogitBudgetFloats = (int64_t(64) << 20) / 4;
  return int(std::max<int64_t>(1, kLogitBudgetFloats / std::max(1, m.config.vocab_size)));
}

void validate_common(const TargetCacheOptions& opt) {
  if (opt.min_loss_tokens < 0)
    fail("target cache: minimum loss tokens must be >= 0, got ", opt.min_loss_tokens);
  if (opt.max_forward_rows < 0)
    fail("target cache: rows per forward must be >= 0, got ", opt.max_forward_rows);
}

class Reporter {
 public:
  Reporter(const TargetCacheCallbacks& cb, TargetCacheWriter& w, int64_t items) : cb_(cb), w_(w) {
    p_.items = items;
  }
  TargetCacheProgress& progress() {
    p_.items_done = w_.items_done();
    p_.samples = w_.samples();
    p_.tokens = w_.tokens();
    p_.loss_tokens = w_.loss_tokens();
    p_.seconds = timer_.seconds();
    return p_;
  }
  void report() {
    progress();
    if (cb_.on_progress) cb_.on_progress(p_);
  }
  void plan(uint64_t max_bytes, int64_t items_left) {
    if (!cb_.on_plan) return;
    TargetCachePlan plan;
    plan.items = p_.items;
    plan.items_left = items_left;
    plan.max_bytes = max_bytes;
    plan.max_total_bytes = w_.bytes() + max_bytes;
    plan.resume = w_.resume();
    cb_.on_plan(plan);
  }

 private:
  const TargetCacheCallbacks& cb_;
  TargetCacheWriter& w_;
  TargetCacheProgress p_;
  Timer timer_;
};

}  // namespace

uint64_t target_cache_sample_seed(uint64_t seed, int64_t prompt, int sample) {
  return splitmix64(splitmix64(splitmix64(seed) + uint64_t(prompt)) + uint64_t(uint32_t(sample)));
}

std::string target_fingerprint(const Model& m) {
  uint64_t h = kFnvOffsetBasis;
  std::vector<float> row;
  auto add_row = [&](const TensorView& t, int64_t r) {
    if (t.empty() || t.rows() == 0) return;
    r = std::min(r, t.rows() - 1);
    row.resize(size_t(t.cols()));
    dequantize_row(t, r, row.data());
    h = fnv1a64(row.data(), row.size() * sizeof(float), h);
  };
  const int64_t vocab = m.tok_embeddings.rows();
  for (int64_t r : {int64_t(0), vocab / 2, vocab - 1}) add_row(m.tok_embeddings, r);
  if (m.output.data != m.tok_embeddings.data)
    for (int64_t r : {int64_t(0), vocab - 1}) add_row(m.output, r);
  add_row(m.output_norm, 0);
  for (const LayerWeights& l : m.layers)
    for (const TensorView* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_down})
      add_row(*t, 0);
  return hex64(h);
}

TargetCacheSpec target_cache_spec(const LoadedModel& lm, const TargetCacheOptions& opt, CacheMode mode) {
  const Model& m = *lm.model;
  const int n_layers = m.config.n_layers;
  if (opt.taps.empty()) fail("target cache: no tap layers given");
  for (size_t i = 0; i < opt.taps.size(); ++i) {
    const int l = opt.taps[i];
    if (l < -1 || l > n_layers - 2)
      fail("target cache: tap layer ", l, " cannot be tapped: the model has ", n_layers,
           " layers and the taps are -1 (embedding output) .. ", n_layers - 2, " (the last layer never is)");
    if (std::find(opt.taps.begin(), opt.taps.begin() + ptrdiff_t(i), l) != opt.taps.begin() + ptrdiff_t(i))
      fail("target cache: tap layer ", l, " is listed twice");
  }
  TargetCacheSpec s;
  s.model = m.source;
  s.arch = arch_name(m.config.arch);
  s.fingerprint = target_fingerprint(m);
  s.dim = m.config.dim;
  s.vocab = m.config.vocab_size;
  s.n_layers = n_layers;
  s.taps = opt.taps;
  s.dtype = opt.dtype;
  s.mode = mode;
  s.sampling = opt.sampling;
  s.seed = opt.seed;
  s.max_new_tokens = opt.max_new_tokens;
  s.samples_per_prompt = mode == CacheMode::Responses ? opt.samples_per_prompt : 1;
  s.seq_len = mode == CacheMode::Corpus ? opt.seq_len : 0;
  s.min_loss_tokens = opt.min_loss_tokens;
  return s;
}

void record_target_features(const Model& m, ThreadPool& pool, const std::vector<int>& taps,
                            const std::vector<int>& tokens, int max_rows, std::vector<float>& taps_out,
                            std::vector<float>& final_hidden_out) {
  const int n = int(tokens.size()), d = m.config.dim, w = int(taps.size()) * d;
  if (n == 0) fail("target cache: an empty token sequence has no features");
  if (max_rows <= 0) max_rows = auto_forward_rows(m);
  taps_out.resize(size_t(n) * size_t(w));
  final_hidden_out.resize(size_t(n) * size_t(d));
  KVCache cache(m.config, 1, n);
  Transformer tf(m, pool);
  const int rows = std::min(n, max_rows);
  std::vector<float> logits(size_t(rows) * size_t(m.config.vocab_size));  // [rows, vocab], unused
  Batch batch;
  HiddenTaps ht;
  ht.layers = taps;
  for (int begin = 0; begin < n; begin += rows) {
    const int end = std::min(n, begin + rows);
    batch.clear();
    // Every row is a logit row: final_hidden comes only for logit rows.
    for (int i = begin; i < end; ++i) batch.add(tokens[size_t(i)], i, 0, true);
    ht.out = taps_out.data() + size_t(begin) * size_t(w);
    ht.final_hidden = final_hidden_out.data() + size_t(begin) * size_t(d);
    tf.forward(batch, cache, logits.data(), &ht);
  }
}

TargetCacheProgress build_target_cache(const LoadedModel& lm, ThreadPool& pool,
                                       const std::vector<std::string>& prompts, const std::string& dir,
                                       const TargetCacheOptions& opt, const TargetCacheCallbacks& cb) {
  validate_common(opt);
  if (prompts.empty()) fail("target cache: no prompts");
  if (opt.max_new_tokens < 1) fail("target cache: max new tokens must be >= 1, got ", opt.max_new_tokens);
  if (opt.samples_per_prompt < 1)
    fail("target cache: samples per prompt must be >= 1, got ", opt.samples_per_prompt);
  const Model& m = *lm.model;
  TargetCacheSpec spec = target_cache_spec(lm, opt, CacheMode::Responses);
  spec.source_count = int64_t(prompts.size());
  uint64_t h = kFnvOffsetBasis;
  for (const std::string& p : prompts) {
    const uint64_t len = p.size();
    h = fnv1a64(&len, sizeof len, h);
    h = fnv1a64(p.data(), p.size(), h);
  }
  spec.source_hash = hex64(h);

  Generator gen(lm, pool);
  std::vector<std::vector<int>> prompt_tokens;
  prompt_tokens.reserve(prompts.size());
  for (const std::string& p : prompts) prompt_tokens.push_back(gen.tokenize_prompt(p));
  const int context = model_context(m);
  auto fits = [&](size_t p) { return context == 0 || int64_t(prompt_tokens[p].size()) < context; };

  TargetCacheWriter writer(dir, spec);
  const int64_t spp = opt.samples_per_prompt;
  const int64_t items = int64_t(prompts.size()) * spp;
  Reporter rep(cb, writer, items);
  uint64_t max_bytes = 0;
  for (int64_t item = writer.items_done(); item < items; ++item) {
    const size_t p = size_t(item / spp);
    if (!fits(p)) continue;
    int64_t n = int64_t(prompt_tokens[p].size()) + opt.max_new_tokens;
    if (context > 0) n = std::min<int64_t>(n, context);
    max_bytes += sample_bytes(spec, n) + kCacheIndexRecordBytes;
  }
  rep.plan(max_bytes, std::max<int64_t>(0, items - writer.items_done()));

  const int rows = opt.max_forward_rows;
  std::vector<int> seq;
  std::vector<uint8_t> mask;
  std::vector<float> taps, final_hidden;
  for (int64_t item = writer.items_done(); item < items; ++item) {
    const size_t p = size_t(item / spp);
    const int s = int(item % spp);
    if (!fits(p)) {
      ++rep.progress().skipped;
      writer.set_items_done(item + 1);
      rep.report();
      continue;
    }
    GenerateRequest req;
    req.prompt = prompts[p];
    req.max_tokens = opt.max_new_tokens;
    req.sampling = opt.sampling;
    req.seed = target_cache_sample_seed(opt.seed, int64_t(p), s);
    const GenerateResult res = gen.generate(req);
    rep.progress().generated_tokens += int64_t(res.tokens.size());
    if (int(res.tokens.size()) < std::max(1, opt.min_loss_tokens)) {
      ++rep.progress().dropped;
      writer.set_items_done(item + 1);
      rep.report();
      continue;
    }
    seq = prompt_tokens[p];
    seq.insert(seq.end(), res.tokens.begin(), res.tokens.end());
    mask.assign(seq.size(), 1);
    std::fill_n(mask.begin(), prompt_tokens[p].size(), uint8_t(0));
    record_target_features(m, pool, opt.taps, seq, rows, taps, final_hidden);
    writer.append(seq.data(), mask.data(), int(seq.size()), taps.data(), final_hidden.data(), uint32_t(p),
                  uint32_t(s));
    rep.report();
  }
  writer.finish();
  return rep.progress();
}

TargetCacheProgress build_corpus_cache(const LoadedModel& lm, ThreadPool& pool, const std::string& text,
                                       const std::string& dir, const TargetCacheOptions& opt,
                                       const TargetCacheCallbacks& cb) {
  validate_common(opt);
  const Model& m = *lm.model;
  const int bos = m.tokens.bos;
  const int lead = bos >= 0 ? 1 : 0;
  if (opt.seq_len < lead + 1)
    fail("target cache: sequence length ", opt.seq_len, " leaves no room for text tokens");
  const int context = model_context(m);
  if (context > 0 && opt.seq_len > context)
    fail("target cache: sequence length ", opt.seq_len, " exceeds the model's context of ", context,
         " tokens");
  const std::vector<int> corpus = lm.tokenizer->encode(text, false);
  if (corpus.empty()) fail("target cache: the corpus holds no tokens");
  TargetCacheSpec spec = target_cache_spec(lm, opt, CacheMode::Corpus);
  spec.source_count = int64_t(corpus.size());
  spec.source_hash = hex64(fnv1a64(text.data(), text.size()));

  // Sequence i holds text tokens [i*body, (i+1)*body).
  const int64_t body = opt.seq_len - lead;
  const int64_t items = (int64_t(corpus.size()) + body - 1) / body;
  auto text_tokens = [&](int64_t i) { return std::min<int64_t>(body, int64_t(corpus.size()) - i * body); };
  auto keep = [&](int64_t i) { return text_tokens(i) >= std::max(1, opt.min_loss_tokens); };

  TargetCacheWriter writer(dir, spec);
  Reporter rep(cb, writer, items);
  uint64_t max_bytes = 0;
  for (int64_t i = writer.items_done(); i < items; ++i)
    if (keep(i)) max_bytes += sample_bytes(spec, lead + text_tokens(i)) + kCacheIndexRecordBytes;
  rep.plan(max_bytes, std::max<int64_t>(0, items - writer.items_done()));

  std::vector<int> seq;
  std::vector<uint8_t> mask;
  std::vector<float> taps, final_hidden;
  for (int64_t i = writer.items_done(); i < items; ++i) {
    if (!keep(i)) {
      ++rep.progress().dropped;
      writer.set_items_done(i + 1);
      rep.report();
      continue;
    }
    seq.clear();
    if (lead) seq.push_back(bos);
    const auto first = corpus.begin() + ptrdiff_t(i * body);
    seq.insert(seq.end(), first, first + ptrdiff_t(text_tokens(i)));
    mask.assign(seq.size(), 1);
    if (lead) mask[0] = 0;
    record_target_features(m, pool, opt.taps, seq, opt.max_forward_rows, taps, final_hidden);
    writer.append(seq.data(), mask.data(), int(seq.size()), taps.data(), final_hidden.data(), uint32_t(i), 0);
    rep.report();
  }
  writer.finish();
  return rep.progress();
}

}  // namespace dspark
