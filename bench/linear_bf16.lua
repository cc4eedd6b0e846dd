-- linear_bf16.lua — what a bf16 Linear pays per call for its weight, on
-- the GEMMs of SANA1.5 1.6B at 1024² with CFG (2048 tokens, width 2240):
-- the weight copied transposed and then rounded (what linear_bf16 did
-- before gemm_bf16 took transposed operands: matmul_bf16(x, w:t():contiguous())),
-- the f32 weight read transposed in place and rounded into scratch
-- (linear_bf16 now), and the weight stored bf16 (Module:to's weights =
-- "bf16": read as stored, no rounding pass). All three give the same
-- products. Times are the best call of >= 3 and >= min_seconds. Asserts
-- nothing.
--
--   grove bench/linear_bf16.lua [min_seconds]   (default 1)
local dir = (arg and arg[0] or ""):match("^(.*)/") or "."
local B = dofile(dir .. "/benchlib.lua")
local min_time = tonumber(arg and arg[1]) or 1

local shapes = {
  { 2048, 2240, 2240, "q, k, v, out" },
  { 2048, 2240, 11200, "Mix-FFN 1×1 in" },
  { 2048, 5600, 2240, "Mix-FFN 1×1 out" },
}
print(string.format("linear_bf16: %s; %d threads; oneDNN bf16 GEMM %s; load average %s",
                    os.date("!%Y-%m-%d %H:%M UTC"), grove.num_threads(),
                    grove.gemm_bf16_dnnl_available() and "used" or "not available", B.loadavg()))
print("| x (m×k) · wᵀ (k×n) | what | copy + round ms | in place ms | bf16-stored ms | GFLOP/s (copy / in place / stored) |")
print("| --- | --- | --- | --- | --- | --- |")
local g = grove.Generator(1)
for _, s in ipairs(shapes) do
  local m, k, n = s[1], s[2], s[3]
  local x, w = grove.randn({ m, k }, g), grove.randn({ n, k }, g)
  local wh = w:bf16()
  local copy = B.best_time(function() grove.matmul_bf16(x, w:t():contiguous()):free() end, min_time, 3)
  local inplace = B.best_time(function() grove.linear_bf16(x, w):free() end, min_time, 3)
  local stored = B.best_time(function() grove.linear_bf16(x, wh):free() end, min_time, 3)
  local gf = 2 * m * k * n / 1e9
  print(string.format("| %d×%d×%d | %s | %.1f | %.1f | %.1f | %.0f / %.0f / %.0f |", m, k, n, s[4], copy * 1e3,
                      inplace * 1e3, stored * 1e3, gf / copy, gf / inplace, gf / stored))
end
print("load average at the end: " .. B.loadavg())
