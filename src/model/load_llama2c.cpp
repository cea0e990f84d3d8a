// llama2.c checkpoints. Two layouts:
//  - legacy: 7 int32 (dim, hidden, layers, heads, kv heads, vocab, seq_len), fp32 weights;
//    a negative vocab means the classifier is stored separately at the end.
//  - version 2 ("ak42" magic, 256-byte header): fp32 norms, then each matrix as int8 values
//    followed by fp32 scales, one per group_size values of the FLATTENED matrix (groups may
//    straddle rows, so they are dequantized by flat index into fp32 at load).
// Both rotate adjacent RoPE pairs, use RMSNorm epsilon 1e-5 and theta 10000.
#include <cstring>

#include "core/error.h"
#include "core/mapped_file.h"
#include "model/loaders.h"

namespace dspark {

namespace {

constexpr uint32_t kMagicV2 = 0x616b3432;  // "ak42" read little-endian
constexpr size_t kHeaderV2 = 256;

struct Header {
  int32_t dim, hidden, layers, heads, kv_heads, vocab, seq_len;
};

// Sequential reader over the mapped file that refuses to read past its end.
struct Cursor {
  const MappedFile& file;
  size_t pos;

  const uint8_t* take(size_t bytes, const char* what) {
    if (bytes > file.size() - pos)
      fail(file.path(), ": file ends inside ", what, " (needs ", bytes, " bytes at offset ", pos,
           ", file has ", file.size(), ")");
    const uint8_t* p = file.data() + pos;
    pos += bytes;
    return p;
  }
};

ModelConfig config_from(const Header& h, const std::string& path) {
  if (h.dim <= 0 || h.hidden <= 0 || h.layers <= 0 || h.heads <= 0 || h.kv_heads <= 0 || h.vocab == 0 ||
      h.seq_len <= 0 || h.dim > 65536 || h.hidden > 262144 || h.layers > 1024 || h.heads > h.dim ||
      std::abs(int64_t(h.vocab)) > 4000000 || h.seq_len > 1000000)
    fail(path, ": implausible llama2.c header (dim ", h.dim, ", hidden ", h.hidden, ", layers ", h.layers,
         ", heads ", h.heads, ", kv heads ", h.kv_heads, ", vocab ", h.vocab, ", seq_len ", h.seq_len, ")");
  if (h.dim % h.heads != 0) fail(path, ": dim ", h.dim, " is not divisible by ", h.heads, " heads");
  ModelConfig c;
  c.arch = Arch::Llama;
  c.dim = h.dim;
  c.ffn_dim = h.hidden;
  c.n_layers = h.layers;
  c.n_heads = h.heads;
  c.n_kv_heads = h.kv_heads;
  c.head_dim = h.dim / h.heads;
  c.vocab_size = std::abs(h.vocab);
  c.max_seq_len = h.seq_len;
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.rope_style = RopeStyle::AdjacentPairs;
  return c;
}

// Views of consecutive fp32 tensors in the file, one per layer.
std::vector<TensorView> fp32_views(Cursor& cur, const char* name, int count, std::vector<int64_t> shape) {
  std::vector<TensorView> out;
  for (int i = 0; i < count; ++i) {
    TensorView t{std::string(name) + "." + std::to_string(i), DType::F32, shape, nullptr};
    t.data = cur.take(t.nbytes(), name);
    out.push_back(std::move(t));
  }
  return out;
}

// One quantized matrix: int8 values, then one fp32 scale per group of the flattened tensor.
TensorView q8_tensor(Model& m, Cursor& cur, std::string name, std::vector<int64_t> shape, int group) {
  TensorView shape_only{name, DType::F32, shape, nullptr};
  const size_t n = size_t(shape_only.numel());
  if (n % size_t(group) != 0)
    fail(m.source, ": tensor '", name, "' has ", n, " values, not a multiple of the group size ", group);
  const auto* q = reinterpret_cast<const int8_t*>(cur.take(n, name.c_str()));
  const uint8_t* s = cur.take(n / size_t(group) * 4, name.c_str());
  std::vector<uint8_t> bytes(n * sizeof(float));
  auto* out = reinterpret_cast<float*>(bytes.data());
  for (size_t i = 0; i < n; ++i) {
    float scale;
    std::memcpy(&scale, s + (i / size_t(group)) * 4, 4);
    out[i] = float(q[i]) * scale;
  }
  return m.storage.own(std::move(name), DType::F32, std::move(shape), std::move(bytes));
}

void set_norms(Model& m, const std::vector<TensorView>& att, const std::vector<TensorView>& ffn) {
  for (size_t i = 0; i < m.layers.size(); ++i) {
    m.layers[i].attn_norm = att[i];
    m.layers[i].ffn_norm = ffn[i];
  }
}

void load_legacy(Model& m, const MappedFile& f, const Header& h) {
  const ModelConfig& c = m.config;
  const int64_t d = c.dim, q = c.q_dim(), kv = c.kv_dim(), hid = c.ffn_dim, L = c.n_layers;
  Cursor cur{f, 7 * 4};
  auto one = [&](const char* name, std::vector<int64_t> shape) {
    return fp32_views(cur, name, 1, std::move(shape))[0];
  };
  m.tok_embeddings = one("token_embedding", {c.vocab_size, d});
  auto att = fp32_views(cur, "rms_att", int(L), {d});
  auto wq = fp32_views(cur, "wq", int(L), {q, d});
  auto wk = fp32_views(cur, "wk", int(L), {kv, d});
  auto wv = fp32_views(cur, "wv", int(L), {kv, d});
  auto wo = fp32_views(cur, "wo", int(L), {d, q});
  auto ffn = fp32_views(cur, "rms_ffn", int(L), {d});
  auto w1 = fp32_views(cur, "w1", int(L), {hid, d});
  auto w2 = fp32_views(cur, "w2", int(L), {d, hid});
  auto w3 = fp32_views(cur, "w3", int(L), {hid, d});
  m.output_norm = one("rms_final", {d});
  cur.take(size_t(c.max_seq_len) * size_t(c.head_dim) * 4, "the RoPE tables");  // unused: recomputed
  m.output = h.vocab > 0 ? m.tok_embeddings : one("classifier", {c.vocab_size, d});
  m.config.tied_embeddings = h.vocab > 0;
  for (int64_t i = 0; i < L; ++i) {
    LayerWeights& l = m.layers[size_t(i)];
    l.wq = wq[size_t(i)], l.wk = wk[size_t(i)], l.wv = wv[size_t(i)], l.wo = wo[size_t(i)];
    l.w_gate = w1[size_t(i)], l.w_down = w2[size_t(i)], l.w_up = w3[size_t(i)];
  }
  set_norms(m, att, ffn);
  if (cur.pos != f.size())
    fail(f.path(), ": ", f.size() - cur.pos, " unexpected bytes after the weights (header says dim ", h.dim,
         ", layers ", h.layers, ", vocab ", h.vocab, ")");
}

void load_v2(Model& m, const MappedFile& f, bool shared_classifier, int group) {
  const ModelConfig& c = m.config;
  const int64_t d = c.dim, q = c.q_dim(), kv = c.kv_dim(), hid = c.ffn_dim;
  const int L = c.n_layers;
  Cursor cur{f, kHeaderV2};
  auto att = fp32_views(cur, "rms_att", L, {d});
  auto ffn = fp32_views(cur, "rms_ffn", L, {d});
  m.output_norm = fp32_views(cur, "rms_final", 1, {d})[0];
  set_norms(m, att, ffn);
  m.tok_embeddings = q8_tensor(m, cur, "token_embedding", {c.vocab_size, d}, group);
  auto per_layer = [&](const char* name, std::vector<int64_t> shape, TensorView LayerWeights::*field) {
    for (int i = 0; i < L; ++i)
      m.layers[size_t(i)].*field =
          q8_tensor(m, cur, std::string(name) + "." + std::to_string(i), shape, group);
  };
  per_layer("wq", {q, d}, &LayerWeights::wq);
  per_layer("wk", {kv, d}, &LayerWeights::wk);
  per_layer("wv", {kv, d}, &LayerWeights::wv);
  per_layer("wo", {d, q}, &LayerWeights::wo);
  per_layer("w1", {hid, d}, &LayerWeights::w_gate);
  per_layer("w2", {d, hid}, &LayerWeights::w_down);
  per_layer("w3", {hid, d}, &LayerWeights::w_up);
  m.output = shared_classifier ? m.tok_embeddings : q8_tensor(m, cur, "classifier", {c.vocab_size, d}, group);
  m.config.tied_embeddings = shared_classifier;
  if (cur.pos != f.size()) fail(f.path(), ": ", f.size() - cur.pos, " unexpected bytes after the weights");
}

}  // namespace

std::unique_ptr<Model> load_llama2c(const std::string& path) {
  auto file = MappedFile::open(path);
  const MappedFile& f = *file;
  if (f.size() < 28) fail(path, ": too small for a llama2.c checkpoint (", f.size(), " bytes)");
  uint32_t magic;
  std::memcpy(&magic, f.data(), 4);
  const bool v2 = magic == kMagicV2;
  Header h;
  int32_t version = 0, group = 0;
  uint8_t shared = 0;
  if (v2) {
    if (f.size() < kHeaderV2) fail(path, ": file ends inside the 256-byte header");
    std::memcpy(&version, f.data() + 4, 4);
    if (version != 2)
      fail(path, ": llama2.c export version ", version, " is not supported (legacy and version 2 are)");
    std::memcpy(&h, f.data() + 8, sizeof h);
    shared = f.data()[8 + sizeof h];
    std::memcpy(&group, f.data() + 8 + sizeof h + 1, 4);
    if (group <= 0 || group > 4096) fail(path, ": invalid Q8_0 group size ", group);
  } else {
    std::memcpy(&h, f.data(), sizeof h);
  }
  auto m = std::make_unique<Model>();
  m->source = path;
  m->format = v2 ? "llama2c-v2-q8_0" : "llama2c";
  m->config = config_from(h, path);
  m->layers.resize(size_t(m->config.n_layers));
  m->storage.hold(file);
  if (v2)
    load_v2(*m, f, shared != 0, group);
  else
    load_legacy(*m, f, h);
  m->validate();
  return m;
}

}  // namespace dspark
