#include "tokenizer/bpe_scores.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace dspark {
namespace {

struct Symbol {
  size_t begin;  // byte range of the text it covers
  size_t len;    // 0 once merged into its left neighbour
  int id;        // token id, or -1 for a character that is not a token
  int prev, next;
  bool frozen;  // a byte-fallback symbol never merges
};

struct Candidate {
  float score;
  int left, right;
  size_t len;  // left.len + right.len when pushed: detects stale candidates
  int id;
};

// Heap order: the highest score on top, then the leftmost position.
bool after(const Candidate& a, const Candidate& b) {
  return a.score != b.score ? a.score < b.score : a.left > b.left;
}

}  // namespace

ScoreMerger::ScoreMerger(const Vocab& vocab, std::vector<float> scores, std::vector<uint8_t> mergeable,
                         std::array<int, 256> byte_ids, bool bytes_first)
    : vocab_(vocab),
      scores_(std::move(scores)),
      mergeable_(std::move(mergeable)),
      byte_ids_(byte_ids),
      bytes_first_(bytes_first) {}

void ScoreMerger::emit_bytes(std::string_view bytes, std::vector<int>& out) const {
  for (char c : bytes) {
    const int id = byte_ids_[uint8_t(c)];
    if (id >= 0) {
      out.push_back(id);
    } else if (vocab_.unk >= 0) {
      out.push_back(vocab_.unk);
    }
  }
}

void ScoreMerger::encode(std::string_view text, std::vector<int>& out) const {
  std::vector<Symbol> syms;
  syms.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8::char_length(text, i);
    int id = vocab_.find(text.substr(i, len));
    if (id >= 0 && !mergeable_[size_t(id)]) id = -1;  // e.g. a one-character control token
    if (id < 0 && bytes_first_) {
      for (size_t k = 0; k < len; ++k) {
        const int b = byte_ids_[uint8_t(text[i + k])];
        syms.push_back({i + k, 1, b >= 0 ? b : vocab_.unk, 0, 0, true});
      }
    } else {
      syms.push_back({i, len, id, 0, 0, false});
    }
    i += len;
  }
  const int n = int(syms.size());
  for (int i = 0; i < n; ++i) {
    syms[size_t(i)].prev = i - 1;
    syms[size_t(i)].next = i + 1 < n ? i + 1 : -1;
  }

  std::vector<Candidate> heap;
  auto push = [&](int left) {
    if (left < 0) return;
    const Symbol& l = syms[size_t(left)];
    if (l.next < 0) return;
    const Symbol& r = syms[size_t(l.next)];
    if (l.frozen || r.frozen) return;
    const int id = vocab_.find(text.substr(l.begin, l.len + r.len));
    if (id < 0 || !mergeable_[size_t(id)]) return;
    heap.push_back({scores_[size_t(id)], left, l.next, l.len + r.len, id});
    std::push_heap(heap.begin(), heap.end(), after);
  };
  for (int i = 0; i + 1 < n; ++i) push(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), after);
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& l = syms[size_t(c.left)];
    Symbol& r = syms[size_t(c.right)];
    if (l.len == 0 || r.len == 0 || l.next != c.right || l.len + r.len != c.len) continue;  // stale
    l.len += r.len;
    l.id = c.id;
    r.len = 0;
    l.next = r.next;
    if (l.next >= 0) syms[size_t(l.next)].prev = c.left;
    push(l.prev);
    push(c.left);
  }

  for (int i = n > 0 ? 0 : -1; i >= 0; i = syms[size_t(i)].next) {
    const Symbol& s = syms[size_t(i)];
    if (s.id >= 0) {
      out.push_back(s.id);
    } else if (!s.frozen) {
      emit_bytes(text.substr(s.begin, s.len), out);
    }
  }
}

}  // namespace dspark
