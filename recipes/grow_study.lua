-- The growth-vs-scratch study (SANA 1.5 §2), at equal compute and with
-- confidence intervals:
--   * per seed: a base model of depth N trained base_steps; a depth-M model
--     (M = factor·N) trained from scratch for scratch_steps, long enough to
--     converge: its final loss and score are the target; the base grown to M
--     (partial preservation, identity init: it starts out computing what the
--     base computes) and trained `steps` more;
--   * compute counts the diffusion transformer's matrix FLOPs
--     (grove.nn.forward_flops; a training step is 3 forwards), the base's
--     training included for the grown model. The scratch run is evaluated
--     at the step where its compute equals the grown model's total, so the
--     two meet at equal compute;
--   * on the first seed, every strategy × init is grown from the same base
--     and trained the same steps.
-- Scores are the shapes evaluator's per-prompt passes; comparisons are paired
-- over prompts with each prompt's seeds as one unit (grove.stats), and a
-- sentence says "X beats Y" only when the 95% CI of the difference excludes 0.
--   grove recipes/grow_study.lua [--seeds 1,2,3 --scratch_steps 2400 ...] [--help]
-- Writes OUT/report.md, OUT/results.csv (losses), OUT/evals.csv (scores),
-- OUT/score_compute.png, OUT/loss_compute.png.
local args = require "grove.cli.args"
local stats = grove.stats

local spec = {
  { "preset", "string", "tiny", "model preset the depths apply to" },
  { "base_depth", "number", 2, "depth N of the base model" },
  { "factor", "number", 3, "grown depth M = factor · N" },
  { "base_steps", "number", 600, "training steps of the base model" },
  { "steps", "number", 600, "training steps of each grown model after growth" },
  { "scratch_steps", "number", 2400, "training steps of the depth-M model from scratch (the converged target)" },
  { "batch", "number", 32, "images per step" },
  { "lr", "number", 2e-3, "learning rate" },
  { "warmup", "number", 100, "warmup steps of every run (the lr is constant after it, so a run evaluated at step k is a run of k steps)" },
  { "optimizer", "string", "adamw", "optimizer of every run" },
  { "seeds", "string", "1,2,3", "seeds (models, data order, noise); each seed trains its own base, scratch and grown model" },
  { "strategies", "string", "partial,cyclic,block", "growth strategies of the grid (first seed), comma-separated" },
  { "inits", "string", "identity,random,noise", "inits of the grid, comma-separated" },
  { "noise", "number", 0.02, "noise scale of the noise init" },
  { "eval_every", "number", 300, "evaluate every N steps (and at the end, and scratch at the equal-compute step)" },
  { "eval_prompts", "number", 20, "prompts per category in each evaluation" },
  { "eval_steps", "number", 20, "sampling steps of each evaluation" },
  { "smooth", "number", 50, "steps in the moving average of the loss" },
  { "out", "string", "runs/grow_study", "report folder" },
}
local o, rest = args.parse(arg, spec, { usage = "grove recipes/grow_study.lua [options]",
  description = "Growth vs training from scratch at equal compute, with confidence intervals; see docs/growth.md." })
if not o then print(rest); return end

local train = grove.train
local N, M = o.base_depth, o.base_depth * o.factor
if N < 1 or N % 1 ~= 0 or o.factor < 2 or M % 1 ~= 0 then
  error("grow_study: base_depth must be a positive integer and factor an integer >= 2", 0)
end
for _, k in ipairs { "base_steps", "steps", "scratch_steps", "batch", "eval_prompts", "eval_steps", "smooth" } do
  if o[k] < 1 or o[k] % 1 ~= 0 then error("grow_study: --" .. k .. " must be a positive integer", 0) end
end
if o.eval_every < 0 or o.eval_every % 1 ~= 0 then error("grow_study: --eval_every must be an integer >= 0", 0) end
local function split(s)
  local out = {}
  for w in s:gmatch("[^,%s]+") do out[#out + 1] = w end
  return out
end
local seeds = {}
for _, s in ipairs(split(o.seeds)) do
  local n = tonumber(s)
  if not n or n % 1 ~= 0 then error("grow_study: --seeds takes integers separated by commas, got " .. o.seeds, 0) end
  seeds[#seeds + 1] = n
end
if #seeds == 0 then error("grow_study: --seeds is empty", 0) end

-- compute: the transformer's matrix FLOPs per training step at each depth
local size = train.defaults.size
local function step_flops(depth) return train.step_flops(o.preset, depth, o.batch, size) end
local F_N, F_M = step_flops(N), step_flops(M)
local base_flops = o.base_steps * F_N
-- the scratch step whose compute equals the grown model's total (the rule
-- of the pipeline and the prune study: grove.train.steps_for_flops)
local equal_step = train.steps_for_flops(base_flops + o.steps * F_M, o.preset, M, o.batch, size)
if equal_step > o.scratch_steps then
  error(string.format("grow_study: the grown model's total compute equals %d scratch steps; --scratch_steps (%d) must be at least that",
    equal_step, o.scratch_steps), 0)
end
os.execute("mkdir -p '" .. o.out .. "'")

-- One training run with a clock that excludes evaluation; returns its record
-- (losses, times, and evaluations with each prompt's pass).
local function run(name, seed, opts, eval_at)
  local rec = { name = name, seed = seed, steps = {}, loss = {}, time = {}, evals = {} }
  local last = opts.steps
  local t0, paused = grove.now(), 0
  local function evaluate(state, step)
    local e0 = grove.now()
    local r = state.ema:apply(function()
      return train.evaluate(state.parts, { size = size, seed = seed, eval_steps = o.eval_steps, cfg = 4.5,
                                           eval_prompts = o.eval_prompts })
    end)
    local passes = {}
    for i, x in ipairs(r.results) do passes[i] = x.pass and 1 or 0 end
    rec.evals[#rec.evals + 1] = { step = step, time = e0 - t0 - paused, overall = r.overall, per = r.per_category,
                                  passes = passes }
    paused = paused + grove.now() - e0
  end
  local r = {
    preset = o.preset, batch = o.batch, lr = o.lr, optimizer = o.optimizer, seed = seed, warmup = o.warmup, decay = 0,
    out = string.format("%s/%s_seed%d", o.out, name, seed), eval = false, sample_every = 0, save_every = 1e9,
    log_every = 100,
    on_step = function(step, l, state)
      rec.steps[#rec.steps + 1] = step
      rec.loss[#rec.loss + 1] = l
      rec.time[#rec.time + 1] = grove.now() - t0 - paused
      if (o.eval_every > 0 and step % o.eval_every == 0) or step == last or (eval_at and eval_at[step]) then
        evaluate(state, step)
      end
    end,
  }
  for k, v in pairs(opts) do r[k] = v end
  print(string.format("== %s, seed %d (%d steps)", name, seed, last))
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
local function eval_at(rec, step)
  for _, e in ipairs(rec.evals) do if e.step == step then return e end end
end
local function final_eval(rec) return rec.evals[#rec.evals] end
-- first step (after the average has its full window) whose smoothed loss is
-- at most target; nil when never
local function reach(rec, target)
  local sm = smoothed(rec.loss, o.smooth)
  for i = math.min(o.smooth, #sm), #sm do
    if sm[i] <= target then return i end
  end
end

-- grow the base's EMA weights and save them as a starting checkpoint
local function grown_start(base_parts, strategy, init, seed, name)
  local grown = grove.grow(base_parts.model, { strategy = strategy, depth = M, init = init, noise = o.noise, seed = seed })
  local both = grove.nn.Container { { "model", grown }, { "text", base_parts.text } }
  local path = string.format("%s/%s_seed%d_start.safetensors", o.out, name, seed)
  train.save_weights(path, { both = both, model = grown, text_config = base_parts.text_config },
    { ["grove.grow"] = strategy .. "/" .. init })
  return path
end

-- 1. per seed: base, scratch (converged), grown (partial, identity)
local per_seed, grid = {}, {}
for si, seed in ipairs(seeds) do
  local s = {}
  s.base = run("base", seed, { config = { depth = N }, steps = o.base_steps })
  s.scratch = run("scratch", seed, { config = { depth = M }, steps = o.scratch_steps }, { [equal_step] = true })
  local base_parts = train.load_for_inference(string.format("%s/base_seed%d/checkpoint.safetensors", o.out, seed))
  local path = grown_start(base_parts, "partial", "identity", seed, "grown")
  s.grown = run("grown", seed, { init = path, steps = o.steps })
  os.remove(path)
  per_seed[si] = s
  -- 2. the grid on the first seed
  if si == 1 then
    for _, strategy in ipairs(split(o.strategies)) do
      for _, init in ipairs(split(o.inits)) do
        local name = strategy .. "_" .. init
        local rec
        if strategy == "partial" and init == "identity" then
          rec = s.grown
        else
          local p = grown_start(base_parts, strategy, init, seed, name)
          rec = run(name, seed, { init = p, steps = o.steps })
          os.remove(p)
        end
        rec.strategy, rec.init = strategy, init
        grid[#grid + 1] = rec
      end
    end
  end
end

-- 3. numbers per seed: targets, time and compute to reach them
local function fmt(v, f) return v and string.format(f or "%.3f", v) or "-" end
local function gflop(x) return string.format("%.3g", x / 1e12) end   -- TFLOP
local units = function(get)
  -- each prompt's values over the seeds: one unit per prompt
  local out = {}
  for si, s in ipairs(per_seed) do
    local e = get(s)
    for i, v in ipairs(e.passes) do
      out[i] = out[i] or {}
      out[i][si] = v
    end
  end
  return out
end

local lines = {
  "# Growth vs scratch at equal compute",
  "",
  string.format("`grove recipes/grow_study.lua %s`", table.concat(arg, " ")),
  "",
  string.format("Preset %s, batch %d, %s lr %g (warmup %d, then constant), EMA weights evaluated on %d prompts per category (%d in all), %d sampling steps; seeds %s.",
    o.preset, o.batch, o.optimizer, o.lr, o.warmup, o.eval_prompts, #final_eval(per_seed[1].base).passes, o.eval_steps, o.seeds),
  string.format("Compute is the diffusion transformer's matrix work (3 forwards per training step): %s TFLOP a step at depth %d, %s at depth %d. The base (%d steps) costs %s TFLOP; the grown model's total after %d steps is %s TFLOP, what the scratch model spends in %d steps (the equal-compute point).",
    gflop(F_N), N, gflop(F_M), M, o.base_steps, gflop(base_flops), o.steps, gflop(base_flops + o.steps * F_M), equal_step),
  "",
  "## Per seed",
  "",
  "Target: the converged scratch model's final loss (moving average over " .. o.smooth .. " steps). Times exclude evaluation.",
  "",
  "| seed | run | steps | TFLOP (incl. base) | train s (incl. base) | final loss | overall | reaches target at step | TFLOP to target (incl. base) | of scratch's |",
  "|---|---|---|---|---|---|---|---|---|---|",
}
local reach_ratio = {}
for _, s in ipairs(per_seed) do
  local target = smoothed(s.scratch.loss, o.smooth)[#s.scratch.loss]
  local sc_reach = reach(s.scratch, target)
  local sc_flops = sc_reach * F_M
  local function row(rec, depth_flops, pre_flops, pre_time)
    local sm = smoothed(rec.loss, o.smooth)
    local k = reach(rec, target)
    local fl = k and (pre_flops + k * depth_flops)
    local ratio = fl and fl / sc_flops
    lines[#lines + 1] = string.format("| %d | %s | %d | %s | %.0f | %.4f | %s | %s | %s | %s |", rec.seed, rec.name, #rec.loss,
      gflop(pre_flops + #rec.loss * depth_flops), pre_time + rec.total_time, sm[#sm], fmt(final_eval(rec).overall),
      k or "not reached", fl and gflop(fl) or "-", ratio and string.format("%.2f", ratio) or "-")
    return ratio
  end
  row(s.base, F_N, 0, 0)
  row(s.scratch, F_M, 0, 0)
  reach_ratio[#reach_ratio + 1] = row(s.grown, F_M, base_flops, s.base.total_time) or false
  lines[#lines + 1] = string.format("| %d | scratch at the equal-compute step | %d | %s | %.0f | %.4f | %s | | | |", s.scratch.seed, equal_step,
    gflop(equal_step * F_M), s.scratch.time[equal_step], smoothed(s.scratch.loss, o.smooth)[equal_step],
    fmt(eval_at(s.scratch, equal_step).overall))
end

-- 4. the comparisons, paired over prompts (seeds of a prompt as one unit)
local grown_u = units(function(s) return final_eval(s.grown) end)
local equal_u = units(function(s) return eval_at(s.scratch, equal_step) end)
local conv_u = units(function(s) return final_eval(s.scratch) end)
local base_u = units(function(s) return final_eval(s.base) end)
lines[#lines + 1] = ""
lines[#lines + 1] = "## Scores and comparisons"
lines[#lines + 1] = ""
lines[#lines + 1] = string.format("Overall score over prompts (each prompt's %d seeds averaged), 95%% bootstrap CI:", #seeds)
lines[#lines + 1] = ""
for _, r in ipairs { { "base (depth " .. N .. ", " .. o.base_steps .. " steps)", base_u },
                     { "grown (depth " .. M .. ", base + " .. o.steps .. " steps)", grown_u },
                     { "scratch at equal compute (" .. equal_step .. " steps)", equal_u },
                     { "scratch converged (" .. o.scratch_steps .. " steps)", conv_u } } do
  lines[#lines + 1] = string.format("- %s: %s", r[1], stats.format(stats.bootstrap(r[2])))
end
local c1 = stats.compare(grown_u, equal_u, { names = { "the grown model", "scratch at equal compute" } })
local c2 = stats.compare(grown_u, conv_u, { names = { "the grown model", "the converged scratch model" } })
local c3 = stats.compare(grown_u, base_u, { names = { "the grown model", "its base" } })
lines[#lines + 1] = ""
lines[#lines + 1] = "- At equal total compute: " .. c1.sentence .. "."
lines[#lines + 1] = string.format("- Against the converged scratch model (%s the grown model's total compute): %s.",
  string.format("%.1f×", o.scratch_steps * F_M / (base_flops + o.steps * F_M)), c2.sentence)
lines[#lines + 1] = "- Against its own base: " .. c3.sentence .. "."
local reached, ratios = 0, {}
for _, r in ipairs(reach_ratio) do if r then reached = reached + 1; ratios[#ratios + 1] = r end end
if reached > 0 then
  table.sort(ratios)
  local per = {}
  for _, r in ipairs(reach_ratio) do per[#per + 1] = r and string.format("%.2f", r) or "not reached" end
  lines[#lines + 1] = string.format("- Loss target reached by the grown model in %d of %d seeds, with %s of the compute scratch needed to reach it (base included; per seed: %s).",
    reached, #seeds, reached == #seeds and string.format("%.2f–%.2f×", ratios[1], ratios[#ratios]) or "see the table",
    table.concat(per, ", "))
else
  lines[#lines + 1] = string.format("- The grown model did not reach the converged scratch loss in %d steps on any seed.", o.steps)
end

-- 5. the grid (first seed): every strategy × init
lines[#lines + 1] = ""
lines[#lines + 1] = string.format("## Strategies × inits (seed %d, %d steps after growth)", seeds[1], o.steps)
lines[#lines + 1] = ""
lines[#lines + 1] = "| run | first loss | final loss | overall (95% CI, n) | against partial + identity |"
lines[#lines + 1] = "|---|---|---|---|---|"
local ref = final_eval(per_seed[1].grown).passes
for _, rec in ipairs(grid) do
  local sm = smoothed(rec.loss, o.smooth)
  local e = final_eval(rec)
  local versus = rec == per_seed[1].grown and "-" or
    stats.compare(e.passes, ref, { names = { rec.strategy .. " + " .. rec.init, "partial + identity" } }).sentence
  lines[#lines + 1] = string.format("| %s | %.4f | %.4f | %s | %s |", rec.strategy .. " + " .. rec.init, rec.loss[1], sm[#sm],
    stats.format(stats.bootstrap(e.passes)), versus)
end
lines[#lines + 1] = ""
lines[#lines + 1] = "Evaluations (step: overall):"
lines[#lines + 1] = ""
local all = {}
for _, s in ipairs(per_seed) do all[#all + 1] = s.base; all[#all + 1] = s.scratch; all[#all + 1] = s.grown end
for _, rec in ipairs(grid) do if rec ~= per_seed[1].grown then all[#all + 1] = rec end end
for _, rec in ipairs(all) do
  local parts = {}
  for _, e in ipairs(rec.evals) do parts[#parts + 1] = string.format("%d: %.3f", e.step, e.overall) end
  lines[#lines + 1] = string.format("- %s, seed %d: %s", rec.name, rec.seed, table.concat(parts, ", "))
end
local report = table.concat(lines, "\n") .. "\n"
local f = assert(io.open(o.out .. "/report.md", "w"))
f:write(report)
f:close()

-- 6. CSVs and curves against compute (base included for grown runs)
local function pre_of(rec) return (rec.name == "base" or rec.name == "scratch") and 0 or base_flops end
local function per_step_of(rec) return rec.name == "base" and F_N or F_M end
local csv = assert(io.open(o.out .. "/results.csv", "w"))
csv:write("run,seed,step,tflop,time_s,loss\n")
for _, rec in ipairs(all) do
  for i = 1, #rec.loss do
    csv:write(string.format("%s,%d,%d,%.4f,%.3f,%.6f\n", rec.name, rec.seed, rec.steps[i],
      (pre_of(rec) + rec.steps[i] * per_step_of(rec)) / 1e12, rec.time[i], rec.loss[i]))
  end
end
csv:close()
local ecsv = assert(io.open(o.out .. "/evals.csv", "w"))
ecsv:write("run,seed,step,tflop,overall\n")
for _, rec in ipairs(all) do
  for _, e in ipairs(rec.evals) do
    ecsv:write(string.format("%s,%d,%d,%.4f,%.4f\n", rec.name, rec.seed, e.step, (pre_of(rec) + e.step * per_step_of(rec)) / 1e12,
      e.overall))
  end
end
ecsv:close()

local plot = require "grove.plot"
local score_series, loss_series = {}, {}
for _, kind in ipairs { "base", "scratch", "grown" } do
  -- mean over seeds at each evaluated step
  local xs, ys = {}, {}
  local first = per_seed[1][kind]
  for _, e in ipairs(first.evals) do
    local sum, n = 0, 0
    for _, s in ipairs(per_seed) do
      local ee = eval_at(s[kind], e.step)
      if ee then sum, n = sum + ee.overall, n + 1 end
    end
    xs[#xs + 1] = (pre_of(first) + e.step * per_step_of(first)) / 1e12
    ys[#ys + 1] = sum / n
  end
  score_series[#score_series + 1] = { name = kind .. " (mean of " .. #seeds .. " seeds)", x = xs, y = ys }
  local lx, ly = {}, {}
  local sm = smoothed(first.loss, o.smooth)
  for i = 1, #sm do lx[i] = (pre_of(first) + i * per_step_of(first)) / 1e12; ly[i] = sm[i] end
  loss_series[#loss_series + 1] = { name = kind .. " (seed " .. seeds[1] .. ")", x = lx, y = ly }
end
plot.lines { path = o.out .. "/score_compute.png", title = "score against total compute", xlabel = "TFLOP (grown: base included)",
  ylabel = "overall score", series = score_series }
plot.lines { path = o.out .. "/loss_compute.png", title = "loss against total compute", xlabel = "TFLOP (grown: base included)",
  ylabel = "loss (moving average)", log_y = true, series = loss_series }
print(report)
print("report: " .. o.out .. "/report.md; curves: " .. o.out .. "/score_compute.png, " .. o.out .. "/loss_compute.png")
