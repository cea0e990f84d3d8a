#!/usr/bin/python3
"""Writes a small random-weight Hugging Face model folder (test tool).

  make_random_model.py --arch qwen2|qwen3|llama --out DIR --seed S
                       [--dtype f32|f16|bf16] [--tied 0|1] [--head-dim N]
                       [--rope-theta T]

Produces DIR/config.json and DIR/model.safetensors: hidden 64, FFN 96, 2 layers,
4 heads, 2 KV heads (GQA), vocab 96. Weights ~ N(0, 0.1); norm weights 1 + N(0, 0.1);
Qwen2 q/k/v biases ~ N(0, 0.1); lm_head.weight only when --tied 0.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

ARCH = {
    "llama": ("LlamaForCausalLM", "llama", 10000.0),
    "qwen2": ("Qwen2ForCausalLM", "qwen2", 1000000.0),
    "qwen3": ("Qwen3ForCausalLM", "qwen3", 1000000.0),
}


def make(arch, seed, tied, head_dim=None, rope_theta=None):
    cls, mtype, theta = ARCH[arch]
    hidden, inter, layers, heads, kv_heads, vocab = 64, 96, 2, 4, 2, 96
    if head_dim is None and arch == "qwen3":
        head_dim = hidden // heads
    hd = head_dim or hidden // heads
    cfg = {
        "architectures": [cls], "model_type": mtype, "hidden_size": hidden,
        "intermediate_size": inter, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "vocab_size": vocab, "rope_theta": rope_theta or theta, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": bool(tied), "max_position_embeddings": 128,
        "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
        "attention_bias": arch == "qwen2",
    }
    if head_dim is not None:
        cfg["head_dim"] = head_dim
    rng = np.random.default_rng(seed)
    w = lambda *s: rng.normal(0.0, 0.1, s)
    norm = lambda n: 1.0 + rng.normal(0.0, 0.1, n)
    t = {"model.embed_tokens.weight": w(vocab, hidden), "model.norm.weight": norm(hidden)}
    if not tied:
        t["lm_head.weight"] = w(vocab, hidden)
    for i in range(layers):
        p = "model.layers.%d." % i
        a = p + "self_attn."
        t[p + "input_layernorm.weight"] = norm(hidden)
        t[p + "post_attention_layernorm.weight"] = norm(hidden)
        t[a + "q_proj.weight"] = w(heads * hd, hidden)
        t[a + "k_proj.weight"] = w(kv_heads * hd, hidden)
        t[a + "v_proj.weight"] = w(kv_heads * hd, hidden)
        t[a + "o_proj.weight"] = w(hidden, heads * hd)
        if arch == "qwen2":
            t[a + "q_proj.bias"] = w(heads * hd)
            t[a + "k_proj.bias"] = w(kv_heads * hd)
            t[a + "v_proj.bias"] = w(kv_heads * hd)
        if arch == "qwen3":
            t[a + "q_norm.weight"] = norm(hd)
            t[a + "k_norm.weight"] = norm(hd)
        t[p + "mlp.gate_proj.weight"] = w(inter, hidden)
        t[p + "mlp.up_proj.weight"] = w(inter, hidden)
        t[p + "mlp.down_proj.weight"] = w(hidden, inter)
    return cfg, t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCH), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--tied", type=int, choices=[0, 1], default=1)
    ap.add_argument("--head-dim", type=int, default=None,
                    help="explicit head_dim in config (may differ from hidden/heads)")
    ap.add_argument("--rope-theta", type=float, default=None)
    a = ap.parse_args()
    cfg, t = make(a.arch, a.seed, a.tied, a.head_dim, a.rope_theta)
    cfg["torch_dtype"] = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[a.dtype]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(a.out, "model.safetensors"), t, a.dtype.upper())


if __name__ == "__main__":
    main()
