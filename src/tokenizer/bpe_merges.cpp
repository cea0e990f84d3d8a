#include "tokenizer/bpe_merges.h"

#include <algorithm>

namespace dspark {
namespace {

using Candidate = RankMerges::Scratch::Candidate;

// Heap order: the lowest rank on top, then the leftmost position.
bool after(const Candidate& a, const Candidate& b) {
  return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
}

}  // namespace

void RankMerges::add(int left, int right, int merged, int rank) {
  rules_.emplace(key(left, right), Rule{rank, merged});
}

std::vector<RankMerges::RuleEntry> RankMerges::rules_by_rank() const {
  std::vector<RuleEntry> out;
  out.reserve(rules_.size());
  for (const auto& [k, r] : rules_)
    out.push_back({int(uint32_t(k >> 32)), int(uint32_t(k)), r.merged, r.rank});
  std::sort(out.begin(), out.end(), [](const RuleEntry& a, const RuleEntry& b) { return a.rank < b.rank; });
  return out;
}

void RankMerges::apply(std::vector<int>& symbols, Scratch& scratch) const {
  const int n = int(symbols.size());
  if (n < 2) return;
  if (n == 2) {  // the common short word: at most one rule can apply
    if (const Rule* r = find(symbols[0], symbols[1])) symbols = {r->merged};
    return;
  }
  auto& nodes = scratch.nodes;
  auto& heap = scratch.heap;
  nodes.resize(size_t(n));
  heap.clear();
  for (int i = 0; i < n; ++i) nodes[size_t(i)] = {symbols[size_t(i)], i - 1, i + 1 < n ? i + 1 : -1};

  auto push = [&](int pos) {
    const int next = nodes[size_t(pos)].next;
    if (next < 0) return;
    const Rule* r = find(nodes[size_t(pos)].id, nodes[size_t(next)].id);
    if (!r) return;
    heap.push_back({r->rank, pos, nodes[size_t(pos)].id, nodes[size_t(next)].id});
    std::push_heap(heap.begin(), heap.end(), after);
  };
  for (int i = 0; i + 1 < n; ++i) push(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), after);
    const Candidate c = heap.back();
    heap.pop_back();
    // A candidate is stale when either symbol has changed since it was pushed; a symbol's
    // id only ever grows into a longer token, so equal ids mean the pair is still there.
    auto& left = nodes[size_t(c.pos)];
    if (left.id != c.left || left.next < 0) continue;
    auto& right = nodes[size_t(left.next)];
    if (right.id != c.right) continue;
    left.id = find(c.left, c.right)->merged;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) nodes[size_t(left.next)].prev = c.pos;
    if (left.prev >= 0) push(left.prev);
    push(c.pos);
  }
  symbols.clear();
  for (int i = 0; i >= 0; i = nodes[size_t(i)].next) symbols.push_back(nodes[size_t(i)].id);
}

}  // namespace dspark
