// Tokenizer for BPE by token score: the llama2.c tokenizer file and GGUF "llama"
// (sentencepiece) vocabularies. Literal tokens are cut out first; each remaining fragment
// gets the dummy-prefix space (at the start of the input and after a literal token, as
// llama.cpp does), its spaces are written as the vocabulary writes them (" " for llama2.c,
// U+2581 for sentencepiece), and it is merged by score.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_scores.h"
#include "tokenizer/vocab.h"

namespace dspark {

struct ScoreBpeConfig {
  std::string space = " ";       // how the vocabulary writes a space
  bool add_space_prefix = true;  // the sentencepiece dummy prefix
  bool bytes_first = false;      // unknown characters become byte tokens before merging (llama2.c)
};

class ScoreBpeTokenizer : public VocabTokenizer {
 public:
  ScoreBpeTokenizer(Vocab vocab, std::vector<float> scores, std::vector<uint8_t> mergeable,
                    LiteralTokenSplitter literals, ScoreBpeConfig config);
  ScoreBpeTokenizer(const ScoreBpeTokenizer&) = delete;  // merger_ refers to vocab_
  ScoreBpeTokenizer& operator=(const ScoreBpeTokenizer&) = delete;

  std::vector<int> encode(std::string_view text, bool add_bos) const override;
  // GGUF "llama" (gguf_vocab_writer.cpp). A llama2.c vocabulary's spaces become U+2581 and
  // its "\n<s>\n" / "\n</s>\n" are written "<s>" / "</s>", the text that input matches.
  void write_gguf(GgufWriter& w) const override;

 private:
  LiteralTokenSplitter literals_;
  ScoreBpeConfig config_;
  ScoreMerger merger_;  // refers to vocab_, so it is built after it
};

}  // namespace dspark
