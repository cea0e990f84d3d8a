// dspark generate: text from a prompt, streamed to stdout, or one JSON object with --json.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "core/timer.h"
#include "engine/generator.h"

namespace dspark::cli {

namespace {

struct GenerateOptions {
  std::string model, tokenizer, prompt, prompt_file, positional_prompt;
  int n = 256;
  int threads = 0;
  SamplingParams sampling;
  int64_t seed = -1;
  bool json = false;
};

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

  Timer load_timer;
  const LoadedModel lm = load_model(model_path_or_default(o.model), o.tokenizer);
  const double load_seconds = load_timer.seconds();
  ThreadPool pool(o.threads);
  Generator gen(lm, pool);

  std::function<void(const std::string&)> print;
  if (!o.json)
    print = [](const std::string& s) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    };
  const GenerateResult r = gen.generate(req, print);

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
  CLI::Option* prompt_opt = cmd->get_option("--prompt");
  cmd->callback([o, prompt_opt] { run_generate(*o, prompt_opt->count() > 0); });
}

}  // namespace dspark::cli
