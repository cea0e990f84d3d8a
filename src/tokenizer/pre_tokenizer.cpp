#include "tokenizer/pre_tokenizer.h"

#include <utility>

namespace dspark {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty() || s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

// Cuts `word` at the pattern's matches and emits the pieces per `behavior`.
void split_word(const std::string& word, const Regex& pattern, SplitBehavior behavior, bool invert,
                std::vector<std::string>& out) {
  std::vector<std::pair<size_t, size_t>> matches;
  pattern.find_all(word, matches);
  // Segments covering the word: (begin, end, is_delimiter).
  struct Segment {
    size_t begin, end;
    bool delim;
  };
  std::vector<Segment> segs;
  size_t pos = 0;
  for (auto [b, e] : matches) {
    if (b > pos) segs.push_back({pos, b, invert});
    segs.push_back({b, e, !invert});
    pos = e;
  }
  if (pos < word.size()) segs.push_back({pos, word.size(), invert});

  std::string pending;  // for the merging behaviours
  bool have_pending = false;
  auto flush = [&] {
    if (have_pending && !pending.empty()) out.push_back(std::move(pending));
    pending.clear();
    have_pending = false;
  };
  for (size_t i = 0; i < segs.size(); ++i) {
    const Segment& s = segs[i];
    std::string text = word.substr(s.begin, s.end - s.begin);
    switch (behavior) {
      case SplitBehavior::kIsolated:
        out.push_back(std::move(text));
        break;
      case SplitBehavior::kRemoved:
        if (!s.delim) out.push_back(std::move(text));
        break;
      case SplitBehavior::kMergedWithPrevious:  // a delimiter ends the current word
        pending += text;
        have_pending = true;
        if (s.delim) flush();
        break;
      case SplitBehavior::kMergedWithNext:  // a delimiter starts a new word
        if (s.delim) flush();
        pending += text;
        have_pending = true;
        break;
      case SplitBehavior::kContiguous:  // runs of delimiters become one word
        if (have_pending && !(s.delim && i > 0 && segs[i - 1].delim)) flush();
        pending += text;
        have_pending = true;
        break;
    }
  }
  flush();
}

}  // namespace

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const Step& step : steps_) {
    if (step.kind == Kind::kPrepend) {
      if (!s.empty()) s.insert(0, step.a);
    } else {
      replace_all(s, step.a, step.b);
    }
  }
  return s;
}

void PreTokenizer::add_split(std::shared_ptr<const Regex> pattern, SplitBehavior behavior, bool invert) {
  Step s{Kind::kSplit, std::move(pattern)};
  s.behavior = behavior;
  s.invert = invert;
  steps_.push_back(std::move(s));
}

void PreTokenizer::add_byte_level(bool add_prefix_space, bool use_regex, const std::string& label) {
  if (add_prefix_space) steps_.push_back(Step{Kind::kPrefixSpace});
  if (use_regex)
    add_split(std::make_shared<Regex>(kGpt2Pattern, false, label), SplitBehavior::kIsolated, false);
}

void PreTokenizer::add_metaspace(std::string replacement, PrependScheme scheme, bool split) {
  Step s{Kind::kMetaspace};
  s.replacement = replacement;
  s.scheme = scheme;
  steps_.push_back(std::move(s));
  if (split && !replacement.empty())
    add_split(std::make_shared<Regex>(replacement, true, "metaspace"), SplitBehavior::kMergedWithNext, false);
}

void PreTokenizer::add_digits(bool individual, const std::string& label) {
  add_split(std::make_shared<Regex>(individual ? "\\p{N}" : "\\p{N}+", false, label),
            SplitBehavior::kIsolated, false);
}

void PreTokenizer::run(std::string_view text, bool first, std::vector<std::string>& words) const {
  std::vector<std::string> cur{std::string(text)}, next;
  for (const Step& step : steps_) {
    next.clear();
    for (size_t i = 0; i < cur.size(); ++i) {
      std::string& w = cur[i];
      switch (step.kind) {
        case Kind::kSplit:
          split_word(w, *step.pattern, step.behavior, step.invert, next);
          break;
        case Kind::kPrefixSpace:
          if (w.empty() || w[0] != ' ') w.insert(0, 1, ' ');
          next.push_back(std::move(w));
          break;
        case Kind::kMetaspace: {
          replace_all(w, " ", step.replacement);
          const bool prepend = step.scheme == PrependScheme::kAlways ||
                               (step.scheme == PrependScheme::kFirst && first && i == 0);
          if (prepend && w.compare(0, step.replacement.size(), step.replacement) != 0)
            w.insert(0, step.replacement);
          next.push_back(std::move(w));
          break;
        }
      }
    }
    std::swap(cur, next);
  }
  for (auto& w : cur)
    if (!w.empty()) words.push_back(std::move(w));
}

}  // namespace dspark
