#include "model/gguf_export.h"

#include <cstring>

#include "core/error.h"
#include "core/mapped_file.h"
#include "kernels/quantize.h"
#include "model/convert.h"

namespace dspark {

namespace {

// Hugging Face rotate-half rows -> adjacent-pair rows, per head: row 2i <- i, 2i+1 <- i + hd/2.
std::vector<uint8_t> permute_rows_for_pairs(const TensorView& t, int n_heads) {
  const int64_t hd = t.rows() / n_heads;
  const size_t rb = t.row_bytes();
  std::vector<uint8_t> out(t.nbytes());
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < hd / 2; ++i) {
      std::memcpy(out.data() + size_t(h * hd + 2 * i) * rb, t.row(h * hd + i), rb);
      std::memcpy(out.data() + size_t(h * hd + 2 * i + 1) * rb, t.row(h * hd + i + hd / 2), rb);
    }
  return out;
}

// Adds each tensor as a source the writer calls when it reaches it: the conversion (and
// permutation) of a tensor happens then, so only one converted tensor exists at a time. The
// views must stay valid until the file is written.
class TensorSink {
 public:
  TensorSink(GgufWriter& w, const GgufExportOptions& o) : w_(w), o_(o) {}

  void add(const std::string& name, const TensorView& t, int permute_heads = 0) {
    const DType type = converted_type(t, o_.weight_type);
    w_.add_tensor_source(name, type, t.shape, [t, type, permute_heads](std::string& out) {
      TensorView src = t;
      std::vector<uint8_t> permuted;
      if (permute_heads > 0) {
        permuted = permute_rows_for_pairs(t, permute_heads);
        src.data = permuted.data();
      }
      out.resize(dtype_row_bytes(type, src.cols()) * size_t(src.rows()));
      if (type == src.type)
        std::memcpy(out.data(), src.data, out.size());
      else
        convert_tensor(src, type, out.data());
      release_mapped_pages(t.data, t.nbytes());  // read once: keep the input's pages from piling up
    });
  }

 private:
  GgufWriter& w_;
  const GgufExportOptions& o_;
};

}  // namespace

void export_gguf(const Model& m, const std::string& path, const GgufExportOptions& o) {
  const ModelConfig& c = m.config;
  if (c.arch != Arch::Llama && c.rope_style != RopeStyle::Halves)
    fail(path, ": a ", arch_name(c.arch), " GGUF must use rotate-half RoPE");
  GgufWriter w;
  write_model_metadata(w, c, o.name.empty() ? "dspark export" : o.name);
  if (m.tokens.bos >= 0) w.set_uint32("tokenizer.ggml.bos_token_id", uint32_t(m.tokens.bos));
  if (!m.tokens.eos.empty()) w.set_uint32("tokenizer.ggml.eos_token_id", uint32_t(m.tokens.eos[0]));
  if (o.add_tokenizer) o.add_tokenizer(w);

  // llama GGUFs rotate adjacent pairs; a rotate-half source needs its Q/K rows permuted.
  const bool permute = c.arch == Arch::Llama && c.rope_style == RopeStyle::Halves;
  TensorSink sink(w, o);
  sink.add("token_embd.weight", m.tok_embeddings);
  for (int i = 0; i < c.n_layers; ++i) {
    const LayerWeights& l = m.layers[size_t(i)];
    const std::string b = "blk." + std::to_string(i) + ".";
    sink.add(b + "attn_norm.weight", l.attn_norm);
    sink.add(b + "attn_q.weight", l.wq, permute ? c.n_heads : 0);
    sink.add(b + "attn_k.weight", l.wk, permute ? c.n_kv_heads : 0);
    sink.add(b + "attn_v.weight", l.wv);
    sink.add(b + "attn_output.weight", l.wo);
    if (c.qkv_bias) {
      sink.add(b + "attn_q.bias", l.bq);
      sink.add(b + "attn_k.bias", l.bk);
      sink.add(b + "attn_v.bias", l.bv);
    }
    if (c.qk_norm) {
      sink.add(b + "attn_q_norm.weight", l.q_norm);
      sink.add(b + "attn_k_norm.weight", l.k_norm);
    }
    sink.add(b + "ffn_norm.weight", l.ffn_norm);
    sink.add(b + "ffn_gate.weight", l.w_gate);
    sink.add(b + "ffn_up.weight", l.w_up);
    sink.add(b + "ffn_down.weight", l.w_down);
  }
  sink.add("output_norm.weight", m.output_norm);
  if (!c.tied_embeddings) sink.add("output.weight", m.output);
  w.write(path);
}

void write_model_metadata(GgufWriter& w, const ModelConfig& c, const std::string& name) {
  const std::string a = arch_name(c.arch);
  w.set_string("general.architecture", a);
  w.set_string("general.name", name);
  w.set_uint32(a + ".block_count", uint32_t(c.n_layers));
  w.set_uint32(a + ".embedding_length", uint32_t(c.dim));
  w.set_uint32(a + ".feed_forward_length", uint32_t(c.ffn_dim));
  w.set_uint32(a + ".attention.head_count", uint32_t(c.n_heads));
  w.set_uint32(a + ".attention.head_count_kv", uint32_t(c.n_kv_heads));
  w.set_uint32(a + ".attention.key_length", uint32_t(c.head_dim));
  w.set_uint32(a + ".attention.value_length", uint32_t(c.head_dim));
  w.set_uint32(a + ".context_length", uint32_t(c.max_seq_len));
  w.set_uint32(a + ".vocab_size", uint32_t(c.vocab_size));
  w.set_float32(a + ".attention.layer_norm_rms_epsilon", c.norm_eps);
  w.set_float32(a + ".rope.freq_base", c.rope_theta);
  w.set_uint32(a + ".rope.dimension_count", uint32_t(c.head_dim));
}

}  // namespace dspark
