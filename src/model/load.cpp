#include "model/load.h"

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "kernels/matmul.h"
#include "model/loaders.h"

namespace dspark {

namespace fs = std::filesystem;

namespace {

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// llama2.c ships its tokenizer as a separate file: tokenizer.bin, or a single tok*.bin beside the model.
std::string find_llama2c_tokenizer(const std::string& model_path) {
  const fs::path dir =
      fs::path(model_path).parent_path().empty() ? fs::path(".") : fs::path(model_path).parent_path();
  if (fs::exists(dir / "tokenizer.bin")) return (dir / "tokenizer.bin").string();
  std::string found;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("tok", 0) == 0 && has_suffix(name, ".bin") && e.path() != fs::path(model_path)) {
      if (!found.empty())
        fail(model_path, ": several tokenizer files beside it (", found, ", ", name,
             "); choose one with --tokenizer");
      found = e.path().string();
    }
  }
  if (found.empty()) fail(model_path, ": no tokenizer.bin or tok*.bin beside it; give one with --tokenizer");
  return found;
}

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path) {
  if (fs::is_directory(path)) return Tokenizer::from_hf_json((fs::path(path) / "tokenizer.json").string());
  if (has_suffix(path, ".json")) return Tokenizer::from_hf_json(path);
  if (has_suffix(path, ".gguf")) return Tokenizer::from_gguf(*GgufFile::open(path));
  return Tokenizer::from_llama2c(path);
}

void check_vocab_fits(const Model& m, const Tokenizer& tok, const std::string& tok_label, bool exact) {
  const int nt = tok.vocab_size(), nm = m.config.vocab_size;
  if (nt > nm || (exact && nt != nm))
    fail(tok_label, ": tokenizer has ", nt, " tokens but model ", m.source, " has a vocabulary of ", nm,
         "; they do not belong together");
}

}  // namespace

LoadedModel load_model(const std::string& path, const std::string& tokenizer_path) {
  if (!fs::exists(path)) fail(path, ": no such file or directory");
  LoadedModel out;
  std::string tok_label = tokenizer_path;
  bool exact_vocab = true;
  if (fs::is_directory(path)) {
    out.model = load_hf_folder(path);
    // Hugging Face models may pad the embedding past the tokenizer's last id.
    exact_vocab = false;
    if (tok_label.empty()) tok_label = (fs::path(path) / "tokenizer.json").string();
    out.tokenizer = load_tokenizer_file(tok_label);
  } else if (has_suffix(path, ".gguf")) {
    auto gguf = GgufFile::open(path);
    out.model = load_gguf_model(gguf);
    if (tok_label.empty()) {
      tok_label = path;
      out.tokenizer = Tokenizer::from_gguf(*gguf);
    } else {
      out.tokenizer = load_tokenizer_file(tok_label);
    }
  } else {
    out.model = load_llama2c(path);
    if (tok_label.empty()) tok_label = find_llama2c_tokenizer(path);
    out.tokenizer = load_tokenizer_file(tok_label);
  }
  check_vocab_fits(*out.model, *out.tokenizer, tok_label, exact_vocab);
  // Special ids the model file did not give come from the tokenizer.
  GenerationTokens& gt = out.model->tokens;
  if (gt.bos < 0) gt.bos = out.tokenizer->bos_id();
  if (gt.eos.empty() && out.tokenizer->eos_id() >= 0) gt.eos.push_back(out.tokenizer->eos_id());
  return out;
}

std::string default_model_path() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("DSPARK_MODEL_DIR"); env && *env) dirs.push_back(env);
  dirs.push_back(DSPARK_SOURCE_MODEL_DIR);
  dirs.push_back(DSPARK_INSTALL_MODEL_DIR);
  std::string looked;
  for (const auto& d : dirs) {
    const fs::path p = fs::path(d) / "default.gguf";
    if (fs::exists(p)) return p.string();
    looked += (looked.empty() ? "" : ", ") + p.string();
  }
  fail("no default model found (looked at ", looked, "); give a model with -m");
}

std::string default_drafter_path(const std::string& default_model) {
  const fs::path p = fs::path(default_model).parent_path() / "default-dspark";
  return fs::is_directory(p) ? p.string() : "";
}

}  // namespace dspark
