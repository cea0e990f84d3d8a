// Choosing and loading a drafter for a target (`generate -d DRAFT [--spec KIND]`), and
// making Drafter instances sized for a request.
//
// Without --spec the kind follows from DRAFT: a DeepSpec checkpoint (config.json naming a
// *DSparkModel architecture) is dspark when it has a sequential or confidence head, else
// dflash; any other model is a draft-model. `ngram` needs no DRAFT.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/thread_pool.h"
#include "draft/drafter.h"
#include "draft/dspark_model.h"
#include "draft/ngram_drafter.h"
#include "model/load.h"
#include "spec/calibration.h"
#include "spec/scheduler.h"

namespace dspark {

enum class DrafterKind { DSpark, DFlash, DraftModel, Ngram };

const char* drafter_kind_name(DrafterKind k);
// "dspark", "dflash", "draft-model", "ngram"; Error otherwise.
DrafterKind parse_drafter_kind(const std::string& name);

// Whether `path` is a DeepSpec drafter folder (config.json with a *DSparkModel architecture).
bool is_dspark_checkpoint(const std::string& path);

// What is loaded once per drafter; Drafter instances are made from it per request.
struct DrafterSource {
  DrafterKind kind = DrafterKind::Ngram;
  std::string path;
  std::unique_ptr<DSparkModel> dspark;     // dspark, dflash: attached to the target
  std::optional<Calibration> calibration;  // dspark: calibration.json beside the checkpoint
  LoadedModel draft_model;                 // draft-model
  NgramOptions ngram;
};

// Loads and checks the drafter against the target (Error naming what does not fit).
// `kind_name` "" means: decide from the path.
std::unique_ptr<DrafterSource> load_drafter(const std::string& path, const std::string& kind_name,
                                            const LoadedModel& target);

// A drafter for n_seqs sequences of up to max_positions tokens each.
std::unique_ptr<Drafter> make_drafter(const DrafterSource& source, const LoadedModel& target,
                                      ThreadPool& pool, int n_seqs, int max_positions);

// The scheduler for the user's choices: `requested` when given, else threshold when a
// threshold is given (>= 0), fixed when draft_max is (> 0), else prefix (which, for a
// drafter without a confidence head, uses the acceptance rates measured so far).
SchedulerKind choose_scheduler(const std::string& requested, float conf_threshold, int draft_max);

// Seconds of one target forward over T tokens, for the prefix scheduler: the cached cost
// profile of this model on this machine, measured now (a few seconds) when there is none.
// *measured tells whether it was measured.
std::function<double(int)> verify_cost_curve(const Model& target, ThreadPool& pool, int max_tokens,
                                             bool* measured = nullptr);

}  // namespace dspark
