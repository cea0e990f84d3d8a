// dspark: the command-line front end. Errors end with one line on stderr and exit code 1.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"
#include "model/load.h"

namespace dspark::cli {

std::string model_path_or_default(const std::string& given) {
  return given.empty() ? default_model_path() : given;
}

}  // namespace dspark::cli

int main(int argc, char** argv) {
  CLI::App app{"dspark: fast LLM inference with DSpark speculative decoding"};
  app.require_subcommand(1);
  dspark::cli::add_generate(app);
  dspark::cli::add_info(app);
  dspark::cli::add_bench(app);
  dspark::cli::add_synth(app);
  dspark::cli::add_quantize(app);
  dspark::cli::add_calibrate(app);
  dspark::cli::add_eval(app);
  dspark::cli::add_train_draft(app);
  dspark::cli::add_train_tokenizer(app);
  dspark::cli::add_train_lm(app);
  dspark::cli::add_serve(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const dspark::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
