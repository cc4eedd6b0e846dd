-- ops.lua — forward time of softmax, layer_norm (no affine) and a depthwise
-- 3x3 conv in grove against PyTorch (Debian's python3-torch, run through
-- bench/torch_ops.py) at the same thread count, on SANA-like sizes. Prints
-- one table; when PyTorch cannot be run, the table says so in its columns.
--
-- Usage: grove bench/ops.lua [min_seconds_per_op]   (default 0.3)
-- The interpreter for the baseline is $GROVE_BENCH_PYTHON or /usr/bin/python3
-- (Debian's torch serves Debian's python, not another python3 on PATH).
-- Asserts nothing.
local dir = (arg and arg[0] or ""):match("^(.*)/") or "."
local B = dofile(dir .. "/benchlib.lua")

local min_time = tonumber(arg and arg[1]) or 0.3
local threads = grove.num_threads()
local python = os.getenv("GROVE_BENCH_PYTHON") or "/usr/bin/python3"

-- The shapes must match bench/torch_ops.py.
local ops = {
  { name = "softmax", shape = "(16384, 300), dim -1", setup = function()
      local x = grove.randn{16 * 1024, 300}
      return function() return grove.softmax(x, -1) end
    end },
  { name = "layer_norm", shape = "(16384, 288), no affine", setup = function()
      local x = grove.randn{16 * 1024, 288}
      return function() return grove.layer_norm(x, nil, nil, 1e-6) end
    end },
  { name = "conv_dw3x3", shape = "(16,32,32,720) NHWC, pad 1, bias", setup = function()
      local C = 720
      local x = grove.randn{16, 32, 32, C}
      local w, b = grove.randn{C, 1, 3, 3}, grove.randn{C}
      return function() return grove.conv2d(x, w, b, {padding = 1, groups = C}) end
    end },
}

print(string.format("ops: forward time per call, grove vs PyTorch, %d threads each; best call of >= 5 and >= %.2f s",
                    threads, min_time))

-- grove first, so its figures stand even if the baseline fails.
local grove_s, grove_err = {}, {}
grove.manual_seed(0)
for _, op in ipairs(ops) do
  local ok, err = pcall(function()
    local f = op.setup()
    grove_s[op.name] = B.best_time(function() f():free() end, min_time, 5)
  end)
  if not ok then grove_err[op.name] = tostring(err) end
  grove.collect()
end

-- The baseline: torch_ops.py prints "RESULT name seconds layout" lines. It
-- runs twice: with glibc's malloc as installed, and with glibc told to keep
-- freed memory (no mmap, no trim). PyTorch's CPU tensors come straight from
-- malloc, and glibc serves big blocks (over 32 MiB always, smaller ones until
-- its threshold adapts) with fresh mmap'd pages: each call then pays a page
-- fault per 4 KiB of output, which on a VM can cost more than the kernel.
-- grove's caching allocator avoids that, so the second run is the
-- kernel-against-kernel comparison and the first what a user gets.
local KEEP_MALLOC = "GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"

local function run_torch(env)
  local res = { s = {}, layout = {}, lines = {} }
  local cmd = string.format("env %s '%s' '%s/torch_ops.py' %d %g 2>&1; echo \"EXIT $?\"", env, python, dir,
                            threads, min_time)
  local p = io.popen(cmd)
  local out = p and p:read("*a") or ""
  if p then p:close() end
  res.status = tonumber(out:match("EXIT (%d+)%s*$"))
  for line in out:gmatch("[^\n]+") do
    local name, sec, layout = line:match("^RESULT (%S+) (%S+) (%S+)")
    if name then
      res.s[name], res.layout[name] = tonumber(sec), layout
    elseif not line:match("^EXIT ") then
      res.lines[#res.lines + 1] = line
    end
  end
  return res
end

local torch_note
local plain = run_torch("")
for _, l in ipairs(plain.lines) do print("  torch: " .. l) end
local kept = { s = {}, layout = {}, lines = {} }
if plain.status == 0 then
  kept = run_torch(KEEP_MALLOC)
  for _, l in ipairs(kept.lines) do print("  torch, malloc kept warm: " .. l) end
elseif plain.status == 2 then
  torch_note = "no PyTorch baseline: " .. python .. " cannot import torch (apt install python3-torch)"
else
  torch_note = "no PyTorch baseline: " .. python .. " bench/torch_ops.py exited with status " .. tostring(plain.status)
end

local function ms(t) return t and string.format("%.3f", t * 1e3) or "n/a" end
local function layout_of(name)
  local a, b = plain.layout[name], kept.layout[name]
  if a and b and a ~= b then return a .. " / " .. b end
  return a or b or "n/a"
end
local function ratio(t, g) return (t and g) and string.format("%.2f", t / g) or "n/a" end
print("")
print("torch: Debian's PyTorch as installed; torch*: the same with " .. KEEP_MALLOC)
print("torch layout: the faster of those tried (torch / torch* when they differ)")
print("ratio = torch time / grove time (above 1: grove is faster)")
print("")
print(string.format("%-11s  %-33s  %9s  %9s  %9s  %-13s  %11s  %12s", "op", "shape", "grove ms", "torch ms",
                    "torch* ms", "torch layout", "torch/grove", "torch*/grove"))
for _, op in ipairs(ops) do
  local g, t, k = grove_s[op.name], plain.s[op.name], kept.s[op.name]
  print(string.format("%-11s  %-33s  %9s  %9s  %9s  %-13s  %11s  %12s", op.name, op.shape,
                      g and string.format("%.3f", g * 1e3) or "error", ms(t), ms(k),
                      layout_of(op.name), ratio(t, g), ratio(k, g)))
end
for _, op in ipairs(ops) do
  if grove_err[op.name] then print("grove " .. op.name .. " failed: " .. grove_err[op.name]) end
end
if torch_note then print(torch_note) end
