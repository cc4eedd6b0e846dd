-- The command line of grove.diffusers.finetune: recipes/train.lua with
-- --model DIR --cache CACHE fine-tunes a diffusers folder instead of
-- training a shapes model.
--   grove recipes/train.lua --model Sana_600M --cache cache --out runs/ft --steps 1000 [--help]
local args = require "grove.cli.args"

local cli = {}

-- True when argv asks for the folder fine-tune (--model or --cache given).
function cli.wanted(argv)
  for _, a in ipairs(argv or {}) do
    if a == "--model" or a == "--cache" or a:match("^%-%-model=") or a:match("^%-%-cache=") then return true end
  end
  return false
end

local function spec(d)
  return {
    { "model", "string", nil, "the diffusers SANA folder whose transformer is fine-tuned", required = true },
    { "cache", "string", nil, "its feature cache (grove cache): latents and caption features", required = true },
    { "out", "string", nil, "run folder: checkpoint, loss curve, model/ (the fine-tuned folder)", required = true },
    { "steps", "number", d.steps, "optimizer steps", check = args.count },
    { "batch", "number", d.batch, "cached images per micro-batch", check = args.count },
    { "accum", "number", d.accum, "micro-batches per optimizer step (gradient accumulation)", check = args.count },
    { "lr", "number", d.lr, "learning rate after warmup", check = args.number(0) },
    { "optimizer", "string", d.optimizer, "came8bit, adamw, came or sgd" },
    { "weight_decay", "number", d.weight_decay, "decoupled weight decay (not on norms, biases, tables)",
      check = args.number(0) },
    { "warmup", "number", d.warmup, "linear warmup steps", check = args.integer(0) },
    { "decay", "number", d.decay, "linear learning-rate cooldown to 0 over the last N of --steps (0: none)",
      check = args.integer(0) },
    { "clip", "number", d.clip, "global gradient-norm clip (0: none)", check = args.number(0) },
    { "ema", "number", d.ema, "EMA decay (0: no EMA)", check = args.number(0, 0.999999999) },
    { "raw", "boolean", false, "save the raw weights into OUT/model instead of the EMA's" },
    { "dtype", "string", d.dtype, "f32, or bf16: bf16 GEMMs on the f32 master weights" },
    { "save_dtype", "string", d.save_dtype, "dtype of the saved weights: stored (as the source folder's), f32 or bf16" },
    { "no_recompute", "boolean", false, "keep every block's activations instead of recomputing them in backward" },
    { "weighting", "string", d.weighting, "timestep density: logit_normal or uniform" },
    { "logit_mean", "number", d.logit_mean, "mean of the logit-normal", check = args.finite },
    { "logit_std", "number", d.logit_std, "standard deviation of the logit-normal", check = args.number(0) },
    { "flow_shift", "number", nil, "the schedule's shift instead of the folder scheduler's", check = args.number(0) },
    { "seed", "number", d.seed, "seed of the data order, noise and timesteps", check = args.seed },
    { "save_every", "number", d.save_every, "checkpoint every N steps", check = args.count },
    { "log_every", "number", d.log_every, "log line every N steps when not on a terminal", check = args.count },
    { "resume", "boolean", false, "continue from OUT/checkpoint.safetensors" },
    { "time_limit", "number", d.time_limit, "stop (and save) after this many seconds (0: no limit)",
      check = args.number(0) },
    { "copy", "boolean", false, "copy the folder's other components into OUT/model instead of linking them" },
    { "variant", "string", nil, "read and write the transformer's variant files (bf16, fp16)" },
    args.device_option(),
  }
end

local USAGE = "grove recipes/train.lua --model DIR --cache CACHE --out RUN [options]"

-- Runs the command; returns true when training ended without a NaN.
function cli.main(argv)
  local grove = package.loaded.grove or require "grove"
  local s = spec(grove.diffusers.finetune_defaults)
  local o, rest = args.parse(argv, s, { usage = USAGE,
    description = "Fine-tunes the transformer of a diffusers SANA folder from a feature cache; see docs/sana15-real.md." })
  if not o then print(rest); return true end
  if #rest > 0 then error("unexpected argument '" .. rest[1] .. "'\n\n" .. args.usage(s, { usage = USAGE }), 0) end
  args.check_choice(o, "optimizer", { "came8bit", "adamw", "came", "sgd" })
  args.check_choice(o, "dtype", { "f32", "bf16" })
  args.check_choice(o, "save_dtype", { "stored", "f32", "bf16" })
  args.check_choice(o, "weighting", { "logit_normal", "uniform" })
  args.check_choice(o, "device", { "cpu", "cuda" })
  local opts = {}
  for k, v in pairs(o) do opts[k] = v end
  opts.model, opts.cache, opts.raw, opts.no_recompute = nil, nil, nil, nil
  opts.weights = o.raw and "raw" or "ema"
  opts.recompute = not o.no_recompute
  local t0 = grove.now()
  local run = grove.diffusers.finetune(o.model, o.cache, opts)
  if run.nan then return false end
  print(string.format("fine-tuned %d steps in %.0f s; folder %s (grove sample --model %s -p ...), loss curve %s/loss.png",
                      run.step, grove.now() - t0, run.folder, run.folder, o.out))
  return true
end

return cli
