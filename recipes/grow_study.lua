-- The growth-vs-scratch study (SANA 1.5 §2): train a base model of depth N
-- on shapes, grow it to depth factor·N with every strategy and init, train
-- each grown model for the same number of steps as a depth-factor·N model
-- trained from scratch (same optimizer, data order and noise), and compare
-- loss against steps and wall time, the evaluator's scores, and the time each
-- run needs to reach the scratch model's final loss.
--   grove recipes/grow_study.lua [--base_depth 2 --factor 3 --steps 600 ...] [--help]
-- Writes OUT/report.md, OUT/results.csv, OUT/loss_steps.png, OUT/loss_time.png.
local args = require "grove.cli.args"

local spec = {
  { "preset", "string", "tiny", "model preset the depths apply to" },
  { "base_depth", "number", 2, "depth N of the base model" },
  { "factor", "number", 3, "grown depth = factor · N" },
  { "base_steps", "number", 600, "training steps of the base model" },
  { "steps", "number", 600, "training steps of every deep run (grown and scratch)" },
  { "batch", "number", 32, "images per step" },
  { "lr", "number", 1e-3, "learning rate" },
  { "optimizer", "string", "adamw", "optimizer of every run" },
  { "seed", "number", 1, "seed of models, data order and noise (the same for every run)" },
  { "strategies", "string", "partial,cyclic,block", "growth strategies, comma-separated" },
  { "inits", "string", "identity,random,noise", "inits of the grown blocks, comma-separated" },
  { "noise", "number", 0.02, "noise scale of the noise init" },
  { "eval_every", "number", 200, "evaluate every N steps (0: only at the end)" },
  { "eval_prompts", "number", 20, "prompts per category in each evaluation" },
  { "smooth", "number", 50, "steps in the moving average that decides 'reached the loss'" },
  { "out", "string", "runs/grow_study", "report folder" },
}
local o, rest = args.parse(arg, spec, { usage = "grove recipes/grow_study.lua [options]",
  description = "Growth vs training from scratch; see docs/growth.md." })
if not o then print(rest); return end

local train = grove.train
local N, M = o.base_depth, o.base_depth * o.factor
if N < 1 or o.factor < 2 or M % 1 ~= 0 then error("grow_study: base_depth >= 1 and an integer factor >= 2 are needed", 0) end
os.execute("mkdir -p '" .. o.out .. "'")
local function split(s)
  local out = {}
  for w in s:gmatch("[^,%s]+") do out[#out + 1] = w end
  return out
end

-- One training run with a clock that excludes evaluation; returns its record.
local function run(name, opts)
  local rec = { name = name, steps = {}, loss = {}, time = {}, evals = {} }
  local t0, paused = grove.now(), 0
  local function evaluate(state, step)
    local e0 = grove.now()
    local r = state.ema:apply(function()
      return train.evaluate(state.parts, { size = 32, seed = o.seed, eval_steps = 20, cfg = 4.5, eval_prompts = o.eval_prompts })
    end)
    rec.evals[#rec.evals + 1] = { step = step, time = e0 - t0 - paused, overall = r.overall, per = r.per_category }
    paused = paused + grove.now() - e0
  end
  local r = {
    preset = o.preset, steps = o.steps, batch = o.batch, lr = o.lr, optimizer = o.optimizer, seed = o.seed,
    out = o.out .. "/" .. name, eval = false, sample_every = 0, save_every = 1e9, log_every = 100,
    on_step = function(step, l, state)
      rec.steps[#rec.steps + 1] = step
      rec.loss[#rec.loss + 1] = l
      rec.time[#rec.time + 1] = grove.now() - t0 - paused
      if (o.eval_every > 0 and step % o.eval_every == 0) or step == (opts.steps or o.steps) then evaluate(state, step) end
    end,
  }
  for k, v in pairs(opts) do r[k] = v end
  print(string.format("== %s", name))
  train.run(r)
  rec.total_time = rec.time[#rec.time]
  return rec
end

-- moving average of the last `w` losses at each step
local function smoothed(loss, w)
  local out, acc = {}, 0
  for i, l in ipairs(loss) do
    acc = acc + l
    if i > w then acc = acc - loss[i - w] end
    out[i] = acc / math.min(i, w)
  end
  return out
end

-- 1. the base model
local base = run("base", { config = { depth = N }, steps = o.base_steps })
local base_parts = train.load_for_inference(o.out .. "/base/checkpoint.safetensors") -- EMA weights

-- 2. scratch at depth M
local records = { run("scratch", { config = { depth = M } }) }
local scratch = records[1]
local target = smoothed(scratch.loss, o.smooth)[#scratch.loss]

-- 3. every strategy × init
for _, strategy in ipairs(split(o.strategies)) do
  for _, init in ipairs(split(o.inits)) do
    local name = strategy .. "_" .. init
    local grown = grove.grow(base_parts.model, { strategy = strategy, depth = M, init = init, noise = o.noise, seed = o.seed })
    local both = grove.nn.Container { { "model", grown }, { "text", base_parts.text } }
    local path = o.out .. "/" .. name .. "_start.safetensors"
    train.save_weights(path, { both = both, model = grown, text_config = base_parts.text_config },
      { ["grove.grow"] = strategy .. "/" .. init })
    local rec = run(name, { init = path })
    rec.strategy, rec.init = strategy, init
    records[#records + 1] = rec
    os.remove(path)
  end
end

-- 4. the table: time to reach the scratch model's final (smoothed) loss
local rows = {}
for _, rec in ipairs(records) do
  local sm = smoothed(rec.loss, o.smooth)
  local reach
  for i = o.smooth, #sm do
    if sm[i] <= target then reach = i; break end
  end
  local last = rec.evals[#rec.evals] or { per = {} }
  rows[#rows + 1] = {
    name = rec.name, first_loss = rec.loss[1], final = sm[#sm], time = rec.total_time,
    reach_step = reach, reach_time = reach and rec.time[reach],
    overall = last.overall, single = last.per.single_object, colors = last.per.colors,
  }
end

local function fmt(v, f) return v and string.format(f or "%.3f", v) or "-" end
local lines = {
  "# Growth vs scratch",
  "",
  string.format("`grove recipes/grow_study.lua %s`", table.concat(arg, " ")),
  "",
  string.format("Preset %s; base depth %d trained %d steps (%.0f s); every deep run (depth %d) trains %d steps, batch %d, %s lr %g, seed %d.",
    o.preset, N, o.base_steps, base.total_time, M, o.steps, o.batch, o.optimizer, o.lr, o.seed),
  string.format("Target: the scratch model's final loss, %.4f (moving average over %d steps). Times exclude evaluation.", target, o.smooth),
  "",
  "| run | first loss | final loss | train s | reaches target at step | s | % of scratch time | % incl. base | overall | single | colors |",
  "|---|---|---|---|---|---|---|---|---|---|---|",
}
for _, r in ipairs(rows) do
  local pct = r.reach_time and 100 * r.reach_time / scratch.total_time
  local pct_base = r.reach_time and r.name ~= "scratch" and 100 * (r.reach_time + base.total_time) / scratch.total_time
  lines[#lines + 1] = string.format("| %s | %.4f | %.4f | %.0f | %s | %s | %s | %s | %s | %s | %s |", r.name, r.first_loss, r.final,
    r.time, r.reach_step or "not reached", fmt(r.reach_time, "%.0f"), fmt(pct, "%.0f%%"),
    r.name == "scratch" and "-" or fmt(pct_base, "%.0f%%"), fmt(r.overall), fmt(r.single), fmt(r.colors))
end
lines[#lines + 1] = ""
lines[#lines + 1] = "Evaluations (overall score by step):"
lines[#lines + 1] = ""
for _, rec in ipairs(records) do
  local parts = {}
  for _, e in ipairs(rec.evals) do parts[#parts + 1] = string.format("%d: %.3f", e.step, e.overall) end
  lines[#lines + 1] = string.format("- %s: %s", rec.name, table.concat(parts, ", "))
end
local report = table.concat(lines, "\n") .. "\n"
local f = assert(io.open(o.out .. "/report.md", "w"))
f:write(report)
f:close()

local csv = assert(io.open(o.out .. "/results.csv", "w"))
csv:write("run,step,time_s,loss\n")
for _, rec in ipairs(records) do
  for i = 1, #rec.loss do csv:write(string.format("%s,%d,%.3f,%.6f\n", rec.name, rec.steps[i], rec.time[i], rec.loss[i])) end
end
csv:close()

local plot = require "grove.plot"
local by_step, by_time = {}, {}
for _, rec in ipairs(records) do
  local sm = smoothed(rec.loss, o.smooth)
  by_step[#by_step + 1] = { name = rec.name, x = rec.steps, y = sm }
  by_time[#by_time + 1] = { name = rec.name, x = rec.time, y = sm }
end
plot.lines { path = o.out .. "/loss_steps.png", title = "grown vs scratch", xlabel = "step", ylabel = "loss (moving average)",
  log_y = true, series = by_step }
plot.lines { path = o.out .. "/loss_time.png", title = "grown vs scratch", xlabel = "seconds", ylabel = "loss (moving average)",
  log_y = true, series = by_time }
print(report)
print("report: " .. o.out .. "/report.md, curves: " .. o.out .. "/loss_steps.png, " .. o.out .. "/loss_time.png")
