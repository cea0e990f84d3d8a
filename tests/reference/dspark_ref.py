#!/usr/bin/python3
"""Independent NumPy reference (test oracle) for the DSpark drafter (DSPARK.md 1-2).

Not part of the product. Reads a DSpark checkpoint folder (config.json +
model.safetensors or sharded model.safetensors.index.json; F32/F16/BF16; names of
DSPARK.md 3.3) and, when the checkpoint has no embed_tokens / lm_head, the target's
Hugging Face folder. All math is float64; it is stateless: every block recomputes the
K/V of its whole context from the tap rows.

CLI (run with Debian's /usr/bin/python3, which has numpy):
  dspark_ref.py --drafter DIR [--target DIR] --input IN.json --out OUTDIR

IN.json:
  {"taps": "taps.bin",          # float32 LE [n_rows, m*d]; relative to IN.json's folder
   "n_rows": N,
   "blocks": [{"s": 10,         # anchor position; context = tap rows 0..s-1 (s <= N)
               "anchor": 5,     # x0
               "prev": [5, 7, 9, 11]}, ...]}  # x_{k-1} for k = 0..B-1 (teacher forcing)
Writes, per block i, float32 LE files in OUTDIR:
  block{i}.h.bin     [B, d]  final-normed hidden states h_k
  block{i}.U.bin     [B, V]  base logits U_k = lm_head(h_k)
  block{i}.l.bin     [B, V]  l_k = U_k + bias_k (= U_k without a Markov head)
  block{i}.state.bin [B, r]  RNN states s_k (rnn head only)
  block{i}.conf.bin  [B]     confidence logits (confidence head only)
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_folder_tensors  # noqa: E402


# ----------------------------------------------------------------------------
# loading


def target_matrices(folder):
    """(embedding, lm_head) of a Hugging Face target; the head is the embedding when tied."""
    t = read_folder_tensors(folder)
    embed = t.get("model.embed_tokens.weight", t.get("lm_head.weight"))
    head = t.get("lm_head.weight", embed)
    return embed, head


def load_drafter(folder, target=None):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    assert cfg["architectures"][0] == "Qwen3DSparkModel", cfg["architectures"]
    t = read_folder_tensors(folder)
    d, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    theta = cfg.get("rope_theta", 10000.0)
    if isinstance(cfg.get("rope_parameters"), dict):
        theta = cfg["rope_parameters"].get("rope_theta", theta)
    rank = cfg.get("markov_rank", 0)
    conf = cfg.get("enable_confidence_head", False)
    m = dict(
        d=d, heads=heads, kv_heads=cfg.get("num_key_value_heads", heads),
        hd=cfg.get("head_dim") or d // heads, V=cfg["vocab_size"],
        eps=cfg.get("rms_norm_eps", 1e-6), theta=float(theta),
        layers=cfg["num_hidden_layers"], B=cfg["block_size"],
        ids=cfg["target_layer_ids"], mask=cfg["mask_token_id"],
        rank=rank, head=cfg.get("markov_head_type", "vanilla") if rank > 0 else "none",
        conf=conf, conf_markov=conf and cfg.get("confidence_head_with_markov", True),
        t=t)
    embed, head = t.get("embed_tokens.weight"), t.get("lm_head.weight")
    if embed is None or head is None:
        te, th = target_matrices(target)
        embed = te if embed is None else embed
        head = th if head is None else head
    m["embed"], m["lm_head"] = embed, head
    return m


# ----------------------------------------------------------------------------
# math


def rmsnorm(x, w, eps):
    return w * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def rope(x, positions, theta):
    """Rotate-half RoPE. x: [n, heads, hd]; positions: [n]."""
    hd = x.shape[-1]
    half = hd // 2
    inv = theta ** (-2.0 * np.arange(half) / hd)
    ang = np.asarray(positions, dtype=np.float64)[:, None] * inv[None, :]  # [n, half]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def heads_split(x, n, hd):
    return x.reshape(x.shape[0], n, hd)


def block_forward(m, taps, s, anchor):
    """h [B, d] and U [B, V] for the block anchored at position s (DSPARK.md 1.1-1.2)."""
    t, hd, B, eps = m["t"], m["hd"], m["B"], m["eps"]
    nh, nkv = m["heads"], m["kv_heads"]
    # 1. context: c_p = RMSNorm_hidden(W_fc f_p) for p < s
    f = taps[:s]  # [s, m*d]
    c = rmsnorm(f @ t["fc.weight"].T, t["hidden_norm.weight"], eps)  # [s, d]
    # 2. block input: [x0, MASK, ...] embedded
    x = m["embed"][[anchor] + [m["mask"]] * (B - 1)]  # [B, d]
    ctx_pos = np.arange(s)
    blk_pos = s + np.arange(B)
    for i in range(m["layers"]):
        p = "layers.%d." % i
        a = p + "self_attn."
        xn = rmsnorm(x, t[p + "input_layernorm.weight"], eps)

        def keys(inp, pos):
            k = heads_split(inp @ t[a + "k_proj.weight"].T, nkv, hd)
            return rope(rmsnorm(k, t[a + "k_norm.weight"], eps), pos, m["theta"])

        q = heads_split(xn @ t[a + "q_proj.weight"].T, nh, hd)
        q = rope(rmsnorm(q, t[a + "q_norm.weight"], eps), blk_pos, m["theta"])  # [B, nh, hd]
        K = np.concatenate([keys(c, ctx_pos), keys(xn, blk_pos)])  # [s+B, nkv, hd]
        V = np.concatenate([c @ t[a + "v_proj.weight"].T, xn @ t[a + "v_proj.weight"].T])
        V = heads_split(V, nkv, hd)  # [s+B, nkv, hd]
        group = nh // nkv
        out = np.zeros((B, nh, hd))
        for h in range(nh):
            sc = q[:, h, :] @ K[:, h // group, :].T / np.sqrt(hd)  # [B, s+B], no mask
            sc = np.exp(sc - sc.max(axis=1, keepdims=True))
            sc /= sc.sum(axis=1, keepdims=True)
            out[:, h, :] = sc @ V[:, h // group, :]
        x = x + out.reshape(B, nh * hd) @ t[a + "o_proj.weight"].T
        xn = rmsnorm(x, t[p + "post_attention_layernorm.weight"], eps)
        g = xn @ t[p + "mlp.gate_proj.weight"].T
        u = xn @ t[p + "mlp.up_proj.weight"].T
        x = x + (g * sigmoid(g) * u) @ t[p + "mlp.down_proj.weight"].T
    h = rmsnorm(x, t["norm.weight"], eps)
    return h, h @ m["lm_head"].T


def heads_forward(m, h, U, prev):
    """Teacher-forced heads (DSPARK.md 2): l [B, V], states [B, r] or None, conf [B] or None."""
    t, r, B = m["t"], m["rank"], m["B"]
    l = U.copy()
    states = np.zeros((B, r)) if m["head"] == "rnn" else None
    conf = np.zeros(B) if m["conf"] else None
    state = np.zeros(r)  # s_{-1} = 0
    for k in range(B):
        e = t["markov_head.markov_w1.weight"][prev[k]] if r > 0 else None  # W1[x_{k-1}]
        if m["head"] == "vanilla":
            l[k] += t["markov_head.markov_w2.weight"] @ e
        elif m["head"] == "gated":
            z = np.concatenate([h[k], e])
            gate = sigmoid(t["markov_head.gate_proj.weight"] @ z + t["markov_head.gate_proj.bias"])
            l[k] += t["markov_head.markov_w2.weight"] @ (gate * e)
        elif m["head"] == "rnn":
            z = np.concatenate([state, e, h[k]])
            gco = t["markov_head.joint_proj.weight"] @ z + t["markov_head.joint_proj.bias"]
            g, c, o = gco[:r], gco[r:2 * r], gco[2 * r:]
            state = sigmoid(g) * state + (1.0 - sigmoid(g)) * np.tanh(c)
            states[k] = state
            l[k] += t["markov_head.markov_w2.weight"] @ np.tanh(o)
        if m["conf"]:
            inp = np.concatenate([h[k], e]) if m["conf_markov"] else h[k]
            conf[k] = (t["confidence_head.proj.weight"] @ inp)[0] + t["confidence_head.proj.bias"][0]
    return l, states, conf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--drafter", required=True)
    ap.add_argument("--target", default=None)
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    m = load_drafter(a.drafter, a.target)
    spec = json.load(open(a.input))
    width = len(m["ids"]) * m["d"]
    taps_path = os.path.join(os.path.dirname(os.path.abspath(a.input)), spec["taps"])
    taps = np.fromfile(taps_path, dtype="<f4").astype(np.float64).reshape(spec["n_rows"], width)
    os.makedirs(a.out, exist_ok=True)

    def save(i, what, arr):
        np.asarray(arr, dtype="<f4").tofile(os.path.join(a.out, "block%d.%s.bin" % (i, what)))

    for i, b in enumerate(spec["blocks"]):
        assert len(b["prev"]) == m["B"], "prev needs one token per block position"
        h, U = block_forward(m, taps, b["s"], b["anchor"])
        l, states, conf = heads_forward(m, h, U, b["prev"])
        save(i, "h", h)
        save(i, "U", U)
        save(i, "l", l)
        if states is not None:
            save(i, "state", states)
        if conf is not None:
            save(i, "conf", conf)


if __name__ == "__main__":
    main()
