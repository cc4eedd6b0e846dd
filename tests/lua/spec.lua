-- A small spec runner: describe/it blocks, assertions, and check_op, which
-- tests an op's forward against a float64 reference and its gradient against
-- central finite differences of that reference.
local ref = require "ref"

local spec = { passed = 0, failed = 0, skipped = 0, failures = {} }
local prefix = {}

function spec.describe(name, fn)
  prefix[#prefix + 1] = name
  fn()
  prefix[#prefix] = nil
end

function spec.it(name, fn)
  local full = table.concat(prefix, " ") .. ": " .. name
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    spec.passed = spec.passed + 1
  else
    spec.failed = spec.failed + 1
    spec.failures[#spec.failures + 1] = full
    io.stderr:write("FAIL ", full, "\n", tostring(err), "\n\n")
  end
end

-- A check that cannot run here (no GPU, say): printed, and counted apart
-- from passes and failures.
function spec.skip(reason)
  spec.skipped = spec.skipped + 1
  io.write("skip: ", reason, "\n")
end

function spec.run_file(path)
  local chunk, err = loadfile(path)
  if not chunk then
    spec.failed = spec.failed + 1
    io.stderr:write("FAIL loading ", path, ": ", err, "\n")
    return
  end
  local before = spec.passed + spec.failed
  local ok, e = xpcall(chunk, debug.traceback)
  if not ok then
    spec.failed = spec.failed + 1
    io.stderr:write("FAIL running ", path, ": ", tostring(e), "\n")
  end
  io.write(string.format("%-40s %d checks\n", path:match("[^/]*$"), spec.passed + spec.failed - before))
end

function spec.report()
  if #spec.failures > 0 then
    io.write("failed:\n")
    for _, f in ipairs(spec.failures) do io.write("  ", f, "\n") end
  end
  io.write(string.format("%d passed, %d failed%s\n", spec.passed, spec.failed,
                         spec.skipped > 0 and string.format(", %d skipped", spec.skipped) or ""))
  return spec.failed == 0
end

function spec.assert(cond, msg)
  if not cond then error(msg or "assertion failed", 2) end
end

function spec.eq(a, b, msg)
  if a ~= b then error((msg and msg .. ": " or "") .. "expected " .. tostring(b) .. ", got " .. tostring(a), 2) end
end

function spec.near(a, b, tol, msg)
  tol = tol or 1e-6
  if not (math.abs(a - b) <= tol * math.max(1, math.abs(b))) then
    error((msg and msg .. ": " or "") .. string.format("expected %.10g, got %.10g (tolerance %g)", b, a, tol), 2)
  end
end

-- fn must raise an error whose message contains pattern (plain text).
function spec.raises(fn, pattern)
  local ok, err = pcall(fn)
  if ok then error("expected an error" .. (pattern and (" containing '" .. pattern .. "'") or "") .. ", got none", 2) end
  err = tostring(err)
  if pattern and not err:find(pattern, 1, true) then
    error("expected an error containing '" .. pattern .. "', got: " .. err, 2)
  end
  return err
end

-- Runs work() once (to warm caches and lazy state), then `times` more
-- times, and requires live tensors, tape nodes and bytes not to have grown
-- since the first run. Compiled traces keep the objects they were
-- specialised on alive, and new traces may evict old ones, so garbage of
-- earlier spec files can be released while `work` runs: the JIT's traces are
-- flushed before each count, the counts after the first `times` runs may
-- fall below the first count but not grow (a leak of one object per run
-- grows them `times` over), and after a second `times` runs, with that
-- garbage gone, they must be exactly what they were.
function spec.no_leaks(work, times)
  local grove = grove or require "grove"
  times = times or 3
  local function settled()
    jit.flush()
    grove.collect()
    return grove.memory()
  end
  work()
  local m0 = settled()
  for _ = 1, times do work() end
  local m1 = settled()
  for _ = 1, times do work() end
  local m2 = settled()
  for _, k in ipairs{"live_tensors", "live_nodes", "live_bytes"} do
    if m1[k] > m0[k] then
      error(string.format("%s grew from %d to %d over %d runs", k, m0[k], m1[k], times), 2)
    end
    if m2[k] ~= m1[k] then
      error(string.format("%s went from %d to %d over %d more runs", k, m1[k], m2[k], times), 2)
    end
  end
end

-- Largest absolute difference of two ref arrays relative to max(1, max |b|).
local function rel_error(a, b)
  local worst, scale = 0, 1
  for i = 1, #b.data do
    local d = math.abs(a.data[i] - b.data[i])
    if d ~= d then d = math.huge end
    if d > worst then worst = d end
    if math.abs(b.data[i]) > scale then scale = math.abs(b.data[i]) end
  end
  return worst / scale
end
spec.rel_error = rel_error

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function shape_str(s) return "[" .. table.concat(s, ",") .. "]" end

-- Forward against ref(), then gradients against finite differences of
-- sum(ref() * W) in float64. Options documented in the header above.
function spec.check_op(o)
  local grove = grove or require "grove"
  grove.manual_seed(o.seed or 1)
  local inputs = {}
  for i, desc in ipairs(o.inputs) do
    local t
    if type(desc) == "function" then t = desc()
    else t = grove.randn(desc) end
    if not o.nograd or not o.nograd[i] then
      if t:dtype() == "f32" and not t.requires_grad then
        if not t.is_leaf then t = t:detach() end
        t:requires_grad_(true)
      end
    end
    inputs[i] = t
  end
  local out = o.fn(unpack(inputs, 1, #o.inputs))
  local refs = {}
  for i, t in ipairs(inputs) do refs[i] = ref.from_tensor(t) end
  local expect = o.ref(unpack(refs, 1, #o.inputs))
  local got = ref.from_tensor(out)
  if not same_shape(got.shape, expect.shape) then
    error("forward shape " .. shape_str(got.shape) .. ", reference " .. shape_str(expect.shape), 2)
  end
  local fe = rel_error(got, expect)
  if fe > (o.fwd_tol or 1e-5) then
    error(string.format("forward error %.3g exceeds %.3g", fe, o.fwd_tol or 1e-5), 2)
  end
  if o.no_backward then return end
  -- a random output weighting makes every output element matter
  local W = grove.randn(out:shape())
  out:backward(W)
  local Wr = ref.from_tensor(W)
  local function objective()
    local y = o.ref(unpack(refs, 1, #o.inputs))
    local s = 0
    for k = 1, #y.data do s = s + y.data[k] * Wr.data[k] end
    return s
  end
  local h = o.h or 1e-6
  for i, t in ipairs(inputs) do
    if not (o.nograd and o.nograd[i]) and t.requires_grad then
      local g = t.grad
      if not g then error("input " .. i .. " received no gradient", 2) end
      local gr = ref.from_tensor(g)
      if not same_shape(gr.shape, refs[i].shape) then
        error("gradient " .. i .. " has shape " .. shape_str(gr.shape) .. ", input " .. shape_str(refs[i].shape), 2)
      end
      local num = ref.new(refs[i].shape, 0)
      local X = refs[i].data
      for k = 1, #X do
        local x0 = X[k]
        X[k] = x0 + h; local fp = objective()
        X[k] = x0 - h; local fm = objective()
        X[k] = x0
        num.data[k] = (fp - fm) / (2 * h)
      end
      local ge = rel_error(gr, num)
      if ge > (o.grad_tol or 1e-3) then
        error(string.format("gradient of input %d: error %.3g exceeds %.3g", i, ge, o.grad_tol or 1e-3), 2)
      end
    end
  end
end

-- A new empty temporary folder (the caller removes it).
function spec.tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("*l"); p:close()
  return d
end

-- Output and exit status of a shell command, stderr included.
function spec.run(cmd)
  local p = io.popen(cmd .. ' 2>&1; echo "__status=$?"')
  local out = p:read("*a"); p:close()
  return out:gsub("__status=%d+%s*$", ""), tonumber(out:match("__status=(%d+)%s*$"))
end

-- A file's bytes; and writing bytes to a file.
function spec.read_all(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function spec.write_all(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

-- The shared fixtures folder (or its subfolder sub): $GROVE_FIXTURES, else
-- ../shared/fixtures beside the source tree; nil when absent (the caller skips).
-- Where the shared fixtures are looked for ($GROVE_FIXTURES, else
-- ../shared/fixtures beside the checkout), whether or not they are there.
function spec.fixture_path(sub)
  local base = os.getenv("GROVE_FIXTURES")
  if not base or base == "" then
    local grove = grove or require "grove"
    base = (grove.text.repo_root() or "./") .. "../shared/fixtures"
  end
  return sub and (base .. "/" .. sub) or base
end

function spec.fixtures(sub)
  local dir = spec.fixture_path(sub)
  local f = io.open(dir, "rb") -- a folder opens on Linux
  if not f then return nil end
  f:close()
  return dir
end

-- The values of a list joined by commas (for comparing block lists).
function spec.join(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = tostring(v) end
  return table.concat(out, ",")
end

-- The largest absolute difference of two tensors.
function spec.max_diff(a, b) return (a - b):abs():max():item() end

-- A module's parameters by name.
function spec.params(m)
  local out = {}
  for _, np in ipairs(m:named_parameters()) do out[np[1]] = np[2] end
  return out
end

return spec
