#!/usr/bin/env python3
"""torch_gpu.py -- PyTorch's side of bench/gpu.lua: time per training step
(forward + MSE + backward + AdamW step) and per sampling step (one forward
under no_grad) of a SANA model, and the f32 matrix throughput of the GPU.

The model is tests/reference/sana_ref.py's SanaRef (an independent
implementation with grove's architecture and parameter names), linear
attention in its O(N*d^2) "padded" form, eager mode, float32, TF32 off.

  torch_gpu.py --config CONFIG.json --batch B --size S --text-len L
               [--steps K] [--warmup W] [--device cuda|cpu] [--name NAME]
  torch_gpu.py --sgemm N [--device cuda|cpu]   # torch.mm of two NxN f32 matrices
  torch_gpu.py --device cpu --quick           # a tiny smoke run of both

Output: a header, then one machine-readable line per measurement:

  RESULT model name=NAME train_ms=<median> sample_ms=<median> train_best_ms=<min>
         sample_best_ms=<min> peak_mb=<peak allocated during a train step> params=P
  RESULT sgemm n=N ms=<median> tflops=<2 N^3 / time>

Exit 2 with a message on stderr when torch cannot be imported, the device
is unavailable or the arguments are bad.
"""
import argparse
import json
import os
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 -- any import failure means "no baseline"
    print("torch_gpu: cannot import torch with %s: %s" % (sys.executable, e), file=sys.stderr)
    sys.exit(2)

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from sana_ref import SanaRef  # noqa: E402

QUICK_CONFIG = {"depth": 2, "width": 64, "head_dim": 32, "cross_heads": 2, "mlp_ratio": 2.5, "patch_size": 2,
                "in_channels": 4, "out_channels": 4, "caption_channels": 32}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, warmup, steps):
    """Median and best milliseconds of `steps` calls after `warmup` untimed
    ones; the GPU is synchronised around every call."""
    for _ in range(warmup):
        fn()
    sync(device)
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return 1e3 * ts[len(ts) // 2], 1e3 * ts[0]


def bench_sgemm(n, device, warmup=3, steps=10):
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    ms, best = timed(lambda: torch.mm(a, b), device, warmup, steps)
    print("RESULT sgemm n=%d ms=%.4f best_ms=%.4f tflops=%.3f" % (n, ms, best, 2 * n ** 3 / (ms * 1e-3) / 1e12))
    sys.stdout.flush()


def bench_model(name, cfg, B, size, L, device, warmup, steps):
    torch.manual_seed(0)
    # parameters made on the device itself where torch can (2.0 and later):
    # a 1.6B model's init on the CPU would take longer than the benchmark
    if hasattr(torch.device, "__enter__"):
        with device:
            model = SanaRef(cfg, attn_mode="padded")
    else:
        model = SanaRef(cfg, attn_mode="padded").to(device)
    c = model.config
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)

    g = torch.Generator(device=device).manual_seed(0)
    x0 = torch.randn(B, c["in_channels"], size, size, device=device, generator=g)
    noise = torch.randn(B, c["in_channels"], size, size, device=device, generator=g)
    sigma = torch.rand(B, device=device, generator=g)
    s4 = sigma[:, None, None, None]
    x_t = (1 - s4) * x0 + s4 * noise
    target = noise - x0
    t = sigma * 1000
    text = torch.randn(B, L, c["caption_channels"], device=device, generator=g)
    mask = torch.ones(B, L, device=device)
    mask[:, L // 2:] = 0                                        # half the caption is padding

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x_t, t, text, mask), target)
        loss.backward()
        opt.step()

    def sample_step():
        with torch.no_grad():
            model(x_t, t, text, mask)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train_ms, train_best = timed(train_step, device, warmup, steps)
    peak_mb = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else 0.0
    sample_ms, sample_best = timed(sample_step, device, warmup, steps)
    print("RESULT model name=%s train_ms=%.3f sample_ms=%.3f train_best_ms=%.3f sample_best_ms=%.3f "
          "peak_mb=%.1f params=%d batch=%d size=%d text_len=%d depth=%d width=%d"
          % (name, train_ms, sample_ms, train_best, sample_best, peak_mb, n_params, B, size, L,
             c["depth"], c["width"]))
    sys.stdout.flush()
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main(argv):
    ap = argparse.ArgumentParser(prog="torch_gpu.py")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--config", help="model config JSON file (sana_ref.SanaRef keys)")
    ap.add_argument("--name", default="model")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=32, help="latent height = width")
    ap.add_argument("--text-len", type=int, default=300)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sgemm", type=int, default=0, help="measure torch.mm of NxN f32 matrices")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    args = ap.parse_args(argv)

    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        print("torch_gpu: %s" % e, file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print("torch_gpu: torch %s (%s) sees no CUDA device" % (torch.__version__, sys.executable), file=sys.stderr)
        return 2
    # full f32 on both sides: grove's GEMMs are f32 unless grove.cuda.set_tf32(true)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")

    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print("torch %s (%s) on %s, TF32 off" % (torch.__version__, sys.executable, dev_name))
    sys.stdout.flush()

    if args.quick:
        bench_sgemm(256, device, 1, 2)
        bench_model("quick", QUICK_CONFIG, 2, 8, 16, device, 1, 2)
        return 0
    if args.sgemm:
        bench_sgemm(args.sgemm, device)
    if args.config:
        try:
            with open(args.config) as f:
                cfg = json.load(f)
        except (OSError, ValueError) as e:
            print("torch_gpu: config %s: %s" % (args.config, e), file=sys.stderr)
            return 2
        if min(args.batch, args.size, args.text_len, args.steps) < 1 or args.warmup < 0:
            print("torch_gpu: batch, size, text length and steps must be positive", file=sys.stderr)
            return 2
        bench_model(args.name, cfg, args.batch, args.size, args.text_len, device, args.warmup, args.steps)
    if not args.sgemm and not args.config:
        print("torch_gpu: give --config, --sgemm or --quick", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
