-- gemm_bf16.lua — the bf16 mixed-precision GEMM (grove.matmul_bf16: bf16
-- operands, f32 sums) against grove's f32 GEMM and PyTorch 1.13's f32 and
-- bf16 matmul (Debian's python3-torch through bench/torch_ops.py gemm, its
-- bf16 matmul going through oneDNN), on the GEMMs of the real-size models:
-- SANA1.5 1.6B at 1024² with CFG (2048 tokens, width 2240, Mix-FFN 5600),
-- Gemma-2-2B on a 300-token prompt (width 2304, MLP 9216), and a square
-- 2048³. grove's bf16 runs both paths: oneDNN's bf16 matmul (where the CPU
-- has bf16 arithmetic and the build has oneDNN) and the reference (rounded
-- operands, then the f32 sgemm). Times are the best call of >= 3 and >=
-- min_seconds; PyTorch runs after grove in a child process with the same
-- thread count and OpenBLAS core. Asserts nothing.
--
--   grove bench/gemm_bf16.lua [min_seconds]   (default 1)
local dir = (arg and arg[0] or ""):match("^(.*)/") or "."
local B = dofile(dir .. "/benchlib.lua")
local min_time = tonumber(arg and arg[1]) or 1
local threads = grove.num_threads()
local python = os.getenv("GROVE_BENCH_PYTHON") or "/usr/bin/python3"

local shapes = {
  { 2048, 2240, 2240, "SANA 1.6B: q, k, v, out (2048 tokens)" },
  { 2048, 2240, 11200, "SANA 1.6B: Mix-FFN 1×1 in" },
  { 2048, 5600, 2240, "SANA 1.6B: Mix-FFN 1×1 out" },
  { 300, 2304, 9216, "Gemma-2-2B: MLP gate/up (300 tokens)" },
  { 300, 9216, 2304, "Gemma-2-2B: MLP down" },
  { 2048, 2048, 2048, "square" },
}

print(string.format("gemm_bf16: %s; %d threads, %s", os.date("!%Y-%m-%d %H:%M UTC"), threads, grove.blas_info()))
print(string.format("CPU bf16 arithmetic (cpuid): %s; oneDNN bf16 GEMM: %s; load average %s",
                    tostring(grove.cpu_has_bf16()), grove.gemm_bf16_dnnl_available() and "used" or "not available",
                    B.loadavg()))

local function gflops(s, t) return t and 2 * s[1] * s[2] * s[3] / t / 1e9 end
local res = {}
for i, s in ipairs(shapes) do
  local a, b = grove.randn { s[1], s[2] }, grove.randn { s[2], s[3] }
  local r = {}
  r.f32 = B.best_time(function() grove.matmul(a, b):free() end, min_time, 3)
  grove.set_gemm_bf16_dnnl(false)
  r.ref = B.best_time(function() grove.matmul_bf16(a, b):free() end, min_time, 3)
  grove.set_gemm_bf16_dnnl(true)
  if grove.gemm_bf16_dnnl_available() then
    r.dnnl = B.best_time(function() grove.matmul_bf16(a, b):free() end, min_time, 3)
  end
  res[i] = r
  a:free(); b:free()
  grove.collect()
end

local names = {}
for i, s in ipairs(shapes) do names[i] = s[1] .. "x" .. s[2] .. "x" .. s[3] end
local core = grove.blas_info():match("core (%S+)")
local env = core and ("OPENBLAS_CORETYPE=" .. core .. " ") or ""
local out, status = B.sh(string.format("env %s%s %s/torch_ops.py %d %s gemm %s", env, B.quote(python), B.quote(dir),
                                       threads, tostring(min_time), table.concat(names, ",")))
local torch = {}
for name, secs in out:gmatch("RESULT gemm_(%S+) (%S+)") do torch[name] = tonumber(secs) end
if status ~= 0 then print("PyTorch did not run (status " .. tostring(status) .. "):\n" .. out) end

print("")
print("GFLOP/s (higher is better); the last two columns are ratios of times")
print("| GEMM (m×k×n) | what | grove f32 | grove bf16 reference | grove bf16 oneDNN | PyTorch f32 | PyTorch bf16 | grove bf16 / grove f32 | grove bf16 / PyTorch bf16 |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
local function f(v) return v and string.format("%.0f", v) or "—" end
for i, s in ipairs(shapes) do
  local r, n = res[i], names[i]
  local best16 = r.dnnl or r.ref
  local tf, tb = torch["f32_" .. n], torch["bf16_" .. n]
  print(string.format("| %s | %s | %s | %s | %s | %s | %s | %s | %s |", n, s[4], f(gflops(s, r.f32)), f(gflops(s, r.ref)),
                      f(gflops(s, r.dnnl)), f(gflops(s, tf)), f(gflops(s, tb)),
                      string.format("%.2fx", r.f32 / best16), tb and string.format("%.2fx", tb / best16) or "—"))
end
print("load average at the end: " .. B.loadavg())
