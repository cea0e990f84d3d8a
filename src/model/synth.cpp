#include "model/synth.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <utility>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/quantize.h"
#include "model/gguf_export.h"
#include "tokenizer/byte_level.h"

namespace dspark {

namespace {

ModelConfig qwen3(int layers, int dim, int heads, int kv_heads, int ffn, bool tied) {
  ModelConfig c;
  c.arch = Arch::Qwen3;
  c.n_layers = layers;
  c.dim = dim;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = 128;
  c.ffn_dim = ffn;
  c.vocab_size = 151936;
  c.max_seq_len = 40960;
  c.rope_theta = 1e6f;
  c.norm_eps = 1e-6f;
  c.rope_style = RopeStyle::Halves;
  c.qk_norm = true;
  c.tied_embeddings = tied;
  return c;
}

ModelConfig llama(int layers, int dim, int heads, int kv_heads, int ffn, int vocab, int context) {
  ModelConfig c;
  c.arch = Arch::Llama;
  c.n_layers = layers;
  c.dim = dim;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = dim / heads;
  c.ffn_dim = ffn;
  c.vocab_size = vocab;
  c.max_seq_len = context;
  c.rope_theta = 1e4f;
  c.norm_eps = 1e-5f;
  c.rope_style = RopeStyle::AdjacentPairs;  // GGUF llama stores Q/K for adjacent pairs
  c.tied_embeddings = false;
  return c;
}

ModelConfig tiny_qwen3() {
  ModelConfig c = qwen3(2, 256, 4, 2, 512, true);
  c.head_dim = 64;
  c.vocab_size = 512;
  c.max_seq_len = 1024;
  return c;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// A bell-shaped value of mean 0 and variance 1 from one 64-bit draw: the sum of four
// 16-bit uniforms (Irwin-Hall), rescaled. Cheap enough for billions of weights.
float bell(Rng& rng) {
  const uint64_t r = rng.next_u64();
  const float s = float(r & 0xffff) + float((r >> 16) & 0xffff) + float((r >> 32) & 0xffff) + float(r >> 48);
  constexpr float kScale = 1.7320508f / 65536.0f;  // sqrt(3) / 2^16: variance 4/12 -> 1
  return (s + 2.0f - 2.0f * 65536.0f) * kScale;
}

struct TensorSpec {
  std::string name;
  DType type;
  std::vector<int64_t> shape;  // outermost first
  bool ones;                   // a norm weight: all ones
};

std::vector<TensorSpec> tensor_specs(const ModelConfig& c, DType wt) {
  const int64_t d = c.dim, q = c.q_dim(), kv = c.kv_dim(), f = c.ffn_dim, v = c.vocab_size, hd = c.head_dim;
  std::vector<TensorSpec> out;
  auto matrix = [&](std::string name, int64_t rows, int64_t cols) {
    out.push_back({std::move(name), wt, {rows, cols}, false});
  };
  auto norm = [&](std::string name, int64_t n) { out.push_back({std::move(name), DType::F32, {n}, true}); };
  matrix("token_embd.weight", v, d);
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    norm(b + "attn_norm.weight", d);
    matrix(b + "attn_q.weight", q, d);
    matrix(b + "attn_k.weight", kv, d);
    matrix(b + "attn_v.weight", kv, d);
    matrix(b + "attn_output.weight", d, q);
    if (c.qk_norm) {
      norm(b + "attn_q_norm.weight", hd);
      norm(b + "attn_k_norm.weight", hd);
    }
    norm(b + "ffn_norm.weight", d);
    matrix(b + "ffn_gate.weight", f, d);
    matrix(b + "ffn_up.weight", f, d);
    matrix(b + "ffn_down.weight", d, f);
  }
  norm("output_norm.weight", d);
  if (!c.tied_embeddings) matrix("output.weight", v, d);
  return out;
}

constexpr float kWeightStd = 0.02f;
// Rows drawn from one generator seed: the unit of parallel work, fixed so that the bytes
// never depend on the thread count.
constexpr int64_t kRowsPerChunk = 16;

void produce_tensor(const TensorSpec& t, uint64_t seed, ThreadPool* pool, std::string& out) {
  const int64_t cols = t.shape.back();
  const int64_t rows = t.shape.size() == 1 ? 1 : t.shape[0];
  const size_t row_bytes = dtype_row_bytes(t.type, cols);
  out.resize(row_bytes * size_t(rows));
  const uint64_t stream = mix_seed(seed, fnv1a(t.name));
  const int64_t n_chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  auto work = [&](int64_t begin, int64_t end, int /*thread*/) {
    std::vector<float> row(static_cast<size_t>(cols));  // [cols]
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      Rng rng(mix_seed(stream, uint64_t(chunk)));
      for (int64_t r = chunk * kRowsPerChunk; r < std::min(rows, (chunk + 1) * kRowsPerChunk); ++r) {
        if (t.ones)
          std::fill(row.begin(), row.end(), 1.0f);
        else
          for (float& x : row) x = kWeightStd * bell(rng);
        quantize_row(t.type, row.data(), cols, out.data() + size_t(r) * row_bytes);
      }
    }
  };
  if (pool)
    pool->parallel_for(n_chunks, 1,
                       [&](int64_t begin, int64_t end, int thread) { work(begin, end, thread); });
  else
    work(0, n_chunks, 0);
}

// Lowercase letters, most frequent in English first: the synthetic vocabulary merges
// common letters first, as a trained one would.
constexpr std::string_view kLetters = "etaoinshrdlcumwfgypbvkjxqz";

// All strings of `len` symbols (an optional leading space, then letters), cheapest first:
// the cost of a string is the sum of its symbols' frequency ranks (space is the cheapest).
std::vector<std::string> strings_of_length(int len) {
  std::vector<std::pair<int, std::string>> all;
  const std::string space = " ";
  for (int spaced = 1; spaced >= 0; --spaced) {
    const int n_letters = len - spaced;
    int64_t count = 1;
    for (int i = 0; i < n_letters; ++i) count *= int64_t(kLetters.size());
    for (int64_t code = 0; code < count; ++code) {
      std::string s = spaced ? space : "";
      int cost = 0;
      int64_t c = code;
      for (int i = 0; i < n_letters; ++i) {
        const int64_t k = c % int64_t(kLetters.size());
        c /= int64_t(kLetters.size());
        s += kLetters[size_t(k)];
        cost += int(k) + 1;
      }
      all.emplace_back(cost, std::move(s));
    }
  }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  out.reserve(all.size());
  for (auto& p : all) out.push_back(std::move(p.second));
  return out;
}

std::string to_byte_level(std::string_view bytes) {
  std::string out;
  byte_level_encode(bytes, out);
  return out;
}

void check_block_fit(const SynthPreset& p, const std::vector<TensorSpec>& specs) {
  for (const TensorSpec& t : specs)
    if (t.shape.back() % dtype_block_elems(t.type) != 0)
      fail("preset ", p.name, ": tensor '", t.name, "' has rows of ", t.shape.back(), " values, not whole ",
           dtype_name(t.type), " blocks of ", dtype_block_elems(t.type), "; choose another type");
}

}  // namespace

const std::vector<SynthPreset>& synth_presets() {
  static const std::vector<SynthPreset> presets = {
      {"qwen3-0.6b", "Qwen3-0.6B shape", qwen3(28, 1024, 16, 8, 3072, true), "qwen2"},
      {"qwen3-1.7b", "Qwen3-1.7B shape", qwen3(28, 2048, 16, 8, 6144, true), "qwen2"},
      {"qwen3-4b", "Qwen3-4B shape", qwen3(36, 2560, 32, 8, 9728, true), "qwen2"},
      {"qwen3-8b", "Qwen3-8B shape", qwen3(36, 4096, 32, 8, 12288, false), "qwen2"},
      {"llama-110m", "llama2.c stories110M shape", llama(12, 768, 12, 12, 2048, 32000, 1024), "gpt-2"},
      {"tiny", "a 1.3M-parameter Qwen3 for tests", tiny_qwen3(), "qwen2"},
      {"tiny-llama", "a 1.6M-parameter Llama for tests (untied)", llama(2, 256, 4, 4, 512, 512, 1024),
       "gpt-2"},
  };
  return presets;
}

const SynthPreset& find_synth_preset(const std::string& name) {
  std::string known;
  for (const SynthPreset& p : synth_presets()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  fail("unknown preset '", name, "' (known: ", known, ")");
}

namespace {

// Every DType the GGUF reader maps, found through the ggml ids so that new types show up
// here without change. ggml's ids stay well below 64.
std::vector<DType> gguf_weight_types() {
  std::vector<DType> out;
  for (uint32_t id = 0; id < 64; ++id)
    if (const std::optional<DType> t = dtype_from_ggml(id);
        t && std::find(out.begin(), out.end(), *t) == out.end())
      out.push_back(*t);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::optional<DType> parse_weight_type(std::string_view name) {
  auto upper = [](std::string_view s) {
    std::string u(s);
    for (char& ch : u) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    return u;
  };
  for (DType t : gguf_weight_types())
    if (upper(dtype_name(t)) == upper(name)) return t;
  return std::nullopt;
}

std::vector<std::string> weight_type_names() {
  std::vector<std::string> out;
  for (DType t : gguf_weight_types()) out.emplace_back(dtype_name(t));
  return out;
}

SynthVocab make_synth_vocab(int vocab_size) {
  constexpr int kSpecial = 2;
  constexpr int kMaxVocab = 1 << 20;
  if (vocab_size < 256 + kSpecial || vocab_size > kMaxVocab)
    fail("synthetic vocabulary: ", vocab_size, " tokens is outside [", 256 + kSpecial, ", ", kMaxVocab, "]");
  SynthVocab v;
  v.tokens.reserve(size_t(vocab_size));
  for (int b = 0; b < 256; ++b) v.tokens.push_back(to_byte_level(std::string(1, char(b))));
  const size_t n_merged = size_t(vocab_size - 256 - kSpecial);
  // Strings of each length in turn; a string's prefix is always a token of the length
  // before, so "prefix last" is a valid merge whose parts already exist.
  for (int len = 2; v.merges.size() < n_merged; ++len) {
    for (const std::string& s : strings_of_length(len)) {
      if (v.merges.size() == n_merged) break;
      const std::string left = to_byte_level(std::string_view(s).substr(0, s.size() - 1));
      const std::string right = to_byte_level(std::string_view(s).substr(s.size() - 1));
      v.merges.push_back(left + " " + right);
      v.tokens.push_back(left + right);
    }
  }
  v.token_types.assign(v.tokens.size(), 1);
  v.bos = int(v.tokens.size());
  v.tokens.push_back("<|startoftext|>");
  v.eos = int(v.tokens.size());
  v.tokens.push_back("<|endoftext|>");
  v.token_types.resize(v.tokens.size(), 3);
  return v;
}

void add_synth_tokenizer(GgufWriter& w, const SynthVocab& v, const std::string& pre_tokenizer) {
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre_tokenizer);
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  w.set_int32_array("tokenizer.ggml.token_type", v.token_types);
  w.set_string_array("tokenizer.ggml.merges", v.merges);
  w.set_uint32("tokenizer.ggml.bos_token_id", uint32_t(v.bos));
  w.set_uint32("tokenizer.ggml.eos_token_id", uint32_t(v.eos));
  w.set_bool("tokenizer.ggml.add_bos_token", true);
}

ModelConfig synth_config(const SynthPreset& p, const SynthOptions& o) {
  ModelConfig c = p.config;
  if (o.n_layers > 0) c.n_layers = o.n_layers;
  if (o.context > 0) c.max_seq_len = o.context;
  return c;
}

void add_synth_model(GgufWriter& w, const SynthPreset& p, const SynthOptions& o, ThreadPool* pool) {
  const ModelConfig c = synth_config(p, o);
  const std::vector<TensorSpec> specs = tensor_specs(c, o.weight_type);
  check_block_fit(p, specs);

  write_model_metadata(w, c, "dspark synth " + p.name);
  w.set_string("dspark.synth.preset", p.name);
  w.set_uint64("dspark.synth.seed", o.seed);
  add_synth_tokenizer(w, make_synth_vocab(c.vocab_size), p.pre_tokenizer);

  const uint64_t seed = o.seed;
  for (const TensorSpec& t : specs) {
    if (o.stream) {
      w.add_tensor_source(t.name, t.type, t.shape,
                          [t, seed, pool](std::string& out) { produce_tensor(t, seed, pool, out); });
    } else {
      std::string bytes;
      produce_tensor(t, seed, pool, bytes);
      w.add_tensor(t.name, t.type, t.shape, bytes.data());
    }
  }
}

uint64_t write_synth_model(const std::string& path, const SynthPreset& p, const SynthOptions& o,
                           ThreadPool* pool) {
  GgufWriter w;
  add_synth_model(w, p, o, pool);
  w.write(path);
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  return ec ? 0 : uint64_t(size);
}

}  // namespace dspark
