-- Trains a SANA model and its text encoder on the shapes set (or a folder
-- of captioned images), then samples the evaluation prompts and prints the
-- evaluator's table.
--   grove recipes/train.lua --preset tiny --steps 2000 [--help]
-- With --model DIR --cache CACHE it fine-tunes the transformer of a
-- diffusers folder from a feature cache instead (grove.diffusers.finetune):
--   grove recipes/train.lua --model DIR --cache CACHE --out RUN [--help]
local finetune = require "grove.diffusers.finetune_cli"
if finetune.wanted(arg) then
  if not finetune.main(arg) then os.exit(1) end
  return
end

local args = require "grove.cli.args"
local d = grove.train.defaults

local spec = {
  { "preset", "string", d.preset, "model preset (tiny, small, …)" },
  { "steps", "number", d.steps, "optimizer steps" },
  { "batch", "number", d.batch, "images per step" },
  { "lr", "number", d.lr, "learning rate after warmup" },
  { "optimizer", "string", d.optimizer, "adamw, came8bit, came or sgd" },
  { "weight_decay", "number", d.weight_decay, "decoupled weight decay (not on norms, biases, tables)" },
  { "warmup", "number", d.warmup, "linear warmup steps" },
  { "decay", "number", d.decay, "linear learning-rate cooldown to 0 over the last N of --steps (0: none)" },
  { "clip", "number", d.clip, "global gradient-norm clip" },
  { "ema", "number", d.ema, "EMA decay of the sampled weights" },
  { "seed", "number", d.seed, "seed of the model, data and noise" },
  { "size", "number", d.size, "image size" },
  { "data", "string", d.data, "'shapes' or a folder of images with .txt captions" },
  { "out", "string", d.out, "run folder: checkpoint, loss curve, samples" },
  { "save_every", "number", d.save_every, "checkpoint every N steps" },
  { "sample_every", "number", d.sample_every, "sample grid every N steps (0: never)" },
  { "log_every", "number", d.log_every, "log line every N steps when not on a terminal" },
  { "resume", "boolean", d.resume, "continue from OUT/checkpoint.safetensors" },
  { "freeze_text", "boolean", d.freeze_text, "keep the text encoder frozen" },
  { "time_limit", "number", d.time_limit, "stop (and save) after this many seconds (0: no limit)" },
  { "eval", "boolean", d.eval, "evaluate on the shapes prompt sets at the end" },
  { "eval_prompts", "number", d.eval_prompts, "prompts per category in the final evaluation" },
  { "cfg", "number", d.cfg, "classifier-free guidance scale for samples" },
  { "dist", "boolean", d.dist, "data parallel over the processes of scripts/launch (one GPU each; docs/scale.md)" },
  { "device", "string", d.device, "cpu or cuda: where the model trains and samples (the random draws are the CPU's either way)" },
}

local o, rest = args.parse(arg, spec, { usage = "grove recipes/train.lua [options]",
  description = "Trains a SANA model with its text encoder; see docs/training.md. With --model DIR --cache CACHE: " ..
                "fine-tunes a diffusers folder (--model DIR --cache CACHE --help)." })
if not o then print(rest); return end

local t0 = grove.now()
local run = grove.train.run(o)
if run.nan then os.exit(1) end
print(string.format("trained %d steps in %.0f s; checkpoint %s/checkpoint.safetensors, loss curve %s/loss.png",
  run.step, grove.now() - t0, o.out, o.out))

if o.eval and o.data == "shapes" then
  local parts = grove.train.load_for_inference(o.out .. "/checkpoint.safetensors", { device = o.device })
  local r, images, prompts = grove.train.evaluate(parts, o)
  local picks, caps = {}, {}
  for k = 1, #prompts, math.max(1, math.floor(#prompts / 24)) do
    if #picks < 24 then picks[#picks + 1] = images:narrow(1, k, 1); caps[#caps + 1] = prompts[k] end
  end
  grove.image.save(o.out .. "/eval_grid.png", grove.image.grid(grove.cat(picks, 1), { cols = 6, captions = caps, scale = 3 }))
  print("evaluation (" .. #prompts .. " prompts, " .. (parts.ema_used and "EMA weights" or "raw weights") .. "):")
  print(grove.eval.shapes.format(r))
  local f = io.open(o.out .. "/eval.txt", "w")
  if f then f:write(grove.eval.shapes.format(r), "\n"); f:close() end
  print("sample grid: " .. o.out .. "/eval_grid.png")
end
