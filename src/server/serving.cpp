#include "server/serving.h"

#include "core/error.h"

namespace dspark {

Serving::Serving(const ServeConfig& c, const std::function<void(const std::string&)>& log) {
  lm_ = load_model(c.model, c.tokenizer);
  pool_ = std::make_unique<ThreadPool>(c.threads);
  const bool speculative = c.spec != "none" && (!c.draft.empty() || c.spec == "ngram");
  if (speculative) source_ = load_drafter(c.draft, c.spec, lm_);

  EngineOptions eo = c.engine;
  if (!speculative) eo.scheduler = SchedulerKind::None;
  const bool costed = eo.scheduler == SchedulerKind::Prefix || eo.scheduler == SchedulerKind::Async;
  if (speculative && costed) {
    // The curve must reach the largest step: every slot's anchor and whole block, plus a
    // prompt chunk.
    const int block = make_drafter(*source_, lm_, *pool_, 1, 2)->max_block();
    const int largest = eo.slots * (block + 1) + eo.prefill_chunk;
    bool measured = false;
    eo.verify_seconds = verify_cost_curve(*lm_.model, *pool_, largest, &measured);
    if (measured)
      log("measured the target's cost curve up to " + std::to_string(largest) + " tokens (cached)");
  }
  engine_ = std::make_unique<BatchEngine>(lm_, source_.get(), *pool_, eo);
  Metrics* m = &metrics_;
  engine_->on_step = [m](const StepReport& r) {
    m->step(r.requests, r.tokens, r.drafted, r.seconds);
    for (const StepReport::Round& round : r.rounds)
      m->spec_round(round.proposed, round.verified, round.accepted);
  };
  loop_ = std::make_unique<EngineLoop>(*engine_);

  ServerOptions so = c.server;
  so.chat_template = c.chat_template.empty() ? ChatTemplate::from_source(lm_.tokenizer->chat_template())
                                             : ChatTemplate::named(c.chat_template);
  http_ = std::make_unique<HttpServer>(lm_, *loop_, metrics_, so);
  http_->bind();
  log("model " + c.model + ", drafter " + drafter_name() + ", scheduler " +
      scheduler_name(engine_->speculative() ? eo.scheduler : SchedulerKind::None) + ", " +
      std::to_string(eo.slots) + " slots of " + std::to_string(engine_->context()) +
      " positions, chat template " + so.chat_template.name());
}

Serving::~Serving() {
  if (http_) http_->stop();
  http_.reset();  // no handler runs any more
  loop_.reset();  // requests still running end with an error
}

std::string Serving::drafter_name() const {
  if (!source_) return "none";
  return std::string(drafter_kind_name(source_->kind)) +
         (source_->path.empty() ? "" : " (" + source_->path + ")");
}

}  // namespace dspark
