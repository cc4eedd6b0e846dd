-- Prunes a trained model to fewer blocks and fine-tunes it briefly (SANA 1.5:
-- about 100 steps recover most of the quality), printing the evaluator's
-- table and the calibration flow loss before pruning, right after, and
-- after fine-tuning.
--   grove recipes/prune.lua --in runs/tiny/checkpoint.safetensors --depth 8 [--steps 100] [--help]
-- Writes OUT/pruned.safetensors, OUT/importance.png, OUT/finetune/ (the
-- fine-tuning run: checkpoint, loss curve) and OUT/eval.txt.
local args = require "grove.cli.args"
local d = grove.train.defaults

local spec = {
  { "in", "string", nil, "trained grove checkpoint or weights file", required = true },
  { "depth", "number", nil, "number of blocks to keep", required = true },
  { "metric", "string", "cosine", "importance metric: cosine, loss, or a registered name" },
  { "schedule", "string", "oneshot", "oneshot, iterative, random or last" },
  { "keep", "string", nil, "blocks never removed, comma-separated 1-based indices" },
  { "calib", "string", nil, "calibration prompt file (default: captions of the shapes training split)" },
  { "prompts", "number", 64, "shapes training-split captions in the calibration set when no --calib is given" },
  { "timesteps", "number", 8, "noise levels of the calibration set" },
  { "steps", "number", 100, "fine-tuning steps (0: none)" },
  { "batch", "number", d.batch, "images per fine-tuning step" },
  { "lr", "number", 5e-4, "fine-tuning learning rate after warmup" },
  { "warmup", "number", 10, "linear warmup steps of the fine-tuning" },
  { "optimizer", "string", d.optimizer, "adamw, came8bit, came or sgd" },
  { "ema", "number", d.ema, "EMA decay of the fine-tuned weights that are evaluated" },
  { "seed", "number", 1, "seed of the calibration set, the fine-tuning data and noise, the evaluation" },
  { "size", "number", d.size, "image size" },
  { "eval_prompts", "number", 20, "prompts per category in each evaluation (0: no evaluation)" },
  { "eval_steps", "number", d.eval_steps, "sampling steps of the evaluation" },
  { "raw", "boolean", false, "prune the raw weights instead of the EMA weights" },
  { "out", "string", "runs/prune", "output folder" },
  args.device_option(),
}
local o, rest = args.parse(arg, spec, { usage = "grove recipes/prune.lua --in FILE --depth K [options]",
  description = "Prune, then fine-tune; see docs/pruning.md." })
if not o then print(rest); return end
os.execute("mkdir -p '" .. o.out .. "'")

local train, prune = grove.train, grove.prune
local report = {}
local function say(s)
  print(s)
  report[#report + 1] = s
end

local parts = train.load_for_inference(o["in"], { ema = not o.raw, device = o.device })
local keep
if o.keep then
  keep = {}
  for w in o.keep:gmatch("[^,%s]+") do keep[#keep + 1] = assert(tonumber(w), "--keep: not a block index: " .. w) end
end
-- one calibration set for the pruning and for every loss printed below
local calib = prune.calibration(parts.model, parts, { prompts = o.calib or o.prompts, timesteps = o.timesteps,
                                                      seed = o.seed, size = o.size })

local function stage(name, p)
  local loss = prune.calib_loss(p.model, calib)
  say(string.format("== %s: %d blocks, %d parameters, calibration flow loss %.5f", name, #p.model.blocks,
                    p.model:num_parameters(), loss))
  if o.eval_prompts > 0 then
    local r = train.evaluate(p, { size = o.size, seed = o.seed, eval_steps = o.eval_steps, cfg = d.cfg,
                                  eval_prompts = o.eval_prompts, sampler = d.sampler })
    say(grove.eval.shapes.format(r))
    return r, loss
  end
  return nil, loss
end

stage("before pruning (" .. o["in"] .. ")", parts)

local t0 = grove.now()
local pruned, info = prune.parts(parts, { depth = o.depth, metric = o.metric, schedule = o.schedule, keep = keep,
                                          seed = o.seed, calib = calib })
if not info.scores then info.scores = prune.importance(parts.model, calib, { metric = o.metric }) end
local weights = o.out .. "/pruned.safetensors"
train.save_weights(weights, pruned, { ["grove.prune"] = prune.describe(info) })
prune.chart(o.out .. "/importance.png", info.scores, info.removed, { metric = info.metric })
local s = {}
for i, v in ipairs(info.scores) do s[i] = string.format("%d:%.4g", i, v) end
say(string.format("pruned %d -> %d blocks in %.1f s (%s metric, %s schedule): removed %s", info.source_depth,
                  info.depth, grove.now() - t0, info.metric, info.schedule, table.concat(info.removed, ",")))
say("importance: " .. table.concat(s, " "))

stage("after pruning", pruned)

if o.steps > 0 then
  local ft = o.out .. "/finetune"
  train.run { init = weights, steps = o.steps, batch = o.batch, lr = o.lr, warmup = o.warmup, optimizer = o.optimizer,
              ema = o.ema, seed = o.seed, size = o.size, out = ft, eval = false, sample_every = 0,
              save_every = o.steps, log_every = math.max(1, math.floor(o.steps / 10)), device = o.device }
  stage(string.format("after %d fine-tuning steps", o.steps),
        train.load_for_inference(ft .. "/checkpoint.safetensors", { device = o.device }))
end

local f = io.open(o.out .. "/eval.txt", "w")
if f then f:write(table.concat(report, "\n"), "\n"); f:close() end
print(string.format("weights %s, chart %s/importance.png, report %s/eval.txt", weights, o.out, o.out))
