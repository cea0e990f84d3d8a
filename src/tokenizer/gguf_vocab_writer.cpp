// Writing a tokenizer as GGUF metadata (tokenizer.ggml.*, and tokenizer.chat_template when
// it has one) that Tokenizer::from_gguf reads back to the same tokenizer. Every export is checked against the
// reader's own rules (gguf_vocab::token_role): a token that would decode differently, a literal token that
// would not be matched the same way, or a text lookup that would find another id makes the
// export fail with the token named, instead of writing a file that tokenizes differently.
//
//  - ScoreBpeTokenizer -> "llama" as it is. A llama2.c vocabulary writes spaces as " " and
//    turns unknown characters into byte tokens before merging; GGUF writes U+2581 and does
//    it after merging, which gives the same tokens when every character of every mergeable
//    token is itself a token (checked). One difference is in the format itself: a GGUF
//    "llama" tokenizer reads a U+2581 in input text as a space.
//  - RankBpeTokenizer, byte-level -> "gpt2": merges as they are, tokenizer.ggml.pre named
//    after the pre-tokenizer's regexes when a known name has exactly those.
//  - RankBpeTokenizer, sentencepiece-style (U+2581, no pre-tokenizer) -> "llama": score BPE
//    merges the best-scoring adjacent pair whose concatenation is a token; rank BPE only
//    pairs that have a rule. The two agree when each token's score is minus the rank of the
//    one rule that can ever form it, proved per token (see sentencepiece_scores below).
//    Characters outside the vocabulary follow GGUF's rule (byte tokens, else one <unk> per
//    byte), which equals the original only when it has all 256 byte tokens and byte fallback.
#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "formats/gguf.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/rank_bpe_tokenizer.h"
#include "tokenizer/score_bpe_tokenizer.h"
#include "tokenizer/utf8.h"

namespace dspark {
namespace {

using gguf_vocab::kSpace;
using gguf_vocab::TokenRole;
using gguf_vocab::TokenType;

// The vocabulary as the GGUF file will hold it.
struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<TokenRole> roles;  // how from_gguf will read each token
  TokenIndex index;              // text -> first id, as from_gguf builds it

  int find(std::string_view s) const {
    auto it = index.find(s);
    return it == index.end() ? -1 : it->second;
  }
};

// A token's text for error messages: quoted, control characters escaped.
std::string show(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out = "\"";
  for (char c : s) {
    const uint8_t b = uint8_t(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (b < 0x20 || b == 0x7F) {
      out += "\\x";
      out += hex[b >> 4];
      out += hex[b & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

template <class... Parts>
[[noreturn]] void refuse(const Vocab& v, const char* form, Parts&&... parts) {
  fail(v.label, ": this tokenizer has no faithful GGUF \"", form, "\" form: ", std::forward<Parts>(parts)...);
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size())
    s.replace(p, from.size(), to);
  return s;
}

bool single_char(std::string_view s) { return !s.empty() && utf8::char_length(s, 0) == s.size(); }

// The literal token of each id (the first one when an id has several), nullptr for none.
std::vector<const LiteralToken*> literal_of_id(const Vocab& v, const LiteralTokenSplitter& literals) {
  std::vector<const LiteralToken*> out(size_t(v.size()), nullptr);
  for (const LiteralToken& t : literals.tokens())
    if (t.id >= 0 && t.id < v.size() && !out[size_t(t.id)]) out[size_t(t.id)] = &t;
  return out;
}

// The type of a control token: matched literally (unknown or control) or never (unused).
int32_t control_type(const Vocab& v, int id, const LiteralToken* literal) {
  if (!literal) return TokenType::kUnused;
  return id == v.unk ? TokenType::kUnknown : TokenType::kControl;
}

// Fills g.roles and g.index the way from_gguf will, and checks that what it reads equals
// `v`: the bytes and control flag of every token, and the literal tokens (from_gguf adds
// them in id order, the first id with a given text winning, none stripping whitespace).
void read_back(const Vocab& v, const LiteralTokenSplitter& literals, bool spm, const char* form,
               GgufVocab& g) {
  const size_t n = size_t(v.size());
  g.roles.clear();
  g.index.clear();
  std::map<std::string, int> want;
  for (size_t id = 0; id < n; ++id) {
    g.roles.push_back(gguf_vocab::token_role(g.tokens[id], g.types[id], spm));
    const TokenRole& r = g.roles.back();
    g.index.emplace(g.tokens[id], int(id));
    if (r.bytes != v.bytes[id])
      refuse(v, form, "token ", id, " ", show(v.text[id]), " would decode as ", show(r.bytes), " instead of ",
             show(v.bytes[id]));
    if (r.control != (v.control[id] != 0))
      refuse(v, form, "token ", id, " ", show(v.text[id]), " would ", r.control ? "" : "not ",
             "be a control token");
    if (r.literal && !g.tokens[id].empty()) want.emplace(g.tokens[id], int(id));
  }
  std::map<std::string, int> have;
  for (const LiteralToken& t : literals.tokens()) {
    if (t.lstrip || t.rstrip)
      refuse(v, form, "token ", t.id, " ", show(t.content),
             " swallows the whitespace beside it (lstrip/rstrip), which GGUF cannot express");
    have.emplace(t.content, t.id);
  }
  for (const auto& [text, id] : have)
    if (auto it = want.find(text); it == want.end() || it->second != id)
      refuse(v, form, show(text), " is matched literally as token ", id, " but would ",
             it == want.end() ? std::string("not be") : "be matched as token " + std::to_string(it->second));
  for (const auto& [text, id] : want)
    if (!have.count(text))
      refuse(v, form, "token ", id, " ", show(text), " would be matched literally in input");
}

// Merging looks tokens up by text: for every id `relevant` says merging can reach, the text
// lookup must give the same id after the export. `to_gguf` maps a lookup key of `v` to the
// key the read-back tokenizer uses for the same text.
template <class Relevant, class ToGguf>
void check_lookups(const Vocab& v, const GgufVocab& g, const char* form, Relevant relevant, ToGguf to_gguf) {
  for (const auto& [key, id] : v.index) {
    if (key.empty() || !relevant(id)) continue;
    const int now = g.find(to_gguf(key));
    if (now != id) refuse(v, form, "the text ", show(key), " of token ", id, " would find token ", now);
  }
  for (int id = 0; id < v.size(); ++id) {
    const std::string& t = g.tokens[size_t(id)];
    const int now = g.find(t);
    if (t.empty() || now != id || !relevant(id)) continue;
    if (v.find(v.text[size_t(id)]) != id)
      refuse(v, form, "the text ", show(t), " would find token ", id, " instead of ",
             v.find(v.text[size_t(id)]));
  }
}

// The chat template travels with the vocabulary, so a converted model keeps it.
void write_chat_template(GgufWriter& w, const std::string& source) {
  if (!source.empty()) w.set_string("tokenizer.chat_template", source);
}

uint32_t special(int id) { return id >= 0 ? uint32_t(id) : gguf_vocab::kNoToken; }

void write_llama_vocab(GgufWriter& w, const Vocab& v, const GgufVocab& g, const std::vector<float>& scores,
                       bool add_space_prefix) {
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", g.tokens);
  w.set_float_array("tokenizer.ggml.scores", scores);
  w.set_int32_array("tokenizer.ggml.token_type", g.types);
  // Absent ids would read as 1, 2 and 0: "none" is written out.
  w.set_uint32("tokenizer.ggml.bos_token_id", special(v.bos));
  w.set_uint32("tokenizer.ggml.eos_token_id", special(v.eos));
  w.set_uint32("tokenizer.ggml.unknown_token_id", special(v.unk));
  w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  w.set_bool("tokenizer.ggml.add_space_prefix", add_space_prefix);
}

// Rank BPE run on the characters of `text` alone (characters that are not mergeable tokens
// stay single symbols that never merge, marked -1). Returns the two symbols it passes
// through when exactly two are left, or {-2, -2} when it never has exactly two.
std::pair<int, int> two_symbol_state(std::string_view text, const GgufVocab& g, const RankMerges& merges) {
  std::vector<int> syms;
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8::char_length(text, i);
    const int id = g.find(text.substr(i, len));
    syms.push_back(id >= 0 && g.roles[size_t(id)].mergeable ? id : -1);
    i += len;
  }
  std::pair<int, int> two{-2, -2};
  for (;;) {
    if (syms.size() == 2) two = {syms[0], syms[1]};
    size_t best = 0;
    const RankMerges::Rule* best_rule = nullptr;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      if (syms[i] < 0 || syms[i + 1] < 0) continue;
      const RankMerges::Rule* r = merges.find(syms[i], syms[i + 1]);
      if (r && (!best_rule || r->rank < best_rule->rank)) {
        best_rule = r;
        best = i;
      }
    }
    if (!best_rule) return two;
    syms[best] = best_rule->merged;
    syms.erase(syms.begin() + std::ptrdiff_t(best) + 1);
  }
}

}  // namespace

void ScoreBpeTokenizer::write_gguf(GgufWriter& w) const {
  const Vocab& v = vocab_;
  const char* form = "llama";
  const bool spaces = config_.space == " ";  // llama2.c
  if (!spaces && config_.space != kSpace)
    refuse(v, form, "its vocabulary writes a space as ", show(config_.space), " (GGUF uses U+2581)");
  if (config_.add_space_prefix != v.strip_leading_space)
    refuse(v, form, "it ", config_.add_space_prefix ? "adds" : "does not add", " a dummy-prefix space but ",
           v.strip_leading_space ? "strips" : "does not strip", " one when decoding; GGUF ties the two");
  const std::vector<uint8_t>& mergeable = merger_.mergeable();
  const auto literal = literal_of_id(v, literals_);

  GgufVocab g;
  for (int id = 0; id < v.size(); ++id) {
    const std::string& t = v.text[size_t(id)];
    const LiteralToken* lit = literal[size_t(id)];
    if (spaces && t.find(kSpace) != std::string::npos)
      refuse(v, form, "token ", id, " ", show(t), " contains U+2581, which GGUF reads as a space");
    std::string text = t;
    int32_t type;
    if (v.control[size_t(id)]) {
      type = control_type(v, id, lit);
      if (lit) text = lit->content;  // llama2.c's "\n<s>\n" is matched as "<s>"
    } else if (lit) {
      type = TokenType::kUserDefined;
    } else if (!mergeable[size_t(id)] && parse_byte_token(t) >= 0) {
      type = TokenType::kByte;
    } else if (mergeable[size_t(id)]) {
      type = TokenType::kNormal;
      if (spaces) text = replace_all(text, " ", kSpace);
    } else {
      refuse(v, form, "token ", id, " ", show(t),
             " is never merged but is neither a control nor a byte token");
    }
    g.tokens.push_back(std::move(text));
    g.types.push_back(type);
  }
  read_back(v, literals_, true, form, g);
  for (int id = 0; id < v.size(); ++id)
    if (g.roles[size_t(id)].mergeable != (mergeable[size_t(id)] != 0))
      refuse(v, form, "token ", id, " ", show(v.text[size_t(id)]), " would ",
             mergeable[size_t(id)] ? "not " : "", "be produced by merges");
  check_lookups(
      v, g, form, [&](int id) { return mergeable[size_t(id)] != 0; },
      [&](const std::string& key) { return spaces ? replace_all(key, " ", kSpace) : key; });

  // llama2.c splits a character that is not a token into byte tokens before merging, GGUF
  // after: the same unless such a character is part of a token merges could make.
  if (config_.bytes_first)
    for (int id = 0; id < v.size(); ++id) {
      const std::string& t = v.text[size_t(id)];
      if (!mergeable[size_t(id)] || single_char(t)) continue;
      for (size_t i = 0; i < t.size();) {
        const size_t len = utf8::char_length(t, i);
        const int c = v.find(std::string_view(t).substr(i, len));
        if (c < 0 || !mergeable[size_t(c)])
          refuse(v, form, "token ", id, " ", show(t), " contains ", show(t.substr(i, len)),
                 ", which is not a token itself (llama2.c and GGUF split such characters differently)");
        i += len;
      }
    }

  write_llama_vocab(w, v, g, merger_.scores(), config_.add_space_prefix);
  write_chat_template(w, chat_template());
}

void RankBpeTokenizer::write_gguf(GgufWriter& w) const {
  if (config_.byte_level) {
    write_gguf_gpt2(w);
  } else {
    write_gguf_llama(w);
  }
  write_chat_template(w, chat_template());
}

void RankBpeTokenizer::write_gguf_gpt2(GgufWriter& w) const {
  const Vocab& v = vocab_;
  const char* form = "gpt2";
  if (!config_.normalizer.empty())
    refuse(v, form, "it has a normalizer (Prepend/Replace), which GGUF cannot name");
  if (v.strip_leading_space)
    refuse(v, form, "its decoder strips a leading space, which GGUF \"gpt2\" does not");

  // The pre-tokenizer must be regex splits that a tokenizer.ggml.pre name stands for.
  std::vector<std::string> patterns;
  bool plain = true;
  for (const PreTokenizer::Step& s : config_.pre_tokenizer.steps()) {
    plain = plain && s.kind == PreTokenizer::Kind::kSplit && s.behavior == SplitBehavior::kIsolated &&
            !s.invert && !s.pattern->literal();
    if (plain) patterns.push_back(s.pattern->pattern());
  }
  const char* pre = nullptr;
  std::string known;
  for (const gguf_vocab::PreTokenizerSpec& spec : gguf_vocab::pre_tokenizer_specs()) {
    known += known.empty() ? "" : ", ";
    known += spec.name;
    if (pre || !plain || spec.ignore_merges != config_.ignore_merges ||
        spec.patterns.size() != patterns.size())
      continue;
    if (std::equal(patterns.begin(), patterns.end(), spec.patterns.begin())) pre = spec.name;
  }
  if (!pre) {
    std::string what = plain ? "regex split" : "pre-tokenizer steps other than isolated regex splits";
    if (plain)
      for (const std::string& p : patterns) what += " '" + p + "'";
    if (config_.ignore_merges) what += ", ignore_merges";
    refuse(v, form, "its pre-tokenizer (", what, ") has no tokenizer.ggml.pre name (known: ", known, ")");
  }
  // A character missing from the vocabulary becomes <unk> in both, unless byte fallback or
  // fused unknowns make the original do something else.
  if (config_.byte_fallback || config_.fuse_unk)
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      byte_level_encode(std::string(1, char(b)), ch);
      if (v.find(ch) < 0)
        refuse(v, form, "byte ", b, " (", show(ch), ") is not a token and byte_fallback/fuse_unk is on");
    }

  const auto literal = literal_of_id(v, literals_);
  GgufVocab g;
  for (int id = 0; id < v.size(); ++id) {
    const std::string& t = v.text[size_t(id)];
    const LiteralToken* lit = literal[size_t(id)];
    int32_t type = TokenType::kNormal;
    if (v.control[size_t(id)]) {
      type = control_type(v, id, lit);
    } else if (lit) {
      type = TokenType::kUserDefined;
    } else if (const int b = parse_byte_token(t); b >= 0 && v.bytes[size_t(id)] == std::string(1, char(b)) &&
                                                  v.bytes[size_t(id)] != byte_level_decode(t)) {
      type = TokenType::kByte;
    }
    g.tokens.push_back(t);
    g.types.push_back(type);
  }
  read_back(v, literals_, false, form, g);
  check_lookups(
      v, g, form, [](int) { return true; }, [](const std::string& key) { return key; });

  std::vector<std::string> merges;
  for (const RankMerges::RuleEntry& r : merges_.rules_by_rank()) {
    const std::string& a = g.tokens[size_t(r.left)];
    const std::string& b = g.tokens[size_t(r.right)];
    // from_gguf splits "a b" at the first space after the first character.
    if (a.empty() || b.empty() || a.find(' ', 1) != std::string::npos)
      refuse(v, form, "the merge of ", show(a), " and ", show(b), " cannot be written as \"a b\"");
    if (g.find(a) != r.left || g.find(b) != r.right || g.find(a + b) != r.merged)
      refuse(v, form, "the merge of ", show(a), " and ", show(b), " would refer to other tokens");
    merges.push_back(a + " " + b);
  }

  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens", g.tokens);
  w.set_int32_array("tokenizer.ggml.token_type", g.types);
  w.set_string_array("tokenizer.ggml.merges", merges);
  // Absent ids read as none.
  if (v.bos >= 0) w.set_uint32("tokenizer.ggml.bos_token_id", uint32_t(v.bos));
  if (v.eos >= 0) w.set_uint32("tokenizer.ggml.eos_token_id", uint32_t(v.eos));
  if (v.unk >= 0) w.set_uint32("tokenizer.ggml.unknown_token_id", uint32_t(v.unk));
  w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
}

// Sentencepiece-style rank BPE as GGUF "llama" (score BPE). Why scores can replay ranks:
// merges are local, so two adjacent symbols x, y covering a text t in any encoding are
// exactly the state that rank BPE run on t alone passes through when two symbols are left
// (the merges inside t happen in the same order with or without text around it, until one
// crosses t's edges). So for each token t there is at most one pair that can ever be
// adjacent and concatenate to t: `two_symbol_state`. If that pair has a rule, give t the
// score minus its rank; if it has none, score BPE could form t where rank BPE cannot, and
// the export is refused. Then, state by state, the pairs score BPE may merge are exactly
// the pairs rank BPE may merge, in the same order (higher score = lower rank, ties to the
// leftmost in both), so both produce the same tokens.
void RankBpeTokenizer::write_gguf_llama(GgufWriter& w) const {
  const Vocab& v = vocab_;
  const char* form = "llama";
  // Text preparation: spaces -> U+2581, optionally one U+2581 in front; nothing else.
  bool replace = false, prepend = false, other = false;
  for (const Normalizer::Step& s : config_.normalizer.steps()) {
    if (s.kind == Normalizer::Kind::kReplace && s.a == " " && s.b == kSpace && !replace) {
      replace = true;
    } else if (s.kind == Normalizer::Kind::kPrepend && s.a == kSpace && !prepend) {
      prepend = true;
    } else {
      other = true;
    }
  }
  if (!replace || other)
    refuse(v, form, "its normalizer is not Replace(\" \" -> U+2581) with an optional Prepend(U+2581)");
  if (!config_.pre_tokenizer.empty())
    refuse(v, form, "it has a pre-tokenizer; GGUF \"llama\" merges whole text fragments");
  if (config_.ignore_merges) refuse(v, form, "ignore_merges has no GGUF \"llama\" equivalent");
  if (v.strip_leading_space != prepend)
    refuse(v, form, "its decoder ", v.strip_leading_space ? "strips" : "does not strip",
           " a leading space but its normalizer ", prepend ? "prepends" : "does not prepend", " one");

  const auto literal = literal_of_id(v, literals_);
  GgufVocab g;
  for (int id = 0; id < v.size(); ++id) {
    const std::string& t = v.text[size_t(id)];
    const LiteralToken* lit = literal[size_t(id)];
    int32_t type = TokenType::kNormal;
    if (v.control[size_t(id)]) {
      type = control_type(v, id, lit);
    } else if (lit) {
      type = TokenType::kUserDefined;
    } else if (const int b = parse_byte_token(t); b >= 0 && v.bytes[size_t(id)] == std::string(1, char(b))) {
      type = TokenType::kByte;
    }
    g.tokens.push_back(t);
    g.types.push_back(type);
  }
  read_back(v, literals_, true, form, g);
  auto mergeable = [&](int id) { return g.roles[size_t(id)].mergeable; };
  check_lookups(v, g, form, mergeable, [](const std::string& key) { return key; });

  const std::vector<RankMerges::RuleEntry> rules = merges_.rules_by_rank();
  const int max_rank = rules.empty() ? 0 : rules.back().rank;
  if (max_rank >= (1 << 24)) refuse(v, form, "merge ranks above 2^24 do not fit a float score exactly");
  for (const RankMerges::RuleEntry& r : rules)
    for (int id : {r.left, r.right, r.merged})
      if (!mergeable(id))
        refuse(v, form, "the merge of ", show(v.text[size_t(r.left)]), " and ", show(v.text[size_t(r.right)]),
               " involves token ", id, " ", show(v.text[size_t(id)]), ", which GGUF \"llama\" never merges");
  // A one-character token that score BPE does not merge from: rank BPE starts from it as a
  // symbol, score BPE from the character's bytes. Literal ones never reach merging (they are
  // cut out first; only U+2581 is made by the normalizer).
  for (int id = 0; id < v.size(); ++id) {
    const std::string& t = v.text[size_t(id)];
    if (mergeable(id) || !single_char(t) || v.find(t) != id) continue;
    if (g.roles[size_t(id)].literal && t != kSpace) continue;
    refuse(v, form, "the character ", show(t), " is token ", id,
           ", which GGUF \"llama\" would not start from");
  }

  // Tokens merges never form rank below every rule; byte and control tokens keep 0.
  const float never = -float(max_rank) - 1.0f;
  std::vector<float> scores(size_t(v.size()), 0.0f);
  for (int id = 0; id < v.size(); ++id) {
    if (!mergeable(id)) continue;
    scores[size_t(id)] = never;
    const std::string& t = g.tokens[size_t(id)];
    if (single_char(t) || g.find(t) != id) continue;  // never the result of a merge
    const auto [a, b] = two_symbol_state(t, g, merges_);
    if (a == -2) continue;  // no encoding ever has t's text as two symbols
    const RankMerges::Rule* rule = a >= 0 && b >= 0 ? merges_.find(a, b) : nullptr;
    if (!rule)
      refuse(v, form, "token ", id, " ", show(t),
             " can be formed from two adjacent symbols that no merge rule joins");
    scores[size_t(id)] = -float(rule->rank);
  }
  write_llama_vocab(w, v, g, scores, prepend);
}

}  // namespace dspark
