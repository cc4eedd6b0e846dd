-- The pipeline's equal-compute scratch stages, checked against a count made
-- here from grove.nn.forward_flops alone (3 forwards per training step, the
-- calibration's prompts × noise levels once through the grown model):
--   grove tests/pipeline/check_compute.lua RUN_DIR [PLAN_LOG]
-- RUN_DIR: a finished run (its manifests give the options and the steps the
-- scratch stages trained; loss.csv the steps they logged). PLAN_LOG: the
-- output of `recipes/pipeline.lua --plan` for the quick profile, whose
-- scratch lines must state the counts that follow from the sizes its other
-- lines state.
-- Prints "ok: ..." lines; exits 1 on the first mismatch.
local pipeline = require "grove.pipeline"
local run, plan_log = arg[1], arg[2]
if not run then error("usage: check_compute.lua RUN_DIR [PLAN_LOG]", 0) end

local function fail(msg) print("FAIL: " .. msg); os.exit(1) end
local size = 32 -- the shapes images the pipeline trains on
local function fwd(preset, depth, n)
  local c = grove.nn.resolve_config(preset)
  c.depth = depth
  return grove.nn.forward_flops(c, n, size, size)
end
-- the two step counts from the options
local function expected(o)
  local step = function(depth) return 3 * fwd(o.preset, depth, o.batch) end
  local grown = o.base_steps * step(o.base_depth) + o.grow_steps * step(o.grow_depth)
  local path = grown + fwd(o.preset, o.grow_depth, o.calib_prompts * o.calib_timesteps) + o.ft_steps * step(o.prune_depth)
  return math.floor(grown / step(o.grow_depth) + 0.5), math.floor(path / step(o.prune_depth) + 0.5)
end

local function manifest(stage)
  local m = pipeline.load(run .. "/" .. stage .. "/manifest.lua")
  if not m then fail("no manifest for stage " .. stage .. " in " .. run) end
  return m
end
local function logged_steps(stage)
  local n = -1 -- the header
  for _ in io.lines(run .. "/" .. stage .. "/loss.csv") do n = n + 1 end
  return n
end
local sp = manifest("scratch_pruned")
local o = sp.options
local want_scratch, want_pruned = expected(o)
for _, c in ipairs { { "scratch", want_scratch }, { "scratch_pruned", want_pruned } } do
  local m = manifest(c[1])
  if m.steps ~= c[2] then fail(string.format("%s trained %s steps; the compute-matched count is %d", c[1], tostring(m.steps), c[2])) end
  if logged_steps(c[1]) ~= c[2] then fail(string.format("%s logged %d steps, not %d", c[1], logged_steps(c[1]), c[2])) end
  print(string.format("ok: %s trained %d steps, the compute-matched count", c[1], c[2]))
end

if plan_log then
  -- the quick profile's sizes as its own plan states them: the counts are
  -- recomputed from those, so the check follows the profile when it changes
  local text = assert(io.open(plan_log)):read("*a")
  local function num(pattern, what)
    local v = tonumber(text:match(pattern))
    if not v then fail("the plan log states no " .. what .. " (pattern " .. pattern .. ")") end
    return v
  end
  local quick = {
    preset = text:match("\n  base +([%w_]+), depth") or fail("the plan log names no preset"),
    base_depth = num("\n  base +[%w_]+, depth (%d+),", "base depth"),
    base_steps = num("\n  base +[%w_]+, depth %d+, (%d+) steps", "base steps"),
    batch = num("\n  base +[^\n]-, batch (%d+),", "batch"),
    grow_depth = num("\n  grow +[^\n]-: %d+ %-> (%d+) blocks", "grown depth"),
    grow_steps = num("\n  grow +[^\n]- blocks, then (%d+) steps", "grow steps"),
    calib_prompts = num("\n  prune +[^\n]- on (%d+) prompts", "calibration prompts"),
    calib_timesteps = num("\n  prune +[^\n]- prompts x (%d+) noise levels", "calibration noise levels"),
    prune_depth = num("\n  prune +[^\n]-: %d+ %-> (%d+) blocks", "pruned depth"),
    ft_steps = num("\n  finetune +(%d+) steps", "fine-tuning steps"),
  }
  local qs, qp = expected(quick)
  local s = text:match("\n  scratch +depth " .. quick.grow_depth .. " from scratch, (%d+) steps")
  local p = text:match("\n  scratch_pruned +depth " .. quick.prune_depth .. " from scratch, (%d+) steps")
  if tonumber(s) ~= qs or tonumber(p) ~= qp then
    fail(string.format("the quick plan says %s and %s scratch steps; the compute-matched counts are %d and %d",
      tostring(s), tostring(p), qs, qp))
  end
  print(string.format("ok: the quick profile's plan: scratch %d steps at depth %d, scratch_pruned %d at depth %d",
    qs, quick.grow_depth, qp, quick.prune_depth))
end
