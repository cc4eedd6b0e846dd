-- Resumable stages for long jobs (recipes/pipeline.lua): each stage works in
-- its own folder RUN/<stage>/ and ends by writing its manifest
-- (manifest.lua: what it made and measured, a Lua table) and then its done
-- marker (DONE), each written to a temporary file and renamed, so a stage
-- interrupted at any point is not done. A later run skips a done stage whose
-- options are unchanged and loads its manifest; a stage that runs starts
-- from an empty folder, and every stage after it runs again, since its
-- inputs changed.
--
--   local pipeline = require "grove.pipeline"
--   local run = pipeline.new { dir = "runs/quick", from = nil, log = print }
--   local m = run:stage("base", { steps = 1500 }, function(dir) ...; return { loss = 0.1 } end)
--   -- m: the manifest (from this run or from disk); m.dir, m.seconds, m.cpu_seconds, m.skipped
local pipeline = {}

-- Lua source for a plain value: nil, booleans, numbers, strings, and tables
-- of them (no cycles, no functions). Keys are sorted, so equal values give
-- equal text.
function pipeline.serialize(v, indent)
  indent = indent or ""
  local t = type(v)
  if t == "nil" or t == "boolean" then return tostring(v)
  elseif t == "number" then
    if v ~= v then return "0/0" end
    if v == math.huge then return "math.huge" elseif v == -math.huge then return "-math.huge" end
    if v % 1 == 0 and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
    return string.format("%.17g", v)
  elseif t == "string" then return string.format("%q", v)
  elseif t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      if type(a) == type(b) then return a < b end
      return type(a) == "number"
    end)
    local inner = indent .. "  "
    local out = {}
    for _, k in ipairs(keys) do
      local key
      if type(k) == "string" and k:match("^[%a_][%w_]*$") then key = k
      elseif type(k) == "string" or type(k) == "number" then key = "[" .. pipeline.serialize(k) .. "]"
      else error("pipeline.serialize: a key of type " .. type(k), 2) end
      out[#out + 1] = inner .. key .. " = " .. pipeline.serialize(v[k], inner)
    end
    if #out == 0 then return "{}" end
    return "{\n" .. table.concat(out, ",\n") .. ",\n" .. indent .. "}"
  end
  error("pipeline.serialize: cannot store a " .. t, 2)
end

local files = require "grove.files"
-- Writes text to path through path.tmp and a rename (grove.files).
pipeline.write_atomic = files.write_atomic

-- The value stored by pipeline.serialize in a file (nil when unreadable).
function pipeline.load(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  local chunk = loadstring("return " .. text, "=" .. path)
  if not chunk then return nil end
  setfenv(chunk, { math = { huge = math.huge } })
  local ok, v = pcall(chunk)
  return ok and v or nil
end

local exists = files.exists
pipeline.exists = exists

local Run = {}
Run.__index = Run

-- opts: dir (the run folder), stages (names in order: needed to check
-- `from`), from (a stage name: it and every later stage run again), log
-- (default print), clock (default os.time; grove passes grove.now).
function pipeline.new(opts)
  local r = setmetatable({ dir = opts.dir, stages = opts.stages, from = opts.from, log = opts.log or print,
                           clock = opts.clock or os.time, dirty = false, done = {} }, Run)
  if r.from and r.stages then
    local known = false
    for _, s in ipairs(r.stages) do known = known or s == r.from end
    if not known then
      error("pipeline: --from " .. r.from .. ": no such stage (stages: " .. table.concat(r.stages, ", ") .. ")", 0)
    end
  end
  os.execute("mkdir -p '" .. r.dir .. "'")
  return r
end

-- Whether stage `name` is done on disk with these options.
function Run:is_done(name, options)
  local dir = self.dir .. "/" .. name
  if not exists(dir .. "/DONE") then return false, "not done" end
  local m = pipeline.load(dir .. "/manifest.lua")
  if not m then return false, "manifest unreadable" end
  if pipeline.serialize(m.options) ~= pipeline.serialize(options) then return false, "options changed", m end
  return true, nil, m
end

-- Runs fn(dir) for stage `name` unless it is done with the same options
-- (and no earlier stage ran, and `from` does not name it or an earlier
-- stage). fn returns the manifest (a plain table); options, seconds and
-- stage are added. Returns the manifest.
function Run:stage(name, options, fn)
  local dir = self.dir .. "/" .. name
  if self.from == name then self.dirty = true end
  if not self.dirty then
    local ok, why, m = self:is_done(name, options)
    if ok then
      m.dir, m.skipped = dir, true
      self.log(string.format("== stage %s: done in an earlier run (%.0f s), skipped (%s)", name, m.seconds or 0, dir))
      self.done[name] = m
      return m
    end
    if why == "options changed" then self.log("== stage " .. name .. ": its options changed since the last run") end
  end
  self.dirty = true -- every later stage depends on this one
  os.execute("rm -rf '" .. dir .. "'")
  os.execute("mkdir -p '" .. dir .. "'")
  self.log(string.format("== stage %s (%s)", name, dir))
  local t0, c0 = self.clock(), os.clock()
  local m = fn(dir) or {}
  -- cpu_seconds: processor time of all threads (on a busy machine the wall
  -- time says little about the work)
  m.options, m.stage, m.seconds, m.cpu_seconds = options, name, self.clock() - t0, os.clock() - c0
  pipeline.write_atomic(dir .. "/manifest.lua", pipeline.serialize(m) .. "\n")
  pipeline.write_atomic(dir .. "/DONE", string.format("%s done in %.1f s\n", name, m.seconds)) -- last
  m.dir, m.skipped = dir, false
  self.log(string.format("== stage %s: done in %.0f s", name, m.seconds))
  self.done[name] = m
  return m
end

return pipeline
