// tokenizer.json sections other than the model: normalizer, pre_tokenizer, decoder and
// post_processor. Only what BPE language models use is supported; anything else is
// refused by name rather than silently tokenized differently.
#include <memory>

#include "core/error.h"
#include "tokenizer/hf_json.h"

namespace dspark::hf {
namespace {

constexpr int kMaxDepth = 16;

std::string type_of(const json& j, const std::string& where, int depth) {
  if (depth > kMaxDepth) fail(where, ": Sequences nested more than ", kMaxDepth, " deep");
  if (!j.is_object()) fail(where, ": expected an object");
  const json* t = member(j, "type");
  if (!t || !t->is_string()) fail(where, ": missing \"type\"");
  return t->get<std::string>();
}

const json& array_member(const json& j, const char* key, const std::string& where) {
  const json* a = member(j, key);
  if (!a || !a->is_array()) fail(where, ": \"", key, "\" must be an array");
  return *a;
}

// A {"String": s} or {"Regex": r} pattern; *is_regex tells which.
std::string read_pattern(const json& j, const std::string& where, bool* is_regex) {
  const json* p = member(j, "pattern");
  if (!p || !p->is_object()) fail(where, ": \"pattern\" must be an object with \"String\" or \"Regex\"");
  if (const json* s = member(*p, "String"); s && s->is_string()) {
    *is_regex = false;
    return s->get<std::string>();
  }
  if (const json* r = member(*p, "Regex"); r && r->is_string()) {
    *is_regex = true;
    return r->get<std::string>();
  }
  fail(where, ": \"pattern\" must have a string \"String\" or \"Regex\"");
}

SplitBehavior read_behavior(const std::string& name, const std::string& where) {
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  fail(where, ": unknown split behavior \"", name, "\"");
}

PrependScheme read_prepend_scheme(const json& j, const std::string& where) {
  if (const json* s = member(j, "prepend_scheme")) {
    if (!s->is_string()) fail(where, ": \"prepend_scheme\" must be a string");
    const std::string v = s->get<std::string>();
    if (v == "always") return PrependScheme::kAlways;
    if (v == "first") return PrependScheme::kFirst;
    if (v == "never") return PrependScheme::kNever;
    fail(where, ": unknown prepend_scheme \"", v, "\"");
  }
  return get_bool(j, "add_prefix_space", true, where) ? PrependScheme::kAlways : PrependScheme::kNever;
}

}  // namespace

const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

bool get_bool(const json& obj, const char* key, bool def, const std::string& where) {
  const json* v = member(obj, key);
  if (!v) return def;
  if (!v->is_boolean()) fail(where, ": \"", key, "\" must be true or false");
  return v->get<bool>();
}

std::string brief(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::string get_string(const json& obj, const char* key, const std::string& def, const std::string& where) {
  const json* v = member(obj, key);
  if (!v) return def;
  if (!v->is_string()) fail(where, ": \"", key, "\" must be a string");
  return v->get<std::string>();
}

void read_normalizer(const json& j, const std::string& where, Normalizer& out, int depth) {
  if (j.is_null()) return;
  const std::string type = type_of(j, where, depth);
  if (type == "Sequence") {
    const json& steps = array_member(j, "normalizers", where);
    for (size_t i = 0; i < steps.size(); ++i)
      read_normalizer(steps[i], where + ".normalizers[" + std::to_string(i) + "]", out, depth + 1);
  } else if (type == "Prepend") {
    out.add_prepend(get_string(j, "prepend", "", where));
  } else if (type == "Replace") {
    bool is_regex = false;
    std::string from = read_pattern(j, where, &is_regex);
    if (is_regex) fail(where, ": Replace with a regex pattern is not supported");
    out.add_replace(std::move(from), get_string(j, "content", "", where));
  } else if (type == "NFC" || type == "NFKC") {
    // Composition is not implemented: text that is already composed (nearly all real
    // input) tokenizes the same; decomposed accents may split differently.
  } else {
    fail(where, ": normalizer type \"", type, "\" is not supported");
  }
}

void read_pre_tokenizer(const json& j, const std::string& where, PreTokenizer& out, bool* byte_level,
                        int depth) {
  if (j.is_null()) return;
  const std::string type = type_of(j, where, depth);
  if (type == "Sequence") {
    const json& steps = array_member(j, "pretokenizers", where);
    for (size_t i = 0; i < steps.size(); ++i)
      read_pre_tokenizer(steps[i], where + ".pretokenizers[" + std::to_string(i) + "]", out, byte_level,
                         depth + 1);
  } else if (type == "ByteLevel") {
    out.add_byte_level(get_bool(j, "add_prefix_space", false, where), get_bool(j, "use_regex", true, where),
                       where);
    *byte_level = true;
  } else if (type == "Split") {
    bool is_regex = false;
    const std::string pattern = read_pattern(j, where, &is_regex);
    const auto behavior = read_behavior(get_string(j, "behavior", "Isolated", where), where);
    out.add_split(std::make_shared<Regex>(pattern, !is_regex, where), behavior,
                  get_bool(j, "invert", false, where));
  } else if (type == "Metaspace") {
    out.add_metaspace(get_string(j, "replacement", "\xE2\x96\x81", where), read_prepend_scheme(j, where),
                      get_bool(j, "split", true, where));
  } else if (type == "Digits") {
    out.add_digits(get_bool(j, "individual_digits", false, where), where);
  } else {
    fail(where, ": pre_tokenizer type \"", type, "\" is not supported");
  }
}

void read_decoder(const json& j, const std::string& where, DecoderSpec& out, int depth) {
  if (j.is_null()) return;
  const std::string type = type_of(j, where, depth);
  if (type == "Sequence") {
    const json& steps = array_member(j, "decoders", where);
    for (size_t i = 0; i < steps.size(); ++i)
      read_decoder(steps[i], where + ".decoders[" + std::to_string(i) + "]", out, depth + 1);
  } else if (type == "ByteLevel") {
    out.byte_level = true;
  } else if (type == "ByteFallback") {
    out.byte_fallback = true;
  } else if (type == "Fuse") {
    // Joining tokens is what decoding does anyway.
  } else if (type == "Replace") {
    bool is_regex = false;
    std::string from = read_pattern(j, where, &is_regex);
    if (is_regex) fail(where, ": Replace with a regex pattern is not supported");
    out.replace.emplace_back(std::move(from), get_string(j, "content", "", where));
  } else if (type == "Strip") {
    const json* start = member(j, "start");
    if (start && !start->is_number_integer()) fail(where, ": \"start\" must be an integer");
    if (get_string(j, "content", " ", where) == " " && start && start->get<int64_t>() > 0)
      out.strip_leading_space = true;
  } else if (type == "Metaspace") {
    out.replace.emplace_back(get_string(j, "replacement", "\xE2\x96\x81", where), " ");
    if (read_prepend_scheme(j, where) != PrependScheme::kNever) out.strip_leading_space = true;
  } else {
    fail(where, ": decoder type \"", type, "\" is not supported");
  }
}

void read_post_processor(const json& j, const std::string& where, TemplateTokens& out, int depth) {
  if (j.is_null()) return;
  const std::string type = type_of(j, where, depth);
  if (type == "Sequence") {
    const json& steps = array_member(j, "processors", where);
    for (size_t i = 0; i < steps.size(); ++i)
      read_post_processor(steps[i], where + ".processors[" + std::to_string(i) + "]", out, depth + 1);
  } else if (type == "TemplateProcessing") {
    const json* single = member(j, "single");
    if (!single || !single->is_array()) return;
    const json* specials = member(j, "special_tokens");
    bool seen_sequence = false;
    for (const json& item : *single) {
      if (member(item, "Sequence")) {
        seen_sequence = true;
        continue;
      }
      const json* st = member(item, "SpecialToken");
      if (!st) continue;
      const std::string name = get_string(*st, "id", "", where);
      int id = -1;
      if (const json* entry = specials ? member(*specials, name.c_str()) : nullptr) {
        const json* ids = member(*entry, "ids");
        if (ids && ids->is_array() && !ids->empty() && (*ids)[0].is_number_integer())
          id = (*ids)[0].get<int>();
      }
      if (!seen_sequence && out.bos.empty()) {
        out.bos = name;
        out.bos_id = id;
      } else if (seen_sequence && out.eos.empty()) {
        out.eos = name;
        out.eos_id = id;
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto read = [&](const char* key, std::string& name, int& id) {
      const json* p = member(j, key);
      if (p && p->is_array() && p->size() == 2 && (*p)[0].is_string() && (*p)[1].is_number_integer()) {
        name = (*p)[0].get<std::string>();
        id = (*p)[1].get<int>();
      }
    };
    read("cls", out.bos, out.bos_id);
    read("sep", out.eos, out.eos_id);
  }
  // ByteLevel (offsets only) and other processors add no tokens we need to know about.
}

}  // namespace dspark::hf
