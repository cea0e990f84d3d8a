// dspark train-tokenizer: learns a byte-level BPE tokenizer from text files and writes it as
// a tokenizer-only GGUF (tokenizer.ggml.* metadata, no tensors) that `--tokenizer FILE`
// loads and that a model exporter copies into a model GGUF with Tokenizer::write_gguf.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/timer.h"
#include "tokenizer/bpe_trainer.h"

namespace dspark::cli {

namespace {

struct TrainTokenizerOptions {
  std::vector<std::string> corpus, eval;
  std::string output, name;
  BpeTrainOptions bpe;
  bool no_bos = false;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Bytes of the texts, their tokens under `tok`, and the seconds encoding took.
struct Compression {
  uint64_t bytes = 0, tokens = 0;
  double seconds = 0;
};

Compression measure(const Tokenizer& tok, const std::vector<std::string>& texts) {
  Timer timer;
  Compression c;
  for (const std::string& text : texts) {
    c.bytes += text.size();
    c.tokens += count_tokens(tok, text);
  }
  c.seconds = timer.seconds();
  return c;
}

void run_train_tokenizer(TrainTokenizerOptions& o) {
  if (!ends_with(o.output, ".gguf"))
    fail("-o ", o.output, ": the tokenizer is written as GGUF; name a file ending in .gguf");
  o.bpe.add_bos = !o.no_bos;
  BpeTrainer trainer(o.bpe);  // checks the options before any file is read
  Timer total;
  std::vector<std::string> eval;
  for (const std::string& path : o.eval) eval.push_back(read_corpus_file(path));
  std::vector<std::string> corpus;
  for (const std::string& path : o.corpus) {
    corpus.push_back(read_corpus_file(path));
    trainer.add_text(corpus.back());
  }
  if (trainer.corpus_bytes() == 0) fail("the corpus is empty (", o.corpus.size(), " file(s), 0 bytes)");
  const double read_seconds = total.seconds();
  std::fprintf(stderr, "corpus: %zu file(s), %llu bytes, %llu words (%zu distinct), read in %.2f s\n",
               o.corpus.size(), static_cast<unsigned long long>(trainer.corpus_bytes()),
               static_cast<unsigned long long>(trainer.words()), trainer.distinct_words(), read_seconds);

  Timer train_timer;
  const BpeModel model = trainer.train();
  const double train_seconds = train_timer.seconds();
  const int n_special = 2 + int(o.bpe.extra_special.size());
  std::fprintf(stderr,
               "vocabulary: %d tokens (%d special, 256 bytes, %d merged), %zu merges learned in %.2f s\n",
               model.vocab_size(), n_special, model.vocab_size() - n_special - 256, model.merges.size(),
               train_seconds);
  if (model.vocab_size() < o.bpe.vocab_size)
    std::fprintf(stderr,
                 "note: no pair occurs at least %lld times (--min-frequency) any more: the vocabulary has %d "
                 "tokens, not %d\n",
                 static_cast<long long>(o.bpe.min_frequency), model.vocab_size(), o.bpe.vocab_size);

  const std::string name = o.name.empty() ? "dspark BPE " + std::to_string(model.vocab_size()) : o.name;
  const std::unique_ptr<Tokenizer> tok = model.tokenizer(o.output);
  write_tokenizer_gguf(*tok, o.output, name);

  const Compression train = measure(*tok, corpus);
  std::fprintf(stderr, "training text: %llu tokens for %llu bytes, %.3f bytes/token (encoded in %.2f s)\n",
               static_cast<unsigned long long>(train.tokens), static_cast<unsigned long long>(train.bytes),
               train.tokens ? double(train.bytes) / double(train.tokens) : 0.0, train.seconds);
  if (!o.eval.empty()) {
    const Compression ev = measure(*tok, eval);
    std::fprintf(stderr, "eval text: %llu tokens for %llu bytes, %.3f bytes/token\n",
                 static_cast<unsigned long long>(ev.tokens), static_cast<unsigned long long>(ev.bytes),
                 ev.tokens ? double(ev.bytes) / double(ev.tokens) : 0.0);
  }
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(o.output, ec);
  std::fprintf(stderr, "wrote %s (%.1f KiB); %.2f s in all\n", o.output.c_str(),
               ec ? 0.0 : double(size) / 1024.0, total.seconds());
}

}  // namespace

void add_train_tokenizer(CLI::App& app) {
  auto o = std::make_shared<TrainTokenizerOptions>();
  CLI::App* cmd = app.add_subcommand(
      "train-tokenizer",
      "Train a byte-level BPE tokenizer on text files; writes a tokenizer-only GGUF (load it with "
      "--tokenizer FILE)");
  cmd->add_option("--corpus", o->corpus, "Training text file (repeat for more; each file is one document)")
      ->required();
  cmd->add_option("--vocab-size", o->bpe.vocab_size,
                  "Tokens in all: special tokens, the 256 byte tokens and merged tokens")
      ->required();
  cmd->add_option("-o,--output", o->output, "GGUF file to write (name ending in .gguf)")->required();
  cmd->add_option("--bos", o->bpe.bos, "Beginning-of-sequence token (id 0)")->capture_default_str();
  cmd->add_option("--eos", o->bpe.eos, "End-of-sequence token (id 1)")->capture_default_str();
  cmd->add_option("--special", o->bpe.extra_special,
                  "More control tokens after BOS and EOS, e.g. --special '<pad>' (repeatable)");
  cmd->add_option("--pre", o->bpe.pre_tokenizer, "Pre-tokenizer, as a tokenizer.ggml.pre name")
      ->capture_default_str();
  cmd->add_option("--min-frequency", o->bpe.min_frequency, "Never merge a pair seen fewer times than this")
      ->capture_default_str();
  cmd->add_flag("--no-bos", o->no_bos, "Prompts do not start with BOS (tokenizer.ggml.add_bos_token false)");
  cmd->add_option("--name", o->name, "general.name of the file (default: \"dspark BPE <vocab size>\")");
  cmd->add_option("--eval", o->eval, "Also report bytes/token on this file (repeatable), e.g. held-out text");
  cmd->callback([o] { run_train_tokenizer(*o); });
}

}  // namespace dspark::cli
