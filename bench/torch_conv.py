#!/usr/bin/python3
"""torch_conv.py -- PyTorch's side of bench/conv.lua: forward time per call
of the DC-AE-shaped convolutions bench/conv.lua times in grove.

Run it with Debian's /usr/bin/python3 (python3-torch). Usage:

  torch_conv.py THREADS MIN_SECONDS SHAPES

SHAPES is a comma-separated list of cases, each
name:B:H:W:Cin:Cout:kh:kw:stride:padding:groups (bench/conv.lua writes it,
so the two sides time the same shapes). Each case runs in NCHW and in
channels_last; the faster counts. Prints a header, then one line per case:

  RESULT <name> <seconds per call> <layout>

Exits 2 with a message on stderr when torch cannot be imported.
"""
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 -- any import failure means "no baseline"
    print("torch_conv: cannot import torch with %s: %s" % (sys.executable, e), file=sys.stderr)
    sys.exit(2)

if len(sys.argv) != 4:
    print(__doc__, file=sys.stderr)
    sys.exit(2)
threads, min_time = int(sys.argv[1]), float(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)


def best_time(fn, min_runs=5):
    """Seconds per call by bench/benchlib.lua's rule: 10 warm-up calls (fewer
    once 1 s has passed), then single timed calls until min_runs of them and
    min_time seconds; the best call counts."""
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


print("torch %s (%s), %d threads, mkldnn %s" % (torch.__version__, sys.executable, torch.get_num_threads(),
                                              torch.backends.mkldnn.is_available()))
with torch.no_grad():
    for case in sys.argv[3].split(","):
        f = case.split(":")
        name = f[0]
        b, h, w, cin, cout, kh, kw, stride, pad, groups = (int(v) for v in f[1:])
        x = torch.randn(b, cin, h, w)
        wt = torch.randn(cout, cin // groups, kh, kw) * 0.05
        bias = torch.randn(cout)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        w_cl = wt.contiguous(memory_format=torch.channels_last)
        t_nchw = best_time(lambda: F.conv2d(x, wt, bias, stride=stride, padding=pad, groups=groups))
        t_cl = best_time(lambda: F.conv2d(x_cl, w_cl, bias, stride=stride, padding=pad, groups=groups))
        layout, t = ("channels_last", t_cl) if t_cl <= t_nchw else ("NCHW", t_nchw)
        print("RESULT %s %.9g %s" % (name, t, layout))
        sys.stdout.flush()
        del x, x_cl, wt, w_cl
