-- The CUDA backend against the CPU, op by op, in the manner of ggml's
-- test-backend-ops: every case of backend_cases/*.lua runs on CPU inputs and
-- on CUDA copies of the same values; each output, and with grad = true each
-- input's gradient under the same random output weighting, must agree in
-- normalised squared error Σ(a − b)² / Σb² (b the CPU result). One line per
-- case: "OK|FAIL  <nse>  <name>". Without a CUDA device the file is one skip.
local spec = require "spec"
local grove = grove or require "grove"

local here = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "tests/lua"
local DEFAULT_TOL = 1e-7

-- Whether CUDA tensors can be made here, and why not.
local function cuda_ready()
  if not grove.cuda or not grove.cuda.device_count then return false, "this grove has no grove.cuda" end
  local ok, n = pcall(grove.cuda.device_count)
  if not ok then return false, tostring(n) end
  if n == 0 then return false, "grove.cuda.device_count() == 0" end
  return true
end

local function to_cpu(t)
  if t:device() == "cpu" then return t end
  return t:cpu()
end

-- The values of a tensor on any device, flat row-major, as doubles.
local function values(t)
  t = to_cpu(t:detach())
  if t:dtype() ~= "f32" then t = t:float() end
  if t:dim() == 0 then return { t:item() } end
  return t:contiguous():view({ -1 }):tolist()
end

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function shape_str(s) return "[" .. table.concat(s, ",") .. "]" end

-- Σ(a − b)² / Σb²; NaN where the CPU has NaN counts as agreement only when
-- the GPU has NaN there too. 0 when both are all zero.
local function nse(got, want)
  if #got ~= #want then return math.huge end
  local num, den = 0, 0
  for i = 1, #want do
    local a, b = got[i], want[i]
    if b ~= b or a ~= a then
      if not (a ~= a and b ~= b) then return math.huge end
    else
      num = num + (a - b) * (a - b)
      den = den + b * b
    end
  end
  if den == 0 then return num == 0 and 0 or math.huge end
  return num / den
end

-- fn's results as a list (an op may return several tensors, or a table).
local function as_list(...)
  local first = ...
  if type(first) == "table" and getmetatable(first) == nil then return first end
  return { ... }
end

local function load_cases()
  local cases = {}
  local p = io.popen('ls "' .. here .. '"/backend_cases/*.lua 2>/dev/null')
  for f in p:lines() do
    local list = dofile(f)
    for _, c in ipairs(list) do
      c.file = f:match("[^/]*$")
      cases[#cases + 1] = c
    end
  end
  p:close()
  return cases
end

-- Runs one case; returns the worst nse and nil, or nil and an error.
local function run_case(c, seed)
  grove.manual_seed(seed)
  local cpu_in, gpu_in = {}, {}
  for i, desc in ipairs(c.inputs) do
    local t = type(desc) == "function" and desc() or grove.randn(desc)
    t = t:detach()
    local g = grove.no_grad(function() return t:cuda() end)
    if c.grad and t:dtype() == "f32" and not (c.nograd and c.nograd[i]) then
      t:requires_grad_(true)
      g:requires_grad_(true)
    end
    cpu_in[i], gpu_in[i] = t, g
  end
  local n = #c.inputs
  local want = as_list(c.fn(unpack(cpu_in, 1, n)))
  local ok, got = pcall(function() return as_list(c.fn(unpack(gpu_in, 1, n))) end)
  if not ok then return nil, "cuda: " .. tostring(got) end
  if #got ~= #want then return nil, string.format("%d outputs on cuda, %d on cpu", #got, #want) end
  local worst = 0
  for i = 1, #want do
    if got[i]:device() ~= "cuda" then return nil, "output " .. i .. " is on " .. got[i]:device() end
    if not same_shape(got[i]:shape(), want[i]:shape()) then
      return nil, string.format("output %d: shape %s on cuda, %s on cpu", i, shape_str(got[i]:shape()),
                                shape_str(want[i]:shape()))
    end
    if got[i]:dtype() ~= want[i]:dtype() then
      return nil, string.format("output %d: %s on cuda, %s on cpu", i, got[i]:dtype(), want[i]:dtype())
    end
    worst = math.max(worst, nse(values(got[i]), values(want[i])))
  end
  if not c.grad then return worst end

  -- the same random weighting W of every differentiable output on both sides
  local seeds_cpu, seeds_gpu, outs_cpu, outs_gpu = {}, {}, {}, {}
  for i = 1, #want do
    if want[i].requires_grad then
      local W = grove.randn(want[i]:shape())
      outs_cpu[#outs_cpu + 1], seeds_cpu[#seeds_cpu + 1] = want[i], W
      outs_gpu[#outs_gpu + 1], seeds_gpu[#seeds_gpu + 1] = got[i], W:cuda()
    end
  end
  if #outs_cpu == 0 then return nil, "grad = true but no output requires grad" end
  local function backward(outs, seeds)
    if #outs == 1 then return outs[1]:backward(seeds[1]) end
    local total
    for i = 1, #outs do
      local s = (outs[i] * seeds[i]):sum()
      total = total and total + s or s
    end
    total:backward()
  end
  backward(outs_cpu, seeds_cpu)
  ok, got = pcall(backward, outs_gpu, seeds_gpu)
  if not ok then return nil, "cuda backward: " .. tostring(got) end
  for i = 1, n do
    local a, b = gpu_in[i].grad, cpu_in[i].grad
    if (a == nil) ~= (b == nil) then
      return nil, string.format("input %d: gradient %s on cuda, %s on cpu", i, a and "present" or "missing",
                                b and "present" or "missing")
    end
    if a then worst = math.max(worst, nse(values(a), values(b))) end
  end
  return worst
end

spec.describe("backend ops", function()
  local ready, why = cuda_ready()
  if not ready then
    spec.skip("no CUDA device (" .. why .. ")")
    return
  end
  for idx, c in ipairs(load_cases()) do
    spec.it(c.file .. ": " .. c.name, function()
      local tol = c.tol or DEFAULT_TOL
      local ok, worst, err = pcall(run_case, c, c.seed or idx)
      if not ok then worst, err = nil, worst end
      if worst and worst <= tol then
        io.write(string.format("OK    %.2e  %s\n", worst, c.name))
      else
        io.write(string.format("FAIL  %s  %s%s\n", worst and string.format("%.2e", worst) or "   -    ", c.name,
                               err and ("  (" .. tostring(err):gsub("\n.*", "") .. ")") or ""))
        error(err or string.format("normalised squared error %.3g exceeds %.3g", worst, tol))
      end
      grove.collect()
    end)
  end
end)
