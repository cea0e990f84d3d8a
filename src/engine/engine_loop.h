// Runs a BatchEngine on a thread of its own, so that front ends (the HTTP server, the serving
// benchmark) can submit and cancel requests from any thread. Requests and cancellations wait
// in an inbox that the engine's thread drains between steps; the thread sleeps while there is
// nothing to do. Callbacks of the requests run on the engine's thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/batch_engine.h"

namespace dspark {

class EngineLoop {
 public:
  explicit EngineLoop(BatchEngine& engine);
  // Stops the thread; requests still queued or running end with reason Error.
  ~EngineLoop();
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  // Queues a request and returns its id; -1 when the queue is full. Error (from
  // BatchEngine::check) for a request that can never run.
  int64_t submit(EngineRequest req);
  void cancel(int64_t id);

  struct Load {
    int running = 0, waiting = 0, slots = 0;
    double kv_usage = 0;
  };
  Load load() const;  // as of the last step

 private:
  void run();
  // Gives a request to the engine; one it refuses ends at once with reason Error.
  void hand_over(int64_t id, EngineRequest req);

  BatchEngine& engine_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::vector<std::pair<int64_t, EngineRequest>> inbox_;
  std::vector<int64_t> cancels_;
  Load load_;
  int64_t next_id_ = 1;
  bool stop_ = false;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace dspark
