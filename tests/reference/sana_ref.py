#!/usr/bin/python3
"""sana_ref.py -- an independent PyTorch reference of the SANA linear
diffusion transformer, for parity checks of grove's engine.

Written from docs DESIGN.md section 4 and the structure of diffusers'
SanaTransformer2DModel (parameter names identical to diffusers'), not from
grove's own model code. It is meant to be read: plain nn.Linear / nn.Conv2d
modules and explicit functions, no fused or optimised paths except the
optional O(N*d^2) linear attention that bench_torch.py uses.

Run with Debian's interpreter (/usr/bin/python3), which has python3-torch:

  sana_ref.py selftest                 random small model: shapes, finiteness,
                                       linear attention vs an O(N*d^2) form,
                                       save/load round trip
  sana_ref.py check DIR [--tol T] [--double]
                                       parity of the engine's output and
                                       gradients in DIR (see check_dir)
  sana_ref.py roundtrip IN OUT [--scale S] [--config JSON]
                                       load IN strictly by name, write OUT

Exit status: 0 on success, 1 on a parity / name / shape failure, 2 on a usage
or input error.
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

# ---------------------------------------------------------------------------
# configuration

CONFIG_DEFAULTS = {
    "head_dim": 32,       # linear-attention head dim
    "mlp_ratio": 2.5,
    "qk_norm": True,      # RMSNorm on attn1 q/k (SANA 1.5)
    "cross_norm": True,   # RMSNorm on attn2 q/k (SANA 1.5)
    # options of diffusers' SanaTransformer2DModel configs
    "cross_head_dim": None,            # None: width / cross_heads
    "attention_bias": False,           # biases on attn1's q, k, v
    "norm_elementwise_affine": False,  # weight and bias on the norm before the FF (norm2)
    "norm_eps": 1e-6,                  # the two block norms
}
CONFIG_REQUIRED = ("depth", "width", "cross_heads", "patch_size", "in_channels", "caption_channels")
CONFIG_KEYS = set(CONFIG_REQUIRED) | set(CONFIG_DEFAULTS) | {"out_channels"}


def make_config(cfg):
    """Fill defaults into a config dict and validate it. Unknown keys are
    kept (the engine's config may carry more) but do not affect the model."""
    missing = [k for k in CONFIG_REQUIRED if k not in cfg]
    if missing:
        raise ValueError("config: missing key(s) %s" % ", ".join(missing))
    c = dict(CONFIG_DEFAULTS)
    c.update(cfg)
    c.setdefault("out_channels", c["in_channels"])
    if c.get("out_channels") is None:
        c["out_channels"] = c["in_channels"]
    for k in ("depth", "width", "head_dim", "cross_heads", "patch_size", "in_channels", "out_channels",
              "caption_channels"):
        if int(c[k]) != c[k] or c[k] < (0 if k == "depth" else 1):
            raise ValueError("config: %s must be a positive integer (got %r)" % (k, c[k]))
        c[k] = int(c[k])
    c["attention_bias"] = bool(c["attention_bias"])
    c["norm_elementwise_affine"] = bool(c["norm_elementwise_affine"])
    c["norm_eps"] = float(c["norm_eps"])
    c["qk_norm"] = bool(c["qk_norm"])
    c["cross_norm"] = bool(c["cross_norm"])
    c["mlp_ratio"] = float(c["mlp_ratio"])
    D = c["width"]
    if D % c["head_dim"]:
        raise ValueError("config: width %d is not a multiple of head_dim %d" % (D, c["head_dim"]))
    if c["cross_head_dim"] is None:
        if D % c["cross_heads"]:
            raise ValueError("config: width %d is not a multiple of cross_heads %d" % (D, c["cross_heads"]))
        c["cross_head_dim"] = D // c["cross_heads"]
    c["cross_head_dim"] = int(c["cross_head_dim"])
    return c


# ---------------------------------------------------------------------------
# explicit functions

def layer_norm_no_affine(x, eps=1e-6):
    """LayerNorm over the last dim, no weight or bias (biased variance)."""
    mean = x.mean(dim=-1, keepdim=True)
    var = (x - mean).pow(2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


class LayerNorm(nn.Module):
    """LayerNorm with an elementwise weight and bias (norm2 with
    norm_elementwise_affine)."""

    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return layer_norm_no_affine(x, self.eps) * self.weight + self.bias


def rms_norm(x, weight, eps=1e-5):
    """RMSNorm over the last dim with an elementwise weight (diffusers'
    RMSNorm: statistics in at least float32)."""
    dt = x.dtype
    xf = x.float() if dt in (torch.float16, torch.bfloat16) else x
    ms = xf.pow(2).mean(dim=-1, keepdim=True)
    y = xf * torch.rsqrt(ms + eps)
    return (y * weight.to(y.dtype)).to(dt)


def timestep_embedding(t, dim=256):
    """[cos, sin] of t * exp(-ln(10000) * i / (dim/2)), i = 0 .. dim/2-1
    (diffusers' Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0))."""
    half = dim // 2
    cd = _compute_dtype(t)                      # float32 (float64 in --double)
    i = torch.arange(half, dtype=cd, device=t.device)
    freqs = torch.exp(-math.log(10000.0) * i / half)
    args = t.to(cd)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def unpatchify(h, hp, wp, p, C):
    """Tokens (B, hp*wp, p*p*C), each token's vector ordered (p_row, p_col, C),
    to an image (B, C, hp*p, wp*p)."""
    B = h.shape[0]
    return h.reshape(B, hp, wp, p, p, C).permute(0, 5, 1, 3, 2, 4).reshape(B, C, hp * p, wp * p)


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


def _compute_dtype(x):
    """Linear attention runs in float32 (float64 stays float64)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def linear_attention_naive(q, k, v, eps=1e-15):
    """The N x N form, straight from the definition:
    o_i = sum_j v_j (phi(k_j).phi(q_i)) / (sum_j phi(k_j).phi(q_i) + eps),
    phi = ReLU. q, k, v: (B, heads, N, d). Computed in float32."""
    dt = q.dtype
    cd = _compute_dtype(q)
    q, k, v = F.relu(q.to(cd)), F.relu(k.to(cd)), v.to(cd)
    a = q @ k.transpose(-1, -2)                 # (B, h, N_q, N_k): phi(q_i).phi(k_j)
    num = a @ v                                 # (B, h, N, d)
    den = a.sum(dim=-1, keepdim=True)           # (B, h, N, 1)
    return (num / (den + eps)).to(dt)


def linear_attention_padded(q, k, v, eps=1e-15):
    """diffusers' SanaLinearAttnProcessor2_0 formulation, O(N*d^2): v is padded
    with a row of ones so one product gives numerator and denominator.
    q, k, v: (B, heads, N, d)."""
    dt = q.dtype
    cd = _compute_dtype(q)
    q = F.relu(q.to(cd)).transpose(-1, -2)      # (B, h, d, N)
    k = F.relu(k.to(cd))                        # (B, h, N, d)
    v = v.to(cd).transpose(-1, -2)              # (B, h, d, N)
    v = F.pad(v, (0, 0, 0, 1), value=1.0)       # (B, h, d+1, N)
    vk = v @ k                                  # (B, h, d+1, d)
    o = vk @ q                                  # (B, h, d+1, N)
    o = o[:, :, :-1] / (o[:, :, -1:] + eps)
    return o.transpose(-1, -2).to(dt)


# ---------------------------------------------------------------------------
# modules (names mirror diffusers' SanaTransformer2DModel)

class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5, init=1.0):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


class PatchEmbed(nn.Module):
    def __init__(self, in_channels, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch, bias=True)

    def forward(self, x):                       # (B, C, H, W) -> (B, N, D)
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    def __init__(self, dim, freq_dim=256):
        super().__init__()
        self.freq_dim = freq_dim
        self.linear_1 = nn.Linear(freq_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, t):
        return self.linear_2(F.silu(self.linear_1(timestep_embedding(t, self.freq_dim))))


class _Emb(nn.Module):                          # diffusers: PixArtAlphaCombinedTimestepSizeEmbeddings
    def __init__(self, dim):
        super().__init__()
        self.timestep_embedder = TimestepEmbedder(dim)


class TimeEmbed(nn.Module):                     # diffusers: AdaLayerNormSingle
    def __init__(self, dim):
        super().__init__()
        self.emb = _Emb(dim)
        self.linear = nn.Linear(dim, 6 * dim)

    def forward(self, t):
        temb = self.emb.timestep_embedder(t)    # (B, D), "embedded_timestep"
        t0 = self.linear(F.silu(temb))          # (B, 6D)
        return t0, temb


class CaptionProjection(nn.Module):             # diffusers: PixArtAlphaTextProjection(act_fn="gelu_tanh")
    def __init__(self, in_dim, dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, y):
        return self.linear_2(gelu_tanh(self.linear_1(y)))


class LinearAttention(nn.Module):
    """attn1: ReLU linear attention, heads of head_dim."""

    def __init__(self, dim, head_dim, qk_norm, mode="naive", bias=False):
        super().__init__()
        self.heads = dim // head_dim
        self.mode = mode
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(dim, dim, bias=bias)
        self.to_v = nn.Linear(dim, dim, bias=bias)
        if qk_norm:
            self.norm_q = RMSNorm(dim, eps=1e-5)
            self.norm_k = RMSNorm(dim, eps=1e-5)
        else:
            self.norm_q = self.norm_k = None
        self.to_out = nn.ModuleList([nn.Linear(dim, dim, bias=True)])

    def forward(self, x):
        B, N, D = x.shape
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        if self.norm_q is not None:
            q, k = self.norm_q(q), self.norm_k(k)
        split = lambda t: t.reshape(B, N, self.heads, D // self.heads).transpose(1, 2)  # noqa: E731
        attn = linear_attention_naive if self.mode == "naive" else linear_attention_padded
        o = attn(split(q), split(k), split(v))  # (B, h, N, d)
        o = o.transpose(1, 2).reshape(B, N, D)
        return self.to_out[0](o)


class CrossAttention(nn.Module):
    """attn2: softmax attention from image tokens to caption tokens."""

    def __init__(self, dim, heads, cross_norm, head_dim=None):
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim or dim // heads
        inner = heads * self.head_dim            # may differ from dim
        self.to_q = nn.Linear(dim, inner, bias=True)
        self.to_k = nn.Linear(dim, inner, bias=True)
        self.to_v = nn.Linear(dim, inner, bias=True)
        if cross_norm:
            self.norm_q = RMSNorm(inner, eps=1e-5)
            self.norm_k = RMSNorm(inner, eps=1e-5)
        else:
            self.norm_q = self.norm_k = None
        self.to_out = nn.ModuleList([nn.Linear(inner, dim, bias=True)])

    def forward(self, x, y, mask_bias):
        """x (B, N, D), y (B, L, D), mask_bias (B, L) additive or None."""
        B, N, _ = x.shape
        L = y.shape[1]
        h, dh = self.heads, self.head_dim
        D = h * dh
        q, k, v = self.to_q(x), self.to_k(y), self.to_v(y)
        if self.norm_q is not None:
            q, k = self.norm_q(q), self.norm_k(k)
        q = q.reshape(B, N, h, dh).transpose(1, 2)   # (B, h, N, dh)
        k = k.reshape(B, L, h, dh).transpose(1, 2)   # (B, h, L, dh)
        v = v.reshape(B, L, h, dh).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(dh)  # (B, h, N, L)
        if mask_bias is not None:
            s = s + mask_bias[:, None, None, :].to(s.dtype)
        p = torch.softmax(s, dim=-1)
        o = (p @ v).transpose(1, 2).reshape(B, N, D)
        return self.to_out[0](o)


class MixFFN(nn.Module):                        # diffusers: GLUMBConv
    def __init__(self, dim, mlp_ratio):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.hidden = hidden
        self.conv_inverted = nn.Conv2d(dim, 2 * hidden, 1, 1, 0, bias=True)
        self.conv_depth = nn.Conv2d(2 * hidden, 2 * hidden, 3, 1, 1, groups=2 * hidden, bias=True)
        self.conv_point = nn.Conv2d(hidden, dim, 1, 1, 0, bias=False)

    def forward(self, x, height, width):        # x (B, N, D) tokens, row-major grid
        B, N, D = x.shape
        g = x.reshape(B, height, width, D).permute(0, 3, 1, 2)  # NCHW
        g = F.silu(self.conv_inverted(g))
        g = self.conv_depth(g)
        a, gate = g.chunk(2, dim=1)
        g = self.conv_point(a * F.silu(gate))
        return g.flatten(2).transpose(1, 2)     # (B, N, D)


class SanaBlock(nn.Module):
    def __init__(self, c, attn_mode="naive"):
        super().__init__()
        D = c["width"]
        self.scale_shift_table = nn.Parameter(torch.randn(6, D) / D ** 0.5)
        self.eps = c["norm_eps"]
        self.attn1 = LinearAttention(D, c["head_dim"], c["qk_norm"], attn_mode, bias=c["attention_bias"])
        self.attn2 = CrossAttention(D, c["cross_heads"], c["cross_norm"], c["cross_head_dim"])
        self.norm2 = LayerNorm(D, self.eps) if c["norm_elementwise_affine"] else None
        self.ff = MixFFN(D, c["mlp_ratio"])

    def forward(self, x, y, mask_bias, t0, height, width):
        B, N, D = x.shape
        mod = self.scale_shift_table[None] + t0.reshape(B, 6, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=1)  # each (B, 1, D)
        x = x + gate1 * self.attn1(layer_norm_no_affine(x, self.eps) * (1 + scale1) + shift1)
        x = x + self.attn2(x, y, mask_bias)
        n2 = self.norm2(x) if self.norm2 is not None else layer_norm_no_affine(x, self.eps)
        x = x + gate2 * self.ff(n2 * (1 + scale2) + shift2, height, width)
        return x


class SanaRef(nn.Module):
    """SANA linear DiT. attn_mode: "naive" (N x N linear attention, the
    default and the parity reference) or "padded" (diffusers' O(N d^2) form)."""

    def __init__(self, config, attn_mode="naive"):
        super().__init__()
        c = make_config(config)
        self.config = c
        D, p = c["width"], c["patch_size"]
        self.patch_embed = PatchEmbed(c["in_channels"], D, p)
        self.time_embed = TimeEmbed(D)
        self.caption_projection = CaptionProjection(c["caption_channels"], D)
        self.caption_norm = RMSNorm(D, eps=1e-5, init=0.01)  # DESIGN.md: initialised to 0.01
        self.transformer_blocks = nn.ModuleList([SanaBlock(c, attn_mode) for _ in range(c["depth"])])
        self.scale_shift_table = nn.Parameter(torch.randn(2, D) / D ** 0.5)
        self.proj_out = nn.Linear(D, p * p * c["out_channels"])

    def set_attn_mode(self, mode):
        assert mode in ("naive", "padded"), mode
        for b in self.transformer_blocks:
            b.attn1.mode = mode

    def check_inputs(self, x, timestep, text, text_mask):
        c = self.config
        if x.dim() != 4 or x.shape[1] != c["in_channels"]:
            raise ValueError("x: expected (B, %d, H, W), got %s" % (c["in_channels"], list(x.shape)))
        B, _, H, W = x.shape
        p = c["patch_size"]
        if H % p or W % p:
            raise ValueError("x: H, W = %d, %d not multiples of patch %d" % (H, W, p))
        if timestep.shape != (B,):
            raise ValueError("timestep: expected (%d,), got %s" % (B, list(timestep.shape)))
        if text.dim() != 3 or text.shape[0] != B or text.shape[2] != c["caption_channels"]:
            raise ValueError("text: expected (%d, L, %d), got %s" % (B, c["caption_channels"], list(text.shape)))
        if text_mask is not None and text_mask.shape != text.shape[:2]:
            raise ValueError("text_mask: expected %s, got %s" % (list(text.shape[:2]), list(text_mask.shape)))

    def forward(self, x, timestep, text, text_mask=None, return_hidden=False):
        self.check_inputs(x, timestep, text, text_mask)
        c = self.config
        B, _, H, W = x.shape
        p = c["patch_size"]
        hp, wp = H // p, W // p

        t0, temb = self.time_embed(timestep)                     # (B, 6D), (B, D)
        y = self.caption_norm(self.caption_projection(text))     # (B, L, D)
        mask_bias = None
        if text_mask is not None:
            mask_bias = (1.0 - text_mask.to(y.dtype)) * -10000.0  # (B, L)

        h = self.patch_embed(x)                                  # (B, N, D)
        hidden = []
        for block in self.transformer_blocks:
            hidden.append(h)
            h = block(h, y, mask_bias, t0, hp, wp)
        hidden.append(h)

        shift, scale = (self.scale_shift_table[None] + temb[:, None]).chunk(2, dim=1)
        h = layer_norm_no_affine(h) * (1 + scale) + shift
        h = self.proj_out(h)                                     # (B, N, p*p*C)
        out = unpatchify(h, hp, wp, p, c["out_channels"])        # (B, C, H, W)
        return (out, hidden) if return_hidden else out


# ---------------------------------------------------------------------------
# state dict I/O

def load_state_strict(model, tensors, dtype=torch.float32):
    """Copy tensors into model by name. Returns a list of problems (missing,
    unexpected, shape mismatch); loads nothing if there are any."""
    own = dict(model.named_parameters())
    problems = []
    for name, p in own.items():
        if name not in tensors:
            problems.append("missing in file: %s %s" % (name, list(p.shape)))
        elif tuple(tensors[name].shape) != tuple(p.shape):
            problems.append("shape mismatch: %s file %s, model %s" % (name, list(tensors[name].shape), list(p.shape)))
        elif not tensors[name].is_floating_point():
            problems.append("dtype: %s is %s, expected a float type" % (name, tensors[name].dtype))
    for name in tensors:
        if name not in own:
            problems.append("unexpected in file: %s %s" % (name, list(tensors[name].shape)))
    if problems:
        return problems
    with torch.no_grad():
        for name, p in own.items():
            p.copy_(tensors[name].to(dtype))
    return []


def state_tensors(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def infer_config(tensors):
    """Guess a config from parameter shapes alone (heads do not show in
    shapes: head_dim and cross_heads get defaults that divide the width)."""
    w = tensors["patch_embed.proj.weight"]
    D, cin, p = w.shape[0], w.shape[1], w.shape[2]
    depth = 0
    while ("transformer_blocks.%d.scale_shift_table" % depth) in tensors:
        depth += 1
    cfg = {"depth": depth, "width": D, "patch_size": p, "in_channels": cin,
           "caption_channels": tensors["caption_projection.linear_1.weight"].shape[1],
           "out_channels": tensors["proj_out.weight"].shape[0] // (p * p)}
    cfg["head_dim"] = 32 if D % 32 == 0 else D
    cfg["cross_heads"] = next(h for h in (20, 16, 8, 4, 2, 1) if D % h == 0)
    if depth:
        cfg["mlp_ratio"] = tensors["transformer_blocks.0.ff.conv_point.weight"].shape[1] / D
        cfg["qk_norm"] = "transformer_blocks.0.attn1.norm_q.weight" in tensors
        cfg["cross_norm"] = "transformer_blocks.0.attn2.norm_q.weight" in tensors
    return cfg


# ---------------------------------------------------------------------------
# check

def rel_err(a, b):
    """max |a - b| / max(max |b|, 1e-6); b is the reference. NaN/Inf -> inf."""
    a, b = a.double(), b.double()
    if not torch.isfinite(a).all() or not torch.isfinite(b).all():
        return float("inf"), float("inf"), b.abs().max().item() if b.numel() else 0.0
    if a.numel() == 0:
        return 0.0, 0.0, 0.0
    diff = (a - b).abs().max().item()
    ref = b.abs().max().item()
    return diff / max(ref, 1e-6), diff, ref


def _load(path):
    try:
        return safetensors_io.load(path)[0]
    except (OSError, safetensors_io.SafetensorsError) as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(2)


def check_dir(d, tol=1e-4, double=False, atol=0.0):
    """Parity check of an engine run stored in DIR:
      config.json, model.safetensors, inputs.safetensors (x, timestep, text,
      text_mask), outputs.safetensors (out, weight, grad.<param> for every
      parameter; optionally grad.x, grad.text). A tensor passes when its
      relative error (max|a-b| / max(max|b|, 1e-6), b the reference) is at
      most tol, or its max|a-b| is at most atol (default 0: off).
      Returns the exit status."""
    dtype = torch.float64 if double else torch.float32
    try:
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        model = SanaRef(cfg)
    except (OSError, ValueError) as e:
        print("error: config: %s" % e, file=sys.stderr)
        return 2
    model = model.to(dtype)
    weights = _load(os.path.join(d, "model.safetensors"))
    inputs = _load(os.path.join(d, "inputs.safetensors"))
    outputs = _load(os.path.join(d, "outputs.safetensors"))

    problems = load_state_strict(model, weights, dtype)
    for name in ("x", "timestep", "text", "text_mask"):
        if name not in inputs:
            problems.append("missing in inputs.safetensors: %s" % name)
    for name in ("out", "weight"):
        if name not in outputs:
            problems.append("missing in outputs.safetensors: %s" % name)
    if problems:
        for p in problems:
            print("FAIL %s" % p)
        print("parity: 0 tensors, %d name/shape problem(s)" % len(problems))
        return 1

    c = model.config
    print("config: %s" % json.dumps({k: c[k] for k in sorted(CONFIG_KEYS)}, sort_keys=True))
    print("reference: %s, %d parameters, linear attention %s"
          % (str(dtype).replace("torch.", ""), sum(p.numel() for p in model.parameters()), "naive N x N"))

    x = inputs["x"].to(dtype).requires_grad_(True)
    text = inputs["text"].to(dtype).requires_grad_(True)
    timestep = inputs["timestep"].to(dtype)
    mask = inputs["text_mask"].to(dtype)
    try:
        out = model(x, timestep, text, mask)
    except ValueError as e:
        print("error: inputs: %s" % e, file=sys.stderr)
        return 2
    weight = outputs["weight"].to(dtype)
    if weight.shape != out.shape:
        print("FAIL weight shape %s differs from output shape %s" % (list(weight.shape), list(out.shape)))
        return 1
    (out * weight).sum().backward()

    # reference tensors, in order: out, parameter grads, optional input grads
    ref = {"out": out.detach()}
    for n, p in model.named_parameters():
        ref["grad." + n] = p.grad if p.grad is not None else torch.zeros_like(p)
    optional = {"grad.x": x.grad, "grad.text": text.grad}

    failed = False
    worst, count = 0.0, 0
    for name in list(ref) + [n for n in optional if n in outputs]:
        r = ref[name] if name in ref else optional[name]
        if name not in outputs:
            print("FAIL %-56s missing in outputs.safetensors" % name)
            failed = True
            continue
        a = outputs[name]
        if tuple(a.shape) != tuple(r.shape):
            print("FAIL %-56s shape engine %s, reference %s" % (name, list(a.shape), list(r.shape)))
            failed = True
            continue
        e, diff, mx = rel_err(a, r)
        ok = e <= tol or diff <= atol   # written so that NaN fails
        count += 1
        worst = max(worst, e)
        failed = failed or not ok
        print("%s %-56s rel %.3e  (max|diff| %.3e, max|ref| %.3e)" % ("ok  " if ok else "FAIL", name, e, diff, mx))
    known = set(ref) | set(optional) | {"weight"}
    for name in outputs:
        if name not in known:
            print("FAIL %-56s in outputs.safetensors, unknown to the reference" % name)
            failed = True
    print("parity: %d tensors, max relative error %.3e (tol %.1e%s)%s"
          % (count, worst, tol, ", atol %.1e" % atol if atol else "", "" if not failed else ", FAILED"))
    return 1 if failed else 0


# ---------------------------------------------------------------------------
# roundtrip

def roundtrip(src, dst, scale=None, config_path=None):
    try:
        tensors, meta = safetensors_io.load(src)
    except (OSError, safetensors_io.SafetensorsError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    sibling = os.path.join(os.path.dirname(os.path.abspath(src)), "config.json")
    try:
        if config_path:
            with open(config_path) as f:
                cfg, how = json.load(f), config_path
        elif "config" in meta:
            cfg, how = json.loads(meta["config"]), "__metadata__ config of %s" % src
        elif os.path.exists(sibling):
            with open(sibling) as f:
                cfg, how = json.load(f), sibling
        else:
            if "patch_embed.proj.weight" not in tensors:
                print("error: no config given and %s has no patch_embed.proj.weight to infer one from" % src,
                      file=sys.stderr)
                return 1
            cfg, how = infer_config(tensors), "inferred from shapes"
        model = SanaRef(cfg)
    except (OSError, ValueError, KeyError) as e:
        print("error: config: %s" % e, file=sys.stderr)
        return 2
    print("config (%s%s): %s" % (how, "; head counts do not show in shapes" if how == "inferred from shapes" else "",
                                 json.dumps(cfg, sort_keys=True)))
    problems = load_state_strict(model, tensors)
    if problems:
        for p in problems:
            print("FAIL %s" % p)
        print("roundtrip: %d name/shape problem(s) loading %s" % (len(problems), src))
        return 1
    if scale is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(scale)
    # write in module order, each tensor in the dtype it was read in
    out = {n: p.detach().to(tensors[n].dtype) for n, p in model.named_parameters()}
    safetensors_io.save(dst, out, meta)
    print("roundtrip: %d tensors from %s to %s%s" % (len(out), src, dst,
                                                      "" if scale is None else ", scaled by %g" % scale))
    return 0


# ---------------------------------------------------------------------------
# selftest

SELFTEST_CONFIG = {"depth": 2, "width": 64, "head_dim": 32, "cross_heads": 2, "mlp_ratio": 2.5,
                   "patch_size": 2, "in_channels": 4, "out_channels": 4, "caption_channels": 16,
                   "qk_norm": True, "cross_norm": True}


def linear_attention_kv(q, k, v, eps=1e-15):
    """Independent O(N*d^2) form, per batch and head, with einsum:
    S = sum_j phi(k_j) v_j^T (d x d), z = sum_j phi(k_j);
    o_i = phi(q_i)^T S / (phi(q_i).z + eps)."""
    qf, kf, vf = F.relu(q.double()), F.relu(k.double()), v.double()
    S = torch.einsum("bhnd,bhne->bhde", kf, vf)
    z = kf.sum(dim=2)                                          # (B, h, d)
    num = torch.einsum("bhnd,bhde->bhne", qf, S)
    den = torch.einsum("bhnd,bhd->bhn", qf, z)[..., None]
    return num / (den + eps)


def selftest():
    import contextlib
    import io
    import tempfile
    torch.manual_seed(0)
    ok = True

    def report(name, good, detail):
        nonlocal ok
        ok = ok and good
        print("%s %s: %s" % ("ok  " if good else "FAIL", name, detail))

    model = SanaRef(SELFTEST_CONFIG)
    n_params = sum(p.numel() for p in model.parameters())
    B, H, W, L = 2, 8, 12, 7
    x = torch.randn(B, 4, H, W)
    t = torch.tensor([999.0, 250.5])
    text = torch.randn(B, L, 16)
    mask = torch.ones(B, L)
    mask[1, 4:] = 0
    out = model(x, t, text, mask)
    report("forward shape", out.shape == (B, 4, H, W), "%s (%d parameters)" % (list(out.shape), n_params))
    report("forward finite", bool(torch.isfinite(out).all()), "max|out| %.4g" % out.abs().max().item())
    (out * torch.randn_like(out)).sum().backward()
    grads = [(n, p.grad) for n, p in model.named_parameters()]
    none = [n for n, g in grads if g is None]
    nonfinite = [n for n, g in grads if g is not None and not torch.isfinite(g).all()]
    zero = [n for n, g in grads if g is not None and not g.abs().max() > 0]
    report("backward", not none and not nonfinite and not zero,
           "%d parameter grads, none missing/non-finite/zero" % len(grads) if not (none or nonfinite or zero)
           else "missing %s, non-finite %s, zero %s" % (none, nonfinite, zero))

    names = [n for n, _ in model.named_parameters()]
    expect = ["patch_embed.proj.weight", "time_embed.emb.timestep_embedder.linear_1.weight",
              "time_embed.linear.bias", "caption_projection.linear_2.weight", "caption_norm.weight",
              "transformer_blocks.1.scale_shift_table", "transformer_blocks.0.attn1.to_q.weight",
              "transformer_blocks.0.attn1.norm_k.weight", "transformer_blocks.0.attn1.to_out.0.bias",
              "transformer_blocks.0.attn2.to_v.bias", "transformer_blocks.0.attn2.norm_q.weight",
              "transformer_blocks.1.ff.conv_depth.weight", "transformer_blocks.1.ff.conv_point.weight",
              "scale_shift_table", "proj_out.weight"]
    absent = [n for n in expect if n not in names]
    report("parameter names", not absent and "transformer_blocks.0.attn1.to_q.bias" not in names
           and "transformer_blocks.0.ff.conv_point.bias" not in names,
           "%d names, diffusers layout" % len(names) if not absent else "absent: %s" % absent)

    # linear attention: the model's N x N form vs an independent O(N d^2) form
    q, k, v = torch.randn(3, 2, 50, 32), torch.randn(3, 2, 50, 32), torch.randn(3, 2, 50, 32)
    ref = linear_attention_kv(q, k, v)
    e_naive = rel_err(linear_attention_naive(q, k, v), ref)[0]
    e_pad = rel_err(linear_attention_padded(q, k, v), ref)[0]
    report("linear attention N x N vs O(N d^2)", e_naive < 1e-5, "rel %.2e" % e_naive)
    report("linear attention padded (diffusers) vs O(N d^2)", e_pad < 1e-5, "rel %.2e" % e_pad)
    # on the model's own activations: hook block 0's attn1 input
    blk = model.transformer_blocks[0].attn1
    seen = {}
    hk = blk.register_forward_hook(lambda m, i, o: seen.update(inp=i[0].detach(), out=o.detach()))
    with torch.no_grad():
        model(x, t, text, mask)
    hk.remove()
    xi = seen["inp"]
    Bq, N, D = xi.shape
    sp = lambda z: z.reshape(Bq, N, blk.heads, D // blk.heads).transpose(1, 2)  # noqa: E731
    with torch.no_grad():
        qq, kk = blk.norm_q(blk.to_q(xi)), blk.norm_k(blk.to_k(xi))
        o = linear_attention_kv(sp(qq), sp(kk), sp(blk.to_v(xi))).transpose(1, 2).reshape(Bq, N, D)
        o = F.linear(o, blk.to_out[0].weight.double(), blk.to_out[0].bias.double())
    e_blk = rel_err(seen["out"], o)[0]
    report("attn1 in the model vs O(N d^2)", e_blk < 1e-5, "rel %.2e" % e_blk)
    model.set_attn_mode("padded")
    with torch.no_grad():
        out_pad = model(x, t, text, mask)
    model.set_attn_mode("naive")
    e_model = rel_err(out_pad, out.detach())[0]
    report("whole model padded vs naive attention", e_model < 1e-5, "rel %.2e" % e_model)

    # masking: padding tokens' text must not matter
    text2 = text.clone()
    text2[1, 4:] = 100 * torch.randn(L - 4, 16)
    with torch.no_grad():
        e_mask = rel_err(model(x, t, text2, mask), out.detach())[0]
    report("masked caption tokens ignored", e_mask < 1e-5, "rel %.2e" % e_mask)
    with torch.no_grad():
        all_pad = model(x, t, text, torch.zeros(B, L))
    report("all-padding caption finite", bool(torch.isfinite(all_pad).all()), "ok")

    # unpatchify order: with proj_out selecting one channel, out follows (p, p, C)
    with torch.no_grad():
        e_tok = torch.arange(1, 2 * 2 * 4 + 1, dtype=torch.float32)  # token vector 1..16
        img = unpatchify(e_tok.expand(1, 3 * 5, 16), 3, 5, 2, 4)
        # pixel (c, 2*i+a, 2*j+b) must equal 1 + (a*2 + b)*4 + c
        want = torch.tensor([[[1 + (a * 2 + b) * 4 + c for b in range(2)] for a in range(2)] for c in range(4)],
                            dtype=torch.float32)
        good = torch.equal(img[0, :, 2:4, 4:6], want)
    report("unpatchify order (p, p, C)", good, "ok" if good else "wrong")

    # save with safetensors_io, load into a fresh model: identical outputs
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        safetensors_io.save(path, state_tensors(model), {"config": json.dumps(SELFTEST_CONFIG)})
        tensors, meta = safetensors_io.load(path)
        m2 = SanaRef(json.loads(meta["config"]))
        problems = load_state_strict(m2, tensors)
        with torch.no_grad():
            same = not problems and torch.equal(m2(x, t, text, mask), out.detach())
        report("safetensors save/load identical output", same, "ok" if same else "problems %s" % problems)
        # strict loading reports every mismatch
        bad = dict(tensors)
        del bad["proj_out.bias"]
        bad["extra.weight"] = torch.zeros(1)
        bad["caption_norm.weight"] = torch.zeros(3)
        probs = load_state_strict(SanaRef(SELFTEST_CONFIG), bad)
        report("strict load reports mismatches", len(probs) == 3, "%d problems" % len(probs))
        # roundtrip with --scale
        p2 = os.path.join(d, "m2.safetensors")
        with contextlib.redirect_stdout(io.StringIO()):
            rc = roundtrip(path, p2, scale=2.0)
        t2, _ = safetensors_io.load(p2)
        good = rc == 0 and all(torch.equal(t2[n], 2 * tensors[n]) for n in tensors) and list(t2) == names
        report("roundtrip --scale 2", good, "ok" if good else "rc %d" % rc)
        infer = make_config(infer_config(tensors))
        good = all(infer[k] == make_config(SELFTEST_CONFIG)[k] for k in
                   ("depth", "width", "patch_size", "in_channels", "out_channels", "caption_channels",
                    "mlp_ratio", "qk_norm", "cross_norm"))
        report("config inferred from shapes", good, "ok" if good else str(infer))

        # check mode on a synthetic engine run produced by this model itself
        run = os.path.join(d, "run")
        os.mkdir(run)
        with open(os.path.join(run, "config.json"), "w") as f:
            json.dump(SELFTEST_CONFIG, f)
        safetensors_io.save(os.path.join(run, "model.safetensors"), state_tensors(model))
        safetensors_io.save(os.path.join(run, "inputs.safetensors"),
                            {"x": x, "timestep": t, "text": text, "text_mask": mask})
        model.zero_grad()
        wgt = torch.randn_like(out)
        o = model(x, t, text, mask)
        (o * wgt).sum().backward()
        res = {"out": o.detach(), "weight": wgt}
        res.update({"grad." + n: p.grad.clone() for n, p in model.named_parameters()})
        safetensors_io.save(os.path.join(run, "outputs.safetensors"), res)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc_good = check_dir(run)
            rc_double = check_dir(run, double=True, atol=1e-6)
            res["grad.proj_out.bias"] = res["grad.proj_out.bias"] * 1.01
            del res["grad.caption_norm.weight"]
            safetensors_io.save(os.path.join(run, "outputs.safetensors"), res)
            rc_bad = check_dir(run)
        lines = buf.getvalue().splitlines()
        fails = [ln for ln in lines if ln.startswith("FAIL")]
        report("check on matching run", rc_good == 0, "exit %d" % rc_good)
        report("check --double --atol 1e-6 on matching run", rc_double == 0, "exit %d" % rc_double)
        report("check on a perturbed run", rc_bad == 1 and len(fails) == 2, "exit %d, %d FAIL lines" % (rc_bad, len(fails)))

    print("selftest: %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


# ---------------------------------------------------------------------------

def main(argv):
    ap = argparse.ArgumentParser(prog="sana_ref.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    sub.add_parser("selftest", help="random small model self-test")
    pc = sub.add_parser("check", help="parity check of an engine run directory")
    pc.add_argument("dir")
    pc.add_argument("--tol", type=float, default=1e-4, help="max relative error per tensor (default 1e-4)")
    pc.add_argument("--atol", type=float, default=0.0,
                    help="also pass a tensor whose max|diff| is at most this (default 0: off)")
    pc.add_argument("--double", action="store_true", help="compute the reference in float64")
    pr = sub.add_parser("roundtrip", help="load IN strictly, write OUT")
    pr.add_argument("src", metavar="IN")
    pr.add_argument("dst", metavar="OUT")
    pr.add_argument("--scale", type=float, default=None, help="multiply every parameter by S before saving")
    pr.add_argument("--config", default=None, help="config JSON (default: IN's metadata, ./config.json "
                                                   "beside IN, else inferred from shapes)")
    args = ap.parse_args(argv)
    if args.cmd == "selftest":
        return selftest()
    if args.cmd == "check":
        return check_dir(args.dir, args.tol, args.double, args.atol)
    if args.cmd == "roundtrip":
        return roundtrip(args.src, args.dst, args.scale, args.config)
    ap.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
