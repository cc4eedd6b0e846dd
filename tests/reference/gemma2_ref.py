#!/usr/bin/python3
"""gemma2_ref.py -- an independent PyTorch reference of Gemma-2's encoder
(transformers' Gemma2Model: the last hidden state), for parity checks of
grove's text encoder.

Written from the published architecture (the facts listed in
../shared/fixtures/gemma2/README.md), not from grove's code nor from
transformers' files. Plain tensors and explicit functions, meant to be read.

Run with Debian's interpreter (/usr/bin/python3), which has python3-torch:

  gemma2_ref.py fixture DIR          the reference against the float64
                                     outputs of transformers' own code stored
                                     in DIR (../shared/fixtures/gemma2/a):
                                     proves the reference itself
  gemma2_ref.py make DIR --config JSON [--dtype f32|bf16|f16] [--shards K]
                     [--seed S] [--batch B] [--length L]
                                     writes a random model as a text_encoder
                                     folder (config.json and model.safetensors,
                                     or K shards with model.safetensors.index
                                     .json), inputs.safetensors (input_ids,
                                     attention_mask: one right-padded row,
                                     one left-padded row, full rows) and
                                     outputs.safetensors (last_hidden_state
                                     with and without soft-capping, float64,
                                     from the weights as stored)

Exit status: 0 on success, 1 on a parity failure, 2 on a usage or input error.
"""
import argparse
import json
import math
import os
import sys

import torch

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

# Keys the reference computes with; the others of a Gemma-2 config.json
# (token ids, generation and caching settings) do not change the encoder.
REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "head_dim", "vocab_size", "rms_norm_eps", "rope_theta", "query_pre_attn_scalar", "sliding_window",
            "attn_logit_softcapping")


def rms_norm(x, w, eps):
    """Gemma's RMSNorm: x / rms(x) * (1 + w), statistics in (at least) float32."""
    xf = x if x.dtype == torch.float64 else x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)
    return y * (1.0 + w.to(y.dtype))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def rotary(x, positions, theta):
    """Rotates channel pairs (j, j + D/2) of x (B, heads, L, D) by the angle
    position / theta^(2j/D) ("rotate half")."""
    D = x.shape[-1]
    half = D // 2
    j = torch.arange(half, dtype=torch.float64)
    inv = 1.0 / (theta ** (2.0 * j / D))
    ang = positions.to(torch.float64)[:, None] * inv[None, :]
    cos, sin = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def attention(q, k, v, mask, scale, window, softcap):
    """q (B, H, L, D), k, v (B, KV, L, D); query head h reads key/value head
    h // (H / KV). Query i sees key j when j <= i, mask[b, j] != 0 and (no
    window, or j > i - window). A query that sees no key gives zeros."""
    B, H, L, D = q.shape
    group = H // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    i = torch.arange(L)[:, None]
    j = torch.arange(L)[None, :]
    visible = j <= i
    if window:
        visible = visible & (j > i - window)
    visible = visible[None, None] & (mask[:, None, None, :] != 0)
    s = s.masked_fill(~visible, float("-inf"))
    p = torch.softmax(s, dim=-1)
    p = torch.nan_to_num(p, nan=0.0)  # rows that see nothing
    return torch.matmul(p, v)


class Gemma2Ref:
    """The encoder from a config dict and a {name: tensor} of weights
    (transformers' Gemma2Model names). Computes in `dtype` (float32 or
    float64) from the weights converted exactly."""

    def __init__(self, config, weights, dtype=torch.float64):
        missing = [k for k in REQUIRED if k not in config]
        if missing:
            raise ValueError("config: missing key(s) %s" % ", ".join(missing))
        self.c = config
        self.dtype = dtype
        self.w = {k: v.to(dtype) for k, v in weights.items()}

    def forward(self, ids, mask, softcap=False):
        c, w, dt = self.c, self.w, self.dtype
        H, KV, D = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        eps = c["rms_norm_eps"]
        B, L = ids.shape
        h = w["embed_tokens.weight"][ids] * torch.tensor(math.sqrt(c["hidden_size"]), dtype=dt)
        pos = torch.arange(L)
        scale = c["query_pre_attn_scalar"] ** -0.5
        cap = c["attn_logit_softcapping"] if softcap else None
        for i in range(c["num_hidden_layers"]):
            p = "layers.%d." % i
            x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
            q = (x @ w[p + "self_attn.q_proj.weight"].t()).view(B, L, H, D).transpose(1, 2)
            k = (x @ w[p + "self_attn.k_proj.weight"].t()).view(B, L, KV, D).transpose(1, 2)
            v = (x @ w[p + "self_attn.v_proj.weight"].t()).view(B, L, KV, D).transpose(1, 2)
            q, k = rotary(q, pos, c["rope_theta"]), rotary(k, pos, c["rope_theta"])
            window = c["sliding_window"] if i % 2 == 0 else None
            a = attention(q, k, v, mask, scale, window, cap).transpose(1, 2).reshape(B, L, H * D)
            a = a @ w[p + "self_attn.o_proj.weight"].t()
            h = h + rms_norm(a, w[p + "post_attention_layernorm.weight"], eps)
            x = rms_norm(h, w[p + "pre_feedforward_layernorm.weight"], eps)
            g = gelu_tanh(x @ w[p + "mlp.gate_proj.weight"].t()) * (x @ w[p + "mlp.up_proj.weight"].t())
            f = g @ w[p + "mlp.down_proj.weight"].t()
            h = h + rms_norm(f, w[p + "post_feedforward_layernorm.weight"], eps)
        return rms_norm(h, w["norm.weight"], eps)


def weight_shapes(c):
    hid, inter = c["hidden_size"], c["intermediate_size"]
    H, KV, D = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    shapes = {"embed_tokens.weight": (c["vocab_size"], hid)}
    for i in range(c["num_hidden_layers"]):
        p = "layers.%d." % i
        shapes[p + "self_attn.q_proj.weight"] = (H * D, hid)
        shapes[p + "self_attn.k_proj.weight"] = (KV * D, hid)
        shapes[p + "self_attn.v_proj.weight"] = (KV * D, hid)
        shapes[p + "self_attn.o_proj.weight"] = (hid, H * D)
        shapes[p + "mlp.gate_proj.weight"] = (inter, hid)
        shapes[p + "mlp.up_proj.weight"] = (inter, hid)
        shapes[p + "mlp.down_proj.weight"] = (hid, inter)
        for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                  "post_feedforward_layernorm"):
            shapes[p + n + ".weight"] = (hid,)
    shapes["norm.weight"] = (hid,)
    return shapes


def rel_err(a, b, mask):
    """max |a - b| / max |b| over the real positions (mask != 0)."""
    keep = mask.bool()
    d = (a.double() - b.double()).abs()[keep]
    return (d.max() / b.double().abs()[keep].max()).item()


def cmd_fixture(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    weights, _ = safetensors_io.load(os.path.join(d, "model.safetensors"))
    ref = Gemma2Ref(cfg, weights)
    worst = 0.0
    for case in ("sana", "negative", "short"):
        toks, _ = safetensors_io.load(os.path.join(d, "tokens_%s.safetensors" % case))
        for softcap, suffix in ((True, ""), (False, "_nosoftcap")):
            out, _ = safetensors_io.load(os.path.join(d, "out_%s%s.safetensors" % (case, suffix)))
            got = ref.forward(toks["input_ids"], toks["attention_mask"], softcap)
            e = rel_err(got, out["last_hidden_state"], toks["attention_mask"])
            worst = max(worst, e)
            print("%-20s %.3e" % (case + suffix, e))
    print("fixture: max relative error %.3e (tol 1e-10)" % worst)
    return 0 if worst <= 1e-10 else 1


def cmd_make(d, cfg, dtype, shards, seed, batch, length):
    torch.manual_seed(seed)
    store = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[dtype]
    os.makedirs(d, exist_ok=True)
    weights = {}
    for name, shape in weight_shapes(cfg).items():
        if name.endswith("norm.weight") or "layernorm" in name:
            t = torch.randn(shape) * 0.3      # norms scale by (1 + w)
        elif name == "embed_tokens.weight":
            t = torch.randn(shape) * 0.5
        else:
            t = torch.randn(shape) / math.sqrt(shape[1])
        weights[name] = t.to(store)
    full = dict(cfg)
    full["torch_dtype"] = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[dtype]
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(full, f, indent=2, sort_keys=True)
    names = list(weights)
    if shards <= 1:
        safetensors_io.save(os.path.join(d, "model.safetensors"), weights, {"format": "pt"})
    else:
        per = -(-len(names) // shards)
        weight_map, total = {}, 0
        for s in range(shards):
            part = {n: weights[n] for n in names[s * per:(s + 1) * per]}
            fname = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
            safetensors_io.save(os.path.join(d, fname), part, {"format": "pt"})
            for n, t in part.items():
                weight_map[n] = fname
                total += t.numel() * t.element_size()
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)

    # Row 0 right-padded (the padded queries must not disturb the real ones),
    # row 1 left-padded (real queries must skip padded keys), the rest full.
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg["vocab_size"], (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.int64)
    mask[0, length * 2 // 3:] = 0
    if batch > 1:
        mask[1, :length // 4] = 0
    ids = ids * mask  # padding is token 0, as Gemma's <pad>
    safetensors_io.save(os.path.join(d, "inputs.safetensors"), {"input_ids": ids, "attention_mask": mask})
    ref = Gemma2Ref(cfg, weights)
    outs = {"last_hidden_state": ref.forward(ids, mask, softcap=True),
            "last_hidden_state_nosoftcap": ref.forward(ids, mask, softcap=False)}
    safetensors_io.save(os.path.join(d, "outputs.safetensors"), outs)
    print("made %s: %d tensors in %s, %d shard(s), batch %d, length %d" % (d, len(weights), dtype, max(shards, 1),
                                                                         batch, length))
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    f = sub.add_parser("fixture")
    f.add_argument("dir")
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--config", required=True, help="a JSON object (the config.json of the model)")
    m.add_argument("--dtype", default="f32", choices=("f32", "bf16", "f16"))
    m.add_argument("--shards", type=int, default=1)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--batch", type=int, default=3)
    m.add_argument("--length", type=int, default=19)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "fixture":
            return cmd_fixture(a.dir)
        if a.cmd == "make":
            cfg = json.loads(a.config)
            missing = [k for k in REQUIRED if k not in cfg]
            if missing:
                raise ValueError("config: missing key(s) %s" % ", ".join(missing))
            return cmd_make(a.dir, cfg, a.dtype, a.shards, a.seed, a.batch, a.length)
    except (OSError, ValueError, KeyError, safetensors_io.SafetensorsError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
