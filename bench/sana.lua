-- One training step (forward + MSE + backward) and one sampling step
-- (forward without the tape) of a SANA preset, grove against the independent
-- PyTorch implementation (tests/reference/bench_torch.py on sana_ref.py,
-- Debian's torch) on the same config, batch, caption length and thread count.
--
--   grove bench/sana.lua [preset] [batch] [steps] [--reps 2] [--threads 1,2]
--                        [--compute f32,bf16] [--skip-torch]
--
-- Each measurement is its own process, and the processes interleave: for
-- each repetition, thread count and compute mode, grove then PyTorch, so
-- that both sides see the same machine state; a cell is the best step over
-- all its repetitions. Both sides use the same OpenBLAS kernels: grove's
-- core from cpuid (run with `env -u OPENBLAS_CORETYPE`, since this
-- environment exports Haswell) is handed to PyTorch as OPENBLAS_CORETYPE
-- (never Debian's misdetected Prescott), and PyTorch runs with glibc's malloc
-- told to keep its memory (GLIBC_TUNABLES below), without which it pays for
-- fresh pages on every step. Compute bf16: grove's GEMMs round their
-- operands to bf16 and sum in f32 (Module:set_compute_dtype, oneDNN's bf16
-- matmul where the CPU has bf16 arithmetic); PyTorch's side runs under
-- torch.autocast("cpu", torch.bfloat16), which sends its matrix products and
-- convolutions through oneDNN in bf16.
--
-- Also reported: GFLOP/s of the matrix work and its fraction of the sgemm
-- peak measured in the grove process at the same thread count, peak memory of
-- a training step against what gradients and saved activations should take,
-- and a digest of the sampling step's output (equal digests: equal bits), so
-- that repetitions show the same bits for the same thread count.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local exe = arg[-1]
local B = dofile(here .. "/benchlib.lua")

local function usage(msg)
  error("bench/sana.lua: " .. msg .. "\nusage: grove bench/sana.lua [preset] [batch] [steps] [--reps N] " ..
        "[--threads 1,2] [--compute f32,bf16] [--skip-torch]", 0)
end

local function int_list(s, what)
  local out = {}
  for v in tostring(s):gmatch("[^,]+") do
    local n = tonumber(v)
    if not n or n < 1 or n % 1 ~= 0 then usage(what .. " takes positive integers separated by commas, got " .. s) end
    out[#out + 1] = n
  end
  if #out == 0 then usage(what .. " is empty") end
  return out
end

local o = { preset = "small", batch = 16, steps = 5, reps = 2, threads = nil, compute = { "f32" }, torch = true }
local positional = {}
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "--child" then o.child = true; i = i + 1
  elseif a == "--reps" then o.reps = int_list(arg[i + 1], "--reps")[1]; i = i + 2
  elseif a == "--threads" then o.threads = int_list(arg[i + 1], "--threads"); i = i + 2
  elseif a == "--compute" then
    o.compute = {}
    for v in tostring(arg[i + 1]):gmatch("[^,]+") do
      if v ~= "f32" and v ~= "bf16" then usage("--compute takes f32 and/or bf16, got " .. tostring(v)) end
      o.compute[#o.compute + 1] = v
    end
    i = i + 2
  elseif a == "--skip-torch" then o.torch = false; i = i + 1
  elseif a:sub(1, 2) == "--" then usage("unknown option " .. a)
  else positional[#positional + 1] = a; i = i + 1 end
end
o.preset = positional[1] or o.preset
if positional[2] then o.batch = int_list(positional[2], "batch")[1] end
if positional[3] then o.steps = int_list(positional[3], "steps")[1] end

local size = 32
local c = grove.nn.resolve_config(o.preset)
local L = c.text_len

-- forward FLOPs of the matrix work (2 per multiply-add; grove.nn.forward_flops)
local function forward_flops(batch) return grove.nn.forward_flops(c, batch, size, size, L) end

-- ---------------------------------------------------------------------------
-- child: grove's side at GROVE_NUM_THREADS, one compute mode (--compute)
if o.child then
  local compute = o.compute[1]
  local batch = o.batch
  local model = grove.nn.Sana(o.preset, { seed = 0 })
  if compute == "bf16" then model:set_compute_dtype("bf16") end
  local xt, t, text, mask, target = B.flow_batch(c, batch, size)
  local out
  local function train_step()
    model:zero_grad()
    grove.mse_loss(model:forward(xt, t, text, mask), target):backward()
  end
  local function sample_step()
    out = grove.no_grad(function() return model:forward(xt, t, text, mask) end)
  end

  grove.collect()
  grove.reset_peak_memory()
  local base = grove.memory().live_bytes
  local train_s = B.best_time(train_step, 1.0, o.steps)
  local peak = grove.memory().peak_bytes - base
  local sample_s = B.best_time(sample_step, 0.5, o.steps)

  -- digest of the output's bits: a weighted sum in a fixed order
  local v = out:contiguous():view { -1 }:tolist()
  local digest = 0
  for k = 1, #v do digest = digest + v[k] * (k % 97 + 1) end

  -- sgemm peak now, on this thread count
  local n = 1024
  local a, bm = grove.randn { n, n }, grove.randn { n, n }
  local gemm_s = B.best_time(function() return a:matmul(bm) end, 0.3, 5)

  -- memory expected: gradients plus the activations the tape keeps. Per block
  -- and token, about 10·D floats on the attention side (modulated input, q/k/v
  -- before and after their norms, attention output, cross-attention input and
  -- query) and 7·H on the Mix-FFN side (inputs of the 1×1 and depthwise convs,
  -- SiLU and GLU inputs), plus the cross-attention probabilities (heads·L).
  local T = batch * (size / c.patch_size) ^ 2
  local expected = model:num_parameters() * 4 + 4 * c.depth * T * (10 * c.width + 7 * c.hidden + c.cross_heads * L)
  print(string.format("RESULT train_best_ms=%.3f sample_best_ms=%.3f sgemm_gflops=%.2f peak_live_mb=%.1f " ..
                      "expected_mb=%.1f hwm_mb=%.1f digest=%.17g params=%d blas=%s",
                      train_s * 1e3, sample_s * 1e3, 2 * n ^ 3 / gemm_s / 1e9, peak / 2 ^ 20, expected / 2 ^ 20,
                      (B.proc_status("VmHWM") or 0) / 2 ^ 20, digest, model:num_parameters(),
                      (grove.blas_info():gsub("%s", "_"))))
  return
end

-- ---------------------------------------------------------------------------
-- parent: interleaved processes, then the table
local blas = grove.blas_info()
local core = blas:match("OpenBLAS core (%S+)")
local python = os.getenv("GROVE_TORCH_PYTHON") or "/usr/bin/python3"
local KEEP_MALLOC = "GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"
local threads_list = o.threads or { grove.num_threads() }
local q = B.quote

print(string.format("bench/sana.lua: %s; %s; preset %s (depth %d, width %d), batch %d, latent %dx%dx%d, caption %d tokens (half padding)",
  os.date("!%Y-%m-%d %H:%M UTC"), blas, o.preset, c.depth, c.width, o.batch, size, size, c.in_channels, L))
print("PyTorch: " .. python .. " tests/reference/bench_torch.py with " .. (core and ("OPENBLAS_CORETYPE=" .. core .. " ") or "") ..
      KEEP_MALLOC)
print("load average at start: " .. B.loadavg())

local cfg_path = os.tmpname()
local f = assert(io.open(cfg_path, "w"))
f:write(grove.nn._encode_config(c))
f:close()

local cells, order = {}, {}
local function cell(th, compute)
  local key = th .. "/" .. compute
  if not cells[key] then
    cells[key] = { threads = th, compute = compute, grove = {}, torch = {} }
    order[#order + 1] = key
  end
  return cells[key]
end

local failures = {}
-- runs one side's process; its RESULT fields go to list, a failure to failures
local function measure(side, th, compute, cmd, list, rep)
  local out, status = B.sh(cmd)
  local r = out:match("RESULT ([^\n]*)")
  if status ~= 0 or not r then
    failures[#failures + 1] = string.format("%s %d threads %s: status %s: %s", side, th, compute, tostring(status),
                                            out:sub(1, 400))
    return
  end
  local fields = {}
  for kk, vv in r:gmatch("(%S+)=(%S+)") do fields[kk] = vv end
  list[#list + 1] = fields
  print(string.format("-- rep %d, %d threads, %s, %s: train %s ms, sample %s ms%s (load %s)", rep, th, compute, side,
                      fields.train_best_ms, fields.sample_best_ms, fields.digest and (", digest " .. fields.digest) or "",
                      B.loadavg()))
end
for rep = 1, o.reps do
  for _, th in ipairs(threads_list) do
    for _, compute in ipairs(o.compute) do
      local k = cell(th, compute)
      measure("grove", th, compute, string.format("GROVE_NUM_THREADS=%d %s %s/sana.lua --child %s %d %d --compute %s",
        th, q(exe), q(here), q(o.preset), o.batch, o.steps, compute), k.grove, rep)
      if o.torch then
        measure("torch", th, compute, string.format("env %s%s OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d %s " ..
          "%s/../tests/reference/bench_torch.py --config %s --batch %d --threads %d --steps %d --size %d --text-len %d --dtype %s",
          core and ("OPENBLAS_CORETYPE=" .. core .. " ") or "", KEEP_MALLOC, th, th, q(python), q(here), q(cfg_path), o.batch,
          th, o.steps, size, L, compute), k.torch, rep)
      end
      io.stdout:flush()
    end
  end
end
os.remove(cfg_path)

local function best(list, key)
  local b
  for _, r in ipairs(list) do
    local v = tonumber(r[key])
    if v and (not b or v < b) then b = v end
  end
  return b
end
local function max_of(list, key)
  local b
  for _, r in ipairs(list) do
    local v = tonumber(r[key])
    if v and (not b or v > b) then b = v end
  end
  return b
end

local fl = forward_flops(o.batch)
print()
print("| threads | compute | step | grove ms | torch ms | torch / grove | grove GFLOP/s | of sgemm peak | n (grove, torch) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for _, key in ipairs(order) do
  local k = cells[key]
  local peak = max_of(k.grove, "sgemm_gflops")
  for _, step in ipairs { { "train", "train_best_ms", 3 * fl }, { "sample", "sample_best_ms", fl } } do
    local gms, tms = best(k.grove, step[2]), best(k.torch, step[2])
    local gflops = gms and step[3] / (gms / 1e3) / 1e9
    print(string.format("| %d | %s | %s | %s | %s | %s | %s | %s | %d, %d |", k.threads, k.compute, step[1],
      gms and string.format("%.1f", gms) or "-", tms and string.format("%.1f", tms) or "-",
      (gms and tms) and string.format("%.2fx", tms / gms) or "-", gflops and string.format("%.1f", gflops) or "-",
      (gflops and peak) and string.format("%.0f%% of %.0f", 100 * gflops / peak, peak) or "-", #k.grove, #k.torch))
  end
end
print()
for _, key in ipairs(order) do
  local k = cells[key]
  local digests = {}
  for _, r in ipairs(k.grove) do digests[#digests + 1] = r.digest end
  local g1 = k.grove[1]
  if g1 then
    print(string.format("%d threads, %s: sampling output digests %s; peak live bytes of a training step above the model %s MB (expected %s MB: gradients + saved activations); peak resident %s MB",
      k.threads, k.compute, table.concat(digests, ", "), g1.peak_live_mb, g1.expected_mb, g1.hwm_mb))
  end
end
print("load average at end: " .. B.loadavg())
for _, msg in ipairs(failures) do print("FAILED " .. msg) end
if #failures > 0 then os.exit(1) end
