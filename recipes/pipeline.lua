-- The main job: the SANA 1.5 pipeline on the shapes set, end to end.
--   base     train a shallow model (base_depth blocks)
--   grow     grow it to grow_depth blocks (partial preservation, identity
--            init: grove.grow) and train on
--   scratch  a model of grow_depth trained from scratch for the same steps
--            (the growth-vs-scratch comparison)
--   prune    prune the grown model back to prune_depth blocks by block
--            importance (cosine metric on a calibration set: grove.prune)
--   finetune fine-tune the pruned model (100 steps)
--   judge    train the judge of inference-time search on renders and the
--            fine-tuned model's samples (grove.judge.train)
--   search   the candidates-vs-steps study with that judge (grove.search.study)
-- then writes OUT/report.html. Every stage works in OUT/<stage>/ and ends
-- with a manifest and a done marker (grove.pipeline): a re-run skips the
-- finished stages, --from STAGE runs that stage and the later ones again.
--   grove recipes/pipeline.lua                     (the quick profile: under 15 minutes on 2 cores)
--   grove recipes/pipeline.lua --profile full --plan
-- See docs/pipeline.md.
local args = require "grove.cli.args"
local pipeline = require "grove.pipeline"
local report = require "grove.report"
local train = grove.train

local STAGES = { "base", "grow", "scratch", "prune", "finetune", "judge", "search" }

-- Profiles: every option below that has no default on the command line
-- comes from the profile.
local profiles = {
  quick = {
    preset = "tiny", base_depth = 3, grow_depth = 6, prune_depth = 4, base_steps = 1500, grow_steps = 600,
    ft_steps = 100, batch = 32, lr = 2e-3, ft_lr = 5e-4, decay = 1 / 3, ema = 0.995, ft_ema = 0.95,
    eval_prompts = 30, eval_steps = 20, calib_prompts = 64, calib_timesteps = 8,
    judge_steps = 2000, judge_samples = 128, judge_width = 64, judge_depth = 3, judge_stem_depth = 1, judge_eval_images = 256,
    search_prompts = 8, search_max_n = 16, search_steps_max_n = 16, search_steps = 20, grid_steps = 20,
  },
}
-- The other profiles name only what differs from quick.
local function profile_from(base, changes)
  local p = {}
  for k, v in pairs(base) do p[k] = v end
  for k, v in pairs(changes) do p[k] = v end
  return p
end
-- the studies' sizes (docs/growth.md, docs/pruning.md, docs/search.md) and
-- a base as long as the former main job's
profiles.full = profile_from(profiles.quick, {
  base_steps = 4000, grow_steps = 2000, eval_prompts = 60, judge_steps = 4000, judge_samples = 256,
  search_prompts = 20, search_max_n = 64,
})
-- a few steps of everything: the browser test's report (tests/browser/)
profiles.test = profile_from(profiles.quick, {
  base_depth = 1, grow_depth = 2, prune_depth = 1, base_steps = 6, grow_steps = 4, ft_steps = 3, batch = 4,
  ema = 0.9, ft_ema = 0.9, eval_prompts = 1, eval_steps = 2, calib_prompts = 6, calib_timesteps = 2,
  judge_steps = 3, judge_samples = 4, judge_width = 16, judge_depth = 1, judge_eval_images = 8,
  search_prompts = 1, search_max_n = 2, search_steps_max_n = 2, search_steps = 2, grid_steps = 2,
})

local spec = {
  { "profile", "string", "quick", "quick (under 15 minutes on 2 cores), full (the studies' sizes) or test (seconds)" },
  { "name", "string", nil, "run name: the run folder is runs/NAME (default: the profile's name)" },
  { "out", "string", nil, "run folder (default runs/NAME)" },
  { "from", "string", nil, "run this stage and every later one again (" .. table.concat(STAGES, ", ") .. ")" },
  { "plan", "boolean", false, "print the stages, their options and the study commands, and exit" },
  { "preset", "string", nil, "model preset" },
  { "base_depth", "number", nil, "blocks of the base model" },
  { "grow_depth", "number", nil, "blocks after growing" },
  { "prune_depth", "number", nil, "blocks after pruning" },
  { "base_steps", "number", nil, "training steps of the base model" },
  { "grow_steps", "number", nil, "training steps after growing (and of the scratch model)" },
  { "ft_steps", "number", nil, "fine-tuning steps after pruning" },
  { "batch", "number", nil, "images per training step" },
  { "lr", "number", nil, "learning rate of the base, grown and scratch trainings" },
  { "ft_lr", "number", nil, "fine-tuning learning rate" },
  { "decay", "number", nil, "fraction of each training's steps spent cooling the lr down to 0" },
  { "ema", "number", nil, "EMA decay of the trainings" },
  { "ft_ema", "number", nil, "EMA decay of the fine-tuning" },
  { "eval_prompts", "number", nil, "prompts per category in each stage's evaluation" },
  { "eval_steps", "number", nil, "sampling steps of the evaluations" },
  { "calib_prompts", "number", nil, "calibration prompts of the block importance" },
  { "calib_timesteps", "number", nil, "noise levels of the calibration set" },
  { "judge_steps", "number", nil, "training steps of the judge" },
  { "judge_samples", "number", nil, "fine-tuned model samples the judge trains on (as many more, up to judge_eval_images, held out)" },
  { "judge_width", "number", nil, "judge width" },
  { "judge_depth", "number", nil, "judge layers" },
  { "judge_stem_depth", "number", nil, "3x3 convolutions in the judge's stem" },
  { "judge_eval_images", "number", nil, "held-out images per judge accuracy set" },
  { "search_prompts", "number", nil, "prompts per category in the search study" },
  { "search_max_n", "number", nil, "most candidates per prompt in the search study (a power of two)" },
  { "search_steps_max_n", "number", nil, "the steps line of the search study runs up to steps·this" },
  { "search_steps", "number", nil, "denoising steps of one search candidate" },
  { "grid_steps", "number", nil, "sampling steps of the sample grids" },
  { "scratch", "boolean", true, "train the same-steps scratch model of the grown depth" },
  { "embed", "boolean", true, "embed the report's images as data: URIs (else link the PNG files beside it)" },
  { "seed", "number", 1, "seed of models, data, noise, calibration and evaluation" },
  { "device", "string", "cpu", "where the models and the judge train, sample and score: cpu or cuda (noise and data are drawn on the CPU either way)" },
}
local o, rest = args.parse(arg, spec, { usage = "grove recipes/pipeline.lua [--profile quick|full|test] [options]",
  description = "The SANA 1.5 pipeline: train, grow, prune, search; see docs/pipeline.md." })
if not o then print(rest); return end
local profile = profiles[o.profile]
if not profile then error("pipeline: unknown profile '" .. o.profile .. "' (quick, full, test)", 0) end
for k, v in pairs(profile) do if o[k] == nil then o[k] = v end end
o.name = o.name or o.profile
o.out = o.out or ("runs/" .. o.name)
if not (o.base_depth >= 1 and o.grow_depth >= o.base_depth and o.prune_depth >= 1 and o.prune_depth <= o.grow_depth) then
  error(string.format("pipeline: depths must satisfy 1 <= base_depth <= grow_depth and 1 <= prune_depth <= grow_depth, got %d, %d, %d",
    o.base_depth, o.grow_depth, o.prune_depth), 0)
end
grove._device_id(o.device, "pipeline: --device")
if o.device ~= "cpu" and not grove.cuda.is_available() then
  error("pipeline: --device " .. o.device .. ": no CUDA device (grove.cuda.device_count() == 0)", 0)
end
io.stdout:setvbuf("line")

local t_all = grove.now()
local argline = "grove recipes/pipeline.lua " .. table.concat(arg, " ")

-- ---- shared pieces -------------------------------------------------------------
local d = train.defaults
local GRID_PROMPTS, GRID_SEED = train.grid_prompts(), train.grid_seed

-- The evaluator's scores of parts (EMA weights when loaded so), without the per-prompt results.
local function evaluate(parts)
  local t0 = grove.now()
  local r = train.evaluate(parts, { size = d.size, seed = o.seed, eval_steps = o.eval_steps, cfg = d.cfg,
                                    eval_prompts = o.eval_prompts, sampler = d.sampler })
  print(grove.eval.shapes.format(r))
  return { per_category = r.per_category, counts = r.counts, overall = r.overall, seconds = grove.now() - t0 }
end

-- The same prompts and seed for every stage's sample grid.
local function sample_grid(parts, path)
  local images = train.sample_prompts(parts, GRID_PROMPTS, { size = d.size, seed = GRID_SEED, steps = o.grid_steps,
                                                             cfg = d.cfg, sampler = d.sampler })
  grove.image.save(path, grove.image.grid(images, { cols = 6, captions = GRID_PROMPTS, scale = 3 }))
end

-- One training run into dir; returns its losses and seconds.
local function train_into(dir, t)
  local r = {
    preset = o.preset, batch = o.batch, seed = o.seed, out = dir, eval = false, sample_every = 0,
    save_every = t.steps, log_every = math.max(1, math.floor(t.steps / 10)), device = o.device,
  }
  for k, v in pairs(t) do r[k] = v end
  local t0 = grove.now()
  local run = train.run(r)
  if run.nan then error("pipeline: training in " .. dir .. " stopped: " .. tostring(run.stopped), 0) end
  return run.losses, grove.now() - t0
end

local function decay_of(steps) return math.floor(steps * o.decay) end
local function ckpt(stage) return o.out .. "/" .. stage .. "/checkpoint.safetensors" end
-- A stage's checkpoint, ready to sample, on the run's device.
local function load(path) return train.load_for_inference(path, { device = o.device }) end

-- What each stage depends on: its own options (a change re-runs it and every later stage).
local function pick(...)
  local t = {}
  for _, k in ipairs { ... } do t[k] = o[k] end
  t.seed, t.preset, t.eval_prompts, t.eval_steps, t.grid_steps = o.seed, o.preset, o.eval_prompts, o.eval_steps, o.grid_steps
  return t
end
local stage_options = {
  base = pick("base_depth", "base_steps", "batch", "lr", "decay", "ema"),
  grow = pick("grow_depth", "grow_steps", "batch", "lr", "decay", "ema"),
  scratch = pick("grow_depth", "grow_steps", "batch", "lr", "decay", "ema", "scratch"),
  prune = pick("prune_depth", "calib_prompts", "calib_timesteps"),
  finetune = pick("ft_steps", "ft_lr", "ft_ema", "batch"),
  judge = pick("judge_steps", "judge_samples", "judge_width", "judge_depth", "judge_stem_depth", "judge_eval_images"),
  search = pick("search_prompts", "search_max_n", "search_steps_max_n", "search_steps"),
}

-- ---- the plan ---------------------------------------------------------------------
local function plan_lines()
  local L = {
    string.format("pipeline '%s' (profile %s) -> %s", o.name, o.profile, o.out),
    string.format("  base      %s, depth %d, %d steps, batch %d, AdamW lr %g (cooldown over the last %d), EMA %g",
      o.preset, o.base_depth, o.base_steps, o.batch, o.lr, decay_of(o.base_steps), o.ema),
    string.format("  grow      partial preservation, identity init: %d -> %d blocks, then %d steps (lr %g, cooldown %d)",
      o.base_depth, o.grow_depth, o.grow_steps, o.lr, decay_of(o.grow_steps)),
    o.scratch and string.format("  scratch   depth %d from scratch, %d steps, the same schedule", o.grow_depth, o.grow_steps)
      or "  scratch   off (--scratch=false): the growth curve is compared with the base's own curve",
    string.format("  prune     cosine block importance on %d prompts x %d noise levels, oneshot: %d -> %d blocks",
      o.calib_prompts, o.calib_timesteps, o.grow_depth, o.prune_depth),
    string.format("  finetune  %d steps, lr %g, EMA %g", o.ft_steps, o.ft_lr, o.ft_ema),
    string.format("  judge     %d steps (width %d, depth %d), on renders and %d samples of the fine-tuned model",
      o.judge_steps, o.judge_width, o.judge_depth, o.judge_samples),
    string.format("  search    %d prompts per category, N = 1..%d candidates of %d steps; steps line up to x%d",
      o.search_prompts, o.search_max_n, o.search_steps, o.search_steps_max_n),
    string.format("  evaluation: %d prompts per category, %d sampling steps, after every model stage", o.eval_prompts, o.eval_steps),
  }
  return L
end

-- The standalone studies behind the stages, at their documented sizes:
-- every strategy × init, and pruning against random/last blocks and scratch.
local function study_commands(deep_time)
  return {
    "build/grove recipes/grow_study.lua --lr 2e-3 --out runs/grow_study",
    string.format("build/grove recipes/prune_study.lua --deep %s --deep-time %s --out runs/prune_study", ckpt("grow"),
      deep_time and string.format("%.0f", deep_time) or "SECONDS_OF_BASE_AND_GROW_TRAINING"),
    string.format("build/grove recipes/train_judge.lua --checkpoint %s --out runs/judge", ckpt("finetune")),
    string.format("build/grove recipes/search_study.lua --checkpoint %s --judge runs/judge/judge.safetensors --out runs/search_study",
      ckpt("finetune")),
  }
end

for _, l in ipairs(plan_lines()) do print(l) end
if o.profile == "full" or o.plan then
  print("the standalone studies (all strategies, inits and schedules) at their documented sizes:")
  for _, c in ipairs(study_commands()) do print("  " .. c) end
end
if o.plan then return end

local run = pipeline.new { dir = o.out, stages = STAGES, from = o.from, clock = grove.now }

-- ---- the stages -------------------------------------------------------------------
-- A model of `depth` blocks trained from scratch for `steps` into dir, with its grid and evaluation.
local function from_scratch(dir, depth, steps)
  local losses, secs = train_into(dir, { config = { depth = depth }, steps = steps, lr = o.lr, decay = decay_of(steps),
                                         ema = o.ema })
  local parts = load(dir .. "/checkpoint.safetensors")
  sample_grid(parts, dir .. "/samples.png")
  return { losses = losses, train_seconds = secs, eval = evaluate(parts), depth = depth,
           params = parts.model:num_parameters() }
end

local base = run:stage("base", stage_options.base, function(dir) return from_scratch(dir, o.base_depth, o.base_steps) end)

local grow = run:stage("grow", stage_options.grow, function(dir)
  local src = train.load_for_inference(ckpt("base")) -- EMA weights; grown on the CPU, trained on the device
  local t0 = grove.now()
  local grown, kinds = grove.grow(src.model, { strategy = "partial", depth = o.grow_depth, init = "identity", seed = o.seed })
  local both = grove.nn.Container { { "model", grown }, { "text", src.text } }
  local start = dir .. "/grown_start.safetensors"
  train.save_weights(start, { both = both, model = grown, text_config = src.text_config },
    { ["grove.grow"] = "partial/identity" })
  local grow_seconds = grove.now() - t0
  local losses, secs = train_into(dir, { init = start, steps = o.grow_steps, lr = o.lr, decay = decay_of(o.grow_steps),
                                         ema = o.ema })
  os.remove(start)
  local parts = load(dir .. "/checkpoint.safetensors")
  sample_grid(parts, dir .. "/samples.png")
  return { losses = losses, train_seconds = secs, grow_seconds = grow_seconds, kinds = kinds, eval = evaluate(parts),
           depth = o.grow_depth, params = parts.model:num_parameters() }
end)

local scratch = run:stage("scratch", stage_options.scratch, function(dir)
  if not o.scratch then return { off = true } end
  return from_scratch(dir, o.grow_depth, o.grow_steps)
end)

local prune = run:stage("prune", stage_options.prune, function(dir)
  local deep = load(ckpt("grow"))
  local t0 = grove.now()
  local calib = grove.prune.calibration(deep.model, deep, { prompts = o.calib_prompts, timesteps = o.calib_timesteps,
                                                            seed = o.seed, size = d.size })
  local loss_before = grove.prune.calib_loss(deep.model, calib)
  local pruned, info = grove.prune.parts(deep, { depth = o.prune_depth, metric = "cosine", schedule = "oneshot",
                                                 seed = o.seed, calib = calib })
  local loss_after = grove.prune.calib_loss(pruned.model, calib)
  local prune_seconds = grove.now() - t0
  train.save_weights(dir .. "/pruned.safetensors", pruned, { ["grove.prune"] = grove.prune.describe(info) })
  grove.prune.chart(dir .. "/importance.png", info.scores, info.removed, { metric = "cosine" })
  sample_grid(pruned, dir .. "/samples.png")
  print(string.format("pruned %d -> %d blocks: removed %s; calibration loss %.5f -> %.5f", info.source_depth, info.depth,
    table.concat(info.removed, ","), loss_before, loss_after))
  return { scores = info.scores, removed = info.removed, kept = info.kept, loss_before = loss_before,
           loss_after = loss_after, prune_seconds = prune_seconds, eval = evaluate(pruned), depth = o.prune_depth,
           params = pruned.model:num_parameters() }
end)

local finetune = run:stage("finetune", stage_options.finetune, function(dir)
  local losses, secs = train_into(dir, { init = o.out .. "/prune/pruned.safetensors", steps = o.ft_steps, lr = o.ft_lr,
                                         warmup = math.min(10, o.ft_steps), ema = o.ft_ema })
  local parts = load(dir .. "/checkpoint.safetensors")
  sample_grid(parts, dir .. "/samples.png")
  return { losses = losses, train_seconds = secs, eval = evaluate(parts), depth = o.prune_depth,
           params = parts.model:num_parameters() }
end)

local judge = run:stage("judge", stage_options.judge, function(dir)
  local r = grove.judge.train { steps = o.judge_steps, samples = o.judge_samples, width = o.judge_width,
                                depth = o.judge_depth, stem_depth = o.judge_stem_depth, eval_images = o.judge_eval_images, seed = o.seed,
                                checkpoint = ckpt("finetune"), out = dir, log_every = math.max(1, math.floor(o.judge_steps / 10)),
                                device = o.device }
  print(r.accuracy)
  local sets = {}
  for _, e in ipairs(r.sets) do sets[#sets + 1] = { name = e.name, result = e.result } end
  return { losses = r.losses, accuracy = r.accuracy, sets = sets, train_seconds = r.time,
           params = r.judge:num_parameters() }
end)

local search = run:stage("search", stage_options.search, function(dir)
  local parts = load(ckpt("finetune"))
  local j = grove.judge.load(o.out .. "/judge/judge.safetensors"):to(o.device)
  local r = grove.search.study { parts = parts, judge = j, prompts = o.search_prompts, max_n = o.search_max_n,
                                 steps = o.search_steps, steps_max_n = o.search_steps_max_n, seed = 0, out = dir }
  print(r.table)
  -- the grid prompts again, each the tournament's pick of max_n candidates
  local picks = {}
  for i, prompt in ipairs(GRID_PROMPTS) do
    local picked = grove.search.run(parts, prompt, { n = o.search_max_n, pick = 1, policy = "tournament", judge = j,
      seed = 100000 + (i - 1) * o.search_max_n, steps = o.search_steps, batch = math.min(16, o.search_max_n) })
    picks[i] = picked[1].image
  end
  grove.image.save(dir .. "/samples.png", grove.image.grid(picks, { cols = 6, captions = GRID_PROMPTS, scale = 3 }))
  local tour = r.results.tournament[o.search_max_n]
  return { rows = r.rows, table = r.table, study_seconds = r.time, example_prompt = r.example_prompt,
           eval = { per_category = tour.per_category, overall = tour.overall } }
end)

-- ---- the report -------------------------------------------------------------------
local function smooth(y, a)
  local out, acc = {}, nil
  for i, v in ipairs(y) do acc = acc and (1 - a) * acc + a * v or v; out[i] = acc end
  return out
end
local function mean_tail(l, n)
  local s, k = 0, 0
  for i = math.max(1, #l - n + 1), #l do s, k = s + l[i], k + 1 end
  return s / math.max(k, 1)
end
local plot = require "grove.plot"
local function curve(path, title, series, ylabel)
  plot.lines { path = o.out .. "/" .. path, title = title, xlabel = "step", ylabel = ylabel or "flow-matching loss",
               log_y = true, series = series }
  return path
end

local cats = grove.data.captions.categories
local short = { single_object = "single", two_object = "two", counting = "count", colors = "colors",
                position = "position", color_attr = "color attr" }
local rows_eval = {}
local function eval_row(label, m, note)
  if not m or not m.eval then return end
  local row = { label, m.depth or "", note or "" }
  for _, c in ipairs(cats) do row[#row + 1] = m.eval.per_category[c] or 0 end
  row[#row + 1] = m.eval.overall
  rows_eval[#rows_eval + 1] = row
end
eval_row("base", base, string.format("%d steps", o.base_steps))
eval_row("grown", grow, string.format("+%d steps", o.grow_steps))
if not scratch.off then eval_row("scratch (comparison)", scratch, string.format("%d steps from scratch", o.grow_steps)) end
eval_row("pruned", prune, "right after pruning")
eval_row("fine-tuned", finetune, string.format("+%d steps", o.ft_steps))
eval_row(string.format("search (tournament, N = %d)", o.search_max_n), { depth = o.prune_depth, eval = search.eval },
  string.format("%d prompts per category", o.search_prompts))

local doc = report.new { title = "grove pipeline: " .. o.name, dir = o.out, embed = o.embed }
doc:p(string.format("The SANA 1.5 pipeline on the shapes set: train a %d-block model, grow it to %d blocks, train on, " ..
  "prune it to %d blocks by block importance, fine-tune, and search at inference time with a trained judge. " ..
  "Every number below was measured by this run.", o.base_depth, o.grow_depth, o.prune_depth))

doc:section("configuration", "Configuration")
doc:pre(argline)
local cfg_rows = {}
for _, l in ipairs(plan_lines()) do cfg_rows[#cfg_rows + 1] = l end
doc:pre(table.concat(cfg_rows, "\n"))
local timing = {}
local total, cpu_total = 0, 0
for _, s in ipairs(STAGES) do
  local m = run.done[s]
  if m then
    total = total + (m.seconds or 0)
    cpu_total = cpu_total + (m.cpu_seconds or 0)
    timing[#timing + 1] = { s, m.seconds or 0, m.cpu_seconds or "", m.skipped and "earlier run" or "this run", m.params or "" }
  end
end
timing[#timing + 1] = { "all stages", total, cpu_total, "", "" }
doc:table { caption = "Stages (wall and processor seconds, evaluation and sample grids included)",
            header = { "stage", "wall s", "cpu s", "ran in", "parameters" }, rows = timing,
            formats = { [2] = "%.0f", [3] = "%.0f" } }
doc:p(string.format("Machine: %s; %s.", grove.blas_info and grove.blas_info() or "cpu", os.date("%Y-%m-%d %H:%M")), { class = "note" })

doc:section("scores", "The evaluator's table after each stage")
local header = { "stage", "blocks", "trained" }
for _, c in ipairs(cats) do header[#header + 1] = short[c] or c end
header[#header + 1] = "overall"
local score_cols = {}
for i = 4, #header do score_cols[i] = "%.3f" end
doc:table { header = header, rows = rows_eval, bold_last = true, formats = score_cols }
doc:p(string.format("GenEval-like scores of the analytic evaluator (docs/shapes.md): %d prompts per category, %d sampling " ..
  "steps, EMA weights. The search row scores the tournament's pick among %d candidates for each of the search " ..
  "study's %d prompts per category (its own prompt set).", o.eval_prompts, o.eval_steps, o.search_max_n,
  o.search_prompts), { class = "note" })

doc:section("losses", "Loss curves")
for _, s in ipairs { { "base", base }, { "grow", grow }, { "scratch", scratch }, { "finetune", finetune } } do
  local m = s[2]
  if m.losses and #m.losses > 1 then
    doc:image(curve(s[1] .. "/curve.png", s[1] .. " training loss",
      { { name = "loss", y = m.losses }, { name = "smoothed", y = smooth(m.losses, 0.05) } }),
      { alt = s[1] .. " loss", width = 640,
        caption = string.format("%s: %d steps in %.0f s", s[1], #m.losses, m.train_seconds or 0) })
  end
end
if judge.losses and #judge.losses > 1 then
  doc:image(curve("judge/curve.png", "judge training loss", { { name = "loss", y = judge.losses },
    { name = "smoothed", y = smooth(judge.losses, 0.05) } }, "cross-entropy"),
    { alt = "judge loss", width = 640, caption = string.format("judge: %d steps in %.0f s", #judge.losses, judge.train_seconds or 0) })
end

doc:section("growth", "Growth against training from scratch")
do
  local series = { { name = string.format("grown %d->%d", o.base_depth, o.grow_depth), y = smooth(grow.losses, 0.05) } }
  local caption
  if not scratch.off then
    series[2] = { name = string.format("scratch depth %d", o.grow_depth), y = smooth(scratch.losses, 0.05) }
    caption = string.format("Smoothed training loss of the grown model and of a depth-%d model trained from scratch for the " ..
      "same %d steps with the same schedule, data and noise. First loss: grown %.4f, scratch %.4f; last 50 steps' mean: " ..
      "grown %.4f, scratch %.4f.", o.grow_depth, o.grow_steps, grow.losses[1], scratch.losses[1],
      mean_tail(grow.losses, 50), mean_tail(scratch.losses, 50))
  else
    -- no scratch run: the base model's own curve, placed before the growth
    local x = {}
    for i = 1, #base.losses do x[i] = i - #base.losses end
    series[2] = { name = "base model (before growth)", x = x, y = smooth(base.losses, 0.05) }
    caption = "No scratch model was trained (--scratch=false): the second curve is the base model's own loss, " ..
      "at negative steps before the growth, not a from-scratch comparison."
  end
  doc:image(curve("growth.png", "grown vs scratch", series, "loss (smoothed)"), { alt = "growth vs scratch", caption = caption })
  doc:p(string.format("Partial preservation with identity init (blocks: %s): the grown model starts as the base " ..
    "model's function. Its first training loss is %.4f; the base model's last 50 steps averaged %.4f.",
    table.concat(grow.kinds or {}, " "), grow.losses[1], mean_tail(base.losses, 50)), { class = "note" })
end

doc:section("pruning", "Pruning")
doc:image("prune/importance.png", { alt = "block importance", caption = string.format(
  "Block importance of the grown model (1 - mean cos(x_in, x_out) on %d calibration prompts x %d noise levels); " ..
  "red blocks were removed: %s.", o.calib_prompts, o.calib_timesteps, table.concat(prune.removed, ", ")) })
do
  local t = {}
  for i, v in ipairs(prune.scores) do t[#t + 1] = { i, v, (function()
    for _, r in ipairs(prune.removed) do if r == i then return "removed" end end
    return "kept"
  end)() } end
  doc:table { caption = "Importance per block", header = { "block", "importance", "" }, rows = t, format = "%.5f" }
end
doc:p(string.format("Calibration flow loss: %.5f before pruning, %.5f right after (%d -> %d blocks).", prune.loss_before,
  prune.loss_after, o.grow_depth, o.prune_depth))
if finetune.losses and #finetune.losses > 1 then
  doc:image(curve("prune_curve.png", "fine-tuning after pruning", { { name = "loss", y = finetune.losses },
    { name = "smoothed", y = smooth(finetune.losses, 0.1) } }), { alt = "fine-tune loss",
    caption = string.format("The pruned model's fine-tuning loss (%d steps, lr %g).", o.ft_steps, o.ft_lr) })
end

doc:section("samples", "Samples per stage")
doc:p(string.format("The same %d prompts and seed (%d) for every stage, %d sampling steps, EMA weights; the search row " ..
  "shows the judge's tournament pick among %d candidates per prompt.", #GRID_PROMPTS, GRID_SEED, o.grid_steps,
  o.search_max_n), { class = "note" })
for _, s in ipairs(STAGES) do
  if s ~= "judge" and pipeline.exists(o.out .. "/" .. s .. "/samples.png") then
    doc:section("samples-" .. s, s, 3)
    doc:image(s .. "/samples.png", { alt = s .. " samples" })
  end
end

doc:section("search", "Inference-time search")
doc:image("search/scaling.png", { alt = "score against compute", caption = string.format(
  "Overall score against model evaluations per prompt: the judge's tournament and best-of-N among the first N of %d " ..
  "candidates, the evaluator as its own judge (oracle, the ceiling), a random pick (the floor, its expected score), and one candidate " ..
  "with more denoising steps; %d prompts per category.", o.search_max_n, o.search_prompts) })
do
  local h = { "line", "N", "model evals" }
  for _, c in ipairs(cats) do h[#h + 1] = short[c] or c end
  h[#h + 1] = "overall"
  local t = {}
  for _, r in ipairs(search.rows) do
    local row = { r.line, r.n, r.evals }
    for _, v in ipairs(r.per_category) do row[#row + 1] = v end
    row[#row + 1] = r.overall
    t[#t + 1] = row
  end
  local fm = {}
  for i = 4, #h do fm[i] = "%.3f" end
  doc:table { caption = "Candidates against steps", header = h, rows = t, bold_last = true, formats = fm }
  -- what the table says, in one sentence per comparison: read from the rows
  local at = {}
  for _, r in ipairs(search.rows) do at[r.line .. "@" .. r.evals] = r.overall end
  local function score(line, n) return at[line .. "@" .. n * o.search_steps] end
  local n, most_steps = o.search_max_n, 1
  for _, r in ipairs(search.rows) do if r.line:match("^steps") and r.n == 1 then most_steps = math.max(most_steps, r.evals / o.search_steps) end end
  local t1, tn, rn, on = score("tournament", 1), score("tournament", n), score("random", n), score("oracle", n)
  local tk, sk = score("tournament", most_steps), score("steps ×" .. most_steps, most_steps)
  if t1 and tn and rn and on and tk and sk then
    doc:p(string.format("In this run: the tournament's pick scores %.3f at N = 1 and %.3f at N = %d (%+.3f); a random " ..
      "pick among the same %d scores %.3f on average, so the judge adds %+.3f over chance; the oracle reaches %.3f. At %d model " ..
      "evaluations per prompt, %d candidates give %.3f and one candidate with %d× the steps %.3f.", t1, tn, n, tn - t1, n,
      rn, tn - rn, on, most_steps * o.search_steps, most_steps, tk, most_steps, sk))
  end
end
doc:image("search/example.png", { alt = "candidates", caption = "Candidates for \"" .. tostring(search.example_prompt) ..
  "\" with their judge scores; the tournament's pick is starred." })
doc:section("judge", "The judge", 3)
doc:p(string.format("%d parameters, %d steps on renders with hard negatives and on %d samples of the fine-tuned model. " ..
  "Held-out accuracy:", judge.params or 0, o.judge_steps, o.judge_samples))
do
  local t = {}
  for _, e in ipairs(judge.sets) do
    t[#t + 1] = { e.name, e.result.overall, e.result.total }
  end
  doc:table { header = { "set", "accuracy", "pairs" }, rows = t, formats = { [2] = "%.3f" } }
  doc:pre(judge.accuracy)
end

doc:section("files", "Files and commands")
doc:list {
  "checkpoints: " .. o.out .. "/{base,grow,scratch,finetune}/checkpoint.safetensors, " .. o.out .. "/prune/pruned.safetensors",
  "judge: " .. o.out .. "/judge/judge.safetensors; search study: " .. o.out .. "/search/{table.md,results.csv}",
  "each stage's manifest.lua (its options and measurements) and DONE marker",
}
doc:p("Re-running the same command skips the finished stages; --from STAGE runs a stage and the later ones again. " ..
  "The standalone studies at their documented sizes:")
doc:pre(table.concat(study_commands((base.train_seconds or 0) + (grow.train_seconds or 0)), "\n"))

local path = doc:write(o.out .. "/report.html")
if #doc.missing > 0 then print("report: missing images: " .. table.concat(doc.missing, ", ")) end

print("")
print(string.format("%-22s %6s  %s", "stage", "blocks", "overall"))
for _, r in ipairs(rows_eval) do print(string.format("%-22s %6s  %.3f", r[1], tostring(r[2]), r[#r])) end
print(string.format("pipeline '%s' finished in %.0f s (stages: %.0f s); report: %s", o.name, grove.now() - t_all, total, path))
