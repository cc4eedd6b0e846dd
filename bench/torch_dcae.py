#!/usr/bin/python3
"""torch_dcae.py -- PyTorch's side of bench/dcae.lua: diffusers' DC-AE
autoencoder (AutoencoderDC) written for PyTorch 1.13 from its published
structure (the same parameter names, so the same safetensors file serves
grove and this script), with three modes:

  torch_dcae.py write DIR [--seed 0] [--tiny]
      writes DIR/config.json and DIR/diffusion_pytorch_model.safetensors:
      the released SANA autoencoder's config (dc-ae-f32c32-sana-1.0: 32
      latent channels, block channels 128 256 512 512 1024 1024, 3 ResBlock
      stages then 3 EfficientViT stages, encoder layers 2 2 2 3 3 3,
      decoder 3 each, head dim 32, 5x5 multi-scale, nearest-interpolation
      up-sampling, stride-2 conv down-sampling) with PyTorch's default
      initial values drawn from --seed (norm weights 1, biases 0), F32.
      --tiny writes the same structure with channels 8 16 16 32 32 64
      and one layer per stage (a check of the script). Prints the
      parameter counts (released: encoder 153,027,104, decoder 159,223,171).
  torch_dcae.py decode DIR INPUTS OUT [--threads 2] [--steps 2] [--dtype f32|bf16]
      loads the folder as diffusers' AutoencoderDC does (encoder and
      decoder, every tensor of the file and nothing else), decodes INPUTS'
      `latents` (B, C, h, w) --steps times under torch.no_grad() and writes
      the last `sample` (B, 3, 32h, 32w) to OUT. No scaling_factor inside
      (decode takes latents already divided by it, as diffusers'). --dtype
      bf16: the model and the latents in torch.bfloat16 (vae.to(torch.
      bfloat16), as a bf16 pipeline runs it: PyTorch's CPU convolutions and
      linears then take oneDNN's bf16 kernels); the sample is written F32.
  torch_dcae.py check FIXTURE_DIR
      runs every case of a dcae fixture folder (../shared/fixtures/dcae/
      tiny-a: config.json, weights, *.in / *.out.f64.safetensors) in float64
      and prints each case's max |out - expected| / max |expected|; exits 1
      when one exceeds 1e-9 (the script's own check against diffusers).

Why not tests/reference/dcae_ref.py: that is the project's parity
reference, written to be read (float64 functions over a name -> tensor
dict, einsum for the 1x1 projections, nearest up-sampling by
repeat_interleave). A speed baseline has to run what a diffusers user runs
(nn.Conv2d and nn.Linear modules, F.interpolate, F.pixel_shuffle), so this
file builds those modules; its check mode holds it to the same fixture.

Run it with Debian's /usr/bin/python3 (python3-torch). decode prints a
header, `decode <s> s` per step and one line

  RESULT model=dcae load_s=<s> forward_s=<s1>,<s2>,... hwm_bytes=<VmHWM>
         rss_loaded_bytes=<VmRSS after loading> weight_bytes=<bytes> threads=<n>

Exits 2 with a message on stderr on a usage or input error or when torch
cannot be imported.

The facts it is written from: diffusers' AutoencoderDC (models/autoencoders/
autoencoder_dc.py) structure and the fixtures README: to_q, to_k, to_v
concatenated, the 5x5 depthwise + grouped 1x1 aggregate of that
concatenation appended, consecutive groups of 3 x head_dim channels read as
one head's (q, k, v); attention sum_j v_j (k_j . q_i) / (sum_j k_j . q_i +
1e-15) with ReLU on q and k (the N x N form when H*W <= head_dim); per-pixel
RMSNorm over channels (eps 1e-5, with bias); the GLU's value is the first
half; up-sampling: nearest x2 then a 3x3 conv, plus the shortcut "repeat each
channel in place, pixel-shuffle"; down-sampling: a 3x3 stride-2 conv (pad 1)
plus "pixel-unshuffle, mean of consecutive channel groups"; the decoder
entry adds its latents with each channel repeated in place, the encoder exit
averages consecutive channels; the decoder runs its deepest stage first.
"""
import argparse
import json
import os
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 -- any import failure means "no baseline"
    print("torch_dcae: cannot import torch with %s: %s" % (sys.executable, e), file=sys.stderr)
    sys.exit(2)

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import safetensors_io  # noqa: E402

WEIGHTS = "diffusion_pytorch_model.safetensors"

# dc-ae-f32c32-sana-1.0's vae/config.json, as diffusers publishes it
RELEASED = {
    "_class_name": "AutoencoderDC",
    "attention_head_dim": 32,
    "decoder_act_fns": "silu",
    "decoder_block_out_channels": [128, 256, 512, 512, 1024, 1024],
    "decoder_block_types": ["ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock",
                            "EfficientViTBlock"],
    "decoder_conv_act_fn": "relu",
    "decoder_in_shortcut": True,
    "decoder_layers_per_block": [3, 3, 3, 3, 3, 3],
    "decoder_norm_types": "rms_norm",
    "decoder_qkv_multiscales": [[], [], [], [5], [5], [5]],
    "downsample_block_type": "Conv",
    "encoder_block_out_channels": [128, 256, 512, 512, 1024, 1024],
    "encoder_block_types": ["ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock",
                            "EfficientViTBlock"],
    "encoder_layers_per_block": [2, 2, 2, 3, 3, 3],
    "encoder_out_shortcut": True,
    "encoder_qkv_multiscales": [[], [], [], [5], [5], [5]],
    "in_channels": 3,
    "latent_channels": 32,
    "scaling_factor": 0.41407,
    "upsample_block_type": "interpolate",
}


def tiny_config():
    c = json.loads(json.dumps(RELEASED))
    c["attention_head_dim"] = 8
    for side in ("encoder", "decoder"):
        c[side + "_block_out_channels"] = [8, 16, 16, 32, 32, 64]
        c[side + "_layers_per_block"] = [1, 1, 1, 1, 1, 1]
    c["latent_channels"] = 8
    return c


# ---- the pieces -------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """Over the channels of each pixel (dim 1 of NCHW), with weight and bias."""

    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        ms = x.pow(2).mean(1, keepdim=True)
        y = x * torch.rsqrt(ms + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def activation(name):
    acts = {"silu": nn.SiLU, "relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": nn.GELU}
    if name not in acts:
        raise ValueError("activation %r is not one this script knows (%s)" % (name, ", ".join(sorted(acts))))
    return acts[name]()


def conv3(cin, cout, bias=True, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)


class ResBlock(nn.Module):
    def __init__(self, c, act):
        super().__init__()
        self.conv1 = conv3(c, c)
        self.conv2 = conv3(c, c, bias=False)
        self.norm = RMSNorm(c)
        self.act = activation(act)

    def forward(self, x):
        return x + self.norm(self.conv2(self.act(self.conv1(x))))


class MultiscaleProjection(nn.Module):
    """The k x k aggregate of the fused q|k|v channels: depthwise k x k, then
    a 1x1 conv grouped per (head, q/k/v) third."""

    def __init__(self, channels, heads, k):
        super().__init__()
        self.proj_in = nn.Conv2d(channels, channels, k, 1, k // 2, groups=channels, bias=False)
        self.proj_out = nn.Conv2d(channels, channels, 1, 1, 0, groups=3 * heads, bias=False)

    def forward(self, x):
        return self.proj_out(self.proj_in(x))


class MultiscaleLinearAttention(nn.Module):
    def __init__(self, c, head_dim, scales, eps=1e-15):
        super().__init__()
        heads = c // head_dim
        inner = heads * head_dim
        self.head_dim, self.eps = head_dim, eps
        self.to_q = nn.Linear(c, inner, bias=False)
        self.to_k = nn.Linear(c, inner, bias=False)
        self.to_v = nn.Linear(c, inner, bias=False)
        self.to_qkv_multiscale = nn.ModuleList([MultiscaleProjection(3 * inner, heads, k) for k in scales])
        self.to_out = nn.Linear(inner * (1 + len(scales)), c, bias=False)
        self.norm_out = RMSNorm(c)

    def forward(self, x):
        B, _, H, W = x.shape
        t = x.permute(0, 2, 3, 1)
        qkv = torch.cat([self.to_q(t), self.to_k(t), self.to_v(t)], dim=3).permute(0, 3, 1, 2)
        qkv = torch.cat([qkv] + [m(qkv) for m in self.to_qkv_multiscale], dim=1)
        d, N = self.head_dim, H * W
        qkv = qkv.reshape(B, -1, 3 * d, N)             # (B, heads, 3d, N): consecutive 3d channels a head
        q, k, v = F.relu(qkv[:, :, :d]), F.relu(qkv[:, :, d:2 * d]), qkv[:, :, 2 * d:]
        if N > d:
            # O(N d^2): v padded with a row of ones gives the denominator
            vp = F.pad(v, (0, 0, 0, 1), value=1.0)   # (B, h, d+1, N)
            o = (vp @ k.transpose(-1, -2)) @ q        # (B, h, d+1, N)
            o = o[:, :, :-1] / (o[:, :, -1:] + self.eps)
        else:
            s = k.transpose(-1, -2) @ q               # (B, h, N_k, N_q)
            s = s / (s.sum(dim=2, keepdim=True) + self.eps)
            o = v @ s
        o = o.reshape(B, -1, H, W).permute(0, 2, 3, 1)
        y = self.to_out(o).permute(0, 3, 1, 2)
        return x + self.norm_out(y)


class GLUMBConv(nn.Module):
    def __init__(self, c, expand=4):
        super().__init__()
        hid = int(expand * c)
        self.conv_inverted = nn.Conv2d(c, 2 * hid, 1)
        self.conv_depth = nn.Conv2d(2 * hid, 2 * hid, 3, 1, 1, groups=2 * hid)
        self.conv_point = nn.Conv2d(hid, c, 1, bias=False)
        self.norm = RMSNorm(c)

    def forward(self, x):
        h = self.conv_depth(F.silu(self.conv_inverted(x)))
        value, gate = h.chunk(2, dim=1)
        return x + self.norm(self.conv_point(value * F.silu(gate)))


class EfficientViTBlock(nn.Module):
    def __init__(self, c, head_dim, scales):
        super().__init__()
        self.attn = MultiscaleLinearAttention(c, head_dim, scales)
        self.conv_out = GLUMBConv(c)

    def forward(self, x):
        return self.conv_out(self.attn(x))


def repeat_in_place(x, n):
    """Each channel n times in place: channel c·n + k is channel c."""
    B, C, H, W = x.shape
    return x.unsqueeze(2).expand(B, C, n, H, W).reshape(B, C * n, H, W)


def group_mean(x, n):
    """The mean of each run of n consecutive channels."""
    B, C, H, W = x.shape
    return x.reshape(B, C // n, n, H, W).mean(2)


class UpBlock(nn.Module):
    """x2: nearest interpolation then a 3x3 conv, plus the repeated,
    pixel-shuffled input."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = conv3(cin, cout)
        self.repeats = cout * 4 // cin

    def forward(self, x):
        y = self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
        return y + F.pixel_shuffle(repeat_in_place(x, self.repeats), 2)


class DownBlock(nn.Module):
    """/2: a 3x3 stride-2 conv, plus the pixel-unshuffled input averaged in
    channel groups."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = conv3(cin, cout, stride=2)
        self.group = cin * 4 // cout

    def forward(self, x):
        return self.conv(x) + group_mean(F.pixel_unshuffle(x, 2), self.group)


def stage_block(kind, c, cfg, side, i):
    if kind == "ResBlock":
        act = cfg.get(side + "_act_fns", "silu") if side == "decoder" else "silu"
        if isinstance(act, list):
            act = act[i]
        return ResBlock(c, act)
    if kind == "EfficientViTBlock":
        return EfficientViTBlock(c, cfg["attention_head_dim"], cfg[side + "_qkv_multiscales"][i])
    raise ValueError("block type %r is not one this script knows (ResBlock, EfficientViTBlock)" % kind)


def check_config(cfg):
    """Refuses, by key, the options this script does not implement."""
    want = {"upsample_block_type": "interpolate", "downsample_block_type": "Conv", "decoder_norm_types": "rms_norm",
            "decoder_conv_act_fn": "relu", "decoder_in_shortcut": True, "encoder_out_shortcut": True}
    for k, v in want.items():
        got = cfg.get(k, v)
        if isinstance(got, list) and k == "decoder_norm_types":
            got = v if all(g == v for g in got) else got
        if got != v:
            raise ValueError("config.json: %s = %r; this script implements only %r" % (k, got, v))
    for side in ("encoder", "decoder"):
        if 0 in cfg[side + "_layers_per_block"]:
            raise ValueError("config.json: %s_layers_per_block has a 0; this script needs every stage" % side)


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, layers, kinds = (cfg["encoder_block_out_channels"], cfg["encoder_layers_per_block"],
                             cfg["encoder_block_types"])
        self.conv_in = conv3(cfg["in_channels"], ch[0])
        blocks = []
        for i, (c, n) in enumerate(zip(ch, layers)):
            stage = [stage_block(kinds[i], c, cfg, "encoder", i) for _ in range(n)]
            if i < len(ch) - 1:
                stage.append(DownBlock(c, ch[i + 1]))
            blocks.append(nn.Sequential(*stage))
        self.down_blocks = nn.ModuleList(blocks)
        self.conv_out = conv3(ch[-1], cfg["latent_channels"])
        self.out_group = ch[-1] // cfg["latent_channels"]

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        return self.conv_out(x) + group_mean(x, self.out_group)


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, layers, kinds = (cfg["decoder_block_out_channels"], cfg["decoder_layers_per_block"],
                             cfg["decoder_block_types"])
        self.conv_in = conv3(cfg["latent_channels"], ch[-1])
        self.in_repeats = ch[-1] // cfg["latent_channels"]
        blocks = []
        for i, (c, n) in enumerate(zip(ch, layers)):
            stage = [UpBlock(ch[i + 1], c)] if i < len(ch) - 1 else []
            stage += [stage_block(kinds[i], c, cfg, "decoder", i) for _ in range(n)]
            blocks.append(nn.Sequential(*stage))
        self.up_blocks = nn.ModuleList(blocks)
        self.norm_out = RMSNorm(ch[0])
        self.conv_out = conv3(ch[0], cfg["in_channels"])

    def forward(self, z):
        x = self.conv_in(z) + repeat_in_place(z, self.in_repeats)
        for b in reversed(self.up_blocks):   # the deepest stage first
            x = b(x)
        return self.conv_out(F.relu(self.norm_out(x)))


class AutoencoderDC(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        check_config(cfg)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)


# ---- modes ------------------------------------------------------------------------------


def proc_status(key):
    """A size field of /proc/self/status (VmHWM, VmRSS) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def count(module):
    return sum(p.numel() for p in module.parameters())


class no_init:
    """Construction without drawing initial values (the file's tensors
    replace them right after, as diffusers' low_cpu_mem_usage load does)."""

    KINDS = (nn.Linear, nn.Conv2d)

    def __enter__(self):
        self.saved = [(k, k.reset_parameters) for k in self.KINDS]
        for k in self.KINDS:
            k.reset_parameters = lambda self: None
        return self

    def __exit__(self, *exc):
        for k, f in self.saved:
            k.reset_parameters = f


def load_folder(d, dtype=torch.float32):
    """The folder's AutoencoderDC with the file's tensors as its parameters
    (no copy for F32); every parameter must come from the file with its
    shape, and nothing else. Returns (model, weight bytes)."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    with no_init():
        model = AutoencoderDC(cfg)
    tensors, _ = safetensors_io.load(os.path.join(d, WEIGHTS))
    own = dict(model.named_parameters())
    nbytes = 0
    for name in list(tensors):
        t = tensors.pop(name)
        p = own.pop(name, None)
        if p is None:
            raise ValueError("%s: tensor %s is not a parameter of AutoencoderDC" % (d, name))
        if tuple(t.shape) != tuple(p.shape):
            raise ValueError("%s: tensor %s has shape %s, the model %s" % (d, name, list(t.shape), list(p.shape)))
        nbytes += t.numel() * t.element_size()
        p.data = t if t.dtype == dtype else t.to(dtype)
    if own:
        raise ValueError("%s: %d parameters missing from %s, first %s" % (d, len(own), WEIGHTS, sorted(own)[0]))
    return model.eval(), cfg, nbytes


def mode_write(a):
    cfg = tiny_config() if a.tiny else RELEASED
    torch.manual_seed(a.seed)
    model = AutoencoderDC(cfg)
    os.makedirs(a.dir, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    safetensors_io.save(os.path.join(a.dir, WEIGHTS), tensors)
    with open(os.path.join(a.dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print("wrote %s: encoder %d parameters, decoder %d parameters, %d tensors, F32"
          % (a.dir, count(model.encoder), count(model.decoder), len(tensors)))
    return 0


def mode_decode(a):
    if a.threads < 1 or a.steps < 1:
        print("torch_dcae: threads and steps must be positive", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    print("torch %s (%s), %d threads, OPENBLAS_CORETYPE=%s, %s; convolutions: %s" %
          (torch.__version__, sys.executable, torch.get_num_threads(), os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
           "torch.bfloat16" if a.dtype == "bf16" else "torch.float32",
           "oneDNN (mkldnn) %s" % ("on" if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
                                   else "off")))
    sys.stdout.flush()
    try:
        inputs, _ = safetensors_io.load(a.inputs)
        z = inputs["latents"].to(dtype)
        t0 = time.perf_counter()
        model, _, nbytes = load_folder(a.dir, dtype=dtype)
        load_s = time.perf_counter() - t0
    except (OSError, ValueError, KeyError, safetensors_io.SafetensorsError) as e:
        print("torch_dcae: %s" % e, file=sys.stderr)
        return 2
    rss_loaded = proc_status("VmRSS")
    times, y = [], None
    with torch.no_grad():
        for _ in range(a.steps):
            y = None
            t1 = time.perf_counter()
            y = model.decoder(z)
            times.append(time.perf_counter() - t1)
            print("decode %.3f s" % times[-1])
            sys.stdout.flush()
    safetensors_io.save(a.out, {"sample": y.float().contiguous()})
    print("RESULT model=dcae load_s=%.3f forward_s=%s hwm_bytes=%d rss_loaded_bytes=%d weight_bytes=%d threads=%d"
          % (load_s, ",".join("%.4f" % t for t in times), proc_status("VmHWM"), rss_loaded, nbytes,
             torch.get_num_threads()))
    return 0


def mode_check(a):
    try:
        model, _, _ = load_folder(a.fixture, dtype=torch.float64)
    except (OSError, ValueError, KeyError, safetensors_io.SafetensorsError) as e:
        print("torch_dcae: %s" % e, file=sys.stderr)
        return 2
    worst, cases = 0.0, 0
    with torch.no_grad():
        for f in sorted(os.listdir(a.fixture)):
            if not f.endswith(".in.safetensors"):
                continue
            case = f[: -len(".in.safetensors")]
            inp, _ = safetensors_io.load(os.path.join(a.fixture, f))
            want, _ = safetensors_io.load(os.path.join(a.fixture, case + ".out.f64.safetensors"))
            if "latents" in inp:
                got, exp = model.decoder(inp["latents"].double()), want["sample"].double()
            else:
                got, exp = model.encoder(inp["images"].double()), want["latent"].double()
            err = ((got - exp).abs().max() / exp.abs().max()).item()
            print("%-16s %s -> %s  max |out - expected| / max |expected| = %.3g"
                  % (case, list(next(iter(inp.values())).shape), list(got.shape), err))
            worst, cases = max(worst, err), cases + 1
    if cases == 0:
        print("torch_dcae: %s has no *.in.safetensors cases" % a.fixture, file=sys.stderr)
        return 2
    return 0 if worst <= 1e-9 else 1


def main(argv):
    ap = argparse.ArgumentParser(prog="torch_dcae.py")
    sub = ap.add_subparsers(dest="mode", required=True)
    w = sub.add_parser("write")
    w.add_argument("dir")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--tiny", action="store_true")
    d = sub.add_parser("decode")
    d.add_argument("dir")
    d.add_argument("inputs")
    d.add_argument("out")
    d.add_argument("--threads", type=int, default=2)
    d.add_argument("--steps", type=int, default=2)
    d.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    c = sub.add_parser("check")
    c.add_argument("fixture")
    a = ap.parse_args(argv)
    return {"write": mode_write, "decode": mode_decode, "check": mode_check}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
