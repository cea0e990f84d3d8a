#!/usr/bin/python3
"""Independent NumPy reference (test oracle) for the transformer forward pass.

Not part of the product. Loads
  * a Hugging Face folder (config.json + model.safetensors; F32/F16/BF16;
    LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM),
  * a llama2.c legacy checkpoint (.bin, 28-byte header, fp32),
  * a llama2.c version-2 checkpoint (.bin, "ak42" magic, Q8_0 weights),
and computes causal logits in float64.

CLI (run with Debian's /usr/bin/python3, which has numpy):
  llama_ref.py logits --model PATH --tokens 1,345,22 --out FILE [--q8-activations]
      writes float32 LE logits [n_tokens, vocab]; prints the shape to stderr
  llama_ref.py greedy --model PATH [--bos 1] -n 60 [--q8-activations]
      prints the greedy token ids (comma separated) generated after BOS
  llama_ref.py text --model PATH --tokenizer TOKFILE [--bos 1] -n N [--q8-activations]
      prints the greedy text (tok512.bin for llama2.c, tokenizer.json for HF)
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors  # noqa: E402

LLAMA2C_MAGIC = 0x616B3432  # "ak42"


# ----------------------------------------------------------------------------
# loading


def load_hf(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    arch = cfg["architectures"][0]
    if arch not in ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"):
        raise ValueError("unsupported architecture " + arch)
    t = read_safetensors(os.path.join(folder, "model.safetensors"))
    dim, n_heads = cfg["hidden_size"], cfg["num_attention_heads"]
    theta = cfg.get("rope_theta")
    if theta is None:
        theta = (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    embed = t.get("model.embed_tokens.weight", t.get("lm_head.weight"))
    head = t.get("lm_head.weight", embed)
    if cfg.get("tie_word_embeddings", False) and "model.embed_tokens.weight" in t:
        head = t["model.embed_tokens.weight"]
    m = dict(
        dim=dim, n_heads=n_heads,
        n_kv_heads=cfg.get("num_key_value_heads", n_heads),
        head_dim=cfg.get("head_dim") or dim // n_heads,
        vocab=cfg["vocab_size"], eps=cfg["rms_norm_eps"], theta=float(theta),
        rope="halves", group_size=None, bos=cfg.get("bos_token_id", 1),
        stop={cfg.get("eos_token_id", 2)} if not isinstance(cfg.get("eos_token_id"), list)
        else set(cfg["eos_token_id"]),
        embed=embed, final_norm=t["model.norm.weight"], lm_head=head, layers=[])
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        a = p + "self_attn."
        m["layers"].append(dict(
            attn_norm=t[p + "input_layernorm.weight"],
            wq=t[a + "q_proj.weight"], wk=t[a + "k_proj.weight"],
            wv=t[a + "v_proj.weight"], wo=t[a + "o_proj.weight"],
            bq=t.get(a + "q_proj.bias"), bk=t.get(a + "k_proj.bias"),
            bv=t.get(a + "v_proj.bias"),
            q_norm=t.get(a + "q_norm.weight"), k_norm=t.get(a + "k_norm.weight"),
            ffn_norm=t[p + "post_attention_layernorm.weight"],
            w_gate=t[p + "mlp.gate_proj.weight"], w_up=t[p + "mlp.up_proj.weight"],
            w_down=t[p + "mlp.down_proj.weight"]))
    return m


class Reader:
    def __init__(self, data, pos):
        self.data, self.pos = data, pos

    def take(self, dtype, count):
        a = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += a.nbytes
        return a

    def f32(self, *shape):
        return self.take("<f4", int(np.prod(shape))).astype(np.float64).reshape(shape)

    def q80(self, shape, gs):
        """One Q8_0 tensor: int8 values of the whole tensor, then fp32 scales,
        one per group of gs values over the FLATTENED tensor."""
        n = int(np.prod(shape))
        q = self.take("<i1", n).astype(np.float64)
        s = self.take("<f4", n // gs).astype(np.float64)
        return (q * np.repeat(s, gs)).reshape(shape)


def llama2c_model(dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len):
    return dict(dim=dim, hidden=hidden, n_heads=n_heads, n_kv_heads=n_kv,
                head_dim=dim // n_heads, vocab=vocab, seq_len=seq_len, n_layers=n_layers,
                eps=1e-5, theta=10000.0, rope="pairs", bos=1, stop={1, 2})


def assemble_llama2c(m, rms_att, rms_ffn, wq, wk, wv, wo, w1, w2, w3):
    m["layers"] = [dict(attn_norm=rms_att[l], wq=wq[l], wk=wk[l], wv=wv[l], wo=wo[l],
                        bq=None, bk=None, bv=None, q_norm=None, k_norm=None,
                        ffn_norm=rms_ffn[l], w_gate=w1[l], w_up=w3[l], w_down=w2[l])
                   for l in range(m["n_layers"])]
    return m


def load_llama2c(path):
    with open(path, "rb") as f:
        data = f.read()
    (magic,) = struct.unpack_from("<I", data, 0)
    if magic == LLAMA2C_MAGIC:
        return load_llama2c_v2(data)
    dim, hidden, L, nh, nkv, vocab, seq_len = struct.unpack_from("<7i", data, 0)
    shared = vocab > 0
    vocab = abs(vocab)
    m = llama2c_model(dim, hidden, L, nh, nkv, vocab, seq_len)
    hd, kvd = m["head_dim"], nkv * (dim // nh)
    r = Reader(data, 28)
    m["embed"] = r.f32(vocab, dim)
    rms_att = r.f32(L, dim)
    wq, wk, wv, wo = r.f32(L, dim, dim), r.f32(L, kvd, dim), r.f32(L, kvd, dim), r.f32(L, dim, dim)
    rms_ffn = r.f32(L, dim)
    w1, w2, w3 = r.f32(L, hidden, dim), r.f32(L, dim, hidden), r.f32(L, hidden, dim)
    m["final_norm"] = r.f32(dim)
    r.pos += 2 * seq_len * (hd // 2) * 4  # freq_cis_real, freq_cis_imag (unused)
    m["lm_head"] = m["embed"] if shared else r.f32(vocab, dim)
    m["group_size"] = None
    if r.pos != len(data):
        raise ValueError("llama2.c legacy: %d bytes left over" % (len(data) - r.pos))
    return assemble_llama2c(m, rms_att, rms_ffn, wq, wk, wv, wo, w1, w2, w3)


def load_llama2c_v2(data):
    # 256-byte header: uint32 magic, int32 version, 7 int32 params,
    # uint8 shared_classifier (byte 36), int32 group_size (bytes 37..40, unaligned), zeros.
    magic, version, dim, hidden, L, nh, nkv, vocab, seq_len = struct.unpack_from("<Ii7i", data, 0)
    if version != 2:
        raise ValueError("llama2.c version %d not supported" % version)
    shared = data[36] != 0
    (gs,) = struct.unpack_from("<i", data, 37)
    m = llama2c_model(dim, hidden, L, nh, nkv, vocab, seq_len)
    kvd = nkv * (dim // nh)
    r = Reader(data, 256)
    rms_att, rms_ffn, m["final_norm"] = r.f32(L, dim), r.f32(L, dim), r.f32(dim)
    m["embed"] = r.q80((vocab, dim), gs)
    wq = [r.q80((dim, dim), gs) for _ in range(L)]
    wk = [r.q80((kvd, dim), gs) for _ in range(L)]
    wv = [r.q80((kvd, dim), gs) for _ in range(L)]
    wo = [r.q80((dim, dim), gs) for _ in range(L)]
    w1 = [r.q80((hidden, dim), gs) for _ in range(L)]
    w2 = [r.q80((dim, hidden), gs) for _ in range(L)]
    w3 = [r.q80((hidden, dim), gs) for _ in range(L)]
    m["lm_head"] = m["embed"] if shared else r.q80((vocab, dim), gs)
    m["group_size"] = gs
    if r.pos != len(data):
        raise ValueError("llama2.c v2: %d bytes left over" % (len(data) - r.pos))
    return assemble_llama2c(m, rms_att, rms_ffn, wq, wk, wv, wo, w1, w2, w3)


def load_model(path):
    return load_hf(path) if os.path.isdir(path) else load_llama2c(path)


# ----------------------------------------------------------------------------
# math (rows = positions, float64)


def rmsnorm(x, w, eps):
    return w * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def silu(x):
    return x / (1.0 + np.exp(-x))


def inv_freq(head_dim, theta):
    return theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)


def rope_halves(x, pos, theta):
    """HF rotate-half RoPE. x: [n, heads, hd]; pairs (i, i + hd/2)."""
    hd = x.shape[-1]
    ang = np.outer(pos, inv_freq(hd, theta))[:, None, :]  # [n, 1, hd/2]
    c, s = np.cos(ang), np.sin(ang)
    x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def rope_pairs(x, pos, theta):
    """llama2.c RoPE: rotates adjacent pairs (2i, 2i+1) with freq theta^(-2i/hd)."""
    hd = x.shape[-1]
    ang = np.outer(pos, inv_freq(hd, theta))[:, None, :]
    c, s = np.cos(ang), np.sin(ang)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def quantize_q8(x, gs):
    """runq.c-style activation round trip: groups of gs along the last axis
    (a trailing partial group is its own group), scale = max|x|/127,
    q = round-half-away(x/scale)."""
    n = x.shape[-1]
    pad = (-n) % gs
    xp = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,))], axis=-1)
    g = xp.reshape(x.shape[:-1] + (-1, gs))
    scale = np.max(np.abs(g), axis=-1, keepdims=True) / 127.0
    safe = np.where(scale == 0, 1.0, scale)
    q = np.sign(g / safe) * np.floor(np.abs(g / safe) + 0.5)
    return (q * scale).reshape(xp.shape)[..., :n]


def make_matmul(q8_gs):
    """y = x @ W^T (+ b). With q8_gs, x is first Q8_0 quantized as in runq.c."""
    def matmul(x, w, b=None):
        if q8_gs:
            x = quantize_q8(x, q8_gs)
        y = x @ w.T
        return y if b is None else y + b
    return matmul


def attention(m, lw, x, pos, mm):
    n = x.shape[0]
    nh, nkv, hd = m["n_heads"], m["n_kv_heads"], m["head_dim"]
    q = mm(x, lw["wq"], lw["bq"]).reshape(n, nh, hd)
    k = mm(x, lw["wk"], lw["bk"]).reshape(n, nkv, hd)
    v = mm(x, lw["wv"], lw["bv"]).reshape(n, nkv, hd)
    if lw["q_norm"] is not None:  # Qwen3: per-head RMSNorm over head_dim
        q = rmsnorm(q, lw["q_norm"], m["eps"])
        k = rmsnorm(k, lw["k_norm"], m["eps"])
    rope = rope_halves if m["rope"] == "halves" else rope_pairs
    q, k = rope(q, pos, m["theta"]), rope(k, pos, m["theta"])
    rep = nh // nkv  # GQA: query head h uses kv head h // rep
    k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd)
    scores = scores + np.triu(np.full((n, n), -np.inf), k=1)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs = scores / scores.sum(axis=-1, keepdims=True)
    out = np.einsum("hqk,khd->qhd", probs, v).reshape(n, nh * hd)
    return mm(out, lw["wo"])


def mlp(lw, x, mm):
    return mm(silu(mm(x, lw["w_gate"])) * mm(x, lw["w_up"]), lw["w_down"])


def forward(m, tokens, q8_activations=False):
    """Causal forward of the whole sequence; returns float64 logits [n, vocab]."""
    if q8_activations and not m["group_size"]:
        raise ValueError("q8_activations needs a Q8_0 (llama2.c version 2) model")
    mm = make_matmul(m["group_size"] if q8_activations else None)
    tokens = np.asarray(tokens, dtype=np.int64)
    pos = np.arange(len(tokens), dtype=np.float64)
    x = m["embed"][tokens]
    for lw in m["layers"]:
        x = x + attention(m, lw, rmsnorm(x, lw["attn_norm"], m["eps"]), pos, mm)
        x = x + mlp(lw, rmsnorm(x, lw["ffn_norm"], m["eps"]), mm)
    return mm(rmsnorm(x, m["final_norm"], m["eps"]), m["lm_head"])


def greedy(m, bos, n, q8_activations=False, stop=True):
    """Greedy ids generated after [bos]; stops after a stop id (not included)."""
    seq = [bos]
    for _ in range(n):
        nxt = int(np.argmax(forward(m, seq, q8_activations)[-1]))
        if stop and nxt in m["stop"]:
            break
        seq.append(nxt)
    return seq[1:]


# ----------------------------------------------------------------------------
# minimal decoders (for checking the known continuations)


def decode_llama2c(tokfile, ids, bos=1):
    data = open(tokfile, "rb").read()
    r, pieces = 4, []
    while r < len(data):
        _score, ln = struct.unpack_from("<fi", data, r)
        pieces.append(data[r + 8:r + 8 + ln])
        r += 8 + ln
    out, prev = b"", bos
    for t in ids:
        p = pieces[t]
        if prev == bos and p.startswith(b" "):
            p = p[1:]
        if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            p = bytes([int(p[3:5], 16)])
        out += p
        prev = t
    return out.decode("utf-8", errors="replace")


def decode_hf(tokfile, ids):
    tj = json.load(open(tokfile, encoding="utf-8"))
    inv = {v: k for k, v in tj["model"]["vocab"].items()}
    special = {a["id"] for a in tj.get("added_tokens", []) if a.get("special")}
    out = b""
    for t in ids:
        if t in special:
            continue
        p = inv[t]
        if len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
            out += bytes([int(p[3:5], 16)])
        else:
            out += p.replace("\u2581", " ").encode("utf-8")
    s = out.decode("utf-8", errors="replace")
    return s[1:] if s.startswith(" ") else s


def decode(tokfile, ids, bos):
    if tokfile.endswith(".json"):
        return decode_hf(tokfile, ids)
    return decode_llama2c(tokfile, ids, bos)


# ----------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("logits", "greedy", "text"):
        p = sub.add_parser(name)
        p.add_argument("--model", required=True)
        p.add_argument("--tokenizer")
        p.add_argument("--q8-activations", action="store_true",
                       help="quantize matmul inputs to Q8_0 groups as llama2.c runq.c")
        if name == "logits":
            p.add_argument("--tokens", required=True)
            p.add_argument("--out", required=True)
        else:
            p.add_argument("--bos", type=int, default=None)
            p.add_argument("-n", type=int, default=60)
            p.add_argument("--no-stop", action="store_true", help="do not stop at EOS/BOS")
    a = ap.parse_args(argv)
    m = load_model(a.model)
    if a.q8_activations and not m["group_size"]:
        ap.error("--q8-activations needs a Q8_0 (llama2.c version 2) model")
    if a.cmd == "logits":
        toks = [int(t) for t in a.tokens.split(",") if t.strip()]
        lg = forward(m, toks, a.q8_activations).astype("<f4")
        lg.tofile(a.out)
        print("logits shape %d %d" % lg.shape, file=sys.stderr)
        return 0
    bos = m["bos"] if a.bos is None else a.bos
    ids = greedy(m, bos, a.n, a.q8_activations, stop=not a.no_stop)
    if a.cmd == "greedy":
        print(",".join(map(str, ids)))
    else:
        if not a.tokenizer:
            ap.error("text needs --tokenizer")
        sys.stdout.write(decode(a.tokenizer, ids, bos))
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
