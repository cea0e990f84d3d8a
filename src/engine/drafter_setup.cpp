#include "engine/drafter_setup.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "draft/dspark_drafter.h"
#include "draft/model_drafter.h"
#include "engine/cost_profile.h"

namespace dspark {

const char* drafter_kind_name(DrafterKind k) {
  switch (k) {
    case DrafterKind::DSpark:
      return "dspark";
    case DrafterKind::DFlash:
      return "dflash";
    case DrafterKind::DraftModel:
      return "draft-model";
    case DrafterKind::Ngram:
      return "ngram";
  }
  return "?";
}

DrafterKind parse_drafter_kind(const std::string& name) {
  for (DrafterKind k :
       {DrafterKind::DSpark, DrafterKind::DFlash, DrafterKind::DraftModel, DrafterKind::Ngram})
    if (name == drafter_kind_name(k)) return k;
  fail("unknown drafter '", name, "' (expected dspark, dflash, draft-model or ngram)");
}

bool is_dspark_checkpoint(const std::string& path) {
  const std::string config = path + "/config.json";
  if (!std::filesystem::is_directory(path) || !std::filesystem::exists(config)) return false;
  const nlohmann::json j = nlohmann::json::parse(read_text_file(config), nullptr, false);
  if (!j.is_object() || !j.contains("architectures") || !j["architectures"].is_array()) return false;
  for (const auto& a : j["architectures"])
    if (a.is_string() && a.get<std::string>().ends_with("DSparkModel")) return true;
  return false;
}

std::unique_ptr<DrafterSource> load_drafter(const std::string& path, const std::string& kind_name,
                                            const LoadedModel& target) {
  auto src = std::make_unique<DrafterSource>();
  src->path = path;
  if (!kind_name.empty()) {
    src->kind = parse_drafter_kind(kind_name);
  } else if (path.empty()) {
    fail("no drafter given: pass -d DRAFT, or --spec ngram for drafting without a model");
  } else if (is_dspark_checkpoint(path)) {
    src->kind = DrafterKind::DSpark;  // refined below once the heads are known
  } else {
    src->kind = DrafterKind::DraftModel;
  }
  if (src->kind == DrafterKind::Ngram) return src;
  if (path.empty()) fail("--spec ", drafter_kind_name(src->kind), " needs a drafter: pass -d DRAFT");

  if (src->kind == DrafterKind::DSpark || src->kind == DrafterKind::DFlash) {
    if (!is_dspark_checkpoint(path))
      fail(path, ": not a DSpark drafter folder (config.json naming Qwen3DSparkModel); for an ordinary ",
           "language model use --spec draft-model");
    src->dspark = load_dspark(path);
    attach_target(*src->dspark, *target.model);
    const DSparkConfig& c = src->dspark->config;
    const bool has_heads = c.markov_rank > 0 || c.confidence_head;
    if (kind_name.empty() && !has_heads) src->kind = DrafterKind::DFlash;
    if (src->kind == DrafterKind::DSpark && !has_heads)
      fail(path, ": the drafter has no sequential or confidence head (markov_rank 0, no confidence head): ",
           "it is a dflash drafter; use --spec dflash");
    if (src->kind == DrafterKind::DSpark) src->calibration = Calibration::load_from_dir(path);
    return src;
  }
  if (is_dspark_checkpoint(path))
    fail(path, ": a DSpark drafter checkpoint cannot run as a draft model; use --spec dspark or dflash");
  src->draft_model = load_model(path);
  check_draft_vocabulary(*target.tokenizer, *src->draft_model.tokenizer, *src->draft_model.model);
  return src;
}

std::unique_ptr<Drafter> make_drafter(const DrafterSource& source, const LoadedModel& target,
                                      ThreadPool& pool, int n_seqs, int max_positions) {
  switch (source.kind) {
    case DrafterKind::DSpark:
    case DrafterKind::DFlash:
      return std::make_unique<DSparkDrafter>(*source.dspark, pool, n_seqs,
                                             max_positions + source.dspark->config.block_size,
                                             source.kind == DrafterKind::DSpark);
    case DrafterKind::DraftModel: {
      ModelDrafterOptions o;
      o.vocab_limit = target.tokenizer->vocab_size();
      return std::make_unique<ModelDrafter>(*source.draft_model.model, pool, n_seqs, max_positions, o);
    }
    case DrafterKind::Ngram:
      return std::make_unique<NgramDrafter>(source.ngram);
  }
  fail("unknown drafter kind");
}

SchedulerKind choose_scheduler(const std::string& requested, float conf_threshold, int draft_max) {
  if (!requested.empty()) return parse_scheduler(requested);
  if (conf_threshold >= 0) return SchedulerKind::Threshold;
  if (draft_max > 0) return SchedulerKind::Fixed;
  return SchedulerKind::Prefix;
}

std::function<double(int)> verify_cost_curve(const Model& target, ThreadPool& pool, int max_tokens,
                                             bool* measured) {
  CostProfileOptions po;
  po.ks = quick_profile_ks(max_tokens);
  bool cached = false;
  auto profile =
      std::make_shared<CostProfile>(load_or_measure_cost_profile(target, pool, po, std::nullopt, &cached));
  if (measured) *measured = !cached;
  return [profile](int tokens) { return profile->time(tokens); };
}

}  // namespace dspark
