// Hugging Face tokenizer.json with a "BPE" model: vocabulary, merges, added tokens, and the
// BOS/EOS choice (post-processor template, then tokenizer_config.json and
// special_tokens_map.json beside the file, then well-known names), and the chat template.
#include "tokenizer/hf_json.h"

#include <filesystem>
#include <limits>
#include <optional>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/rank_bpe_tokenizer.h"

namespace dspark {
namespace {

using hf::json;
using hf::member;

// Ids above this are taken as corruption rather than allocated for (real vocabularies
// have at most a few hundred thousand tokens).
constexpr int64_t kMaxTokenId = 1 << 24;
// How many ids may be missing between 0 and the largest id.
constexpr int64_t kMaxIdGap = 4096;

json parse_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON: ", e.what());
  }
}

int read_id(const json& v, const std::string& where) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= kMaxTokenId)
    fail(where, ": token id must be an integer in [0, ", kMaxTokenId, "), got ", hf::brief(v));
  return int(v.get<int64_t>());
}

std::string replace_all(std::string s, const std::vector<std::pair<std::string, std::string>>& rules) {
  for (const auto& [from, to] : rules) {
    if (from.empty()) continue;
    for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
      s.replace(pos, from.size(), to);
  }
  return s;
}

// One merge rule as its two token strings: "a b" (split at the first space after the first
// character) or ["a", "b"].
std::pair<std::string, std::string> read_merge(const json& m, const std::string& where) {
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ', 1);
    if (space == std::string::npos || s.size() < 3)
      fail(where, ": \"", s, "\" is not two tokens separated by a space");
    return {s.substr(0, space), s.substr(space + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return {m[0].get<std::string>(), m[1].get<std::string>()};
  fail(where, ": expected \"a b\" or [\"a\", \"b\"], got ", hf::brief(m));
}

// A token named in tokenizer_config.json / special_tokens_map.json: a string, or an object
// with "content". nullopt when the key is absent; "" when it is explicitly null.
std::optional<std::string> config_token(const json& cfg, const char* key) {
  if (!cfg.is_object() || !cfg.contains(key)) return std::nullopt;
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  if (v.is_null()) return std::string();
  return std::nullopt;
}

json read_side_file(const std::filesystem::path& dir, const char* name) {
  const std::string p = (dir / name).string();
  if (!file_exists(p)) return json();
  return parse_json_file(p);
}

// The chat template: tokenizer_config.json "chat_template", a string or a list of
// {"name", "template"} (the one named "default", else the first); exports by newer
// transformers keep it in chat_template.jinja instead. "" when there is none.
std::string read_chat_template(const json& cfg, const std::filesystem::path& dir) {
  const std::string where = (dir / "tokenizer_config.json").string() + ": \"chat_template\"";
  const json* t = member(cfg, "chat_template");
  if (!t) {
    const std::string jinja = (dir / "chat_template.jinja").string();
    return file_exists(jinja) ? read_text_file(jinja) : std::string();
  }
  if (t->is_string()) return t->get<std::string>();
  if (!t->is_array() || t->empty())
    fail(where, " must be a string or a non-empty list of {\"name\", \"template\"}, got ", hf::brief(*t));
  std::string chosen;
  bool have_default = false;
  for (size_t i = 0; i < t->size(); ++i) {
    const json& entry = (*t)[i];
    const json* name = member(entry, "name");
    const json* tmpl = member(entry, "template");
    if (!name || !name->is_string() || !tmpl || !tmpl->is_string())
      fail(where, "[", i, "] must be an object with string \"name\" and \"template\", got ",
           hf::brief(entry));
    const bool is_default = name->get<std::string>() == "default";
    if (i == 0 || (is_default && !have_default)) chosen = tmpl->get<std::string>();
    have_default = have_default || is_default;
  }
  return chosen;
}

// Picks BOS or EOS: the template's token, then the side files, then well-known names.
int choose_special(const Vocab& vocab, const std::string& template_name, int template_id,
                   std::initializer_list<const json*> configs, const char* key,
                   std::initializer_list<const char*> common_names) {
  if (template_id >= 0 && template_id < vocab.size()) return template_id;
  if (!template_name.empty() && vocab.find(template_name) >= 0) return vocab.find(template_name);
  for (const json* cfg : configs) {
    if (auto name = config_token(*cfg, key)) {
      if (name->empty()) return -1;  // explicitly none
      if (vocab.find(*name) >= 0) return vocab.find(*name);
    }
  }
  for (const char* name : common_names)
    if (vocab.find(name) >= 0) return vocab.find(name);
  return -1;
}

std::unique_ptr<Tokenizer> build(const json& j, const std::string& path) {
  if (!j.is_object()) fail(path, ": the top level is not a JSON object");
  const json* model = member(j, "model");
  if (!model || !model->is_object()) fail(path, ": no \"model\" object");
  const std::string where = path + ": model";
  std::string type = hf::get_string(*model, "type", "", where);
  if (type.empty() && member(*model, "merges")) type = "BPE";  // old files omit the type
  if (type.empty()) fail(path, ": model has no \"type\" (expected \"BPE\")");
  if (type != "BPE")
    fail(path, ": model.type \"", type, "\" is not supported (only BPE tokenizers are implemented)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (!hf::get_string(*model, key, "", where).empty()) fail(where, ": \"", key, "\" is not supported");

  // Vocabulary and added tokens.
  const json* vocab_json = member(*model, "vocab");
  if (!vocab_json || !vocab_json->is_object()) fail(where, ": \"vocab\" must be an object of token -> id");
  const json* added = member(j, "added_tokens");
  if (added && !added->is_array()) fail(path, ": \"added_tokens\" must be an array");
  int64_t n = 0;
  for (const auto& [tok, id] : vocab_json->items())
    n = std::max<int64_t>(n, read_id(id, where + ".vocab[\"" + tok + "\"]") + 1);
  if (added)
    for (size_t i = 0; i < added->size(); ++i) {
      const std::string w = path + ": added_tokens[" + std::to_string(i) + "]";
      const json* id = member((*added)[i], "id");
      if (!id) fail(w, ": missing \"id\"");
      n = std::max<int64_t>(n, read_id(*id, w) + 1);
    }
  if (n == 0) fail(where, ": the vocabulary is empty");
  // Ids are dense in real files; a stray huge id must not make us allocate gigabytes.
  const int64_t entries = int64_t(vocab_json->size()) + (added ? int64_t(added->size()) : 0);
  if (n > entries + kMaxIdGap)
    fail(where, ": the largest token id is ", n - 1, " but there are only ", entries, " tokens");

  Vocab vocab;
  vocab.label = path;
  vocab.resize(size_t(n));
  std::vector<uint8_t> has_text(size_t(n), 0);
  for (const auto& [tok, id_json] : vocab_json->items()) {
    const size_t id = size_t(id_json.get<int64_t>());
    if (has_text[id]) continue;  // two strings with one id: the first one names it
    has_text[id] = 1;
    vocab.text[id] = tok;
  }
  for (size_t id = 0; id < size_t(n); ++id)
    if (has_text[id]) vocab.index_token(int(id));

  LiteralTokenSplitter literals;
  std::vector<uint8_t> is_added(size_t(n), 0);
  if (added)
    for (size_t i = 0; i < added->size(); ++i) {
      const json& a = (*added)[i];
      const std::string w = path + ": added_tokens[" + std::to_string(i) + "]";
      LiteralToken t;
      t.id = int((*member(a, "id")).get<int64_t>());
      t.content = hf::get_string(a, "content", "", w);
      if (t.content.empty()) fail(w, ": missing \"content\"");
      t.lstrip = hf::get_bool(a, "lstrip", false, w);
      t.rstrip = hf::get_bool(a, "rstrip", false, w);
      const size_t id = size_t(t.id);
      vocab.text[id] = t.content;
      vocab.control[id] = hf::get_bool(a, "special", false, w) ? 1 : 0;
      is_added[id] = 1;
      vocab.index.emplace(t.content, t.id);  // merges resolve against the model vocabulary first
      literals.add(t);
    }

  // Merges.
  RankMerges merges;
  if (const json* m = member(*model, "merges")) {
    if (!m->is_array()) fail(where, ": \"merges\" must be an array");
    merges.reserve(m->size());
    for (size_t i = 0; i < m->size(); ++i) {
      const std::string w = where + ".merges[" + std::to_string(i) + "]";
      const auto [a, b] = read_merge((*m)[i], w);
      const int ia = vocab.find(a), ib = vocab.find(b), im = vocab.find(a + b);
      if (ia < 0) fail(w, ": \"", a, " ", b, "\" refers to unknown token \"", a, "\"");
      if (ib < 0) fail(w, ": \"", a, " ", b, "\" refers to unknown token \"", b, "\"");
      if (im < 0) fail(w, ": \"", a, " ", b, "\" makes \"", a + b, "\", which is not in the vocabulary");
      merges.add(ia, ib, im, int(i));
    }
  }

  RankBpeConfig config;
  config.byte_fallback = hf::get_bool(*model, "byte_fallback", false, where);
  config.fuse_unk = hf::get_bool(*model, "fuse_unk", false, where);
  config.ignore_merges = hf::get_bool(*model, "ignore_merges", false, where);
  const std::string unk = hf::get_string(*model, "unk_token", "", where);
  vocab.unk = unk.empty() ? -1 : vocab.find(unk);

  hf::read_normalizer(j.value("normalizer", json()), path + ": normalizer", config.normalizer);
  hf::read_pre_tokenizer(j.value("pre_tokenizer", json()), path + ": pre_tokenizer", config.pre_tokenizer,
                         &config.byte_level);
  hf::DecoderSpec decoder;
  hf::read_decoder(j.value("decoder", json()), path + ": decoder", decoder);
  if (j.value("decoder", json()).is_null() && config.byte_level) decoder.byte_level = true;
  hf::TemplateTokens tmpl;
  hf::read_post_processor(j.value("post_processor", json()), path + ": post_processor", tmpl);

  // What each token contributes to decoded text.
  for (size_t id = 0; id < size_t(n); ++id) {
    const std::string& t = vocab.text[id];
    if (vocab.control[id]) continue;  // stays ""
    if (is_added[id]) {
      vocab.bytes[id] = t;  // added tokens are written as they are
    } else if (const int b = decoder.byte_fallback ? parse_byte_token(t) : -1; b >= 0) {
      vocab.bytes[id] = std::string(1, char(b));
    } else if (decoder.byte_level) {
      vocab.bytes[id] = byte_level_decode(t);
    } else {
      vocab.bytes[id] = replace_all(t, decoder.replace);
    }
  }
  vocab.strip_leading_space = decoder.strip_leading_space;

  // BOS / EOS and whether prompts start with BOS.
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  const json tok_config = read_side_file(dir, "tokenizer_config.json");
  const json special_map = read_side_file(dir, "special_tokens_map.json");
  vocab.bos = choose_special(vocab, tmpl.bos, tmpl.bos_id, {&tok_config, &special_map}, "bos_token",
                             {"<s>", "<|begin_of_text|>", "<bos>"});
  vocab.eos = choose_special(vocab, tmpl.eos, tmpl.eos_id, {&tok_config, &special_map}, "eos_token",
                             {"</s>", "<|endoftext|>", "<|im_end|>", "<|end_of_text|>", "<eos>"});
  vocab.add_bos = !tmpl.bos.empty();
  if (tok_config.is_object() && tok_config.contains("add_bos_token") &&
      tok_config["add_bos_token"].is_boolean())
    vocab.add_bos = tok_config["add_bos_token"].get<bool>();

  auto tok = std::make_unique<RankBpeTokenizer>(std::move(vocab), std::move(merges), std::move(literals),
                                                std::move(config));
  tok->set_chat_template(read_chat_template(tok_config, dir));
  return tok;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_hf_json(const std::string& tokenizer_json_path) {
  const json j = parse_json_file(tokenizer_json_path);
  try {
    return build(j, tokenizer_json_path);
  } catch (const json::exception& e) {
    fail(tokenizer_json_path, ": unexpected structure: ", e.what());
  }
}

}  // namespace dspark
