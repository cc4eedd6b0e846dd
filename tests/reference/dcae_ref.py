#!/usr/bin/python3
"""dcae_ref.py -- an independent PyTorch reference of diffusers' AutoencoderDC
(DC-AE, the autoencoder of every SANA release), for parity checks of grove's
grove.diffusers.vae.

Written from the architecture (the DC-AE paper's blocks as diffusers names
and configures them; the facts listed in ../shared/fixtures/README.md,
section "dcae/"), not from grove's code nor from diffusers' files: plain
functions over a {name: tensor} dict, NCHW, meant to be read.

Run with Debian's interpreter (/usr/bin/python3), which has python3-torch:

  dcae_ref.py fixture DIR            the reference against the float64 outputs
                                     of diffusers' own code stored in DIR
                                     (../shared/fixtures/dcae/tiny-a): proves
                                     the reference itself
  dcae_ref.py make DIR --config JSON [--dtype f32|bf16|f16] [--seed S]
                  [--latent B,h,w ...] [--image B,H,W ...] [--tile T --stride S]
                                     writes a random AutoencoderDC folder
                                     (config.json, diffusion_pytorch_model
                                     .safetensors), inputs.safetensors
                                     (latents.i, images.i: NCHW, one per
                                     --latent / --image) and
                                     outputs.safetensors (sample.i, latent.i
                                     and, with --tile, tiled_sample.i,
                                     tiled_latent.i: float64, from the
                                     weights as stored; tiles as diffusers'
                                     enable_tiling(T, T, S, S)); with
                                     --grad, grad.decode.* / grad.encode.*:
                                     the gradients of sum(out * w) for the
                                     first latents / images (w:
                                     grad_weight.* in inputs) with respect
                                     to the input ("input") and to every
                                     parameter of that half

Exit status: 0 on success, 1 on a parity failure, 2 on a usage or input error.
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

NORM_EPS = 1e-5      # every norm of the autoencoder (RMSNorm and BatchNorm)
ATTN_EPS = 1e-15     # the linear attention's denominator

DEFAULTS = {
    "in_channels": 3, "latent_channels": 32, "attention_head_dim": 32,
    "encoder_block_types": "ResBlock", "decoder_block_types": "ResBlock",
    "encoder_block_out_channels": [128, 256, 512, 512, 1024, 1024],
    "decoder_block_out_channels": [128, 256, 512, 512, 1024, 1024],
    "encoder_layers_per_block": [2, 2, 2, 3, 3, 3], "decoder_layers_per_block": [3, 3, 3, 3, 3, 3],
    "encoder_qkv_multiscales": [[], [], [], [5], [5], [5]], "decoder_qkv_multiscales": [[], [], [], [5], [5], [5]],
    "upsample_block_type": "pixel_shuffle", "downsample_block_type": "pixel_unshuffle",
    "decoder_norm_types": "rms_norm", "decoder_act_fns": "silu",
    "encoder_out_shortcut": True, "decoder_in_shortcut": True, "decoder_conv_act_fn": "relu",
    "scaling_factor": 1.0,
}


def per_stage(v, n):
    return [v] * n if isinstance(v, str) else list(v)


class Settings:
    def __init__(self, cfg):
        c = dict(DEFAULTS)
        c.update({k: v for k, v in cfg.items() if not k.startswith("_")})
        self.cfg = c
        self.img_ch = c["in_channels"]
        self.lat_ch = c["latent_channels"]
        self.head_dim = c["attention_head_dim"]
        self.enc_ch = list(c["encoder_block_out_channels"])
        self.dec_ch = list(c["decoder_block_out_channels"])
        ne, nd = len(self.enc_ch), len(self.dec_ch)
        self.enc_types = per_stage(c["encoder_block_types"], ne)
        self.dec_types = per_stage(c["decoder_block_types"], nd)
        self.enc_layers = list(c["encoder_layers_per_block"])
        self.dec_layers = list(c["decoder_layers_per_block"])
        self.enc_scales = [list(s) for s in c["encoder_qkv_multiscales"]]
        self.dec_scales = [list(s) for s in c["decoder_qkv_multiscales"]]
        self.dec_norms = per_stage(c["decoder_norm_types"], nd)
        self.dec_acts = per_stage(c["decoder_act_fns"], nd)
        self.unshuffle_down = c["downsample_block_type"] == "pixel_unshuffle"
        self.interpolate_up = c["upsample_block_type"] == "interpolate"
        self.out_shortcut = c["encoder_out_shortcut"]
        self.in_shortcut = c["decoder_in_shortcut"]
        self.conv_act = c["decoder_conv_act_fn"]
        self.factor = 2 ** (ne - 1)


# ---- pieces -------------------------------------------------------------------------------------

def activation(name, x):
    if name in ("silu", "swish"):
        return x * torch.sigmoid(x)
    if name == "relu":
        return x.clamp_min(0)
    if name == "gelu":
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    if name == "mish":
        return x * torch.tanh(F.softplus(x))
    raise ValueError("activation %r" % name)


class Ref:
    """The autoencoder over a {name: tensor} dict, computing in `dtype`."""

    def __init__(self, cfg, weights, dtype=torch.float64):
        self.s = Settings(cfg)
        self.w = weights
        self.dtype = dtype
        self.used = set()

    def p(self, name):
        self.used.add(name)
        return self.w[name].to(self.dtype)

    def has(self, name):
        return name in self.w

    def conv(self, name, x, stride=1, groups=1):
        w = self.p(name + ".weight")
        b = self.p(name + ".bias") if self.has(name + ".bias") else None
        return F.conv2d(x, w, b, stride=stride, padding=w.shape[-1] // 2, groups=groups)

    def norm(self, name, kind, x):
        """Per-pixel norm over the channels of x (B, C, H, W)."""
        w, b = self.p(name + ".weight"), self.p(name + ".bias")
        if kind == "rms_norm":
            ms = (x * x).mean(dim=1, keepdim=True)
            return x / torch.sqrt(ms + NORM_EPS) * w[:, None, None] + b[:, None, None]
        if kind == "batch_norm":  # running statistics (inference)
            self.used.add(name + ".num_batches_tracked")
            m, v = self.p(name + ".running_mean"), self.p(name + ".running_var")
            return (x - m[:, None, None]) / torch.sqrt(v[:, None, None] + NORM_EPS) * w[:, None, None] + b[:, None, None]
        raise ValueError("norm %r" % kind)

    # ResBlock: conv 3x3 (bias), activation, conv 3x3 (no bias), norm, + input
    def res_block(self, p, x, norm, act):
        h = activation(act, self.conv(p + ".conv1", x))
        return self.norm(p + ".norm", norm, self.conv(p + ".conv2", h)) + x

    def attention(self, p, x, scales, norm):
        B, C, H, W = x.shape
        d = self.s.head_dim
        # one fused projection: q, k, v are thirds of its output channels
        wqkv = torch.cat([self.p(p + ".to_q.weight"), self.p(p + ".to_k.weight"), self.p(p + ".to_v.weight")], 0)
        qkv = torch.einsum("oc,bchw->bohw", wqkv, x)
        inner = wqkv.shape[0] // 3
        heads = inner // d
        parts = [qkv]
        for i, _ in enumerate(scales):
            q = p + ".to_qkv_multiscale.%d" % i
            agg = self.conv(q + ".proj_in", qkv, groups=3 * inner)            # depthwise k x k
            parts.append(self.conv(q + ".proj_out", agg, groups=3 * heads))   # 1x1, one group per (head, q|k|v)
        allc = torch.cat(parts, 1)
        # consecutive groups of 3*d channels are one head's (q, k, v)
        t = allc.reshape(B, -1, 3 * d, H * W)
        q, k, v = torch.relu(t[:, :, :d]), torch.relu(t[:, :, d:2 * d]), t[:, :, 2 * d:]
        if H * W > d:
            # O(N d^2): (sum_j v_j k_j^T) q_i / (sum_j k_j . q_i + eps)
            kv = torch.einsum("bhcj,bhej->bhce", v, k)
            num = torch.einsum("bhce,bhei->bhci", kv, q)
            den = torch.einsum("bhe,bhei->bhi", k.sum(-1), q)
        else:
            # the N x N form, as diffusers takes it when N <= head dim
            s = torch.einsum("bhej,bhei->bhji", k, q)
            num = torch.einsum("bhcj,bhji->bhci", v, s)
            den = s.sum(2)
        o = (num / (den[:, :, None, :] + ATTN_EPS)).reshape(B, -1, H, W)
        o = torch.einsum("oc,bchw->bohw", self.p(p + ".to_out.weight"), o)
        return self.norm(p + ".norm_out", norm, o) + x

    # GLUMBConv: 1x1 up to 2 x 4C, SiLU, depthwise 3x3, value * SiLU(gate), 1x1 down, RMSNorm, + input
    def glumb(self, p, x):
        h = activation("silu", self.conv(p + ".conv_inverted", x))
        h = self.conv(p + ".conv_depth", h, groups=h.shape[1])
        val, gate = h.chunk(2, 1)
        h = self.conv(p + ".conv_point", val * activation("silu", gate))
        return self.norm(p + ".norm", "rms_norm", h) + x

    def block(self, p, kind, x, norm, act, scales):
        if kind == "ResBlock":
            return self.res_block(p, x, norm, act)
        if kind == "EfficientViTBlock":
            return self.glumb(p + ".conv_out", self.attention(p + ".attn", x, scales, norm))
        raise ValueError("block type %r" % kind)

    def down(self, p, x, cout, shortcut):
        if self.s.unshuffle_down:
            y = F.pixel_unshuffle(self.conv(p + ".conv", x), 2)
        else:
            y = self.conv(p + ".conv", x, stride=2)
        if shortcut:
            s = F.pixel_unshuffle(x, 2)
            B, C4, H, W = s.shape
            y = y + s.reshape(B, cout, C4 // cout, H, W).mean(2)   # mean of consecutive channel groups
        return y

    def up(self, p, x, cout, shortcut):
        if self.s.interpolate_up:
            y = self.conv(p + ".conv", x.repeat_interleave(2, 2).repeat_interleave(2, 3))   # nearest x2
        else:
            y = F.pixel_shuffle(self.conv(p + ".conv", x), 2)
        if shortcut:
            y = y + F.pixel_shuffle(x.repeat_interleave(cout * 4 // x.shape[1], 1), 2)
        return y

    # ---- the two halves ----------------------------------------------------------------------

    def encode(self, x):
        s = self.s
        x = x.to(self.dtype)
        ch, layers, n = s.enc_ch, s.enc_layers, len(s.enc_ch)
        if layers[0] > 0:
            h = self.conv("encoder.conv_in", x)
        else:
            h = self.down("encoder.conv_in", x, ch[1], shortcut=False)
        for i in range(n):
            p = "encoder.down_blocks.%d." % i
            for l in range(layers[i]):
                h = self.block(p + str(l), s.enc_types[i], h, "rms_norm", "silu", s.enc_scales[i])
            if i < n - 1 and layers[i] > 0:
                h = self.down(p + str(layers[i]), h, ch[i + 1], shortcut=True)
        out = self.conv("encoder.conv_out", h)
        if s.out_shortcut:
            B, C, H, W = h.shape
            out = out + h.reshape(B, s.lat_ch, C // s.lat_ch, H, W).mean(2)
        return out

    def decode(self, z):
        s = self.s
        z = z.to(self.dtype)
        ch, layers, n = s.dec_ch, s.dec_layers, len(s.dec_ch)
        h = self.conv("decoder.conv_in", z)
        if s.in_shortcut:
            h = h + z.repeat_interleave(ch[-1] // s.lat_ch, 1)
        for i in reversed(range(n)):
            p = "decoder.up_blocks.%d." % i
            first = 0
            if i < n - 1 and layers[i] > 0:
                h = self.up(p + "0", h, ch[i], shortcut=True)
                first = 1
            for l in range(layers[i]):
                h = self.block(p + str(first + l), s.dec_types[i], h, s.dec_norms[i], s.dec_acts[i], s.dec_scales[i])
        h = activation(s.conv_act, self.norm("decoder.norm_out", "rms_norm", h))
        if layers[0] > 0:
            return self.conv("decoder.conv_out", h)
        return self.up("decoder.conv_out", h, s.img_ch, shortcut=False)

    # ---- tiling: overlapping tiles, the overlap blended linearly, tiles
    # visited row by row and blended in place (each blend reads its upper
    # and left neighbours as already blended) ----------------------------

    @staticmethod
    def _blend(a, b, extent, dim):
        extent = min(a.shape[dim], b.shape[dim], extent)
        for y in range(extent):
            f = y / extent
            b.narrow(dim, y, 1).copy_(a.narrow(dim, a.shape[dim] - extent + y, 1) * (1 - f) + b.narrow(dim, y, 1) * f)
        return b

    def _tiled(self, x, run, tile_in, stride_in, tile_out, stride_out, blend, pad_to):
        H, W = x.shape[2], x.shape[3]
        rows = []
        for i in range(0, H, stride_in):
            row = []
            for j in range(0, W, stride_in):
                t = x[:, :, i:i + tile_in, j:j + tile_in]
                ph, pw = (-t.shape[2]) % pad_to, (-t.shape[3]) % pad_to
                if ph or pw:
                    t = F.pad(t, (0, pw, 0, ph))
                row.append(run(t))
            rows.append(row)
        out_rows = []
        for i, row in enumerate(rows):
            parts = []
            for j, t in enumerate(row):
                if i > 0:
                    t = self._blend(rows[i - 1][j], t, blend, 2)
                if j > 0:
                    t = self._blend(row[j - 1], t, blend, 3)
                parts.append(t[:, :, :stride_out, :stride_out])
            out_rows.append(torch.cat(parts, 3))
        return torch.cat(out_rows, 2)

    def tiled_decode(self, z, tile, stride):
        f = self.s.factor
        if z.shape[2] <= tile // f and z.shape[3] <= tile // f:
            return self.decode(z)
        return self._tiled(z, self.decode, tile // f, stride // f, tile, stride, tile - stride, 1)

    def tiled_encode(self, x, tile, stride):
        f = self.s.factor
        if x.shape[2] <= tile and x.shape[3] <= tile:
            return self.encode(x)
        out = self._tiled(x, self.encode, tile, stride, tile // f, stride // f, tile // f - stride // f, f)
        return out[:, :, :x.shape[2] // f, :x.shape[3] // f]


# ---- weights ------------------------------------------------------------------------------------

def weight_shapes(cfg):
    """{name: shape} of every tensor of the autoencoder."""
    s = Settings(cfg)
    out = {}

    def conv(p, cin, cout, k=3, bias=True, groups=1):
        out[p + ".weight"] = (cout, cin // groups, k, k)
        if bias:
            out[p + ".bias"] = (cout,)

    def norm(p, kind, c):
        out[p + ".weight"], out[p + ".bias"] = (c,), (c,)
        if kind == "batch_norm":
            out[p + ".running_mean"], out[p + ".running_var"] = (c,), (c,)
            out[p + ".num_batches_tracked"] = ()

    def block(p, kind, c, nk, scales):
        if kind == "ResBlock":
            conv(p + ".conv1", c, c)
            conv(p + ".conv2", c, c, bias=False)
            norm(p + ".norm", nk, c)
            return
        heads = c // s.head_dim
        inner = heads * s.head_dim
        for n in ("to_q", "to_k", "to_v"):
            out[p + ".attn." + n + ".weight"] = (inner, c)
        for i, k in enumerate(scales):
            q = p + ".attn.to_qkv_multiscale.%d" % i
            conv(q + ".proj_in", 3 * inner, 3 * inner, k, bias=False, groups=3 * inner)
            conv(q + ".proj_out", 3 * inner, 3 * inner, 1, bias=False, groups=3 * heads)
        out[p + ".attn.to_out.weight"] = (c, inner * (1 + len(scales)))
        norm(p + ".attn.norm_out", nk, c)
        hid = 4 * c
        conv(p + ".conv_out.conv_inverted", c, 2 * hid, 1)
        conv(p + ".conv_out.conv_depth", 2 * hid, 2 * hid, 3, groups=2 * hid)
        conv(p + ".conv_out.conv_point", hid, c, 1, bias=False)
        norm(p + ".conv_out.norm", "rms_norm", c)

    ch, layers, n = s.enc_ch, s.enc_layers, len(s.enc_ch)
    div = 4 if s.unshuffle_down else 1
    if layers[0] > 0:
        conv("encoder.conv_in", s.img_ch, ch[0])
    else:
        conv("encoder.conv_in.conv", s.img_ch, ch[1] // div)
    for i in range(n):
        for l in range(layers[i]):
            block("encoder.down_blocks.%d.%d" % (i, l), s.enc_types[i], ch[i], "rms_norm", s.enc_scales[i])
        if i < n - 1 and layers[i] > 0:
            conv("encoder.down_blocks.%d.%d.conv" % (i, layers[i]), ch[i], ch[i + 1] // div)
    conv("encoder.conv_out", ch[-1], s.lat_ch)

    ch, layers, n = s.dec_ch, s.dec_layers, len(s.dec_ch)
    mul = 1 if s.interpolate_up else 4
    conv("decoder.conv_in", s.lat_ch, ch[-1])
    for i in range(n):
        first = 0
        if i < n - 1 and layers[i] > 0:
            conv("decoder.up_blocks.%d.0.conv" % i, ch[i + 1], ch[i] * mul)
            first = 1
        for l in range(layers[i]):
            block("decoder.up_blocks.%d.%d" % (i, first + l), s.dec_types[i], ch[i], s.dec_norms[i], s.dec_scales[i])
    c0 = ch[0] if layers[0] > 0 else ch[1]
    norm("decoder.norm_out", "rms_norm", c0)
    if layers[0] > 0:
        conv("decoder.conv_out", c0, s.img_ch)
    else:
        conv("decoder.conv_out.conv", c0, s.img_ch * mul)
    return out


def random_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in sorted(weight_shapes(cfg).items()):
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(7, dtype=torch.int64)
        elif name.endswith("running_var"):
            out[name] = torch.rand(shape, generator=g, dtype=torch.float64) + 0.5
        elif name.endswith("running_mean") or name.endswith(".bias"):
            out[name] = torch.randn(shape, generator=g, dtype=torch.float64) * 0.1
        elif len(shape) == 1:  # a norm's weight
            out[name] = 1 + torch.randn(shape, generator=g, dtype=torch.float64) * 0.2
        else:
            fan_in = 1
            for v in shape[1:]:
                fan_in *= v
            out[name] = torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in)
    return out


def rel_err(a, b):
    """max |a - b| / max |b|: the fixtures README's error measure."""
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def cmd_fixture(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    weights, _ = safetensors_io.load(os.path.join(d, "diffusion_pytorch_model.safetensors"))
    want = weight_shapes(cfg)
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if got != {k: tuple(v) for k, v in want.items()}:
        print("weights differ from the reference's list: missing %s, extra %s" %
              (sorted(set(want) - set(got)), sorted(set(got) - set(want))))
        return 1
    ref = Ref(cfg, weights)
    worst = 0.0
    for case, key_in, key_out, fn in (("decode_4x4", "latents", "sample", ref.decode),
                                      ("decode_2x3", "latents", "sample", ref.decode),
                                      ("encode_128x128", "images", "latent", ref.encode),
                                      ("encode_64x96", "images", "latent", ref.encode)):
        x, _ = safetensors_io.load(os.path.join(d, case + ".in.safetensors"))
        y, _ = safetensors_io.load(os.path.join(d, case + ".out.f64.safetensors"))
        e = rel_err(fn(x[key_in]), y[key_out])
        worst = max(worst, e)
        print("%-16s %.3e" % (case, e))
    unused = sorted(set(weights) - ref.used)
    if unused:
        print("weights the reference never read: %s" % unused)
        return 1
    print("fixture: max relative error %.3e (tol 1e-10)" % worst)
    return 0 if worst <= 1e-10 else 1


def dims(s):
    v = [int(t) for t in s.split(",")]
    if len(v) != 3 or min(v) < 1:
        raise ValueError("expected B,H,W, got %r" % s)
    return v


def gradients(ref, weights, fn, x, side, g):
    """Gradients of sum(fn(x) * w) (w random, returned) with respect to x and
    to every float parameter of `side` ("encoder" or "decoder") but
    BatchNorm's running statistics, as {name: tensor} (float64)."""
    names = [n for n in sorted(weights) if n.startswith(side + ".") and weights[n].is_floating_point()
             and not n.endswith(".running_mean") and not n.endswith(".running_var")]
    leaves = {n: weights[n].to(torch.float64).requires_grad_() for n in names}
    r = Ref(ref.s.cfg, dict(weights, **leaves))
    xl = x.to(torch.float64).requires_grad_()
    y = fn(r, xl)
    w = torch.randn(y.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((y * w).sum(), [xl] + [leaves[n] for n in names])
    out = {"input": grads[0]}
    out.update({n: t for n, t in zip(names, grads[1:])})
    return w, out


def cmd_make(d, cfg, dtype, seed, latents, images, tile, stride, grad):
    store = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[dtype]
    os.makedirs(d, exist_ok=True)
    weights = {k: (v.to(store) if v.is_floating_point() else v) for k, v in random_weights(cfg, seed).items()}
    full = dict(cfg)
    full.setdefault("_class_name", "AutoencoderDC")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(full, f, indent=2, sort_keys=True)
    safetensors_io.save(os.path.join(d, "diffusion_pytorch_model.safetensors"), weights, {"format": "pt"})
    s = Settings(cfg)
    g = torch.Generator().manual_seed(seed + 1)
    ref = Ref(cfg, weights)
    ins, outs = {}, {}
    for i, (B, h, w) in enumerate(latents, 1):
        z = torch.randn(B, s.lat_ch, h, w, generator=g, dtype=torch.float64).float()
        ins["latents.%d" % i] = z
        outs["sample.%d" % i] = ref.decode(z)
        if tile:
            outs["tiled_sample.%d" % i] = ref.tiled_decode(z, tile, stride)
        if grad and i == 1:
            w, gr = gradients(ref, weights, Ref.decode, z, "decoder", g)
            ins["grad_weight.decode"] = w
            outs.update({"grad.decode." + n: t for n, t in gr.items()})
    for i, (B, H, W) in enumerate(images, 1):
        x = (torch.rand(B, s.img_ch, H, W, generator=g, dtype=torch.float64) * 2 - 1).float()
        ins["images.%d" % i] = x
        outs["latent.%d" % i] = ref.encode(x)
        if tile:
            outs["tiled_latent.%d" % i] = ref.tiled_encode(x, tile, stride)
        if grad and i == 1:
            w, gr = gradients(ref, weights, Ref.encode, x, "encoder", g)
            ins["grad_weight.encode"] = w
            outs.update({"grad.encode." + n: t for n, t in gr.items()})
    safetensors_io.save(os.path.join(d, "inputs.safetensors"), ins)
    safetensors_io.save(os.path.join(d, "outputs.safetensors"), outs)
    unused = sorted(set(weights) - ref.used)
    if unused:
        raise ValueError("weights the reference never read: %s" % unused)
    print("made %s: %d tensors in %s, %d latents, %d images%s" % (
        d, len(weights), dtype, len(latents), len(images), (", tiles %d stride %d" % (tile, stride)) if tile else ""))
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
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--latent", action="append", default=[], help="B,h,w of latents to decode (repeatable)")
    m.add_argument("--image", action="append", default=[], help="B,H,W of images to encode (repeatable)")
    m.add_argument("--tile", type=int, default=0, help="tile size in pixels (0: no tiled outputs)")
    m.add_argument("--stride", type=int, default=0, help="tile stride in pixels")
    m.add_argument("--grad", action="store_true",
                   help="also the gradients of sum(out * w) for the first latents and images")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "fixture":
            return cmd_fixture(a.dir)
        if a.cmd == "make":
            if a.tile and not (0 < a.stride <= a.tile):
                raise ValueError("--stride must be in 1..--tile")
            return cmd_make(a.dir, json.loads(a.config), a.dtype, a.seed, [dims(v) for v in a.latent],
                            [dims(v) for v in a.image], a.tile, a.stride, a.grad)
    except (OSError, ValueError, KeyError, safetensors_io.SafetensorsError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
