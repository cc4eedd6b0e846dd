-- One training step (forward + MSE + backward) and one sampling step
-- (forward without the tape) of a SANA preset, grove against the independent
-- PyTorch implementation (tests/reference/bench_torch.py, Debian's torch) on
-- the same config, batch, caption length and thread count, in one run.
-- Also: achieved GFLOP/s against OpenBLAS sgemm measured now, and peak memory
-- of a training step against what parameters, gradients and saved
-- activations should take.
--   grove bench/sana.lua [preset] [batch] [steps]
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local B = dofile(here .. "/benchlib.lua")

local preset = arg[1] or "small"
local batch = tonumber(arg[2]) or 16
local steps = tonumber(arg[3]) or 5
local size = 32
local c = grove.nn.resolve_config(preset)
local L = c.text_len
local threads = grove.num_threads()

local model = grove.nn.Sana(preset, { seed = 0 })
local g = grove.Generator(0)
local x0 = grove.randn({ batch, size, size, c.in_channels }, { generator = g })
local noise = grove.randn({ batch, size, size, c.in_channels }, { generator = g })
local sigma = grove.rand({ batch }, { generator = g })
local xt = x0 * (1 - sigma:view { batch, 1, 1, 1 }) + noise * sigma:view { batch, 1, 1, 1 }
local t = sigma * 1000
local text = grove.randn({ batch, L, c.caption_channels }, { generator = g })
local mask = grove.ones { batch, L }
mask:narrow(2, L / 2 + 1, L / 2):fill_(0)
local target = noise - x0

local function train_step()
  model:zero_grad()
  local loss = grove.mse_loss(model:forward(xt, t, text, mask), target)
  loss:backward()
end
local function sample_step()
  grove.no_grad(function() return model:forward(xt, t, text, mask) end)
end

-- forward FLOPs of the matrix work (2 per multiply-add)
local function forward_flops()
  local N = (size / c.patch_size) ^ 2
  local T, D, Hd, d = batch * N, c.width, c.hidden, c.head_dim
  local block = 2 * T * D * D * 4 + 4 * T * D * d             -- self-attention: 4 projections + linear attention
    + 2 * T * D * D * 2 + 2 * 2 * batch * L * D * D + 4 * T * L * D -- cross-attention
    + 2 * T * D * 2 * Hd + 2 * T * 2 * Hd * 9 + 2 * T * Hd * D     -- Mix-FFN
  local p2 = c.patch_size ^ 2
  return c.depth * block + 2 * T * c.in_channels * p2 * D + 2 * T * D * p2 * c.out_channels
end

print(string.format("grove %s, %d threads, %s", grove._VERSION, threads, grove.blas_info()))
print(string.format("preset %s: depth %d, width %d, %d parameters; batch %d, latent %dx%dx%d, caption %d tokens",
  preset, c.depth, c.width, model:num_parameters(), batch, size, size, c.in_channels, L))

grove.collect()
grove.reset_peak_memory()
local base = grove.memory().live_bytes
local train_s = B.best_time(train_step, 1.0, steps)
local peak = grove.memory().peak_bytes - base
local sample_s = B.best_time(sample_step, 0.5, steps)

-- sgemm peak now, on this machine and thread count
local n = 1024
local a, bm = grove.randn { n, n }, grove.randn { n, n }
local gemm_s = B.best_time(function() return a:matmul(bm) end, 0.3, 5)
local peak_gflops = 2 * n ^ 3 / gemm_s / 1e9

-- torch on the same config
local cfg_path = os.tmpname()
local f = assert(io.open(cfg_path, "w"))
f:write(grove.nn._encode_config(c))
f:close()
local python = os.getenv("GROVE_TORCH_PYTHON") or "/usr/bin/python3"
local cmd = string.format("%s %s/../tests/reference/bench_torch.py --config %s --batch %d --threads %d --steps %d --size %d --text-len %d 2>&1",
  python, here, cfg_path, batch, threads, steps, size, L)
local p = io.popen(cmd)
local out = p:read("*a")
p:close()
os.remove(cfg_path)
local torch_train = tonumber(out:match("train_best_ms=([%d%.]+)"))
local torch_sample = tonumber(out:match("sample_best_ms=([%d%.]+)"))

local fl = forward_flops()
print()
print(string.format("%-16s %12s %12s %10s %14s", "step", "grove ms", "torch ms", "torch/grove", "grove GFLOP/s"))
local function row(name, gs, tms, flops)
  print(string.format("%-16s %12.1f %12s %10s %14.1f", name, gs * 1e3, tms and string.format("%.1f", tms) or "n/a",
    tms and string.format("%.2fx", tms / (gs * 1e3)) or "n/a", flops / gs / 1e9))
end
row("train (f+b)", train_s, torch_train, 3 * fl)
row("sample (f)", sample_s, torch_sample, fl)
print(string.format("sgemm %dx%d peak in this run: %.1f GFLOP/s (train reaches %.0f%%, sample %.0f%%)", n, n, peak_gflops,
  100 * 3 * fl / train_s / 1e9 / peak_gflops, 100 * fl / sample_s / 1e9 / peak_gflops))
if not torch_train then print("torch reference unavailable: " .. out:sub(1, 300)) end

-- memory: gradients plus the activations the tape keeps. Per block and
-- token, the saved tensors are about 10·D floats on the attention side
-- (modulated input, q/k/v before and after their norms, attention output,
-- cross-attention input and query) and 7·H on the Mix-FFN side (inputs of
-- the 1×1 and depthwise convs, SiLU and GLU inputs), plus the cross-attention
-- probabilities (heads·L per token).
local params = model:num_parameters() * 4
local T = batch * (size / c.patch_size) ^ 2
local acts = 4 * c.depth * T * (10 * c.width + 7 * c.hidden + c.cross_heads * L)
print(string.format("peak live bytes during a training step, above the model: %.1f MB; expected: gradients %.1f MB + saved activations %.1f MB = %.1f MB",
  peak / 2^20, params / 2^20, acts / 2^20, (params + acts) / 2^20))
local fh = io.open("/proc/self/status")
if fh then
  local s = fh:read("*a"); fh:close()
  print("process peak resident set: " .. (s:match("VmHWM:%s*(%d+ kB)") or "?"))
end
