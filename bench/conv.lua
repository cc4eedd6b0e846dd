-- conv.lua — forward time of conv2d on DC-AE-shaped convolutions (SANA's
-- dc-ae-f32c32 autoencoder: 3x3 stride 1 and 2, 5x5 depthwise, grouped 1x1)
-- in grove against PyTorch (Debian's python3-torch through
-- bench/torch_conv.py) at the same thread count. The two are interleaved:
-- `rounds` rounds of grove's cases then PyTorch's process, the best call
-- of all rounds counting for each, so a burst of load elsewhere on the
-- machine hits both sides alike. Prints one table; asserts nothing.
--
-- Where the build has oneDNN, grove's general forward is also timed with it
-- turned off (the im2col + sgemm path). Every case is also timed as
-- grove.conv2d_bf16 (bf16 operands, f32 sums: oneDNN's bf16 convolution
-- where the CPU multiplies bf16, else the f32 convolution of the rounded
-- operands), the bf16 column.
--
-- Usage: grove bench/conv.lua [min_seconds_per_case] [rounds] [case,...]
--        (defaults 0.5, 2, all cases)
-- The interpreter for the baseline is $GROVE_BENCH_PYTHON or /usr/bin/python3.
local dir = (arg and arg[0] or ""):match("^(.*)/") or "."
local B = dofile(dir .. "/benchlib.lua")

local min_time = tonumber(arg and arg[1]) or 0.5
local rounds = tonumber(arg and arg[2]) or 2
local only = arg and arg[3]
local threads = grove.num_threads()
local python = os.getenv("GROVE_BENCH_PYTHON") or "/usr/bin/python3"

-- name, B, H, W, Cin, Cout, kh, kw, stride, padding, groups
local all = {
  { "3x3_128@256", 1, 256, 256, 128, 128, 3, 3, 1, 1, 1 },
  { "3x3_256@128", 1, 128, 128, 256, 256, 3, 3, 1, 1, 1 },
  { "3x3_512@64", 1, 64, 64, 512, 512, 3, 3, 1, 1, 1 },
  { "3x3s2_128@256", 1, 256, 256, 128, 256, 3, 3, 2, 1, 1 },
  { "dw5x5_1536@32", 1, 32, 32, 1536, 1536, 5, 5, 1, 2, 1536 },
  { "dw3x3_1536@32", 1, 32, 32, 1536, 1536, 3, 3, 1, 1, 1536 },
  { "g1x1_1536@32", 1, 32, 32, 1536, 1536, 1, 1, 1, 0, 48 },
  { "1x1_512@64", 1, 64, 64, 512, 512, 1, 1, 1, 0, 1 },
}
local cases = {}
for _, c in ipairs(all) do
  if not only or ("," .. only .. ","):find("," .. c[1] .. ",", 1, true) then cases[#cases + 1] = c end
end

local function flops(c)
  local _, b, h, w, cin, cout, kh, kw, s, p, g = unpack(c)
  local ho, wo = math.floor((h + 2 * p - kh) / s) + 1, math.floor((w + 2 * p - kw) / s) + 1
  return 2 * b * ho * wo * cout * (cin / g) * kh * kw
end

-- grove's default (oneDNN for the general forward where the build has
-- it) into best, and im2col + sgemm into best_im2col when that differs.
local dnnl = grove.conv_dnnl_available()
local function run_grove(best, best_im2col, best_bf16)
  grove.manual_seed(0)
  for _, c in ipairs(cases) do
    local name, b, h, w, cin, cout, kh, kw, s, p, g = unpack(c)
    local x = grove.randn{ b, h, w, cin }
    local wt, bias = grove.randn{ cout, cin / g, kh, kw } * 0.05, grove.randn{ cout }
    local function time()
      return B.best_time(function() grove.conv2d(x, wt, bias, { stride = s, padding = p, groups = g }):free() end,
                         min_time, 5)
    end
    local t = time()
    if not best[name] or t < best[name] then best[name] = t end
    local tb = B.best_time(function()
      grove.conv2d_bf16(x, wt, bias, { stride = s, padding = p, groups = g }):free()
    end, min_time, 5)
    if not best_bf16[name] or tb < best_bf16[name] then best_bf16[name] = tb end
    if dnnl then
      grove.set_conv_dnnl(false)
      local ok, ti = pcall(time)
      grove.set_conv_dnnl(true)
      if not ok then error(ti, 0) end
      if not best_im2col[name] or ti < best_im2col[name] then best_im2col[name] = ti end
    end
    x:free(); wt:free(); bias:free()
    grove.collect()
  end
end

-- PyTorch takes every output from malloc, and glibc serves large blocks
-- with fresh mmap'd pages (a page fault per 4 KiB; see bench/ops.lua):
-- glibc is told to keep freed memory, so the table compares kernels, as
-- grove's caching allocator does for grove.
local KEEP_MALLOC = "GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"

local function run_torch(best, layout)
  local spec = {}
  for _, c in ipairs(cases) do spec[#spec + 1] = table.concat(c, ":") end
  local cmd = string.format("env %s '%s' '%s/torch_conv.py' %d %g '%s' 2>&1; echo \"EXIT $?\"", KEEP_MALLOC, python,
                            dir, threads, min_time, table.concat(spec, ","))
  local p = io.popen(cmd)
  local out = p and p:read("*a") or ""
  if p then p:close() end
  local header
  for line in out:gmatch("[^\n]+") do
    local name, sec, lay = line:match("^RESULT (%S+) (%S+) (%S+)")
    if name then
      sec = tonumber(sec)
      if not best[name] or sec < best[name] then best[name], layout[name] = sec, lay end
    elseif not line:match("^EXIT ") then
      header = header or line
    end
  end
  return tonumber(out:match("EXIT (%d+)%s*$")), header
end

print(string.format("conv: forward time per call, grove vs PyTorch, %d threads each; %d interleaved rounds, "
                    .. "best call of >= 5 and >= %.2f s per round", threads, rounds, min_time))
print("grove: " .. grove.blas_info() .. (dnnl and "; general forward through oneDNN" or "; no oneDNN in this build"))
local g_best, i_best, b_best, t_best, layout, status, header = {}, {}, {}, {}, {}, nil, nil
for _ = 1, rounds do
  run_grove(g_best, i_best, b_best)
  status, header = run_torch(t_best, layout)
  if status ~= 0 then break end
end
if header then print("torch: " .. header .. ", " .. KEEP_MALLOC) end
print("ratio = torch time / grove time (above 1: grove is faster); im2col: grove with oneDNN turned off "
      .. "(the depthwise stride-1 and plain 1x1 cases never use it)")
print(string.format("bf16: grove.conv2d_bf16 through %s; bf16 ratio = grove f32 time / grove bf16 time",
                    grove.conv_bf16_dnnl_available() and "oneDNN's bf16 convolution"
                    or "the f32 convolution of bf16-rounded operands (no bf16 arithmetic or no oneDNN)"))
print("")
print(string.format("%-14s  %-34s  %9s  %9s  %9s  %9s  %-13s  %8s  %8s  %7s  %12s  %10s", "case",
                    "shape (NHWC in, weight)", "grove ms", "im2col ms", "bf16 ms", "torch ms", "torch layout",
                    "grove GF", "torch GF", "ratio", "im2col ratio", "bf16 ratio"))
for _, c in ipairs(cases) do
  local name, b, h, w, cin, cout, kh, kw, s, p, g = unpack(c)
  local shape = string.format("%dx%dx%d %dx%dx%dx%d s%d p%d g%d", h, w, cin, cout, cin / g, kh, kw, s, p, g)
  local gt, it, bt, tt = g_best[name], i_best[name], b_best[name], t_best[name]
  local function ms(t) return t and string.format("%.2f", t * 1e3) or "n/a" end
  print(string.format("%-14s  %-34s  %9s  %9s  %9s  %9s  %-13s  %8s  %8s  %7s  %12s  %10s", name, shape,
                      gt and ms(gt) or "error", ms(it), ms(bt), ms(tt), layout[name] or "n/a",
                      gt and string.format("%.1f", flops(c) / gt * 1e-9) or "",
                      tt and string.format("%.1f", flops(c) / tt * 1e-9) or "",
                      (gt and tt) and string.format("%.2f", tt / gt) or "n/a",
                      (it and tt) and string.format("%.2f", tt / it) or "n/a",
                      (gt and bt) and string.format("%.2f", gt / bt) or "n/a"))
end
if status ~= 0 then
  print("no PyTorch baseline: " .. python .. " bench/torch_conv.py exited with status " .. tostring(status))
end
