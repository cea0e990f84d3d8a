// Text preparation before BPE, as Hugging Face tokenizers define it:
//  - Normalizer: Prepend / Replace steps applied to a raw text fragment;
//  - PreTokenizer: a pipeline that splits a fragment into words that merges never cross
//    (regex Split with its delimiter behaviours, ByteLevel, Metaspace, Digits).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace dspark {

class Normalizer {
 public:
  enum class Kind { kPrepend, kReplace };
  struct Step {
    Kind kind;
    std::string a, b;  // Prepend a; Replace a with b
  };

  void add_prepend(std::string prefix) { steps_.push_back({Kind::kPrepend, std::move(prefix), {}}); }
  void add_replace(std::string from, std::string to) {
    steps_.push_back({Kind::kReplace, std::move(from), std::move(to)});
  }
  bool empty() const { return steps_.empty(); }
  std::string apply(std::string_view text) const;
  // The steps in order, for writers that translate the pipeline to another format.
  const std::vector<Step>& steps() const { return steps_; }

 private:
  std::vector<Step> steps_;
};

// What a Split step does with the pieces its pattern matches (Hugging Face's names).
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

enum class PrependScheme { kAlways, kFirst, kNever };

class PreTokenizer {
 public:
  enum class Kind { kSplit, kPrefixSpace, kMetaspace };
  struct Step {
    Kind kind;
    std::shared_ptr<const Regex> pattern;
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
    std::string replacement;
    PrependScheme scheme = PrependScheme::kAlways;
  };

  void add_split(std::shared_ptr<const Regex> pattern, SplitBehavior behavior, bool invert);
  // Prefixes a space to each word that lacks one; with `use_regex`, splits by GPT-2's regex.
  void add_byte_level(bool add_prefix_space, bool use_regex, const std::string& label);
  // Spaces become `replacement`, which is prepended per `scheme`; with `split`, every
  // replacement starts a new word.
  void add_metaspace(std::string replacement, PrependScheme scheme, bool split);
  void add_digits(bool individual, const std::string& label);

  bool empty() const { return steps_.empty(); }
  // Splits one raw fragment into words; `first` is true when the fragment starts the input.
  void run(std::string_view text, bool first, std::vector<std::string>& words) const;
  // The steps in order, for writers that translate the pipeline to another format.
  const std::vector<Step>& steps() const { return steps_; }

 private:
  std::vector<Step> steps_;
};

}  // namespace dspark
