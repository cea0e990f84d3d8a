// The target cache: what a drafter trainer learns from, recorded once from the frozen
// target model. Per sample it holds a token sequence (prompt + the target's own response, or
// a slice of a text corpus), which tokens carry loss, the raw outputs of the tapped decoder
// layers and the final-normed hidden state of every token (DSPARK.md 6, in a simpler
// layout of our own: one data file, one index, one manifest).
//
// A cache is a directory of three files. All integers are little-endian.
//
// manifest.json, rewritten (through a temporary file and a rename) after every sample:
//   format "dspark-target-cache", version 1,
//   target {model (where it was loaded from; informational), arch, fingerprint (FNV-1a 64
//           of a few dequantized weight rows, hex), dim, vocab, n_layers},
//   taps [layer ids in tap order; -1 = embedding output], dtype "bf16" | "f32",
//   mode "responses" | "corpus",
//   generation {temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed,
//               max_new_tokens, samples_per_prompt},   (responses mode; seed used by both)
//   seq_len (corpus mode), min_loss_tokens,
//   source {count (prompts, or corpus tokens), hash (FNV-1a 64 of the prompts or text, hex)},
//   counts: samples, tokens, loss_tokens, items_done, complete.
//   An item is one unit of work: a (prompt, sample number) pair, numbered
//   prompt * samples_per_prompt + sample, or one corpus sequence. items_done counts the
//   items finished, kept or dropped (too few loss tokens), so a resumed build skips them.
//
// samples.bin: a 16-byte header ("DSPTCDAT", u32 version 1, u32 0) then the samples one
// after another, each starting at an offset that is a multiple of 8. A sample of S tokens,
// with m taps of width d (the model dimension) and e bytes per stored value (2 for bf16,
// 4 for f32), is:
//   int32   tokens[S]
//   uint8   loss_mask[S], zero-padded to a multiple of 4 bytes
//   dtype   taps[S][m*d]       the tapped layers' raw outputs, concatenated in tap order
//   dtype   final_hidden[S][d] the final-normed hidden state (what the LM head reads)
//   zero padding to a multiple of 8 bytes
//
// samples.idx: a 16-byte header ("DSPTCIDX", u32 version 1, u32 record size 40) then one
// 40-byte record per sample, in data-file order:
//   u64 offset      of the sample in samples.bin
//   u64 length      its bytes, padding included (a function of S and the manifest)
//   u32 n_tokens    S
//   u32 n_loss      tokens with loss_mask 1
//   u32 source      prompt index (corpus mode: sequence number)
//   u32 sample      sample number of that prompt (corpus mode: 0)
//   u64 checksum    FNV-1a 64 over bytes 0..31 of this record, then the sample's bytes
//
// Writes go data, then index record, then manifest, so an interrupted build leaves at most
// a partial sample or index record past the last complete one; the writer cuts that away
// when it reopens the cache. The reader accepts only a consistent cache (index, data and
// manifest agreeing), and verifies a sample's checksum each time it reads it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/sampling.h"

namespace dspark {

enum class CacheDType : uint8_t { BF16, F32 };
enum class CacheMode : uint8_t { Responses, Corpus };

const char* cache_dtype_name(CacheDType t);
// "bf16" or "f32"; throws Error naming `what` (e.g. "--dtype") otherwise.
CacheDType parse_cache_dtype(const std::string& s, const std::string& what);

// Everything a cache is made with. Two specs must agree (all but `model`) for a build to
// continue an existing cache.
struct TargetCacheSpec {
  // The target.
  std::string model;  // where it was loaded from; informational, never compared
  std::string arch;
  std::string fingerprint;  // identifies the weights (see target_fingerprint)
  int dim = 0, vocab = 0, n_layers = 0;
  std::vector<int> taps;  // layer ids in tap order; -1 = embedding output
  CacheDType dtype = CacheDType::BF16;
  // How the sequences were made.
  CacheMode mode = CacheMode::Responses;
  SamplingParams sampling;  // responses mode
  uint64_t seed = 0;
  int max_new_tokens = 0;      // responses mode
  int samples_per_prompt = 1;  // responses mode; 1 in corpus mode
  int seq_len = 0;             // corpus mode
  int min_loss_tokens = 0;
  int64_t source_count = 0;  // prompts, or corpus tokens
  std::string source_hash;

  int64_t tap_width() const { return int64_t(taps.size()) * dim; }  // m * d
};

// "" when `cache` (read from a manifest) and `wanted` agree; otherwise one line naming the
// first field that differs and both values.
std::string spec_mismatch(const TargetCacheSpec& cache, const TargetCacheSpec& wanted);

// Bytes one sample of n_tokens takes in samples.bin (padding included).
uint64_t sample_bytes(const TargetCacheSpec& spec, int64_t n_tokens);
constexpr uint64_t kCacheHeaderBytes = 16;
constexpr uint64_t kCacheIndexRecordBytes = 40;

// FNV-1a 64 of bytes, continuing from `h` (the offset basis to start).
constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ull;
uint64_t fnv1a64(const void* data, size_t n, uint64_t h = kFnvOffsetBasis);

// One index record (see the header comment).
struct CacheRecord {
  uint64_t offset = 0, length = 0;
  uint32_t n_tokens = 0, n_loss = 0, source = 0, sample = 0;
  uint64_t checksum = 0;
};

// A sample as the trainer uses it, in fp32.
struct TargetSample {
  std::vector<int32_t> tokens;      // [S]
  std::vector<uint8_t> loss_mask;   // [S]
  std::vector<float> taps;          // [S, m*d]
  std::vector<float> final_hidden;  // [S, d]
  uint32_t source = 0, sample = 0;  // prompt index and sample number
  int size() const { return int(tokens.size()); }
};

// What reopening an existing cache found and cut away.
struct CacheResume {
  bool resumed = false;      // an existing cache was reopened
  int64_t samples_kept = 0;  // complete samples found
  int64_t records_cut = 0;   // index records dropped (partial, inconsistent or failing their checksum)
  uint64_t index_bytes_cut = 0, data_bytes_cut = 0;
};

// Creates a cache or continues one. Not thread-safe; one writer per directory.
class TargetCacheWriter {
 public:
  // Creates `dir` (and its parents) when needed. A directory with a manifest is reopened:
  // its spec must match (else Error naming the field), the index is cut after its last
  // complete record whose sample is whole and passes its checksum, the data file after that
  // sample. A directory with index records but no manifest is refused, never overwritten.
  TargetCacheWriter(const std::string& dir, const TargetCacheSpec& spec);
  ~TargetCacheWriter();
  TargetCacheWriter(const TargetCacheWriter&) = delete;
  TargetCacheWriter& operator=(const TargetCacheWriter&) = delete;

  const TargetCacheSpec& spec() const { return spec_; }
  const CacheResume& resume() const { return resume_; }
  int64_t samples() const { return samples_; }
  int64_t tokens() const { return tokens_; }
  int64_t loss_tokens() const { return loss_tokens_; }
  // Size of samples.bin and samples.idx together.
  uint64_t bytes() const {
    return data_end_ + kCacheHeaderBytes + uint64_t(samples_) * kCacheIndexRecordBytes;
  }
  // Items finished (kept or dropped): a build continues with item items_done().
  int64_t items_done() const { return items_done_; }
  // The item a (source, sample) pair is.
  int64_t item_of(uint32_t source, uint32_t sample) const;

  // Appends a sample of n tokens: taps [n, m*d] and final_hidden [n, d] in fp32 (rounded to
  // bf16 when the cache stores bf16). Its item must not come before items_done(); items_done
  // becomes item + 1. Throws Error on a bad shape or a failed write.
  void append(const int32_t* tokens, const uint8_t* loss_mask, int n, const float* taps,
              const float* final_hidden, uint32_t source, uint32_t sample);
  // Records that the items before `items` are finished (the dropped ones leave no sample).
  void set_items_done(int64_t items);
  // Marks the cache complete (every item of the source done).
  void finish();

 private:
  void create();
  void reopen();
  void write_manifest();

  std::string dir_, data_path_, index_path_, manifest_path_;
  TargetCacheSpec spec_;
  CacheResume resume_;
  int data_fd_ = -1, index_fd_ = -1;
  uint64_t data_end_ = 0;
  int64_t samples_ = 0, tokens_ = 0, loss_tokens_ = 0, items_done_ = 0;
  bool complete_ = false;
  std::vector<uint8_t> buf_;  // one sample's bytes
};

// Reads a complete, consistent cache. read() may be called from several threads at once.
class TargetCacheReader {
 public:
  // Throws Error naming the file and what is wrong with it.
  explicit TargetCacheReader(const std::string& dir);
  ~TargetCacheReader();
  TargetCacheReader(const TargetCacheReader&) = delete;
  TargetCacheReader& operator=(const TargetCacheReader&) = delete;

  const TargetCacheSpec& spec() const { return spec_; }
  int64_t size() const { return int64_t(records_.size()); }
  int64_t tokens() const { return tokens_; }
  int64_t loss_tokens() const { return loss_tokens_; }
  int64_t items_done() const { return items_done_; }
  bool complete() const { return complete_; }
  const CacheRecord& record(int64_t i) const;

  // Sample i in fp32; throws Error when it fails its checksum.
  void read(int64_t i, TargetSample& out) const;

 private:
  std::string dir_, data_path_;
  TargetCacheSpec spec_;
  std::vector<CacheRecord> records_;
  int64_t tokens_ = 0, loss_tokens_ = 0, items_done_ = 0;
  bool complete_ = false;
  int data_fd_ = -1;
};

}  // namespace dspark
