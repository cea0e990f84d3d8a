#include "engine/batch_engine.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "spec/acceptance.h"
#include "spec/survival.h"
#include "tokenizer/tokenizer.h"

namespace dspark {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop:
      return "stop";
    case FinishReason::Length:
      return "length";
    case FinishReason::Cancelled:
      return "cancelled";
    case FinishReason::Error:
      return "error";
  }
  return "?";
}

// One request, from the queue to its end.
struct BatchEngine::Slot {
  int64_t id = 0;
  EngineRequest req;
  int seq = -1;             // its KV-cache sequence while it runs
  std::vector<int> tokens;  // prompt, then committed tokens; the last is the next anchor
  int n_prompt = 0, max_new = 0;
  int prefilled = 0, chunk = 0;  // prompt positions in the cache; prompt tokens this step
  std::vector<float> pending;    // [n_pending, tap width] target taps not given to the drafter
  int n_pending = 0;
  Rng rng, draft_rng;
  std::unique_ptr<TextStream> stream;
  DraftBlock drafts;
  int n_verify = 0, logit_row = 0, batch_row = 0;  // this step's verification in the batch
  std::vector<float> confidence, survival;
  std::vector<TokenProbs> p;
  std::vector<int> history;
  AcceptScratch scratch;
  RequestOutput out;
  Timer clock;
  bool cancelled = false, done = false;

  int anchor_pos() const { return int(tokens.size()) - 1; }
  int generated() const { return int(out.tokens.size()); }
};

int BatchEngine::slot_context(const EngineOptions& options, const Model& model) {
  return options.context > 0 ? options.context : model.config.max_seq_len;
}

namespace {

std::unique_ptr<Drafter> drafter_for(const DrafterSource* source, const LoadedModel& target, ThreadPool& pool,
                                     const EngineOptions& options) {
  if (!source || options.slots < 1) return nullptr;
  return make_drafter(*source, target, pool, options.slots,
                      BatchEngine::slot_context(options, *target.model) + 1);
}

}  // namespace

BatchEngine::BatchEngine(const LoadedModel& target, const DrafterSource* drafter, ThreadPool& pool,
                         const EngineOptions& options)
    : BatchEngine(target, drafter_for(drafter, target, pool, options),
                  drafter && drafter->calibration ? &*drafter->calibration : nullptr, pool, options) {}

BatchEngine::BatchEngine(const LoadedModel& target, std::unique_ptr<Drafter> drafter,
                         const Calibration* calibration, ThreadPool& pool, const EngineOptions& options)
    : lm_(target),
      pool_(pool),
      options_(options),
      context_(slot_context(options, *target.model)),
      drafter_(std::move(drafter)),
      calibration_(calibration),
      cache_(target.model->config, std::max(options.slots, 1), std::max(context_, 1)),
      tf_(*target.model, pool) {
  const int model_context = target.model->config.max_seq_len;
  if (options_.slots < 1) fail("--parallel must be at least 1, not ", options_.slots);
  if (context_ < 2) fail("a slot's context must hold at least 2 positions (", context_, " given)");
  if (model_context > 0 && context_ > model_context)
    fail("the slot context ", context_, " is larger than the model's context ", model_context);
  if (options_.prefill_chunk < 1) fail("the prefill chunk must be at least 1 token");
  if (options_.max_waiting < 0) fail("the queue length cannot be negative");
  if (drafter_) {
    tap_layers_ = drafter_->tap_layers();
    tap_width_ = tap_layers_.size() * size_t(lm_.model->config.dim);
    const int block = drafter_->max_block();
    if (options_.draft_max < 0 || options_.draft_max > block)
      fail("--draft-max ", options_.draft_max, " is outside 1..", block, " (the ", drafter_->name(),
           " drafter's block)");
    if (!(options_.conf_threshold >= 0.0f && options_.conf_threshold <= 1.0f))
      fail("--conf-threshold ", options_.conf_threshold, " is outside [0, 1]");
    if (options_.scheduler == SchedulerKind::Threshold && !drafter_->has_confidence())
      fail("the threshold scheduler needs confidences; the ", drafter_->name(),
           " drafter has no confidence head");
  }
  const bool costed =
      options_.scheduler == SchedulerKind::Prefix || options_.scheduler == SchedulerKind::Async;
  if (drafter_ && costed && !options_.verify_seconds)
    fail("the ", scheduler_name(options_.scheduler), " scheduler needs the target's cost curve");
  slots_.resize(size_t(options_.slots));
}

BatchEngine::~BatchEngine() = default;

void BatchEngine::check(const EngineRequest& req) const {
  const int V = lm_.model->config.vocab_size;
  const int P = int(req.prompt.size());
  if (P == 0) fail("the prompt is empty");
  if (P >= context_)
    fail("the prompt has ", P, " tokens; a slot holds ", context_, " (prompt and completion together)");
  for (int t : req.prompt)
    if (t < 0 || t >= V) fail("prompt token ", t, " is outside the vocabulary (0..", V - 1, ")");
  for (int t : req.stop_tokens)
    if (t < 0 || t >= V) fail("stop token ", t, " is outside the vocabulary (0..", V - 1, ")");
  if (req.max_tokens == 0 || req.max_tokens < -1) fail("max_tokens must be at least 1, not ", req.max_tokens);
  const SamplingParams& sp = req.sampling;
  if (!std::isfinite(sp.temperature) || sp.temperature < 0) fail("temperature must be >= 0");
  if (!(sp.top_p > 0)) fail("top_p must be > 0");
  if (!(sp.min_p >= 0 && sp.min_p <= 1)) fail("min_p must be within [0, 1]");
  if (!(sp.repeat_penalty > 0)) fail("the repetition penalty must be > 0");
}

bool BatchEngine::submit(int64_t id, EngineRequest req) {
  check(req);
  if (int(waiting_.size()) >= options_.max_waiting) return false;
  auto s = std::make_unique<Slot>();
  s->id = id;
  s->req = std::move(req);
  waiting_.push_back(std::move(s));
  return true;
}

void BatchEngine::cancel(int64_t id) {
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
    if ((*it)->id == id) {
      std::unique_ptr<Slot> s = std::move(*it);
      waiting_.erase(it);
      s->out.n_prompt = int(s->req.prompt.size());
      s->out.reason = FinishReason::Cancelled;
      s->out.seconds = s->clock.seconds();
      if (s->req.on_done) s->req.on_done(s->out);
      return;
    }
  for (Slot* s : active_)
    if (s->id == id) s->cancelled = true;
}

double BatchEngine::kv_usage() const {
  double used = 0;
  for (const Slot* s : active_) used += cache_.length(s->seq);
  return used / (double(options_.slots) * context_);
}

void BatchEngine::admit() {
  for (size_t i = 0; i < slots_.size() && !waiting_.empty(); ++i) {
    if (slots_[i]) continue;
    std::unique_ptr<Slot> s = std::move(waiting_.front());
    waiting_.pop_front();
    s->seq = int(i);
    s->tokens = s->req.prompt;
    s->n_prompt = int(s->tokens.size());
    const int room = context_ - s->n_prompt;
    s->max_new = s->req.max_tokens < 0 ? room : std::min(s->req.max_tokens, room);
    s->out.n_prompt = s->n_prompt;
    s->rng = Rng(s->req.seed);
    s->draft_rng = Rng(s->req.seed ^ 0x9e3779b97f4a7c15ull);
    s->stream = std::make_unique<TextStream>(*lm_.tokenizer);
    for (int t : s->tokens) s->stream->push(t);
    cache_.clear(s->seq);
    if (drafter_) drafter_->reset(s->seq);
    active_.push_back(s.get());
    slots_[i] = std::move(s);
  }
}

void BatchEngine::finish(Slot& s, FinishReason reason) {
  const std::string tail = s.stream->finish();
  const bool ended_well = reason == FinishReason::Stop || reason == FinishReason::Length;
  if (!tail.empty() && ended_well && s.req.on_text) s.req.on_text(tail);
  s.out.reason = reason;
  s.out.seconds = s.clock.seconds();
  s.done = true;
  cache_.clear(s.seq);
  if (drafter_) drafter_->reset(s.seq);
  if (s.req.on_done) s.req.on_done(s.out);
}

void BatchEngine::abort_all(const std::string& message) {
  for (Slot* s : active_)
    if (!s->done) {
      s->out.error = message;
      finish(*s, FinishReason::Error);
    }
  while (!waiting_.empty()) {
    std::unique_ptr<Slot> s = std::move(waiting_.front());
    waiting_.pop_front();
    s->out.n_prompt = int(s->req.prompt.size());
    s->out.reason = FinishReason::Error;
    s->out.error = message;
    if (s->req.on_done) s->req.on_done(s->out);
  }
  release_finished();
}

void BatchEngine::release_finished() {
  for (Slot* s : active_)
    if (s->cancelled && !s->done) finish(*s, FinishReason::Cancelled);
  std::erase_if(active_, [](const Slot* s) { return s->done; });
  for (auto& s : slots_)
    if (s && s->done) s.reset();
}

double BatchEngine::verify_cost(int tokens) const {
  return (cost_scale_ > 0 ? cost_scale_ : 1.0) * options_.verify_seconds(tokens);
}

double BatchEngine::step_cost(int tokens) const { return step_overhead_ + verify_cost(tokens); }

std::vector<int> BatchEngine::schedule(const std::vector<Slot*>& drafting, double draft_seconds,
                                       int other_tokens) {
  const SchedulerKind kind = options_.scheduler;
  std::vector<int> length(drafting.size());
  if (kind == SchedulerKind::Fixed) {
    for (size_t r = 0; r < drafting.size(); ++r) length[r] = int(drafting[r]->drafts.tokens.size());
    return length;
  }
  std::vector<std::vector<float>> survival(drafting.size());
  for (size_t r = 0; r < drafting.size(); ++r) {
    Slot& s = *drafting[r];
    const CalibrationFit* fit = calibration_ ? calibration_->nearest(s.req.sampling.temperature) : nullptr;
    draft_survival(s.drafts, fit, history_, s.confidence, s.survival);
    if (kind == SchedulerKind::Threshold)
      length[r] = threshold_length(s.confidence.data(), int(s.confidence.size()), options_.conf_threshold);
    survival[r] = s.survival;
  }
  if (kind == SchedulerKind::Threshold) return length;
  const auto cost = [this](int tokens) { return step_cost(tokens); };
  length = schedule_prefixes(survival, draft_seconds, cost, other_tokens);
  if (kind == SchedulerKind::Prefix) return length;
  // async: the capacity the prefix scheduler found two steps ago (now, in the first two
  // steps); the top positions by current survival fill it, without an early stop.
  int admitted = 0;
  for (int l : length) admitted += l;
  const int capacity = async_capacity_.size() == 2 ? async_capacity_.front() : admitted;
  async_capacity_.push_back(admitted);
  if (async_capacity_.size() > 2) async_capacity_.pop_front();
  return top_k_prefixes(survival, capacity);
}

bool BatchEngine::step() {
  release_finished();
  admit();
  if (active_.empty()) return false;
  Timer step_timer;
  StepReport report;
  const Model& m = *lm_.model;
  const int V = m.config.vocab_size;

  // Who decodes and who prefills; prompt tokens share a budget, first come first served.
  std::vector<Slot*> decoding, prefilling;
  int budget = options_.prefill_chunk;
  for (Slot* s : active_) {
    s->drafts.clear();
    s->n_verify = 0;
    if (s->prefilled == s->n_prompt) {
      decoding.push_back(s);
    } else if (budget > 0) {
      s->chunk = std::min(budget, s->n_prompt - s->prefilled);
      budget -= s->chunk;
      prefilling.push_back(s);
    }
  }
  const int R = int(decoding.size());
  report.requests = R;
  report.prefill_tokens = options_.prefill_chunk - budget;

  // Whether to draft is decided before drafting, from earlier steps: that keeps it lossless.
  const SchedulerKind kind = options_.scheduler;
  const bool gated = options_.draft_gate && (kind == SchedulerKind::Prefix || kind == SchedulerKind::Async);
  const auto cost = [this](int tokens) { return step_cost(tokens); };
  bool draft = drafter_ && kind != SchedulerKind::None && R > 0;
  if (draft && gated) draft = gate_.should_draft(R, report.prefill_tokens, cost);
  report.drafted = draft;

  std::vector<Slot*> drafting;
  double draft_seconds = 0;
  if (draft) {
    Timer t;
    const int block = drafter_->max_block();
    const int fixed_max = options_.draft_max > 0 ? options_.draft_max : block;
    for (Slot* s : decoding) {
      // A round commits at most n + 1 tokens and writes positions anchor..anchor+n.
      int max_n = std::min({block, s->max_new - s->generated() - 1, context_ - s->anchor_pos() - 1});
      if (kind == SchedulerKind::Fixed) max_n = std::min(max_n, fixed_max);
      if (max_n <= 0) continue;
      DraftInput in;
      in.seq = s->seq;
      in.tokens = s->tokens.data();
      in.n_tokens = int(s->tokens.size());
      in.pending_taps = tap_width_ ? s->pending.data() : nullptr;
      in.n_pending = tap_width_ ? s->n_pending : 0;
      in.max_tokens = max_n;
      in.sampling = &s->req.sampling;
      in.rng = &s->draft_rng;
      drafter_->draft(in, s->drafts);
      if (tap_width_) s->n_pending = 0;
      if (!s->drafts.tokens.empty()) drafting.push_back(s);
    }
    draft_seconds = t.seconds();
    const int other = report.prefill_tokens + (R - int(drafting.size()));
    const std::vector<int> length = schedule(drafting, draft_seconds, other);
    for (size_t r = 0; r < drafting.size(); ++r)
      drafting[r]->n_verify = std::min(length[r], int(drafting[r]->drafts.tokens.size()));
  }

  // One forward: every decoding request's anchor and admitted drafts, then prompt chunks.
  batch_.clear();
  int logit_rows = 0;
  for (Slot* s : decoding) {
    s->batch_row = batch_.size();
    s->logit_row = logit_rows;
    const int pos = s->anchor_pos();
    batch_.add(s->tokens[size_t(pos)], pos, s->seq, true);
    for (int j = 0; j < s->n_verify; ++j) batch_.add(s->drafts.tokens[size_t(j)], pos + 1 + j, s->seq, true);
    logit_rows += s->n_verify + 1;
  }
  for (Slot* s : prefilling) {
    s->batch_row = batch_.size();
    s->logit_row = logit_rows;
    for (int i = 0; i < s->chunk; ++i) {
      const int pos = s->prefilled + i;
      const bool last = pos == s->n_prompt - 1;
      batch_.add(s->tokens[size_t(pos)], pos, s->seq, last);
      logit_rows += last;
    }
  }
  report.tokens = batch_.size();
  logits_.resize(size_t(logit_rows) * size_t(V));
  taps_.resize(size_t(batch_.size()) * tap_width_);
  HiddenTaps taps{tap_layers_, taps_.data()};
  Timer verify;
  tf_.forward(batch_, cache_, logits_.data(), tap_width_ ? &taps : nullptr);
  const double forward_seconds = verify.seconds();
  if (options_.verify_seconds) {  // how this machine runs now, against the cost profile
    const double ratio = forward_seconds / options_.verify_seconds(batch_.size());
    cost_scale_ = cost_scale_ > 0 ? 0.8 * cost_scale_ + 0.2 * ratio : ratio;
  }

  // Hands target taps of batch rows [row, row + n) to the request's drafter input.
  auto keep_taps = [this](Slot& s, int row, int n) {
    if (!tap_width_) return;
    s.pending.resize(std::max(s.pending.size(), size_t(s.n_pending + n) * tap_width_));
    std::copy_n(taps_.data() + size_t(row) * tap_width_, size_t(n) * tap_width_,
                s.pending.data() + size_t(s.n_pending) * tap_width_);
    s.n_pending += n;
  };
  // Commits one token; true when it ends the request (a stop token).
  const auto& eos = m.tokens.eos;
  auto commit = [&](Slot& s, int t) {
    s.tokens.push_back(t);
    s.out.tokens.push_back(t);
    if (s.out.time_to_first_token < 0) s.out.time_to_first_token = s.clock.seconds();
    if (std::find(eos.begin(), eos.end(), t) != eos.end()) return true;
    const auto& extra = s.req.stop_tokens;
    if (std::find(extra.begin(), extra.end(), t) != extra.end()) return true;
    const std::string piece = s.stream->push(t);
    if (!piece.empty() && s.req.on_text) s.req.on_text(piece);
    return false;
  };

  int committed_total = 0, verified_total = 0;
  for (Slot* sp : decoding) {
    Slot& s = *sp;
    const SamplingParams& params = s.req.sampling;
    const int n = s.n_verify, pos = s.anchor_pos();
    const int keep = std::min(int(s.tokens.size()), std::max(params.repeat_last_n, 0));
    s.history.assign(s.tokens.end() - keep, s.tokens.end());
    s.history.insert(s.history.end(), s.drafts.tokens.begin(), s.drafts.tokens.begin() + n);
    if (s.p.size() < size_t(n + 1)) s.p.resize(size_t(n + 1));
    for (int j = 0; j <= n; ++j)
      next_token_distribution(logits_.data() + size_t(s.logit_row + j) * size_t(V), V, params,
                              s.history.data(), keep + j, s.p[size_t(j)]);
    const Verdict v =
        accept_drafts(s.drafts.tokens.data(), s.drafts.q.data(), s.p.data(), n, s.rng, s.scratch);
    bool stop = false;
    int committed = 0;
    for (int j = 0; j < v.accepted && !stop; ++j, ++committed) stop = commit(s, s.drafts.tokens[size_t(j)]);
    const int verified = stop ? committed : n;  // positions after a stop token do not count
    if (!stop) {
      stop = commit(s, v.next);
      ++committed;
    }
    const int new_len = pos + v.accepted + 1;  // anchor and accepted drafts stay cached
    cache_.truncate(s.seq, new_len);
    if (drafter_) drafter_->commit(s.seq, new_len);
    keep_taps(s, s.batch_row, v.accepted + 1);
    const int drafted = int(s.drafts.tokens.size()), accepted = std::min(v.accepted, verified);
    s.out.spec.add_round(drafted, verified, accepted, committed);
    history_.add_round(drafted, verified, accepted, committed);
    if (drafted > 0) report.rounds.push_back({drafted, verified, accepted});
    committed_total += committed;
    verified_total += n;
    if (stop)
      finish(s, FinishReason::Stop);
    else if (s.generated() >= s.max_new)
      finish(s, FinishReason::Length);
  }
  for (Slot* sp : prefilling) {
    Slot& s = *sp;
    keep_taps(s, s.batch_row, s.chunk);
    s.prefilled += s.chunk;
    if (s.prefilled < s.n_prompt) continue;
    if (s.p.empty()) s.p.resize(1);
    next_token_distribution(logits_.data() + size_t(s.logit_row) * size_t(V), V, s.req.sampling,
                            s.tokens.data(), s.n_prompt, s.p[0]);
    if (commit(s, draw_from(s.p[0], s.rng)))
      finish(s, FinishReason::Stop);
    else if (s.generated() >= s.max_new)
      finish(s, FinishReason::Length);
  }
  if (draft && gated)
    gate_.record_step(R, committed_total, verified_total, draft_seconds, cost, report.prefill_tokens);
  release_finished();
  report.seconds = step_timer.seconds();
  if (R > 0) {  // what a step costs besides drafting and the forward (sampling, callbacks)
    const double overhead = std::max(0.0, report.seconds - forward_seconds - draft_seconds);
    step_overhead_ = step_overhead_ > 0 ? 0.8 * step_overhead_ + 0.2 * overhead : overhead;
  }
  if (on_step) on_step(report);
  return true;
}

}  // namespace dspark
