#include "model/hf_config.h"

#include "core/error.h"

namespace dspark {

ModelConfig read_hf_shape(const JsonFields& f) {
  ModelConfig c;
  c.dim = f.get_int("hidden_size");
  c.ffn_dim = f.get_int("intermediate_size");
  c.n_layers = f.get_int("num_hidden_layers");
  c.n_heads = f.get_int("num_attention_heads");
  c.n_kv_heads = f.get_int_or("num_key_value_heads", c.n_heads);
  if (c.n_heads <= 0) fail(f.file(), ": field 'num_attention_heads' must be positive, got ", c.n_heads);
  c.head_dim = f.get_int_or("head_dim", c.dim / c.n_heads);
  c.vocab_size = f.get_int("vocab_size");
  c.max_seq_len = f.get_int_or("max_position_embeddings", 2048);
  c.norm_eps = float(f.get_float_or("rms_norm_eps", 1e-6));
  c.rope_theta = f.rope_theta(10000.0);
  c.rope_style = RopeStyle::Halves;
  return c;
}

}  // namespace dspark
