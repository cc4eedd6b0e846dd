-- Trains the judge of inference-time search (grove.judge, docs/search.md)
-- on shapes renders with hard negatives (each image with its caption, and
-- with the caption's colour, count, shape or relation changed), and, given
-- --checkpoint, on the diffusion model's own samples labelled by the
-- evaluator, as SANA 1.5's verifier learned from generated images labelled
-- by detectors. Prints the accuracy on held-out pairs per kind.
--   grove recipes/train_judge.lua [--steps 4000] [--checkpoint runs/tiny/checkpoint.safetensors] [--out runs/judge]
-- Writes OUT/judge.safetensors, OUT/accuracy.txt and OUT/loss.png.
local args = require "grove.cli.args"
local J = grove.judge
local d = J.train_defaults

local spec = {
  { "steps", "number", d.steps, "training steps" },
  { "batch", "number", d.batch, "images per step (each gives a matching and a changed caption)" },
  { "lr", "number", d.lr, "AdamW learning rate after warmup" },
  { "warmup", "number", d.warmup, "linear warmup steps" },
  { "width", "number", d.width, "judge width" },
  { "depth", "number", d.depth, "judge transformer layers" },
  { "heads", "number", d.heads, "attention heads" },
  { "patch", "number", d.patch, "image patch side" },
  { "size", "number", d.size, "image size" },
  { "stem", "number", d.stem, "channels of the judge's 3x3 convolution stem (0: none)" },
  { "stem_depth", "number", d.stem_depth, "3x3 convolutions in the stem" },
  { "kinds", "string", d.kinds, "hard-negative kinds, drawn in turn (a kind repeated is drawn more often: shape and relation are learned last)" },
  { "seed", "number", d.seed, "seed of the weights, the data and the changes" },
  { "checkpoint", "string", nil, "diffusion checkpoint whose samples, labelled by the evaluator, join the training data" },
  { "samples", "number", d.samples, "model samples drawn for training when --checkpoint is given (as many again, up to eval_images, are held out)" },
  { "sample_steps", "number", d.sample_steps, "sampling steps of those samples" },
  { "sample_every", "number", d.sample_every, "every k-th step trains on model samples (with --checkpoint)" },
  { "eval_images", "number", d.eval_images, "held-out images per evaluation set" },
  { "out", "string", d.out, "output folder" },
  args.device_option(),
}
local o, rest = args.parse(arg, spec, { usage = "grove recipes/train_judge.lua [options]",
  description = "Trains the image-text judge of grove.search; see docs/search.md." })
if not o then print(rest); return end
io.stdout:setvbuf("line") -- progress reaches a log file as it happens

local r = J.train(o)
print(r.accuracy)
print(string.format("judge -> %s (%.1f s)", r.path, r.time))
