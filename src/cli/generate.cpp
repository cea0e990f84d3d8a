// dspark generate: text from a prompt, streamed to stdout, or one JSON object with --json.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "engine/drafter_setup.h"
#include "engine/generator.h"
#include "engine/speculative_generator.h"

namespace dspark::cli {

namespace {

struct GenerateOptions {
  std::string model, tokenizer, prompt, prompt_file, positional_prompt;
  int n = 256;
  int threads = 0;
  SamplingParams sampling;
  int64_t seed = -1;
  bool json = false;
  // Speculative decoding.
  std::string draft, spec, scheduler;
  int draft_max = 0;
  float conf_threshold = -1;  // < 0: not given
};

// Speculative generation with the drafter `draft` (a path, or "" for --spec ngram).
GenerateResult generate_speculative(const GenerateOptions& o, const std::string& draft, const LoadedModel& lm,
                                    ThreadPool& pool, const GenerateRequest& req,
                                    const std::function<void(const std::string&)>& print) {
  const auto source = load_drafter(draft, o.spec, lm);
  const int n_prompt = int(Generator(lm, pool).tokenize_prompt(req.prompt).size());
  const int context =
      lm.model->config.max_seq_len > 0 ? lm.model->config.max_seq_len : n_prompt + req.max_tokens;
  const auto drafter = make_drafter(*source, lm, pool, 1, std::min(context, n_prompt + req.max_tokens) + 1);

  SpecOptions so;
  so.scheduler = choose_scheduler(o.scheduler, o.conf_threshold, o.draft_max);
  so.draft_max = o.draft_max;
  so.conf_threshold = o.conf_threshold >= 0 ? o.conf_threshold : 0.0f;
  if (o.conf_threshold > 1) fail("--conf-threshold ", o.conf_threshold, " is outside [0, 1]");
  if (source->calibration) so.calibration = &*source->calibration;
  if (so.scheduler == SchedulerKind::Prefix || so.scheduler == SchedulerKind::Async) {
    bool measured = false;
    so.verify_seconds = verify_cost_curve(*lm.model, pool, drafter->max_block() + 1, &measured);
    if (measured) std::fprintf(stderr, "measured the target's cost curve (cached for next time)\n");
  }
  std::fprintf(stderr, "drafter %s (%s), scheduler %s%s\n", drafter->name().c_str(),
               draft.empty() ? "no model" : draft.c_str(), scheduler_name(so.scheduler),
               so.calibration ? ", calibrated" : "");
  SpeculativeGenerator gen(lm, *drafter, pool, so);
  return gen.generate(req, print);
}

void run_generate(const GenerateOptions& o, bool prompt_given) {
  GenerateRequest req;
  if (!o.prompt_file.empty())
    req.prompt = read_text_file(o.prompt_file);
  else if (prompt_given)
    req.prompt = o.prompt;
  else
    req.prompt = o.positional_prompt;
  req.max_tokens = o.n;
  req.sampling = o.sampling;
  req.seed = o.seed >= 0 ? uint64_t(o.seed) : std::random_device{}();

  // With no -m the default model comes with its own drafter unless -d or --spec says otherwise.
  const std::string model = model_path_or_default(o.model);
  std::string draft = o.draft;
  const bool checkpoint_kind = o.spec.empty() || o.spec == "dspark" || o.spec == "dflash";
  if (o.model.empty() && draft.empty() && checkpoint_kind) draft = default_drafter_path(model);
  const bool speculative = !draft.empty() || (!o.spec.empty() && o.spec != "none");
  if (o.spec == "none" && !o.draft.empty()) fail("--spec none and -d ", o.draft, " contradict each other");
  if (!speculative && (!o.scheduler.empty() || o.draft_max > 0 || o.conf_threshold >= 0))
    fail("--scheduler, --draft-max and --conf-threshold need a drafter (-d DRAFT or --spec ngram)");

  Timer load_timer;
  const LoadedModel lm = load_model(model, o.tokenizer);
  const double load_seconds = load_timer.seconds();
  ThreadPool pool(o.threads);

  std::function<void(const std::string&)> print;
  if (!o.json)
    print = [](const std::string& s) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    };
  const GenerateResult r = speculative ? generate_speculative(o, draft, lm, pool, req, print)
                                       : Generator(lm, pool).generate(req, print);

  if (o.json) {
    nlohmann::json j;
    j["text"] = r.text;
    j["tokens"] = r.tokens;
    j["n_gen"] = r.tokens.size();
    j["n_prompt"] = r.n_prompt;
    j["load_seconds"] = load_seconds;
    j["prefill_seconds"] = r.prefill_seconds;
    j["decode_seconds"] = r.decode_seconds;
    j["seconds"] = r.prefill_seconds + r.decode_seconds;
    j["tokens_per_second"] = r.tokens_per_second();
    j["seed"] = req.seed;
    if (r.spec) j["spec"] = r.spec->to_json();
    // Invalid UTF-8 from a model is replaced rather than failing the whole answer.
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
  }
  std::fflush(stdout);  // the text's last line before the statistics on stderr
  if (r.context_limited) std::fprintf(stderr, "note: stopped at the model's context length\n");
  std::fprintf(stderr,
               "prompt %d tokens, %.1f ms prefill | generated %zu tokens, %.2f tokens/s | seed %llu\n",
               r.n_prompt, r.prefill_seconds * 1e3, r.tokens.size(), r.tokens_per_second(),
               static_cast<unsigned long long>(req.seed));
  if (r.spec)
    std::fprintf(
        stderr, "speculative: %lld rounds, tau %.2f, %lld drafted, %lld verified, %lld accepted%s\n",
        static_cast<long long>(r.spec->rounds), r.spec->tau(), static_cast<long long>(r.spec->drafted),
        static_cast<long long>(r.spec->verified), static_cast<long long>(r.spec->accepted),
        r.spec->skipped_rounds ? (", " + std::to_string(r.spec->skipped_rounds) + " without drafting").c_str()
                               : "");
}

}  // namespace

void add_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  cmd->add_option("PROMPT", o->positional_prompt, "Prompt text (same as -p)");
  cmd->add_option("-m,--model", o->model,
                  "Model: .gguf file, llama2.c .bin, or Hugging Face folder (default: the project's model)");
  cmd->add_option("-p,--prompt", o->prompt,
                  "Prompt text; \"\" starts from the beginning-of-sequence token alone");
  cmd->add_option("-f,--file", o->prompt_file, "Read the prompt from a file");
  cmd->add_option("-n,--n-predict", o->n, "Maximum tokens to generate")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--temp", o->sampling.temperature, "Temperature; 0 is greedy")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", o->sampling.top_k, "Keep the K most likely tokens (0: off)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->sampling.top_p, "Nucleus sampling mass (1: off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-p", o->sampling.min_p,
                  "Drop tokens below this fraction of the most likely one (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repeat-penalty", o->sampling.repeat_penalty, "Repetition penalty (1: off)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--repeat-last-n", o->sampling.repeat_last_n, "Tokens the penalty looks back over")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seed, "Random seed (default: random)");
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file (tokenizer.json, llama2.c .bin, or .gguf)");
  cmd->add_flag("--json", o->json, "Print one JSON object with the text, tokens and timings");
  cmd->add_option(
      "-d,--draft", o->draft,
      "Drafter: a DSpark/DFlash checkpoint folder or a small language model (speculative decoding; "
      "default: the default model's own drafter when -m is not given)");
  cmd->add_option("--spec", o->spec, "Drafter kind (default: from -d); none: plain decoding")
      ->check(CLI::IsMember({"dspark", "dflash", "draft-model", "ngram", "none"}));
  cmd->add_option("--draft-max", o->draft_max,
                  "Drafts verified per round with the fixed scheduler (default: the block)")
      ->check(CLI::PositiveNumber);
  cmd->add_option(
         "--conf-threshold", o->conf_threshold,
         "Verify drafts up to the first whose calibrated confidence is below X (threshold scheduler)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--scheduler", o->scheduler,
                  "How many drafts to verify: fixed, threshold, prefix (cost-aware, the default; "
                  "without a confidence head it uses the acceptance rates measured so far), async "
                  "(prefix capacity from two rounds before), none (draft nothing)")
      ->check(CLI::IsMember({"none", "fixed", "threshold", "prefix", "async"}));
  CLI::Option* prompt_opt = cmd->get_option("--prompt");
  cmd->callback([o, prompt_opt] { run_generate(*o, prompt_opt->count() > 0); });
}

}  // namespace dspark::cli
