#!/usr/bin/python3
"""Writes a small random-weight DSpark drafter checkpoint for a target folder (test tool).

  make_random_drafter.py --target DIR --out DIR --seed S
                         [--block-size 4] [--layers 2] [--layer-ids=-1,0]
                         [--rank 8] [--head vanilla|rnn|gated|none]
                         [--confidence 0|1] [--conf-markov 0|1]
                         [--dtype f32|f16|bf16] [--embed 0|1] [--mask-token-id ID]
                         [--shards 1|2]

The target is a Hugging Face folder (e.g. from make_random_model.py --arch qwen3). The
drafter's config.json is a copy of the target's with the fields of DSPARK.md 3.2; its
shapes (hidden, heads, KV heads, head_dim, FFN, vocab, theta, eps) are the target's.
Tensors follow DSPARK.md 3.3. --embed 1 writes embed_tokens / lm_head as frozen copies of
the target's (in the drafter's dtype). --head none means markov_rank 0. --shards 2 splits
the tensors over two files with model.safetensors.index.json.
Weights ~ N(0, 0.1) (Markov W1/W2 ~ N(0, 0.3)); norm weights 1 + N(0, 0.1); biases N(0, 0.1).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dspark_ref import target_matrices  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402


def make(tcfg, target_dir, a):
    d, heads = tcfg["hidden_size"], tcfg["num_attention_heads"]
    kv = tcfg.get("num_key_value_heads", heads)
    hd = tcfg.get("head_dim") or d // heads
    inter, V = tcfg["intermediate_size"], tcfg["vocab_size"]
    ids = [int(x) for x in a.layer_ids.split(",")]
    rank = 0 if a.head == "none" else a.rank
    cfg = dict(tcfg)
    cfg.update({
        "architectures": ["Qwen3DSparkModel"], "num_hidden_layers": a.layers,
        "num_target_layers": tcfg["num_hidden_layers"], "block_size": a.block_size,
        "target_layer_ids": ids,
        "mask_token_id": V - 1 if a.mask_token_id is None else a.mask_token_id,
        "num_anchors": 512, "enable_confidence_head": bool(a.confidence),
        "markov_rank": rank, "tie_word_embeddings": False,
        "layer_types": ["full_attention"] * a.layers,
    })
    if a.confidence:
        cfg["confidence_head_with_markov"] = bool(a.conf_markov)
    if rank > 0:
        cfg["markov_head_type"] = a.head

    rng = np.random.default_rng(a.seed)
    w = lambda *s, std=0.1: rng.normal(0.0, std, s)
    norm = lambda n: 1.0 + rng.normal(0.0, 0.1, n)
    t = {"fc.weight": w(d, len(ids) * d), "hidden_norm.weight": norm(d), "norm.weight": norm(d)}
    for i in range(a.layers):
        p = "layers.%d." % i
        s = p + "self_attn."
        t[p + "input_layernorm.weight"] = norm(d)
        t[p + "post_attention_layernorm.weight"] = norm(d)
        t[s + "q_proj.weight"] = w(heads * hd, d)
        t[s + "k_proj.weight"] = w(kv * hd, d)
        t[s + "v_proj.weight"] = w(kv * hd, d)
        t[s + "o_proj.weight"] = w(d, heads * hd)
        t[s + "q_norm.weight"] = norm(hd)
        t[s + "k_norm.weight"] = norm(hd)
        t[p + "mlp.gate_proj.weight"] = w(inter, d)
        t[p + "mlp.up_proj.weight"] = w(inter, d)
        t[p + "mlp.down_proj.weight"] = w(d, inter)
    if rank > 0:
        t["markov_head.markov_w1.weight"] = w(V, rank, std=0.3)
        t["markov_head.markov_w2.weight"] = w(V, rank, std=0.3)
    if a.head == "gated":
        t["markov_head.gate_proj.weight"] = w(rank, d + rank)
        t["markov_head.gate_proj.bias"] = w(rank)
    if a.head == "rnn":
        t["markov_head.joint_proj.weight"] = w(3 * rank, 2 * rank + d, std=0.2)
        t["markov_head.joint_proj.bias"] = w(3 * rank)
    if a.confidence:
        n_in = d + (rank if a.conf_markov else 0)
        t["confidence_head.proj.weight"] = w(1, n_in)
        t["confidence_head.proj.bias"] = w(1)
    if a.embed:
        embed, head = target_matrices(target_dir)
        t["embed_tokens.weight"], t["lm_head.weight"] = embed, head
    return cfg, t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--block-size", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--layer-ids", default="0")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--head", choices=["vanilla", "rnn", "gated", "none"], default="vanilla")
    ap.add_argument("--confidence", type=int, choices=[0, 1], default=1)
    ap.add_argument("--conf-markov", type=int, choices=[0, 1], default=1)
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--embed", type=int, choices=[0, 1], default=0)
    ap.add_argument("--mask-token-id", type=int, default=None)
    ap.add_argument("--shards", type=int, choices=[1, 2], default=1)
    a = ap.parse_args()
    tcfg = json.load(open(os.path.join(a.target, "config.json")))
    cfg, t = make(tcfg, a.target, a)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    names = sorted(t)
    dtype = a.dtype.upper()
    if a.shards == 1:
        write_safetensors(os.path.join(a.out, "model.safetensors"), t, dtype, names)
        return
    parts = [names[::2], names[1::2]]
    files = ["model-%05d-of-00002.safetensors" % (i + 1) for i in range(2)]
    for part, name in zip(parts, files):
        write_safetensors(os.path.join(a.out, name), t, dtype, part)
    weight_map = {n: files[i] for i, part in enumerate(parts) for n in part}
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)


if __name__ == "__main__":
    main()
