// StopMatcher: stop strings found across piece boundaries, held-back text released when it
// turns out not to be a stop, overlapping partial matches, and nothing after a stop.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/stop_strings.h"

namespace dspark {
namespace {

// Feeds the pieces one by one and returns everything emitted, finish() included.
std::string run(const std::vector<std::string>& stops, const std::vector<std::string>& pieces,
                bool* stopped = nullptr) {
  StopMatcher m(stops);
  std::string out;
  for (const std::string& p : pieces) out += m.push(p);
  out += m.finish();
  if (stopped) *stopped = m.stopped();
  return out;
}

// The reference, with no holding back: after each piece, look for the stops in all the text
// so far; the first piece that completes one ends the text at the earliest match. (Text that
// would complete a longer, earlier-starting stop later never arrives: generation has ended.)
std::string expected(const std::vector<std::string>& stops, const std::vector<std::string>& pieces,
                     bool* stopped) {
  std::string text;
  for (const std::string& p : pieces) {
    text += p;
    size_t first = std::string::npos;
    for (const std::string& s : stops)
      if (!s.empty()) first = std::min(first, text.find(s));
    if (first != std::string::npos) {
      *stopped = true;
      return text.substr(0, first);
    }
  }
  *stopped = false;
  return text;
}

TEST(StopMatcher, NoStopsPassesEverythingAtOnce) {
  StopMatcher m({});
  EXPECT_EQ(m.push("abc"), "abc");
  EXPECT_EQ(m.push(""), "");
  EXPECT_EQ(m.finish(), "");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, StopInsideOnePiece) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.push("hello END world"), "hello ");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("more"), "");
  EXPECT_EQ(m.finish(), "");
}

TEST(StopMatcher, StopAcrossPieces) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.push("hello E"), "hello ");  // "E" may begin the stop
  EXPECT_EQ(m.push("N"), "");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.push("D!"), "");
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcher, HeldTextIsReleasedWhenItIsNotAStop) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.push("E"), "");
  EXPECT_EQ(m.push("N"), "");
  EXPECT_EQ(m.push("X"), "ENX");
  EXPECT_EQ(m.push("EN"), "");
  EXPECT_EQ(m.finish(), "EN");  // generation ended for another reason: the rest is text
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcher, OverlappingPartialMatches) {
  // "aab" ends "aaab": the first candidate start fails, the second succeeds.
  EXPECT_EQ(run({"aab"}, {"a", "a", "a", "b", "c"}), "a");
  // Self-overlapping stop: "abab" inside "abababx".
  EXPECT_EQ(run({"abab"}, {"ab", "a", "b"}), "");
  EXPECT_EQ(run({"abac"}, {"x", "aba", "bac", "z"}), "xab");
  StopMatcher m({"abac"});
  EXPECT_EQ(m.push("aba"), "");
  EXPECT_EQ(m.push("b"), "ab");  // "abab": only "ab" may still begin the stop
  EXPECT_EQ(m.push("ac"), "");
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcher, EarliestOfSeveralStopsWins) {
  bool stopped = false;
  EXPECT_EQ(run({"world", "lo w"}, {"hel", "lo wor", "ld"}, &stopped), "hel");
  EXPECT_TRUE(stopped);
  // A stop that completes while a longer one is still a partial match ends the text.
  EXPECT_EQ(run({"abcdef", "cd"}, {"xab", "c", "d"}), "xab");
  EXPECT_EQ(run({"abab", "ba"}, {"aba", "b"}), "a");
  // Both complete in one piece: the earlier start wins.
  EXPECT_EQ(run({"abab", "ba"}, {"abab"}), "");
  // Holding back for one stop must not hide a completed other one.
  EXPECT_EQ(run({"\n\n", "User:"}, {"Hi.\n", "\nUser"}), "Hi.");
}

TEST(StopMatcher, EmptyStopsAreIgnored) { EXPECT_EQ(run({"", "Z"}, {"abc", "Z"}), "abc"); }

TEST(StopMatcher, MultibyteTextIsNotCut) {
  // The stop begins with the same lead byte as the text's character but differs after it.
  StopMatcher m({"\xC3\xA9t\xC3\xA9"});  // "été"
  EXPECT_EQ(m.push("caf\xC3\xA9"), "caf");
  EXPECT_EQ(m.push(" "), "\xC3\xA9 ");
  EXPECT_EQ(m.push("\xC3\xA9t\xC3\xA9"), "");
  EXPECT_TRUE(m.stopped());
}

// Every split of every short text into pieces gives the reference answer.
TEST(StopMatcher, AllSplitsAgreeWithTheReference) {
  const std::vector<std::vector<std::string>> stop_sets = {{"aab"}, {"abab", "ba"}, {"aaa", "b"}, {"abba"}};
  const std::string alphabet = "ab";
  for (const auto& stops : stop_sets) {
    for (int len = 0; len <= 7; ++len) {
      for (int word = 0; word < (1 << len); ++word) {
        std::string text;
        for (int i = 0; i < len; ++i) text += alphabet[(word >> i) & 1];
        // Cut points: bit i of `cuts` splits before character i + 1.
        for (int cuts = 0; cuts < (1 << std::max(len - 1, 0)); ++cuts) {
          std::vector<std::string> pieces(1);
          for (int i = 0; i < len; ++i) {
            pieces.back() += text[i];
            if (i + 1 < len && ((cuts >> i) & 1)) pieces.emplace_back();
          }
          bool want_stop = false;
          std::string want = expected(stops, pieces, &want_stop);
          bool got_stop = false;
          ASSERT_EQ(run(stops, pieces, &got_stop), want) << "text " << text << " cuts " << cuts;
          ASSERT_EQ(got_stop, want_stop) << text;
        }
      }
    }
  }
}

}  // namespace
}  // namespace dspark
