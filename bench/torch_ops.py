#!/usr/bin/python3
"""torch_ops.py -- PyTorch's side of bench/ops.lua: forward time per call of
softmax, layer_norm (no affine) and a depthwise 3x3 conv on SANA-like sizes.

Run it with Debian's /usr/bin/python3 (Debian's python3-torch serves that
interpreter). Usage: torch_ops.py THREADS [MIN_SECONDS] [gemm MxKxN,...]

Prints one line per op, "RESULT <name> <seconds per call> <layout>", after a
header; bench/ops.lua reads them. The shapes here must match bench/ops.lua.
Exits with status 2 and a message on stderr when torch cannot be imported.
"""
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 -- any import failure means "no baseline"
    print("torch_ops: cannot import torch with %s: %s" % (sys.executable, e), file=sys.stderr)
    sys.exit(2)

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
min_time = float(sys.argv[2]) if len(sys.argv) > 2 else 0.3
torch.set_num_threads(threads)
torch.manual_seed(0)


def best_time(fn, min_time=min_time, min_runs=5):
    """Seconds per call in the steady state, by bench/benchlib.lua's rule:
    10 warm-up calls (fewer once 1 s has passed), then single timed calls
    until at least min_runs of them and min_time seconds; the best call counts.
    The warm-up matters here: glibc serves PyTorch's first few large outputs
    with fresh mmap'd pages (several times slower) until its mmap threshold
    adapts."""
    w0 = time.perf_counter()
    for _ in range(10):
        fn()
        if time.perf_counter() - w0 > 1.0:
            break
    best, total, runs = float("inf"), 0.0, 0
    while runs < min_runs or total < min_time:
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        total += t
        best = min(best, t)
        runs += 1
    return best


def report(name, seconds, layout):
    print("RESULT %s %.9g %s" % (name, seconds, layout))
    sys.stdout.flush()


print("torch %s (%s), %d threads" % (torch.__version__, sys.executable, torch.get_num_threads()))

# "gemm": bench/gemm_bf16.lua's side instead, the GEMMs of the real-size
# models in f32 and in bf16 (bf16 operands, f32 sums: what torch.matmul
# does on bf16 tensors through oneDNN), "RESULT gemm_<dtype>_<m>x<k>x<n>".
if len(sys.argv) > 3 and sys.argv[3] == "gemm":
    shapes = [tuple(int(v) for v in s.split("x")) for s in sys.argv[4].split(",")]
    with torch.no_grad():
        for m, k, n in shapes:
            a, b = torch.randn(m, k), torch.randn(k, n)
            name = "%dx%dx%d" % (m, k, n)
            report("gemm_f32_" + name, best_time(lambda: torch.matmul(a, b)), "f32")
            ab, bb = a.bfloat16(), b.bfloat16()
            report("gemm_bf16_" + name, best_time(lambda: torch.matmul(ab, bb)), "bf16")
    sys.exit(0)

with torch.no_grad():
    # softmax over the last dim: cross-attention scores, 16 (batch x heads)
    # x 1024 image tokens against 300 caption tokens.
    x = torch.randn(16 * 1024, 300)
    report("softmax", best_time(lambda: torch.softmax(x, -1)), "contiguous")

    # layer_norm without affine over the channels: 16 x 1024 tokens x 288.
    x = torch.randn(16 * 1024, 288)
    report("layer_norm", best_time(lambda: F.layer_norm(x, (288,), None, None, 1e-6)), "contiguous")

    # depthwise 3x3, padding 1, with bias: MixFFN's conv_depth on a 32x32
    # token grid, batch 16, 720 channels. The same logical tensor in both of
    # PyTorch's memory formats; the faster one is the baseline.
    B, H, W, C = 16, 32, 32, 720
    w = torch.randn(C, 1, 3, 3)
    b = torch.randn(C)
    x_nchw = torch.randn(B, C, H, W)
    x_cl = x_nchw.contiguous(memory_format=torch.channels_last)
    w_cl = w.contiguous(memory_format=torch.channels_last)
    t_nchw = best_time(lambda: F.conv2d(x_nchw, w, b, padding=1, groups=C))
    t_cl = best_time(lambda: F.conv2d(x_cl, w_cl, b, padding=1, groups=C))
    print("conv_dw3x3: NCHW %.3f ms, channels_last %.3f ms" % (t_nchw * 1e3, t_cl * 1e3))
    if t_cl <= t_nchw:
        report("conv_dw3x3", t_cl, "channels_last")
    else:
        report("conv_dw3x3", t_nchw, "NCHW")
