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

-- The baseline: torch_ops.py prints "RESULT name seconds layout" lines.
local torch_s, torch_layout, torch_note = {}, {}, nil
local cmd = string.format("'%s' '%s/torch_ops.py' %d %g 2>&1; echo \"EXIT $?\"", python, dir, threads, min_time)
local p = io.popen(cmd)
local out = p and p:read("*a") or ""
if p then p:close() end
local status = tonumber(out:match("EXIT (%d+)%s*$"))
for line in out:gmatch("[^\n]+") do
  local name, s, layout = line:match("^RESULT (%S+) (%S+) (%S+)")
  if name then
    torch_s[name], torch_layout[name] = tonumber(s), layout
  elseif not line:match("^EXIT ") then
    print("  " .. line)
  end
end
if status ~= 0 then
  torch_note = status == 2 and ("no PyTorch baseline: " .. python .. " cannot import torch (apt install python3-torch)")
    or ("no PyTorch baseline: " .. python .. " bench/torch_ops.py exited with status " .. tostring(status))
end

print("")
print(string.format("%-11s  %-34s  %10s  %10s  %-14s  %11s", "op", "shape", "grove ms", "torch ms",
                    "torch layout", "torch/grove"))
for _, op in ipairs(ops) do
  local g, t = grove_s[op.name], torch_s[op.name]
  print(string.format("%-11s  %-34s  %10s  %10s  %-14s  %11s", op.name, op.shape,
                      g and string.format("%.3f", g * 1e3) or "error",
                      t and string.format("%.3f", t * 1e3) or "n/a",
                      torch_layout[op.name] or "n/a",
                      (g and t) and string.format("%.2f", t / g) or "n/a"))
end
for _, op in ipairs(ops) do
  if grove_err[op.name] then print("grove " .. op.name .. " failed: " .. grove_err[op.name]) end
end
if torch_note then print(torch_note) end
