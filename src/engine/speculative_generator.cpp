#include "engine/speculative_generator.h"

#include <algorithm>

#include "core/error.h"
#include "core/timer.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "spec/survival.h"

namespace dspark {

void validate_spec_options(const SpecOptions& o, const Drafter& drafter) {
  const int block = drafter.max_block();
  if (o.draft_max < 0 || o.draft_max > block)
    fail("--draft-max ", o.draft_max, " is outside 1..", block, " (the ", drafter.name(),
         " drafter's block)");
  if (!(o.conf_threshold >= 0.0f && o.conf_threshold <= 1.0f))
    fail("--conf-threshold ", o.conf_threshold, " is outside [0, 1]");
  if (o.scheduler == SchedulerKind::Threshold && !drafter.has_confidence())
    fail("the threshold scheduler needs confidences; the ", drafter.name(),
         " drafter has no confidence head (use --scheduler fixed or prefix)");
  if ((o.scheduler == SchedulerKind::Prefix || o.scheduler == SchedulerKind::Async) && !o.verify_seconds)
    fail("the ", scheduler_name(o.scheduler), " scheduler needs the target's cost curve");
  if (!o.accept) fail("no acceptance rule");
}

SpeculativeGenerator::SpeculativeGenerator(const LoadedModel& target, Drafter& drafter, ThreadPool& pool,
                                           const SpecOptions& options)
    : lm_(target), drafter_(drafter), pool_(pool), options_(options) {
  validate_spec_options(options_, drafter_);
}

int SpeculativeGenerator::verify_length(const DraftBlock& block, float temperature, double draft_seconds) {
  const int drafted = int(block.tokens.size());
  if (options_.scheduler == SchedulerKind::Fixed) return drafted;
  const CalibrationFit* fit = options_.calibration ? options_.calibration->nearest(temperature) : nullptr;
  draft_survival(block, fit, history_, confidence_, survival_);
  const int n = int(survival_.size());
  if (options_.scheduler == SchedulerKind::Threshold)
    return threshold_length(confidence_.data(), n, options_.conf_threshold);
  const auto cost = [this](int tokens) { return verify_cost(tokens); };
  const int prefix = prefix_length(survival_.data(), n, draft_seconds, cost);
  if (options_.scheduler == SchedulerKind::Prefix) return prefix;
  // async: what the prefix scheduler admitted two rounds ago (now, in the first two rounds),
  // without the early stop.
  const int capacity = async_capacity_[0] < 0 ? prefix : async_capacity_[0];
  async_capacity_[0] = async_capacity_[1];
  async_capacity_[1] = prefix;
  return std::min(capacity, n);
}

double SpeculativeGenerator::verify_cost(int tokens) const {
  return (cost_scale_ > 0 ? cost_scale_ : 1.0) * options_.verify_seconds(tokens);
}

GenerateResult SpeculativeGenerator::generate(const GenerateRequest& req,
                                              const std::function<void(const std::string&)>& on_text) {
  const Model& m = *lm_.model;
  const int V = m.config.vocab_size;
  const SamplingParams& sp = req.sampling;
  GenerateResult res;
  res.spec.emplace();
  SpecStats& st = *res.spec;

  std::vector<int> tokens = Generator(lm_, pool_).tokenize_prompt(req.prompt);
  const int P = res.n_prompt = int(tokens.size());
  const int context = m.config.max_seq_len > 0 ? m.config.max_seq_len : P + req.max_tokens;
  if (P >= context) fail("the prompt has ", P, " tokens; the model's context is ", context, " tokens");
  const int max_new = std::min(req.max_tokens, context - P);
  res.context_limited = max_new < req.max_tokens;
  if (max_new <= 0) return res;
  const int capacity = P + max_new;

  cache_ = std::make_unique<KVCache>(m.config, 1, capacity);
  KVCache& cache = *cache_;
  Transformer tf(m, pool_);
  drafter_.reset(0);
  const int block = drafter_.max_block();
  const std::vector<int> tap_layers = drafter_.tap_layers();
  const size_t width = tap_layers.size() * size_t(m.config.dim);

  // Target taps not yet given to the drafter: the prompt's, then committed rows of each round.
  std::vector<float> pending(size_t(P) * width), verify_taps(size_t(block + 1) * width);
  int n_pending = P;
  HiddenTaps taps{tap_layers, pending.data()};
  std::vector<float> logits(size_t(block + 1) * size_t(V));
  std::vector<TokenProbs> p(size_t(block + 1));
  std::vector<int> history;  // recent tokens then drafts, for the repetition penalty
  DraftBlock drafts;
  AcceptScratch scratch;
  Rng rng(req.seed), draft_rng(req.seed ^ 0x9e3779b97f4a7c15ull);
  TextStream stream(*lm_.tokenizer);
  for (int t : tokens) stream.push(t);
  const auto& eos = m.tokens.eos;

  // Commits one token; true when it is a stop token.
  auto commit = [&](int t) {
    tokens.push_back(t);
    res.tokens.push_back(t);
    if (std::find(eos.begin(), eos.end(), t) != eos.end()) return res.stopped = true;
    const std::string piece = stream.push(t);
    res.text += piece;
    if (on_text && !piece.empty()) on_text(piece);
    return false;
  };

  Batch batch;
  for (int i = 0; i < P; ++i) batch.add(tokens[size_t(i)], i, 0, i == P - 1);
  Timer prefill;
  tf.forward(batch, cache, logits.data(), width ? &taps : nullptr);
  res.prefill_seconds = prefill.seconds();

  Timer decode;
  next_token_distribution(logits.data(), V, sp, tokens.data(), P, p[0]);
  bool stop = commit(draw_from(p[0], rng));

  const int fixed_max = options_.draft_max > 0 ? options_.draft_max : block;
  while (!stop && int(res.tokens.size()) < max_new) {
    const int s = int(tokens.size()) - 1;  // the anchor's position
    // A round commits at most n + 1 tokens and writes positions s..s+n to the cache.
    int max_n = std::min({block, max_new - int(res.tokens.size()) - 1, capacity - s - 1});
    if (options_.scheduler == SchedulerKind::Fixed) max_n = std::min(max_n, fixed_max);
    bool draft = max_n > 0 && options_.scheduler != SchedulerKind::None;
    const bool gated =
        (options_.scheduler == SchedulerKind::Prefix || options_.scheduler == SchedulerKind::Async) &&
        options_.draft_gate;
    if (draft && gated && !gate_.should_draft(verify_cost(1))) {
      draft = false;
      ++st.skipped_rounds;
    }

    Timer round;
    int n = 0;
    double draft_seconds = 0;
    drafts.clear();
    if (draft) {
      DraftInput in;
      in.seq = 0;
      in.tokens = tokens.data();
      in.n_tokens = int(tokens.size());
      in.pending_taps = width ? pending.data() : nullptr;
      in.n_pending = width ? n_pending : 0;
      in.max_tokens = max_n;
      in.sampling = &sp;
      in.rng = &draft_rng;
      Timer t;
      drafter_.draft(in, drafts);
      draft_seconds = t.seconds();
      st.draft_seconds += draft_seconds;
      n_pending = width ? 0 : n_pending;
      n = std::min(verify_length(drafts, sp.temperature, draft_seconds), int(drafts.tokens.size()));
    }

    // Verify [anchor, d_0 .. d_{n-1}] in one forward.
    Timer verify;
    batch.clear();
    batch.add(tokens[size_t(s)], s, 0, true);
    for (int j = 0; j < n; ++j) batch.add(drafts.tokens[size_t(j)], s + 1 + j, 0, true);
    HiddenTaps vtaps{tap_layers, verify_taps.data()};
    tf.forward(batch, cache, logits.data(), width ? &vtaps : nullptr);
    const int keep = std::min(int(tokens.size()), std::max(sp.repeat_last_n, 0));
    history.assign(tokens.end() - keep, tokens.end());
    history.insert(history.end(), drafts.tokens.begin(), drafts.tokens.begin() + n);
    for (int j = 0; j <= n; ++j)
      next_token_distribution(logits.data() + size_t(j) * size_t(V), V, sp, history.data(), keep + j,
                              p[size_t(j)]);
    const Verdict v = options_.accept(drafts.tokens.data(), drafts.q.data(), p.data(), n, rng, scratch);

    // Commit the accepted drafts, then the bonus token; a stop token ends the round there.
    int committed = 0;
    for (int j = 0; j < v.accepted && !stop; ++j) {
      stop = commit(drafts.tokens[size_t(j)]);
      ++committed;
    }
    const bool stop_in_drafts = stop;
    const int verified = stop ? committed : n;  // positions after a stop token do not count
    if (!stop) {
      stop = commit(v.next);
      ++committed;
    }
    const int new_s = s + v.accepted + 1;  // anchor and accepted drafts stay cached
    cache.truncate(0, new_s);
    drafter_.commit(0, new_s);
    if (width) {  // their taps (rows 0..a of the verify pass) go to the drafter next round
      const size_t rows = size_t(v.accepted + 1);
      pending.resize(std::max(pending.size(), (size_t(n_pending) + rows) * width));
      std::copy_n(verify_taps.data(), rows * width, pending.data() + size_t(n_pending) * width);
      n_pending += int(rows);
    }
    const double verify_seconds = verify.seconds();
    st.verify_seconds += verify_seconds;
    if (options_.verify_seconds) {  // how this machine runs now, against the cost profile
      const double ratio = verify_seconds / options_.verify_seconds(n + 1);
      cost_scale_ = cost_scale_ > 0 ? 0.8 * cost_scale_ + 0.2 * ratio : ratio;
    }
    st.add_round(int(drafts.tokens.size()), verified, std::min(v.accepted, verified), committed);
    history_.add_round(int(drafts.tokens.size()), verified, std::min(v.accepted, verified), committed);
    if (options_.on_round) {
      RoundRecord rec;
      rec.confidence = drafts.confidence;
      rec.drafted = int(drafts.tokens.size());
      rec.verified = n;
      rec.accepted = std::min(v.accepted, verified);
      rec.stop_in_drafts = stop_in_drafts;
      rec.valid = verified;
      options_.on_round(rec);
    }
    if (draft && gated) gate_.record_round(committed, round.seconds(), verify_cost(1));
  }
  const std::string tail = stream.finish();
  res.text += tail;
  if (on_text && !tail.empty()) on_text(tail);
  res.decode_seconds = decode.seconds();
  return res;
}

}  // namespace dspark
