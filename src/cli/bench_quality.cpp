// dspark bench quality: each model is converted in memory to every requested weight type and
// read teacher-forced over the same text as its fp32 form; per type, the fraction of positions
// whose most likely next token matches fp32's, the mean and largest KL(fp32 || type) and the
// perplexity of the text under both.
#include "cli/bench_quality.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/json_output.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "engine/generator.h"
#include "model/quant_quality.h"
#include "model/synth.h"

namespace dspark::cli {

namespace {

std::vector<DType> parse_types(const std::string& list) {
  std::vector<DType> out;
  size_t begin = 0;
  while (begin <= list.size()) {
    const size_t end = std::min(list.find(',', begin), list.size());
    const std::string name = list.substr(begin, end - begin);
    if (!name.empty()) {
      const std::optional<DType> t = parse_weight_type(name);
      if (!t) {
        std::string known;
        for (const std::string& k : weight_type_names()) known += (known.empty() ? "" : ", ") + k;
        fail("bench quality: unknown weight type '", name, "' in --types (known: ", known, ")");
      }
      out.push_back(*t);
    }
    begin = end + 1;
  }
  if (out.empty()) fail("bench quality: --types names no weight type");
  return out;
}

nlohmann::json measure_model(const std::string& path, const QualityOptions& o,
                             const std::vector<DType>& types, const std::string& text, ThreadPool& pool,
                             FILE* table) {
  const LoadedModel lm = load_model(path, o.tokenizer);
  const Model& m = *lm.model;
  std::vector<int> tokens = Generator(lm, pool).tokenize_prompt(text);
  if (m.config.max_seq_len > 0 && int(tokens.size()) > m.config.max_seq_len) {
    std::fprintf(stderr, "%s: the text's %zu tokens are cut to the model's context of %d\n", path.c_str(),
                 tokens.size(), m.config.max_seq_len);
    tokens.resize(size_t(m.config.max_seq_len));
  }
  if (tokens.size() < 2) fail(path, ": the text gives ", tokens.size(), " token(s); need at least two");
  const std::vector<TypeQuality> results = measure_quant_quality(m, tokens, types, pool);

  nlohmann::json j;
  j["path"] = m.source;
  j["architecture"] = arch_name(m.config.arch);
  j["tokens"] = tokens.size();
  j["positions"] = tokens.size() - 1;
  j["types"] = nlohmann::json::array();
  std::fprintf(table, "\nmodel %s: %s, %d layers, dim %d; %zu tokens teacher-forced, compared with fp32\n",
               m.source.c_str(), arch_name(m.config.arch), m.config.n_layers, m.config.dim, tokens.size());
  std::fprintf(table, "  type     MiB   top-1 agree    mean KL     max KL   ppl fp32   ppl type\n");
  for (const TypeQuality& q : results) {
    const std::string name(dtype_name(q.type));
    nlohmann::json t;
    t["type"] = name;
    if (!q.skipped.empty()) {
      t["skipped"] = q.skipped;
      std::fprintf(table, "  %-5s  skipped: %s\n", name.c_str(), q.skipped.c_str());
    } else {
      const DistributionStats& s = q.stats;
      t["weight_bytes"] = q.weight_bytes;
      t["top1_agreement"] = s.top1_agreement;
      t["mean_kl"] = s.mean_kl;
      t["max_kl"] = s.max_kl;
      t["ppl_fp32"] = s.ppl_ref;
      t["ppl"] = s.ppl;
      std::fprintf(table, "  %-5s %6.2f  %11.4f  %9.2e  %9.2e  %9.4f  %9.4f\n", name.c_str(),
                   double(q.weight_bytes) / (1 << 20), s.top1_agreement, s.mean_kl, s.max_kl, s.ppl_ref,
                   s.ppl);
    }
    j["types"].push_back(t);
  }
  return j;
}

}  // namespace

void run_bench_quality(const QualityOptions& o) {
  if (!o.text.empty() && !o.text_file.empty()) fail("bench quality: give -p or -f, not both");
  const std::vector<DType> types = parse_types(o.types);
  const std::string text = !o.text_file.empty() ? read_text_file(o.text_file)
                           : !o.text.empty()    ? o.text
                                                : default_quality_text();
  std::vector<std::string> models = o.models;
  if (models.empty()) models.push_back(model_path_or_default(""));
  for (const std::string& path : models)
    if (!std::filesystem::exists(path)) fail(path, ": no such file or directory");

  const bool json_stdout = o.json && json_to_stdout(o.json_path);
  FILE* table = json_stdout ? stderr : stdout;
  ThreadPool pool(o.threads);
  std::fprintf(table, "dspark bench quality: weight types against fp32, teacher-forced on %s\n",
               !o.text_file.empty() ? o.text_file.c_str()
               : !o.text.empty()    ? "the -p text"
                                    : "the built-in text");
  nlohmann::json out;
  out["mode"] = "quality";
  out["models"] = nlohmann::json::array();
  for (const std::string& path : models)
    out["models"].push_back(measure_model(path, o, types, text, pool, table));
  std::fflush(table);
  if (o.json) write_json_output(out, o.json_path);
}

}  // namespace dspark::cli
