#include "train/target_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/dtype.h"
#include "core/error.h"
#include "core/mapped_file.h"

namespace dspark {

static_assert(std::endian::native == std::endian::little, "the target cache is written little-endian");

namespace {

using nlohmann::json;

constexpr char kDataMagic[8] = {'D', 'S', 'P', 'T', 'C', 'D', 'A', 'T'};
constexpr char kIndexMagic[8] = {'D', 'S', 'P', 'T', 'C', 'I', 'D', 'X'};
constexpr uint32_t kVersion = 1;
constexpr const char* kFormat = "dspark-target-cache";
// A sample longer than this is not a sequence any model reads; a larger count is corruption.
constexpr uint32_t kMaxSampleTokens = 1u << 24;
// Values per token (taps and final hidden state): far beyond any model, small enough that
// sizes never overflow.
constexpr int64_t kMaxRowValues = int64_t(1) << 31;

uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

std::string layers_str(const std::vector<int>& v) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << ']';
  return os.str();
}

const char* mode_name(CacheMode m) { return m == CacheMode::Responses ? "responses" : "corpus"; }

// ---- files ----------------------------------------------------------------------------

class Fd {
 public:
  static int open_rw(const std::string& path, bool truncate) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644);
    if (fd < 0) fail(path, ": cannot open for writing: ", std::strerror(errno));
    return fd;
  }
  static int open_ro(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
    return fd;
  }
};

uint64_t file_size(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0) fail(path, ": cannot stat: ", std::strerror(errno));
  return uint64_t(st.st_size);
}

void pwrite_all(int fd, const void* data, size_t n, uint64_t offset, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, off_t(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      fail(path, ": write failed at byte ", offset, ": ", w < 0 ? std::strerror(errno) : "no progress");
    p += w;
    n -= size_t(w);
    offset += uint64_t(w);
  }
}

// Reads exactly n bytes; throws naming what was read when the file ends first.
void pread_all(int fd, void* data, size_t n, uint64_t offset, const std::string& path,
               const std::string& what) {
  auto* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, off_t(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(path, ": cannot read ", what, ": ", std::strerror(errno));
    if (r == 0) fail(path, ": the file ends inside ", what, " (at byte ", offset, ")");
    p += r;
    n -= size_t(r);
    offset += uint64_t(r);
  }
}

void truncate_to(int fd, uint64_t size, const std::string& path) {
  if (::ftruncate(fd, off_t(size)) != 0)
    fail(path, ": cannot truncate to ", size, " bytes: ", std::strerror(errno));
}

// Writes a small file whole: to a temporary beside it, then renamed over it, so a reader
// (or a crash) sees either the old content or the new.
void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = Fd::open_rw(tmp, true);
  try {
    pwrite_all(fd, text.data(), text.size(), 0, tmp);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(path, ": cannot replace: ", std::strerror(errno));
}

// ---- headers and records --------------------------------------------------------------

void put_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void put_u64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t get_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

void make_header(uint8_t* h, const char* magic, uint32_t third) {
  std::memcpy(h, magic, 8);
  put_u32(h + 8, kVersion);
  put_u32(h + 12, third);
}

void check_header(const uint8_t* h, uint64_t size, const char* magic, uint32_t third,
                  const std::string& path) {
  if (size < kCacheHeaderBytes)
    fail(path, ": ", size, " bytes, shorter than its ", kCacheHeaderBytes, "-byte header");
  if (std::memcmp(h, magic, 8) != 0)
    fail(path, ": not a dspark target cache file (magic is not \"", std::string(magic, 8), "\")");
  if (get_u32(h + 8) != kVersion) fail(path, ": version ", get_u32(h + 8), ", expected ", kVersion);
  if (get_u32(h + 12) != third)
    fail(path, ": header field at byte 12 is ", get_u32(h + 12), ", expected ", third);
}

void encode_record(const CacheRecord& r, uint8_t* p) {
  put_u64(p, r.offset);
  put_u64(p + 8, r.length);
  put_u32(p + 16, r.n_tokens);
  put_u32(p + 20, r.n_loss);
  put_u32(p + 24, r.source);
  put_u32(p + 28, r.sample);
  put_u64(p + 32, r.checksum);
}

CacheRecord decode_record(const uint8_t* p) {
  CacheRecord r;
  r.offset = get_u64(p);
  r.length = get_u64(p + 8);
  r.n_tokens = get_u32(p + 16);
  r.n_loss = get_u32(p + 20);
  r.source = get_u32(p + 24);
  r.sample = get_u32(p + 28);
  r.checksum = get_u64(p + 32);
  return r;
}

uint64_t record_checksum(const CacheRecord& r, const uint8_t* sample_bytes) {
  uint8_t head[kCacheIndexRecordBytes];
  encode_record(r, head);
  return fnv1a64(sample_bytes, r.length, fnv1a64(head, 32));
}

int64_t item_number(const TargetCacheSpec& s, uint32_t source, uint32_t sample) {
  return int64_t(source) * s.samples_per_prompt + int64_t(sample);
}

// "" when record r (the one after `prev_item`, expected at `offset`) fits the spec and a
// data file of `data_size` bytes; else what is wrong.
std::string record_problem(const CacheRecord& r, const TargetCacheSpec& s, uint64_t offset, int64_t prev_item,
                           uint64_t data_size) {
  std::ostringstream os;
  if (r.offset != offset)
    os << "offset " << r.offset << ", expected " << offset << " (just after the previous sample)";
  else if (r.n_tokens == 0 || r.n_tokens > kMaxSampleTokens)
    os << "n_tokens " << r.n_tokens << ", expected 1.." << kMaxSampleTokens;
  else if (r.length != sample_bytes(s, r.n_tokens))
    os << "length " << r.length << " bytes, expected " << sample_bytes(s, r.n_tokens) << " for " << r.n_tokens
       << " tokens";
  else if (r.n_loss > r.n_tokens)
    os << "n_loss " << r.n_loss << " exceeds n_tokens " << r.n_tokens;
  else if (r.sample >= uint32_t(s.samples_per_prompt))
    os << "sample number " << r.sample << ", expected below samples_per_prompt " << s.samples_per_prompt;
  else if (item_number(s, r.source, r.sample) <= prev_item)
    os << "source " << r.source << " sample " << r.sample << " does not come after the previous sample";
  else if (r.offset + r.length > data_size)
    os << "the sample ends at byte " << r.offset + r.length << ", past the end of the data file ("
       << data_size << " bytes)";
  return os.str();
}

// ---- manifest -------------------------------------------------------------------------

struct ManifestCounts {
  int64_t samples = 0, tokens = 0, loss_tokens = 0, items_done = 0;
  bool complete = false;
};

// A float as the double of its shortest decimal form, so the manifest shows 0.7, not
// 0.699999988079071, and reading it back as a float gives the same float.
double readable(float f) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, f);
  const double d = std::strtod(std::string(buf, r.ptr).c_str(), nullptr);
  return float(d) == f ? d : double(f);
}

nlohmann::ordered_json manifest_json(const TargetCacheSpec& s, const ManifestCounts& c) {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["target"] = {{"model", s.model}, {"arch", s.arch},   {"fingerprint", s.fingerprint},
                 {"dim", s.dim},     {"vocab", s.vocab}, {"n_layers", s.n_layers}};
  j["taps"] = s.taps;
  j["dtype"] = cache_dtype_name(s.dtype);
  j["mode"] = mode_name(s.mode);
  j["generation"] = {{"temperature", readable(s.sampling.temperature)},
                     {"top_k", s.sampling.top_k},
                     {"top_p", readable(s.sampling.top_p)},
                     {"min_p", readable(s.sampling.min_p)},
                     {"repeat_penalty", readable(s.sampling.repeat_penalty)},
                     {"repeat_last_n", s.sampling.repeat_last_n},
                     {"seed", s.seed},
                     {"max_new_tokens", s.max_new_tokens},
                     {"samples_per_prompt", s.samples_per_prompt}};
  j["seq_len"] = s.seq_len;
  j["min_loss_tokens"] = s.min_loss_tokens;
  j["source"] = {{"count", s.source_count}, {"hash", s.source_hash}};
  j["data_file"] = "samples.bin";
  j["index_file"] = "samples.idx";
  j["samples"] = c.samples;
  j["tokens"] = c.tokens;
  j["loss_tokens"] = c.loss_tokens;
  j["items_done"] = c.items_done;
  j["complete"] = c.complete;
  return j;
}

// Checked access to the manifest's fields; every problem names the file and the field.
class ManifestFields {
 public:
  explicit ManifestFields(std::string file) : file_(std::move(file)) {}

  const json& get(const json& obj, const char* key, const std::string& where) const {
    if (!obj.is_object()) fail(file_, ": '", where, "' must be a JSON object");
    const auto it = obj.find(key);
    if (it == obj.end()) fail(file_, ": field '", name(where, key), "' is missing");
    return *it;
  }
  int64_t integer(const json& obj, const char* key, const std::string& where, int64_t lo, int64_t hi) const {
    const json& v = get(obj, key, where);
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(hi)) ||
        v.get<int64_t>() < lo || v.get<int64_t>() > hi)
      fail(file_, ": field '", name(where, key), "' must be an integer in [", lo, ", ", hi, "], got ",
           v.dump());
    return v.get<int64_t>();
  }
  uint64_t unsigned64(const json& obj, const char* key, const std::string& where) const {
    const json& v = get(obj, key, where);
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
      fail(file_, ": field '", name(where, key), "' must be a non-negative integer, got ", v.dump());
    return v.get<uint64_t>();
  }
  float number(const json& obj, const char* key, const std::string& where) const {
    const json& v = get(obj, key, where);
    if (!v.is_number() || !std::isfinite(v.get<double>()))
      fail(file_, ": field '", name(where, key), "' must be a finite number, got ", v.dump());
    return float(v.get<double>());
  }
  std::string string(const json& obj, const char* key, const std::string& where) const {
    const json& v = get(obj, key, where);
    if (!v.is_string()) fail(file_, ": field '", name(where, key), "' must be a string, got ", v.dump());
    return v.get<std::string>();
  }
  bool boolean(const json& obj, const char* key, const std::string& where) const {
    const json& v = get(obj, key, where);
    if (!v.is_boolean())
      fail(file_, ": field '", name(where, key), "' must be true or false, got ", v.dump());
    return v.get<bool>();
  }
  const std::string& file() const { return file_; }

 private:
  static std::string name(const std::string& where, const char* key) {
    return where.empty() ? std::string(key) : where + "." + key;
  }
  std::string file_;
};

void parse_manifest(const std::string& path, TargetCacheSpec& s, ManifestCounts& c) {
  const std::string text = read_text_file(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
  const ManifestFields f(path);
  constexpr int64_t kMaxInt = int64_t(1) << 30;
  constexpr int64_t kMaxCount = std::numeric_limits<int64_t>::max() / 2;
  if (f.string(j, "format", "") != kFormat) fail(path, ": field 'format' must be \"", kFormat, "\"");
  const int64_t version = f.integer(j, "version", "", 0, kMaxInt);
  if (version != kVersion)
    fail(path, ": field 'version' is ", version, "; this program reads version ", kVersion);

  const json& t = f.get(j, "target", "");
  s.model = f.string(t, "model", "target");
  s.arch = f.string(t, "arch", "target");
  s.fingerprint = f.string(t, "fingerprint", "target");
  s.dim = int(f.integer(t, "dim", "target", 1, kMaxInt));
  s.vocab = int(f.integer(t, "vocab", "target", 1, kMaxInt));
  s.n_layers = int(f.integer(t, "n_layers", "target", 1, kMaxInt));

  const json& taps = f.get(j, "taps", "");
  if (!taps.is_array() || taps.empty()) fail(path, ": field 'taps' must be a non-empty array of layer ids");
  s.taps.clear();
  for (const json& l : taps) {
    if (!l.is_number_integer() || l.get<int64_t>() < -1 || l.get<int64_t>() >= s.n_layers)
      fail(path, ": field 'taps' holds ", l.dump(), "; layer ids are integers in [-1, ", s.n_layers - 1, "]");
    s.taps.push_back(int(l.get<int64_t>()));
  }
  if (int64_t(s.taps.size() + 1) * s.dim > kMaxRowValues)
    fail(path, ": ", s.taps.size(), " taps of dim ", s.dim, " make rows wider than ", kMaxRowValues,
         " values");
  s.dtype = parse_cache_dtype(f.string(j, "dtype", ""), path + ": field 'dtype'");
  const std::string mode = f.string(j, "mode", "");
  if (mode == "responses")
    s.mode = CacheMode::Responses;
  else if (mode == "corpus")
    s.mode = CacheMode::Corpus;
  else
    fail(path, ": field 'mode' is \"", mode, "\", expected \"responses\" or \"corpus\"");

  const json& g = f.get(j, "generation", "");
  s.sampling.temperature = f.number(g, "temperature", "generation");
  s.sampling.top_k = int(f.integer(g, "top_k", "generation", -kMaxInt, kMaxInt));
  s.sampling.top_p = f.number(g, "top_p", "generation");
  s.sampling.min_p = f.number(g, "min_p", "generation");
  s.sampling.repeat_penalty = f.number(g, "repeat_penalty", "generation");
  s.sampling.repeat_last_n = int(f.integer(g, "repeat_last_n", "generation", 0, kMaxInt));
  s.seed = f.unsigned64(g, "seed", "generation");
  s.max_new_tokens = int(f.integer(g, "max_new_tokens", "generation", 0, kMaxInt));
  s.samples_per_prompt = int(f.integer(g, "samples_per_prompt", "generation", 1, kMaxInt));
  s.seq_len = int(f.integer(j, "seq_len", "", 0, kMaxInt));
  s.min_loss_tokens = int(f.integer(j, "min_loss_tokens", "", 0, kMaxInt));
  const json& src = f.get(j, "source", "");
  s.source_count = f.integer(src, "count", "source", 0, kMaxCount);
  s.source_hash = f.string(src, "hash", "source");

  if (f.string(j, "data_file", "") != "samples.bin")
    fail(path, ": field 'data_file' must be \"samples.bin\"");
  if (f.string(j, "index_file", "") != "samples.idx")
    fail(path, ": field 'index_file' must be \"samples.idx\"");
  c.samples = f.integer(j, "samples", "", 0, kMaxCount);
  c.tokens = f.integer(j, "tokens", "", 0, kMaxCount);
  c.loss_tokens = f.integer(j, "loss_tokens", "", 0, kMaxCount);
  c.items_done = f.integer(j, "items_done", "", 0, kMaxCount);
  c.complete = f.boolean(j, "complete", "");
}

void validate_spec(const TargetCacheSpec& s, const std::string& dir) {
  if (s.dim <= 0 || s.vocab <= 0 || s.n_layers <= 0)
    fail(dir, ": target shape dim ", s.dim, ", vocab ", s.vocab, ", n_layers ", s.n_layers,
         " must be positive");
  if (s.taps.empty()) fail(dir, ": no tap layers given");
  for (int l : s.taps)
    if (l < -1 || l >= s.n_layers)
      fail(dir, ": tap layer ", l, " does not exist (layer ids are -1..", s.n_layers - 1, ")");
  if (s.samples_per_prompt < 1)
    fail(dir, ": samples per prompt must be at least 1, got ", s.samples_per_prompt);
}

// Converts n fp32 values to the stored type at p.
void store_values(const float* x, size_t n, CacheDType t, uint8_t* p) {
  if (t == CacheDType::F32) {
    std::memcpy(p, x, n * 4);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_bf16(x[i]);
    std::memcpy(p + 2 * i, &h, 2);
  }
}

void load_values(const uint8_t* p, size_t n, CacheDType t, float* x) {
  if (t == CacheDType::F32) {
    std::memcpy(x, p, n * 4);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    x[i] = bf16_to_f32(h);
  }
}

size_t value_bytes(CacheDType t) { return t == CacheDType::F32 ? 4 : 2; }

}  // namespace

// ---- public helpers -------------------------------------------------------------------

const char* cache_dtype_name(CacheDType t) { return t == CacheDType::F32 ? "f32" : "bf16"; }

CacheDType parse_cache_dtype(const std::string& s, const std::string& what) {
  if (s == "bf16") return CacheDType::BF16;
  if (s == "f32") return CacheDType::F32;
  fail(what, ": storage type \"", s, "\" is not one of bf16, f32");
}

uint64_t fnv1a64(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t sample_bytes(const TargetCacheSpec& s, int64_t n) {
  const uint64_t S = uint64_t(n), e = value_bytes(s.dtype);
  const uint64_t bytes = 4 * S + align_up(S, 4) + S * uint64_t(s.tap_width()) * e + S * uint64_t(s.dim) * e;
  return align_up(bytes, 8);
}

std::string spec_mismatch(const TargetCacheSpec& a, const TargetCacheSpec& b) {
  std::ostringstream os;
  auto differ = [&os](const char* what, const auto& x, const auto& y) {
    if (x == y) return false;
    os << what << ": the cache has " << x << ", this build asks for " << y;
    return true;
  };
  if (differ("target architecture", a.arch, b.arch) || differ("target dim", a.dim, b.dim) ||
      differ("target vocab", a.vocab, b.vocab) || differ("target n_layers", a.n_layers, b.n_layers) ||
      differ("target weights (fingerprint)", a.fingerprint, b.fingerprint) ||
      differ("tap layers", layers_str(a.taps), layers_str(b.taps)) ||
      differ("dtype", std::string(cache_dtype_name(a.dtype)), std::string(cache_dtype_name(b.dtype))) ||
      differ("mode", std::string(mode_name(a.mode)), std::string(mode_name(b.mode))) ||
      differ("minimum loss tokens", a.min_loss_tokens, b.min_loss_tokens) ||
      differ("source size", a.source_count, b.source_count) ||
      differ("source hash", a.source_hash, b.source_hash))
    return os.str();
  if (a.mode == CacheMode::Responses) {
    const SamplingParams &p = a.sampling, &q = b.sampling;
    if (differ("temperature", p.temperature, q.temperature) || differ("top-k", p.top_k, q.top_k) ||
        differ("top-p", p.top_p, q.top_p) || differ("min-p", p.min_p, q.min_p) ||
        differ("repeat penalty", p.repeat_penalty, q.repeat_penalty) ||
        differ("repeat last n", p.repeat_last_n, q.repeat_last_n) || differ("seed", a.seed, b.seed) ||
        differ("max new tokens", a.max_new_tokens, b.max_new_tokens) ||
        differ("samples per prompt", a.samples_per_prompt, b.samples_per_prompt))
      return os.str();
  } else if (differ("sequence length", a.seq_len, b.seq_len)) {
    return os.str();
  }
  return "";
}

// ---- writer ---------------------------------------------------------------------------

TargetCacheWriter::TargetCacheWriter(const std::string& dir, const TargetCacheSpec& spec)
    : dir_(dir),
      data_path_(dir + "/samples.bin"),
      index_path_(dir + "/samples.idx"),
      manifest_path_(dir + "/manifest.json"),
      spec_(spec) {
  validate_spec(spec_, dir_);
  if (spec_.mode == CacheMode::Corpus) spec_.samples_per_prompt = 1;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec || !std::filesystem::is_directory(dir_))
    fail(dir_, ": cannot create the cache directory", ec ? ": " + ec.message() : std::string());
  try {
    if (file_exists(manifest_path_))
      reopen();
    else
      create();
  } catch (...) {
    if (data_fd_ >= 0) ::close(data_fd_);
    if (index_fd_ >= 0) ::close(index_fd_);
    throw;
  }
}

TargetCacheWriter::~TargetCacheWriter() {
  if (data_fd_ >= 0) ::close(data_fd_);
  if (index_fd_ >= 0) ::close(index_fd_);
}

int64_t TargetCacheWriter::item_of(uint32_t source, uint32_t sample) const {
  return item_number(spec_, source, sample);
}

void TargetCacheWriter::create() {
  // A crash while creating leaves no manifest; anything else holding samples is not ours
  // to overwrite.
  if (file_exists(index_path_)) {
    const int fd = Fd::open_ro(index_path_);
    const uint64_t size = file_size(fd, index_path_);
    ::close(fd);
    if (size > kCacheHeaderBytes)
      fail(index_path_, ": holds samples but there is no manifest.json beside it; refusing to overwrite it");
  }
  uint8_t h[kCacheHeaderBytes];
  data_fd_ = Fd::open_rw(data_path_, true);
  make_header(h, kDataMagic, 0);
  pwrite_all(data_fd_, h, sizeof h, 0, data_path_);
  index_fd_ = Fd::open_rw(index_path_, true);
  make_header(h, kIndexMagic, uint32_t(kCacheIndexRecordBytes));
  pwrite_all(index_fd_, h, sizeof h, 0, index_path_);
  data_end_ = kCacheHeaderBytes;
  write_manifest();
}

void TargetCacheWriter::reopen() {
  TargetCacheSpec old;
  ManifestCounts counts;
  parse_manifest(manifest_path_, old, counts);
  const std::string mismatch = spec_mismatch(old, spec_);
  if (!mismatch.empty()) fail(manifest_path_, ": cannot continue this cache: ", mismatch);
  if (!file_exists(index_path_)) fail(dir_, ": manifest.json is there but samples.idx is missing");
  if (!file_exists(data_path_)) fail(dir_, ": manifest.json is there but samples.bin is missing");

  index_fd_ = Fd::open_rw(index_path_, false);
  data_fd_ = Fd::open_rw(data_path_, false);
  const uint64_t index_size = file_size(index_fd_, index_path_), data_size = file_size(data_fd_, data_path_);
  uint8_t h[kCacheHeaderBytes];
  // Both headers are written before the manifest, so a bad one is damage, not interruption.
  if (index_size >= kCacheHeaderBytes) pread_all(index_fd_, h, sizeof h, 0, index_path_, "the header");
  check_header(h, index_size, kIndexMagic, uint32_t(kCacheIndexRecordBytes), index_path_);
  if (data_size >= kCacheHeaderBytes) pread_all(data_fd_, h, sizeof h, 0, data_path_, "the header");
  check_header(h, data_size, kDataMagic, 0, data_path_);

  // Keep the leading records that fit together and the data file.
  const uint64_t n_records = (index_size - kCacheHeaderBytes) / kCacheIndexRecordBytes;
  std::vector<uint8_t> raw(size_t(n_records * kCacheIndexRecordBytes));
  if (!raw.empty())
    pread_all(index_fd_, raw.data(), raw.size(), kCacheHeaderBytes, index_path_, "the records");
  std::vector<CacheRecord> records;
  uint64_t offset = kCacheHeaderBytes;
  int64_t prev_item = -1;
  for (uint64_t i = 0; i < n_records; ++i) {
    const CacheRecord r = decode_record(raw.data() + i * kCacheIndexRecordBytes);
    if (!record_problem(r, spec_, offset, prev_item, data_size).empty()) break;
    records.push_back(r);
    offset = r.offset + r.length;
    prev_item = item_of(r.source, r.sample);
  }
  // The last kept sample must be whole: drop tail samples that fail their checksum.
  std::vector<uint8_t> bytes;
  while (!records.empty()) {
    const CacheRecord& r = records.back();
    bytes.resize(size_t(r.length));
    pread_all(data_fd_, bytes.data(), bytes.size(), r.offset, data_path_, "a sample");
    if (record_checksum(r, bytes.data()) == r.checksum) break;
    records.pop_back();
  }

  samples_ = int64_t(records.size());
  for (const CacheRecord& r : records) {
    tokens_ += r.n_tokens;
    loss_tokens_ += r.n_loss;
  }
  const uint64_t index_end = kCacheHeaderBytes + uint64_t(samples_) * kCacheIndexRecordBytes;
  data_end_ = records.empty() ? kCacheHeaderBytes : records.back().offset + records.back().length;
  resume_.resumed = true;
  resume_.samples_kept = samples_;
  resume_.records_cut = int64_t(n_records) - samples_;
  resume_.index_bytes_cut = index_size - index_end;
  resume_.data_bytes_cut = data_size - data_end_;
  if (index_size != index_end) truncate_to(index_fd_, index_end, index_path_);
  if (data_size != data_end_) truncate_to(data_fd_, data_end_, data_path_);

  // The manifest's progress also counts dropped items after the last sample; it is only
  // trusted when every sample it knew of is still there.
  items_done_ = records.empty() ? 0 : item_of(records.back().source, records.back().sample) + 1;
  if (counts.samples <= samples_) items_done_ = std::max(items_done_, counts.items_done);
  complete_ = counts.complete && counts.samples == samples_ && resume_.records_cut == 0;
  write_manifest();
}

void TargetCacheWriter::write_manifest() {
  ManifestCounts c{samples_, tokens_, loss_tokens_, items_done_, complete_};
  write_file_atomically(manifest_path_, manifest_json(spec_, c).dump(2) + "\n");
}

void TargetCacheWriter::append(const int32_t* tokens, const uint8_t* loss_mask, int n, const float* taps,
                               const float* final_hidden, uint32_t source, uint32_t sample) {
  if (n <= 0 || uint32_t(n) > kMaxSampleTokens)
    fail(dir_, ": a sample of ", n, " tokens (expected 1..", kMaxSampleTokens, ")");
  if (sample >= uint32_t(spec_.samples_per_prompt))
    fail(dir_, ": sample number ", sample, " is not below samples per prompt ", spec_.samples_per_prompt);
  const int64_t item = item_of(source, sample);
  if (item < items_done_)
    fail(dir_, ": source ", source, " sample ", sample, " is item ", item, ", already done (", items_done_,
         " items are)");
  const size_t S = size_t(n), w = size_t(spec_.tap_width()), d = size_t(spec_.dim),
               e = value_bytes(spec_.dtype);
  CacheRecord r;
  r.offset = data_end_;
  r.length = sample_bytes(spec_, n);
  r.n_tokens = uint32_t(n);
  r.source = source;
  r.sample = sample;
  buf_.assign(size_t(r.length), 0);
  uint8_t* p = buf_.data();
  for (size_t i = 0; i < S; ++i) {
    if (tokens[i] < 0 || tokens[i] >= spec_.vocab)
      fail(dir_, ": token ", i, " of the sample is ", tokens[i], ", outside the vocabulary (", spec_.vocab,
           ")");
    if (loss_mask[i] > 1)
      fail(dir_, ": loss mask ", i, " of the sample is ", int(loss_mask[i]), ", expected 0 or 1");
    r.n_loss += loss_mask[i];
  }
  std::memcpy(p, tokens, 4 * S);
  p += 4 * S;
  std::memcpy(p, loss_mask, S);
  p += align_up(S, 4);
  store_values(taps, S * w, spec_.dtype, p);
  p += S * w * e;
  store_values(final_hidden, S * d, spec_.dtype, p);
  r.checksum = record_checksum(r, buf_.data());

  uint8_t rec[kCacheIndexRecordBytes];
  encode_record(r, rec);
  pwrite_all(data_fd_, buf_.data(), buf_.size(), r.offset, data_path_);
  pwrite_all(index_fd_, rec, sizeof rec, kCacheHeaderBytes + uint64_t(samples_) * kCacheIndexRecordBytes,
             index_path_);
  data_end_ += r.length;
  ++samples_;
  tokens_ += n;
  loss_tokens_ += r.n_loss;
  items_done_ = item + 1;
  write_manifest();
}

void TargetCacheWriter::set_items_done(int64_t items) {
  if (items < items_done_) fail(dir_, ": progress cannot go back from ", items_done_, " items to ", items);
  if (items == items_done_) return;
  items_done_ = items;
  write_manifest();
}

void TargetCacheWriter::finish() {
  complete_ = true;
  write_manifest();
}

// ---- reader ---------------------------------------------------------------------------

TargetCacheReader::TargetCacheReader(const std::string& dir) : dir_(dir), data_path_(dir + "/samples.bin") {
  const std::string manifest_path = dir + "/manifest.json", index_path = dir + "/samples.idx";
  if (!std::filesystem::is_directory(dir)) fail(dir, ": not a directory (a target cache is a directory)");
  if (!file_exists(manifest_path))
    fail(dir, ": no manifest.json: not a target cache, or its build never began");
  ManifestCounts counts;
  parse_manifest(manifest_path, spec_, counts);
  items_done_ = counts.items_done;
  complete_ = counts.complete;

  const int index_fd = Fd::open_ro(index_path);
  std::vector<uint8_t> raw;
  try {
    const uint64_t size = file_size(index_fd, index_path);
    raw.resize(size_t(size));
    if (size > 0) pread_all(index_fd, raw.data(), raw.size(), 0, index_path, "the index");
  } catch (...) {
    ::close(index_fd);
    throw;
  }
  ::close(index_fd);
  check_header(raw.data(), raw.size(), kIndexMagic, uint32_t(kCacheIndexRecordBytes), index_path);
  const uint64_t body = raw.size() - kCacheHeaderBytes;
  if (body % kCacheIndexRecordBytes != 0)
    fail(index_path, ": ", body, " bytes of records is not a whole number of ", kCacheIndexRecordBytes,
         "-byte records (an interrupted build: run it again to repair and continue the cache)");
  const uint64_t n = body / kCacheIndexRecordBytes;
  if (int64_t(n) != counts.samples)
    fail(index_path, ": holds ", n, " samples, manifest.json says ", counts.samples,
         " (an interrupted build: run it again to repair and continue the cache)");

  data_fd_ = Fd::open_ro(data_path_);
  try {
    const uint64_t data_size = file_size(data_fd_, data_path_);
    uint8_t h[kCacheHeaderBytes] = {};
    if (data_size >= kCacheHeaderBytes) pread_all(data_fd_, h, sizeof h, 0, data_path_, "the header");
    check_header(h, data_size, kDataMagic, 0, data_path_);
    records_.reserve(size_t(n));
    uint64_t offset = kCacheHeaderBytes;
    int64_t prev_item = -1;
    for (uint64_t i = 0; i < n; ++i) {
      const CacheRecord r = decode_record(raw.data() + kCacheHeaderBytes + i * kCacheIndexRecordBytes);
      const std::string problem = record_problem(r, spec_, offset, prev_item, data_size);
      if (!problem.empty()) fail(index_path, ": record ", i, ": ", problem);
      records_.push_back(r);
      offset = r.offset + r.length;
      prev_item = item_number(spec_, r.source, r.sample);
      tokens_ += r.n_tokens;
      loss_tokens_ += r.n_loss;
    }
    if (offset != data_size)
      fail(data_path_, ": ", data_size - offset, " bytes after the last sample (an interrupted build: run it",
           " again to repair and continue the cache)");
    if (tokens_ != counts.tokens || loss_tokens_ != counts.loss_tokens)
      fail(manifest_path, ": counts ", counts.tokens, " tokens and ", counts.loss_tokens,
           " loss tokens, the index holds ", tokens_, " and ", loss_tokens_);
  } catch (...) {
    ::close(data_fd_);
    throw;
  }
}

TargetCacheReader::~TargetCacheReader() {
  if (data_fd_ >= 0) ::close(data_fd_);
}

const CacheRecord& TargetCacheReader::record(int64_t i) const {
  if (i < 0 || i >= size()) fail(dir_, ": no sample ", i, " (the cache holds ", size(), ")");
  return records_[size_t(i)];
}

void TargetCacheReader::read(int64_t i, TargetSample& out) const {
  const CacheRecord& r = record(i);
  std::vector<uint8_t> bytes(size_t(r.length));
  pread_all(data_fd_, bytes.data(), bytes.size(), r.offset, data_path_, "sample " + std::to_string(i));
  if (record_checksum(r, bytes.data()) != r.checksum)
    fail(data_path_, ": sample ", i, " (", r.length, " bytes at offset ", r.offset,
         ") does not match its checksum: the file is damaged");
  const size_t S = r.n_tokens, w = size_t(spec_.tap_width()), d = size_t(spec_.dim),
               e = value_bytes(spec_.dtype);
  const uint8_t* p = bytes.data();
  out.tokens.resize(S);
  out.loss_mask.resize(S);
  out.taps.resize(S * w);
  out.final_hidden.resize(S * d);
  out.source = r.source;
  out.sample = r.sample;
  std::memcpy(out.tokens.data(), p, 4 * S);
  p += 4 * S;
  std::memcpy(out.loss_mask.data(), p, S);
  p += align_up(S, 4);
  for (size_t t = 0; t < S; ++t) {
    if (out.tokens[t] < 0 || out.tokens[t] >= spec_.vocab)
      fail(data_path_, ": sample ", i, " token ", t, " is ", out.tokens[t], ", outside the vocabulary (",
           spec_.vocab, ")");
    if (out.loss_mask[t] > 1)
      fail(data_path_, ": sample ", i, " loss mask ", t, " is ", int(out.loss_mask[t]), ", expected 0 or 1");
  }
  load_values(p, S * w, spec_.dtype, out.taps.data());
  p += S * w * e;
  load_values(p, S * d, spec_.dtype, out.final_hidden.data());
}

}  // namespace dspark
