#include "model/quant_quality.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/batch.h"
#include "model/convert.h"
#include "model/kv_cache.h"
#include "model/transformer.h"

namespace dspark {

const char* default_quality_text() {
  return "Once upon a time, there was a little boy named Tom. Tom lived in a small house near a big "
         "forest with his mom, his dad and a fat brown dog called Max. Every morning Tom and Max ran "
         "to the garden to look at the flowers and the bugs.\n"
         "One sunny day, Tom saw a red kite stuck in a tall tree. He wanted to help, but the tree was "
         "too high for him. Tom felt sad. Then he had an idea. He ran to his dad and said, \"Dad, can "
         "you help me get the kite down?\" His dad smiled and got a long ladder. Together they "
         "climbed up, and Dad pulled the kite out of the branches.\n"
         "Just then a little girl came running down the road. Her name was Sue, and the kite was "
         "hers. \"Thank you!\" she said with a big smile. \"I thought my kite was gone forever.\" "
         "Tom gave her the kite, and Sue asked if he wanted to fly it with her. Tom was very happy. "
         "They went to the park and played all afternoon. The wind was strong, and the kite flew "
         "high up in the blue sky, over the trees and the houses.\n"
         "When the sun went down, Sue had to go home. She hugged Tom and said, \"You are my best "
         "friend.\" Tom and Max walked back to the house. Mom made warm soup for dinner, and Tom told "
         "her all about his new friend and the red kite. That night Tom went to bed with a smile, "
         "because he knew that helping others makes everyone happy. The end.";
}

std::vector<float> teacher_forced_logits(const Model& m, const std::vector<int>& tokens, ThreadPool& pool) {
  const ModelConfig& c = m.config;
  const int n = int(tokens.size());
  if (n == 0) fail(m.source, ": no tokens to evaluate");
  if (c.max_seq_len > 0 && n > c.max_seq_len)
    fail(m.source, ": ", n, " tokens exceed the context of ", c.max_seq_len);
  // Chunks bound the forward's scratch; batch invariance makes the logits the same as one pass.
  constexpr int kChunk = 128;
  Transformer tf(m, pool);
  KVCache cache(c, 1, n);
  std::vector<float> logits(size_t(n) * size_t(c.vocab_size));  // [n, vocab]
  Batch b;
  for (int begin = 0; begin < n; begin += kChunk) {
    b.clear();
    for (int i = begin; i < std::min(n, begin + kChunk); ++i) b.add(tokens[size_t(i)], i, 0, true);
    tf.forward(b, cache, logits.data() + size_t(begin) * size_t(c.vocab_size));
  }
  return logits;
}

namespace {

// log softmax of one row, in double.
void log_softmax(const float* x, int n, std::vector<double>& out) {
  out.resize(size_t(n));
  const double mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int i = 0; i < n; ++i) out[size_t(i)] = double(x[i]) - lse;
}

}  // namespace

DistributionStats compare_distributions(const std::vector<float>& ref, const std::vector<float>& test,
                                        const std::vector<int>& tokens, int vocab) {
  const size_t n = tokens.size();
  if (n < 2) fail("comparing distributions needs at least two tokens, got ", n);
  if (ref.size() != n * size_t(vocab) || test.size() != ref.size())
    fail("comparing distributions: logits of ", ref.size(), " and ", test.size(), " values for ", n,
         " tokens of a vocabulary of ", vocab);
  DistributionStats s;
  s.positions = int(n - 1);
  std::vector<double> lp, lq;
  double agree = 0, kl_sum = 0, nll_ref = 0, nll = 0;
  for (size_t pos = 0; pos + 1 < n; ++pos) {
    const float* a = ref.data() + pos * size_t(vocab);
    const float* b = test.data() + pos * size_t(vocab);
    log_softmax(a, vocab, lp);
    log_softmax(b, vocab, lq);
    agree += std::max_element(a, a + vocab) - a == std::max_element(b, b + vocab) - b;
    double kl = 0;
    for (int v = 0; v < vocab; ++v) kl += std::exp(lp[size_t(v)]) * (lp[size_t(v)] - lq[size_t(v)]);
    kl = std::max(kl, 0.0);  // rounding can leave a tiny negative for identical rows
    kl_sum += kl;
    s.max_kl = std::max(s.max_kl, kl);
    const int next = tokens[pos + 1];
    if (next < 0 || next >= vocab)
      fail("comparing distributions: token ", next, " is outside the vocabulary");
    nll_ref -= lp[size_t(next)];
    nll -= lq[size_t(next)];
  }
  s.top1_agreement = agree / double(s.positions);
  s.mean_kl = kl_sum / double(s.positions);
  s.ppl_ref = std::exp(nll_ref / double(s.positions));
  s.ppl = std::exp(nll / double(s.positions));
  return s;
}

std::vector<TypeQuality> measure_quant_quality(const Model& m, const std::vector<int>& tokens,
                                               const std::vector<DType>& types, ThreadPool& pool) {
  const std::shared_ptr<Model> ref_model = convert_model(m, DType::F32);
  const std::vector<float> ref = teacher_forced_logits(*ref_model, tokens, pool);
  std::vector<TypeQuality> out;
  for (DType type : types) {
    TypeQuality q;
    q.type = type;
    q.skipped = conversion_misfit(m, type);
    if (q.skipped.empty()) {
      const std::shared_ptr<Model> converted = convert_model(m, type);
      q.weight_bytes = converted->weight_bytes();
      q.stats = compare_distributions(ref, teacher_forced_logits(*converted, tokens, pool), tokens,
                                      m.config.vocab_size);
    }
    out.push_back(std::move(q));
  }
  return out;
}

}  // namespace dspark
