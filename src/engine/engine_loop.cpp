#include "engine/engine_loop.h"

#include <exception>

namespace dspark {

EngineLoop::EngineLoop(BatchEngine& engine) : engine_(engine), thread_([this] { run(); }) {
  load_.slots = engine.slots();
}

EngineLoop::~EngineLoop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  for (auto& [id, req] : inbox_) hand_over(id, std::move(req));  // so that each gets on_done
  engine_.abort_all("the server is shutting down");
}

int64_t EngineLoop::submit(EngineRequest req) {
  engine_.check(req);  // reads only what never changes: safe beside a running step
  int64_t id;
  {
    std::lock_guard lock(mu_);
    if (int(inbox_.size()) + load_.waiting >= engine_.options().max_waiting) return -1;
    id = next_id_++;
    inbox_.emplace_back(id, std::move(req));
  }
  wake_.notify_one();
  return id;
}

void EngineLoop::cancel(int64_t id) {
  {
    std::lock_guard lock(mu_);
    cancels_.push_back(id);
  }
  wake_.notify_one();
}

EngineLoop::Load EngineLoop::load() const {
  std::lock_guard lock(mu_);
  return load_;
}

void EngineLoop::hand_over(int64_t id, EngineRequest req) {
  const auto on_done = req.on_done;
  std::string why = "the queue is full";
  try {
    if (engine_.submit(id, std::move(req))) return;
  } catch (const std::exception& e) {
    why = e.what();
  }
  RequestOutput out;
  out.reason = FinishReason::Error;
  out.error = why;
  if (on_done) on_done(out);
}

void EngineLoop::run() {
  bool busy = false;
  std::vector<std::pair<int64_t, EngineRequest>> inbox;
  std::vector<int64_t> cancels;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stop_ || busy || !inbox_.empty() || !cancels_.empty(); });
      if (stop_) return;
      inbox.swap(inbox_);
      cancels.swap(cancels_);
    }
    for (auto& [id, req] : inbox) hand_over(id, std::move(req));
    for (int64_t id : cancels) engine_.cancel(id);
    inbox.clear();
    cancels.clear();
    try {
      busy = engine_.step();
    } catch (const std::exception& e) {
      engine_.abort_all(std::string("engine step failed: ") + e.what());
      busy = false;
    }
    std::lock_guard lock(mu_);
    load_ = {engine_.running(), engine_.waiting(), engine_.slots(), engine_.kv_usage()};
  }
}

}  // namespace dspark
