-- The main job: the SANA 1.5 pipeline on the shapes set, end to end.
--   base     train a shallow model (base_depth blocks)
--   grow     grow it to grow_depth blocks (partial preservation, identity
--            init: grove.grow) and train on
--   scratch  a model of grow_depth trained from scratch with the compute of
--            the base and the grown training (growth vs scratch at equal
--            compute)
--   prune    prune the grown model back to prune_depth blocks by block
--            importance (cosine metric on a calibration set: grove.prune)
--   finetune fine-tune the pruned model (100 steps)
--   scratch_pruned a model of prune_depth trained from scratch with the
--            compute of the whole path to the fine-tuned model (base, grow,
--            calibration forwards, fine-tuning): pruning vs scratch
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

local STAGES = { "base", "grow", "scratch", "prune", "finetune", "scratch_pruned", "judge", "search" }

-- Profiles: every option below that has no default on the command line
-- comes from the profile.
local profiles = {
  quick = {
    preset = "tiny", base_depth = 3, grow_depth = 6, prune_depth = 4, base_steps = 1000, grow_steps = 300,
    ft_steps = 100, batch = 32, lr = 2e-3, ft_lr = 5e-4, decay = 1 / 3, ema = 0.995, ft_ema = 0.95,
    eval_prompts = 30, eval_steps = 20, calib_prompts = 64, calib_timesteps = 8,
    judge_steps = 800, judge_samples = 128, judge_width = 64, judge_depth = 3, judge_stem_depth = 1, judge_eval_images = 128,
    search_prompts = 6, search_max_n = 16, search_steps_max_n = 8, search_steps = 20, grid_steps = 20,
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
  base_steps = 4000, grow_steps = 2000, eval_prompts = 60, judge_steps = 4000, judge_samples = 256, judge_eval_images = 256,
  search_prompts = 20, search_max_n = 64, search_steps_max_n = 16,
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
  { "grow_steps", "number", nil, "training steps after growing" },
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
  { "scratch", "boolean", true, "train the equal-compute scratch models of the grown and the pruned depth" },
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

-- The evaluator's scores of parts (EMA weights when loaded so); of the
-- per-prompt results only the verdicts (1 pass, 0 fail, in prompt order: the
-- same prompts and seed for every stage), which pair the stages for the
-- report's confidence intervals.
local function evaluate(parts)
  local t0 = grove.now()
  local r = train.evaluate(parts, { size = d.size, seed = o.seed, eval_steps = o.eval_steps, cfg = d.cfg,
                                    eval_prompts = o.eval_prompts, sampler = d.sampler })
  print(grove.eval.shapes.format(r))
  local passes = {}
  for i, res in ipairs(r.results) do passes[i] = res.pass and 1 or 0 end
  return { per_category = r.per_category, counts = r.counts, overall = r.overall, passes = passes,
           seconds = grove.now() - t0 }
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

-- Compute (the transformer's matrix FLOPs: grove.train.step_flops, 3
-- forwards a training step; the calibration's forwards as
-- grove.prune.calibration_flops counts them), the same rule as
-- recipes/grow_study.lua and recipes/prune_study.lua: each scratch model
-- gets the compute of the whole path to the model it is compared with,
-- turned into steps at its own depth.
local compute = (function()
  local function F(depth) return train.step_flops(o.preset, depth, o.batch) end
  local grow_cfg = grove.nn.resolve_config(o.preset)
  grow_cfg.depth = o.grow_depth
  local c = { base = o.base_steps * F(o.base_depth), grow = o.grow_steps * F(o.grow_depth),
              calib = grove.prune.calibration_flops(grow_cfg, o.calib_prompts, o.calib_timesteps, d.size),
              finetune = o.ft_steps * F(o.prune_depth) }
  c.grown = c.base + c.grow
  c.finetuned = c.grown + c.calib + c.finetune
  c.scratch_steps = train.steps_for_flops(c.grown, o.preset, o.grow_depth, o.batch)
  c.scratch = c.scratch_steps * F(o.grow_depth)
  c.scratch_pruned_steps = train.steps_for_flops(c.finetuned, o.preset, o.prune_depth, o.batch)
  c.scratch_pruned = c.scratch_pruned_steps * F(o.prune_depth)
  return c
end)()
local function tflop(x) return string.format("%.3f TFLOP", x / 1e12) end
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
  scratch = pick("base_depth", "base_steps", "grow_depth", "grow_steps", "batch", "lr", "decay", "ema", "scratch"),
  prune = pick("prune_depth", "calib_prompts", "calib_timesteps"),
  finetune = pick("ft_steps", "ft_lr", "ft_ema", "batch"),
  scratch_pruned = pick("base_depth", "base_steps", "grow_depth", "grow_steps", "prune_depth", "calib_prompts",
                        "calib_timesteps", "ft_steps", "batch", "lr", "decay", "ema", "scratch"),
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
    o.scratch and string.format("  scratch   depth %d from scratch, %d steps (lr %g, cooldown %d): %s, the compute of base + grow (%s)",
      o.grow_depth, compute.scratch_steps, o.lr, decay_of(compute.scratch_steps), tflop(compute.scratch), tflop(compute.grown))
      or "  scratch   off (--scratch=false): the growth curve is compared with the base's own curve",
    string.format("  prune     cosine block importance on %d prompts x %d noise levels, oneshot: %d -> %d blocks",
      o.calib_prompts, o.calib_timesteps, o.grow_depth, o.prune_depth),
    string.format("  finetune  %d steps, lr %g, EMA %g", o.ft_steps, o.ft_lr, o.ft_ema),
    o.scratch and string.format("  scratch_pruned depth %d from scratch, %d steps (lr %g, cooldown %d): %s, the compute of " ..
      "base + grow + calibration + fine-tuning (%s)", o.prune_depth, compute.scratch_pruned_steps, o.lr,
      decay_of(compute.scratch_pruned_steps), tflop(compute.scratch_pruned), tflop(compute.finetuned))
      or "  scratch_pruned off (--scratch=false)",
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
-- The grown model's compute, base included (the prune study's --deep-tflop):
-- the transformer's matrix FLOPs, 3 forwards per training step.
local function grown_tflop() return compute.grown / 1e12 end
local function study_commands()
  return {
    "build/grove recipes/grow_study.lua --out runs/grow_study",
    string.format("build/grove recipes/prune_study.lua --deep %s --deep-tflop %.4g --out runs/prune_study", ckpt("grow"),
      grown_tflop()),
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
  return { losses = losses, train_seconds = secs, eval = evaluate(parts), depth = depth, steps = steps,
           flops = steps * train.step_flops(o.preset, depth, o.batch), params = parts.model:num_parameters() }
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
  local m = from_scratch(dir, o.grow_depth, compute.scratch_steps)
  m.path_flops = compute.grown -- what it is matched with: base + grow
  return m
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

local scratch_pruned = run:stage("scratch_pruned", stage_options.scratch_pruned, function(dir)
  if not o.scratch then return { off = true } end
  local m = from_scratch(dir, o.prune_depth, compute.scratch_pruned_steps)
  m.path_flops = compute.finetuned -- base + grow + calibration + fine-tuning
  m.calib_flops = compute.calib
  return m
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
           eval = { per_category = tour.per_category, overall = tour.overall, passes = tour.per_prompt } }
end)

-- ---- the report (lua/grove/report/pipeline.lua) -----------------------------------
local doc, rows_eval, total = report.pipeline(grove, {
  o = o, base = base, grow = grow, scratch = scratch, prune = prune, finetune = finetune, scratch_pruned = scratch_pruned,
  judge = judge, search = search, compute = compute,
  done = run.done, stages = STAGES, argline = argline, plan = plan_lines(),
  study_commands = study_commands(),
  grid_prompts = GRID_PROMPTS, grid_seed = GRID_SEED, exists = pipeline.exists,
})

local path = doc:write(o.out .. "/report.html")
if #doc.missing > 0 then print("report: missing images: " .. table.concat(doc.missing, ", ")) end

print("")
print(string.format("%-38s %6s  %s", "stage", "blocks", "overall"))
for _, r in ipairs(rows_eval) do print(string.format("%-38s %6s  %.3f", r[1], tostring(r[2]), r[#r])) end
print(string.format("pipeline '%s' finished in %.0f s (stages: %.0f s); report: %s", o.name, grove.now() - t_all, total, path))
