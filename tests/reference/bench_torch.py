#!/usr/bin/python3
"""bench_torch.py -- PyTorch's time for one SANA training step and one
sampling step, the baseline the engine's bench compares against.

Run with Debian's /usr/bin/python3 (python3-torch). Usage:

  bench_torch.py --config CONFIG.json [--batch 16] [--threads N] [--steps K]
                 [--size S | --height H --width W] [--text-len L]
                 [--attn padded|naive] [--warmup 1] [--seed 0] [--dtype f32|bf16]

CONFIG.json holds the model config dict of sana_ref.SanaRef (depth, width,
head_dim, cross_heads, mlp_ratio, patch_size, in_channels, out_channels,
caption_channels, qk_norm, cross_norm). The latent size defaults to the
config's "sample_size" if it has one, else 32; the caption length to its
"text_len", else 300. Weights are random (timing does not depend on them).

  training step: forward at batch B + MSE loss against the flow target
                 v = noise - x0 + backward (parameter grads, no optimizer)
  sampling step: forward only, under torch.no_grad()

--dtype bf16 runs both under torch.autocast("cpu", dtype=torch.bfloat16):
the matrix products and convolutions in bf16 through oneDNN, the rest in
float32 (PyTorch's CPU mixed precision).

Each is run --warmup times untimed, then --steps times timed. Output: a
header, then one machine-readable line

  RESULT sana_torch train_ms=<mean> sample_ms=<mean> train_best_ms=<min>
         sample_best_ms=<min> batch=B threads=T steps=K height=H width=W
         text_len=L params=P attn=padded

(all on one line; times in milliseconds per step). Exits 2 with a message
on stderr when torch cannot be imported or the arguments are bad.
"""
import argparse
import contextlib
import json
import os
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 -- any import failure means "no baseline"
    print("bench_torch: cannot import torch with %s: %s" % (sys.executable, e), file=sys.stderr)
    sys.exit(2)

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sana_ref import SanaRef  # noqa: E402


def main(argv):
    ap = argparse.ArgumentParser(prog="bench_torch.py")
    ap.add_argument("--config", required=True, help="model config JSON file")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--size", type=int, default=None, help="latent height = width")
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--text-len", type=int, default=None)
    ap.add_argument("--attn", choices=("padded", "naive"), default="padded",
                    help="linear attention form: padded = diffusers' O(N d^2) (default), naive = N x N")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=("f32", "bf16"), default="f32",
                    help="bf16: torch.autocast on the CPU with bfloat16")
    args = ap.parse_args(argv)

    try:
        with open(args.config) as f:
            cfg = json.load(f)
        model = SanaRef(cfg, attn_mode=args.attn)
    except (OSError, ValueError) as e:
        print("bench_torch: config %s: %s" % (args.config, e), file=sys.stderr)
        return 2
    size = args.size or cfg.get("sample_size") or 32
    H = args.height or size
    W = args.width or size
    L = args.text_len or cfg.get("text_len") or 300
    B = args.batch
    if min(B, args.threads, args.steps, H, W, L) < 1 or args.warmup < 0:
        print("bench_torch: batch, threads, steps, sizes and text length must be positive", file=sys.stderr)
        return 2

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    c = model.config
    n_params = sum(p.numel() for p in model.parameters())

    # one fixed batch: flow-matching input x_sigma and target v
    x0 = torch.randn(B, c["in_channels"], H, W)
    noise = torch.randn_like(x0)
    sigma = torch.sigmoid(torch.randn(B))                     # logit-normal
    sigma = 3 * sigma / (1 + 2 * sigma)                       # shift s = 3
    s4 = sigma[:, None, None, None]
    x_t = (1 - s4) * x0 + s4 * noise
    if c["out_channels"] == c["in_channels"]:
        target = noise - x0                                   # v = noise - x0
    else:                                                     # same cost either way
        target = torch.randn(B, c["out_channels"], H, W)
    t = sigma * 1000
    text = torch.randn(B, L, c["caption_channels"])
    mask = torch.ones(B, L)
    mask[:, L // 2:] = 0                                        # half the caption is padding

    def mixed():
        if args.dtype == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step():
        model.zero_grad(set_to_none=True)
        with mixed():
            loss = F.mse_loss(model(x_t, t, text, mask).float(), target)
        loss.backward()

    def sample_step():
        with torch.no_grad(), mixed():
            model(x_t, t, text, mask)

    def timed(fn):
        for _ in range(args.warmup):
            fn()
        ts = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return 1e3 * sum(ts) / len(ts), 1e3 * min(ts)

    print("torch %s (%s), %d threads; config %s; batch %d, latent %dx%d, caption %d tokens, %d parameters"
          % (torch.__version__, sys.executable, torch.get_num_threads(), json.dumps(cfg, sort_keys=True),
             B, H, W, L, n_params))
    sys.stdout.flush()
    train_ms, train_best = timed(train_step)
    sample_ms, sample_best = timed(sample_step)
    print("RESULT sana_torch train_ms=%.3f sample_ms=%.3f train_best_ms=%.3f sample_best_ms=%.3f "
          "batch=%d threads=%d steps=%d height=%d width=%d text_len=%d params=%d attn=%s dtype=%s"
          % (train_ms, sample_ms, train_best, sample_best, B, torch.get_num_threads(), args.steps,
             H, W, L, n_params, args.attn, args.dtype))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
