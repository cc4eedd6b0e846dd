-- The prune-vs-scratch study (SANA 1.5 §2): prune a trained deep model to
-- 2/3, 1/2 and 1/3 of its depth by block importance, fine-tune each for 100
-- steps, and compare against removing random blocks, removing the last
-- blocks, and a model of the pruned depth trained from scratch with the
-- compute of the whole path (the deep model's training, the calibration
-- forwards and the fine-tuning), counted in the transformer's matrix FLOPs
-- (grove.nn.forward_flops; a training step is 3 forwards). Importance is
-- measured on calibration prompts of the shapes training split; the scores
-- come from the evaluation prompt files, a separate set. Comparisons are
-- paired over prompts with 95% bootstrap CIs (grove.stats).
--   grove recipes/prune_study.lua --deep runs/grow_study/grown_seed1/checkpoint.safetensors --deep-tflop 123.4
--   grove recipes/prune_study.lua --deep-depth 6 --deep-steps 1200      (trains its own deep model first)
-- Writes OUT/report.md, OUT/importance.png, OUT/recovery.png.
local args = require "grove.cli.args"

local spec = {
  { "deep", "string", nil, "trained deep model (grove checkpoint or weights); none: train one here" },
  { "deep_tflop", "number", 0, "TFLOP of training the deep model cost, every stage before it included (with --deep; the growth study's report gives it)" },
  { "preset", "string", "tiny", "preset of the deep model trained here and of the scratch models" },
  { "deep_depth", "number", 6, "depth of the deep model trained here" },
  { "deep_steps", "number", 1200, "training steps of the deep model trained here" },
  { "fractions", "string", "2/3,1/2,1/3", "pruned depths as fractions of the deep depth" },
  { "schedules", "string", "oneshot,random,last", "which blocks go: oneshot (by importance), random, last" },
  { "metric", "string", "cosine", "importance metric" },
  { "steps", "number", 100, "fine-tuning steps" },
  { "ft_lr", "number", 5e-4, "fine-tuning learning rate" },
  { "ft_ema", "number", 0.95, "EMA decay of the fine-tuned weights that are evaluated" },
  { "lr", "number", 2e-3, "learning rate of the deep and scratch trainings" },
  { "batch", "number", 32, "images per step" },
  { "seed", "number", 1, "seed of data, noise, calibration and evaluation" },
  { "eval_prompts", "number", 30, "prompts per category in each evaluation" },
  { "scratch", "boolean", true, "train the same-compute scratch models" },
  { "out", "string", "runs/prune_study", "report folder" },
}
local o, rest = args.parse(arg, spec, { usage = "grove recipes/prune_study.lua [options]",
  description = "Pruning vs training from scratch; see docs/pruning.md." })
if not o then print(rest); return end
local train, prune = grove.train, grove.prune
local d = train.defaults
local stats = grove.stats
if o.deep and o.scratch and not (o.deep_tflop > 0) then
  error("prune_study: --deep needs --deep-tflop (the compute that made it) for the same-compute scratch models, or --scratch=false", 0)
end
os.execute("mkdir -p '" .. o.out .. "'")
local function step_flops(depth) return train.step_flops(o.preset, depth, o.batch) end
local function tflop(x) return string.format("%.3g", x / 1e12) end

-- each evaluation prompt's pass (1) or fail (0), in the evaluator's order
local function passes_of(r)
  local out = {}
  for i, x in ipairs(r.results) do out[i] = x.pass and 1 or 0 end
  return out
end

local function evaluate(parts)
  local r = train.evaluate(parts, { size = 32, seed = o.seed, eval_steps = d.eval_steps, cfg = d.cfg,
                                    eval_prompts = o.eval_prompts, sampler = d.sampler })
  return r
end

-- 1. the deep model
local deep_path, deep_flops = o.deep, o.deep_tflop * 1e12
if not deep_path then
  train.run { preset = o.preset, config = { depth = o.deep_depth }, steps = o.deep_steps, batch = o.batch, lr = o.lr,
              seed = o.seed, out = o.out .. "/deep", eval = false, sample_every = 0, save_every = o.deep_steps }
  deep_flops = o.deep_steps * step_flops(o.deep_depth)
  deep_path = o.out .. "/deep/checkpoint.safetensors"
end
local deep = train.load_for_inference(deep_path)
local N = #deep.model.blocks
local calib = prune.calibration(deep.model, deep, { seed = o.seed, size = 32 })
-- the calibration's forwards: every prompt at every noise level through the deep model
local calib_flops = prune.calibration_flops(deep.model.config, #calib.prompts, #calib.sigmas, d.size)
local deep_eval = evaluate(deep)
local deep_eval_passes = passes_of(deep_eval)
local deep_loss = prune.calib_loss(deep.model, calib)
local scores = prune.importance(deep.model, calib, { metric = o.metric })
print(string.format("deep model: %d blocks, overall %.3f, calibration loss %.5f", N, deep_eval.overall, deep_loss))

local depths = {}
for f in o.fractions:gmatch("[^,%s]+") do
  local a, b = f:match("^(%d+)/(%d+)$")
  local K = a and math.floor(N * tonumber(a) / tonumber(b) + 0.5) or math.floor(N * tonumber(f) + 0.5)
  if K >= 1 and K < N then depths[#depths + 1] = K end
end

-- 2. prune, fine-tune, evaluate
local rows, curves, removed_by_importance = {}, {}, nil
for _, K in ipairs(depths) do
  for s in o.schedules:gmatch("[^,%s]+") do
    local name = string.format("%s_%d", s, K)
    local pruned, info = prune.parts(deep, { depth = K, metric = o.metric, schedule = s, seed = o.seed, calib = calib })
    if s == "oneshot" and K == depths[#depths] then removed_by_importance = info.removed end
    local after = evaluate(pruned)
    local after_loss = prune.calib_loss(pruned.model, calib)
    local w = o.out .. "/" .. name .. ".safetensors"
    train.save_weights(w, pruned)
    local run = train.run { init = w, steps = o.steps, batch = o.batch, lr = o.ft_lr, warmup = 10, ema = o.ft_ema,
                            seed = o.seed, out = o.out .. "/" .. name, eval = false, sample_every = 0,
                            save_every = o.steps, log_every = o.steps }
    os.remove(w)
    local tuned = train.load_for_inference(o.out .. "/" .. name .. "/checkpoint.safetensors")
    local ft = evaluate(tuned)
    local ft_loss = prune.calib_loss(tuned.model, calib)
    rows[#rows + 1] = { name = name, K = K, schedule = s, removed = table.concat(info.removed, ","),
                        after = after.overall, after_loss = after_loss, ft = ft.overall, ft_loss = ft_loss,
                        ft_flops = o.steps * step_flops(K), ft_single = ft.per_category.single_object,
                        ft_colors = ft.per_category.colors, passes = passes_of(ft) }
    curves[#curves + 1] = { name = name, y = run.losses }
    print(string.format("%s: removed %s; overall %.3f after pruning, %.3f after %d steps", name, rows[#rows].removed,
                        after.overall, ft.overall, o.steps))
  end
end

-- 3. scratch models of each pruned depth with the compute of the whole path
local scratch = {}
if o.scratch then
  for _, K in ipairs(depths) do
    local budget = deep_flops + calib_flops + o.steps * step_flops(K)
    local steps = train.steps_for_flops(budget, o.preset, K, o.batch)
    local dir = string.format("%s/scratch_%d", o.out, K)
    train.run { preset = o.preset, config = { depth = K }, steps = steps, batch = o.batch, lr = o.lr, seed = o.seed,
                out = dir, eval = false, sample_every = 0, save_every = steps, log_every = 500 }
    local p = train.load_for_inference(dir .. "/checkpoint.safetensors")
    local r = evaluate(p)
    scratch[K] = { steps = steps, budget = budget, overall = r.overall, loss = prune.calib_loss(p.model, calib),
                   passes = passes_of(r) }
  end
end

-- 4. report
local lines = {
  "# Pruning vs scratch",
  "",
  string.format("`grove recipes/prune_study.lua %s`", table.concat(arg, " ")),
  "",
  string.format("Deep model: %s, %d blocks, %s TFLOP of training; overall %s, calibration flow loss %.5f.",
    deep_path, N, tflop(deep_flops), stats.format(stats.bootstrap(deep_eval_passes)), deep_loss),
  string.format("Calibration: %d prompts of the %s × %d noise levels (%s TFLOP of forwards); evaluation: the prompt files of data/shapes/prompts, %d per category.",
    #calib.prompts, calib.origin, #calib.sigmas, tflop(calib_flops), o.eval_prompts),
  string.format("Block importance (%s): %s", o.metric, (function()
    local t = {}
    for i, v in ipairs(scores) do t[i] = string.format("%d: %.4f", i, v) end
    return table.concat(t, ", ")
  end)()),
  string.format("Fine-tuning: %d steps, AdamW lr %g, EMA %g; evaluation: %d prompts per category.", o.steps, o.ft_lr,
    o.ft_ema, o.eval_prompts),
  "",
  "| run | removed blocks | overall after pruning | loss after pruning | overall after fine-tune | % of deep | loss after fine-tune | single | colors |",
  "|---|---|---|---|---|---|---|---|---|",
}
for _, r in ipairs(rows) do
  lines[#lines + 1] = string.format("| %s | %s | %.3f | %.5f | %.3f | %.0f%% | %.5f | %.3f | %.3f |", r.name, r.removed,
    r.after, r.after_loss, r.ft, deep_eval.overall > 0 and 100 * r.ft / deep_eval.overall or 0, r.ft_loss,
    r.ft_single, r.ft_colors)
end
if next(scratch) then
  lines[#lines + 1] = ""
  lines[#lines + 1] = "| scratch depth | compute of the whole path (TFLOP) | steps | overall (95% CI, n) | calibration loss |"
  lines[#lines + 1] = "|---|---|---|---|---|"
  for _, K in ipairs(depths) do
    local s = scratch[K]
    if s then
      lines[#lines + 1] = string.format("| %d | %s | %d | %s | %.5f |", K, tflop(s.budget), s.steps,
        stats.format(stats.bootstrap(s.passes)), s.loss)
    end
  end
end
-- paired comparisons over the evaluation prompts
lines[#lines + 1] = ""
lines[#lines + 1] = "Comparisons (paired over prompts; \"beats\" only when the 95% CI of the difference excludes 0):"
lines[#lines + 1] = ""
local function find(K, sched)
  for _, r in ipairs(rows) do if r.K == K and r.schedule == sched then return r end end
end
for _, K in ipairs(depths) do
  local best = find(K, "oneshot")
  if best then
    local name = string.format("pruned to %d by importance + fine-tuned", K)
    if scratch[K] then
      lines[#lines + 1] = "- " .. stats.compare(best.passes, scratch[K].passes,
        { names = { name, string.format("scratch at depth %d with the same compute", K) } }).sentence .. "."
    end
    for _, other in ipairs { "random", "last" } do
      local r = find(K, other)
      if r then
        lines[#lines + 1] = "- " .. stats.compare(best.passes, r.passes,
          { names = { name, string.format("%s blocks removed + fine-tuned", other) } }).sentence .. "."
      end
    end
    lines[#lines + 1] = "- " .. stats.compare(best.passes, deep_eval_passes,
      { names = { name, string.format("the deep model (%d blocks)", N) } }).sentence .. "."
  end
end
local report = table.concat(lines, "\n") .. "\n"
local f = assert(io.open(o.out .. "/report.md", "w"))
f:write(report)
f:close()
prune.chart(o.out .. "/importance.png", scores, removed_by_importance or {}, { metric = o.metric })
local smooth = {}
for _, c in ipairs(curves) do
  local y, acc = {}, nil
  for i, l in ipairs(c.y) do acc = acc and 0.9 * acc + 0.1 * l or l; y[i] = acc end
  smooth[#smooth + 1] = { name = c.name, y = y }
end
require("grove.plot").lines { path = o.out .. "/recovery.png", title = "fine-tuning after pruning", xlabel = "step",
  ylabel = "flow loss (smoothed)", log_y = true, series = smooth }
print(report)
print("report: " .. o.out .. "/report.md, charts: importance.png, recovery.png")
