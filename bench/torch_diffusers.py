#!/usr/bin/python3
"""torch_diffusers.py -- PyTorch's side of bench/diffusers.lua: one process
loads a diffusers component folder that bench/diffusers.lua wrote, runs its
forward on the inputs grove runs, and reports load time, forward times and
peak resident memory.

Run it with Debian's /usr/bin/python3 (python3-torch). Usage:

  torch_diffusers.py sana  DIR INPUTS OUT [--threads 2] [--steps 2] [--dtype f32|bf16]
  torch_diffusers.py gemma DIR INPUTS OUT [--threads 2] [--steps 2] [--dtype f32|bf16]

sana:  DIR is a transformer folder (SanaTransformer2DModel's config.json and
       diffusers-named weights); the model is tests/reference/sana_ref.py's
       SanaRef (diffusers' O(N d^2) linear attention), INPUTS holds
       hidden_states (B, C, H, W), timestep (B,), encoder_hidden_states
       (B, L, caption_channels), encoder_attention_mask (B, L); OUT gets
       `sample`.
gemma: DIR is a text_encoder folder (Gemma2Model's config.json and
       transformers-named weights); the model is tests/reference/
       gemma2_ref.py's Gemma2Ref in float32 without soft-capping, INPUTS
       holds input_ids and attention_mask (B, L); OUT gets
       `last_hidden_state`.

--dtype bf16: the model and its floating-point inputs in torch.bfloat16,
PyTorch's CPU bf16 inference (its matmuls through oneDNN's bf16 GEMM where
torch.backends.mkldnn is available and the CPU has AVX-512; norms and the
linear attention upcast inside the reference models); the output is
written as float32.

The weights are read tensor by tensor into their own memory and become the
model's parameters without a copy, so the process holds them once, as a
diffusers/transformers load with low_cpu_mem_usage does. The forward runs
--steps times under torch.no_grad(). Output: a header, then one line

  RESULT model=<sana|gemma> load_s=<s> forward_s=<s1>,<s2>,... hwm_bytes=<VmHWM>
         rss_loaded_bytes=<VmRSS after loading> weight_bytes=<bytes> threads=<n>

and before it a line "kernels: ..." naming the matrix-product kernels.

Exits 2 with a message on stderr on a usage or input error or when torch
cannot be imported.
"""
import argparse
import json
import os
import sys
import time

try:
    import torch
    import torch.nn as nn
except Exception as e:  # noqa: BLE001 -- any import failure means "no baseline"
    print("torch_diffusers: cannot import torch with %s: %s" % (sys.executable, e), file=sys.stderr)
    sys.exit(2)

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import safetensors_io  # noqa: E402


def proc_status(key):
    """A size field of /proc/self/status (VmHWM, VmRSS) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def weight_files(d, stem):
    """The weight files of a component folder: the index's shards, or the
    single file."""
    index = os.path.join(d, stem + ".safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            wm = json.load(f)["weight_map"]
        return sorted(set(wm.values()))
    return [stem + ".safetensors"]


def each_tensor(d, stem):
    """(name, tensor) of every weight, one shard in memory at a time."""
    for fname in weight_files(d, stem):
        tensors, _ = safetensors_io.load(os.path.join(d, fname))
        while tensors:
            name = next(iter(tensors))
            yield name, tensors.pop(name)


class no_init:
    """Module construction without drawing initial values: the parameters
    are replaced by the folder's tensors right after, and drawing 1.6 B
    random numbers first would only cost time (as diffusers' low_cpu_mem_usage
    load skips it)."""

    KINDS = (nn.Linear, nn.Conv2d)

    def __enter__(self):
        self.saved = [(k, k.reset_parameters) for k in self.KINDS]
        for k in self.KINDS:
            k.reset_parameters = lambda self: None
        return self

    def __exit__(self, *exc):
        for k, f in self.saved:
            k.reset_parameters = f


def sana_model(d):
    from sana_ref import SanaRef
    with open(os.path.join(d, "config.json")) as f:
        dc = json.load(f)
    if dc.get("interpolation_scale") is not None or dc.get("guidance_embeds"):
        raise ValueError("%s/config.json: the bench's PyTorch side has no positional embedding nor guidance "
                         "embedding (sana_ref.py)" % d)
    qk = dc.get("qk_norm")
    if qk not in (None, "rms_norm_across_heads"):
        raise ValueError("%s/config.json: qk_norm %r" % (d, qk))
    width = dc["num_attention_heads"] * dc["attention_head_dim"]
    if dc.get("cross_attention_dim", width) != width:
        raise ValueError("%s/config.json: cross_attention_dim %r differs from the width %d" %
                         (d, dc.get("cross_attention_dim"), width))
    cfg = {"depth": dc["num_layers"], "width": width, "head_dim": dc["attention_head_dim"],
           "cross_heads": dc["num_cross_attention_heads"], "cross_head_dim": dc["cross_attention_head_dim"],
           "mlp_ratio": dc["mlp_ratio"], "patch_size": dc["patch_size"], "in_channels": dc["in_channels"],
           "out_channels": dc.get("out_channels") or dc["in_channels"], "caption_channels": dc["caption_channels"],
           "qk_norm": qk is not None, "cross_norm": qk is not None,
           "attention_bias": dc.get("attention_bias", False),
           "norm_elementwise_affine": dc.get("norm_elementwise_affine", False),
           "norm_eps": dc.get("norm_eps", 1e-6)}
    with no_init():
        model = SanaRef(cfg, attn_mode="padded")
    return model, "diffusion_pytorch_model"


def fill(model, d, stem):
    """Makes the folder's tensors the model's parameters (no copy); every
    parameter must come from the folder with its shape, and nothing else."""
    own = dict(model.named_parameters())
    seen, nbytes = set(), 0
    for name, t in each_tensor(d, stem):
        p = own.get(name)
        if p is None:
            raise ValueError("%s: tensor %s is not a parameter of the model" % (d, name))
        if tuple(t.shape) != tuple(p.shape):
            raise ValueError("%s: tensor %s has shape %s, the model %s" % (d, name, list(t.shape), list(p.shape)))
        p.data = t if t.dtype == torch.float32 else t.float()
        seen.add(name)
        nbytes += t.numel() * t.element_size()
    missing = sorted(set(own) - seen)
    if missing:
        raise ValueError("%s: %d parameters missing, first %s" % (d, len(missing), missing[0]))
    return nbytes


def main(argv):
    ap = argparse.ArgumentParser(prog="torch_diffusers.py")
    ap.add_argument("model", choices=("sana", "gemma"))
    ap.add_argument("dir")
    ap.add_argument("inputs")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--dtype", choices=("f32", "bf16"), default="f32")
    a = ap.parse_args(argv)
    if a.threads < 1 or a.steps < 1:
        print("torch_diffusers: threads and steps must be positive", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    print("torch %s (%s), %d threads, OPENBLAS_CORETYPE=%s" %
          (torch.__version__, sys.executable, torch.get_num_threads(), os.environ.get("OPENBLAS_CORETYPE", "(unset)")))
    dt = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    if a.dtype == "bf16":
        print("kernels: torch.bfloat16 model, matmuls by %s" %
              ("oneDNN's bf16 GEMM (torch.backends.mkldnn available)" if torch.backends.mkldnn.is_available()
               else "ATen's own bf16 loops (no oneDNN in this torch)"))
    else:
        blas = [w for w in torch.__config__.show().replace(",", " ").split() if w.startswith("BLAS_INFO=")]
        print("kernels: float32 model, matmuls by its BLAS (%s, OPENBLAS_CORETYPE=%s)" %
              (blas[0][10:] if blas else "unknown", os.environ.get("OPENBLAS_CORETYPE", "(unset)")))
    sys.stdout.flush()
    try:
        inputs, _ = safetensors_io.load(a.inputs)
        # the floating-point inputs in the model's dtype, as a bf16 pipeline passes them
        inputs = {k: (v.to(dt) if v.is_floating_point() else v) for k, v in inputs.items()}
        t0 = time.perf_counter()
        if a.model == "sana":
            model, stem = sana_model(a.dir)
            nbytes = fill(model, a.dir, stem)
            model = model.to(dt).eval()
            if dt != torch.float32:
                # sana_ref computes the sinusoidal timestep features in float32;
                # diffusers casts them to the model's dtype before the
                # embedder's Linear, which these hooks do for every layer
                for mod in model.modules():
                    if isinstance(mod, (nn.Linear, nn.Conv2d)):
                        mod.register_forward_pre_hook(
                            lambda m, inp: tuple(x.to(m.weight.dtype) if torch.is_tensor(x) and x.is_floating_point()
                                                 else x for x in inp))
            x, ts = inputs["hidden_states"], inputs["timestep"]
            text, mask = inputs["encoder_hidden_states"], inputs["encoder_attention_mask"]
            forward = lambda: model(x, ts, text, mask)  # noqa: E731
            out_name = "sample"
        else:
            import gemma2_ref
            from gemma2_ref import Gemma2Ref
            if dt != torch.float32:
                # transformers' Gemma2RMSNorm computes in float32 and returns
                # the input's dtype (type_as); gemma2_ref keeps float32
                f32_norm = gemma2_ref.rms_norm
                gemma2_ref.rms_norm = lambda x, w, eps: f32_norm(x, w, eps).to(x.dtype)
            with open(os.path.join(a.dir, "config.json")) as f:
                cfg = json.load(f)
            weights, nbytes = {}, 0
            for name, t in each_tensor(a.dir, "model"):
                weights[name] = t
                nbytes += t.numel() * t.element_size()
            model = Gemma2Ref(cfg, weights, dtype=dt)  # f32 weights are used as they are; bf16 converted
            del weights
            ids, mask = inputs["input_ids"], inputs["attention_mask"]
            forward = lambda: model.forward(ids, mask, softcap=False)  # noqa: E731
            out_name = "last_hidden_state"
        load_s = time.perf_counter() - t0
    except (OSError, ValueError, KeyError, safetensors_io.SafetensorsError) as e:
        print("torch_diffusers: %s" % e, file=sys.stderr)
        return 2
    rss_loaded = proc_status("VmRSS")
    times = []
    with torch.no_grad():
        for _ in range(a.steps):
            t1 = time.perf_counter()
            y = forward()
            times.append(time.perf_counter() - t1)
            print("forward %.3f s" % times[-1])
            sys.stdout.flush()
    safetensors_io.save(a.out, {out_name: y.float().contiguous()})
    print("RESULT model=%s load_s=%.3f forward_s=%s hwm_bytes=%d rss_loaded_bytes=%d weight_bytes=%d threads=%d"
          % (a.model, load_s, ",".join("%.4f" % t for t in times), proc_status("VmHWM"), rss_loaded, nbytes,
             torch.get_num_threads()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
