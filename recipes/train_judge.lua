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

local spec = {
  { "steps", "number", 4000, "training steps" },
  { "batch", "number", 32, "images per step (each gives a matching and a changed caption)" },
  { "lr", "number", 1e-3, "AdamW learning rate after warmup" },
  { "warmup", "number", 50, "linear warmup steps" },
  { "width", "number", 64, "judge width" },
  { "depth", "number", 3, "judge transformer layers" },
  { "heads", "number", 2, "attention heads" },
  { "patch", "number", 8, "image patch side" },
  { "size", "number", 32, "image size" },
  { "stem", "number", 32, "channels of the judge's 3x3 convolution stem (0: none)" },
  { "kinds", "string", "shape,relation,color,shape,relation,count,relation", "hard-negative kinds, drawn in turn (a kind repeated is drawn more often: shape and relation are learned last)" },
  { "seed", "number", 1, "seed of the weights, the data and the changes" },
  { "checkpoint", "string", nil, "diffusion checkpoint whose samples, labelled by the evaluator, join the training data" },
  { "samples", "number", 256, "model samples drawn for training when --checkpoint is given (as many again are held out)" },
  { "sample_steps", "number", 20, "sampling steps of those samples" },
  { "sample_every", "number", 3, "every k-th step trains on model samples (with --checkpoint)" },
  { "eval_images", "number", 256, "held-out images per evaluation set" },
  { "out", "string", "runs/judge", "output folder" },
}
local o, rest = args.parse(arg, spec, { usage = "grove recipes/train_judge.lua [options]",
  description = "Trains the image-text judge of grove.search; see docs/search.md." })
if not o then print(rest); return end
os.execute("mkdir -p '" .. o.out .. "'")
io.stdout:setvbuf("line") -- progress reaches a log file as it happens

local kinds = {}
for k in o.kinds:gmatch("[^,%s]+") do kinds[#kinds + 1] = k end
local tok = grove.text.shapes_tokenizer()
local judge = J.Judge({ vocab_size = tok:size(), width = o.width, depth = o.depth, heads = o.heads, patch = o.patch,
                        size = o.size, stem = o.stem }, { seed = o.seed })
print(string.format("judge: %d parameters", judge:num_parameters()))

-- held-out pairs: renders of another seed (train split), renders of the
-- held-out (shape, colour) pairs, and model samples when there is a model
local function render_pairs(split, seed, n)
  local b = grove.data.shapes { batch = n, seed = seed, size = o.size, split = split }:next()
  return J.pairs(b.images, b.specs, { seed = seed })
end
local evals = {
  { "renders", render_pairs("train", o.seed + 1000, o.eval_images) },
  { "heldout", render_pairs("heldout", o.seed + 2000, o.eval_images) },
}

-- the model's samples for training captions: images and the specs they were asked for
local sample_pool
if o.checkpoint then
  local parts = grove.train.load_for_inference(o.checkpoint)
  local b = grove.data.shapes { batch = 2 * o.samples, seed = o.seed + 3000, size = o.size }:next()
  local t0 = grove.now()
  local images = grove.train.sample_prompts(parts, b.captions, { size = o.size, seed = o.seed, steps = o.sample_steps,
                                                                 batch = 64 })
  print(string.format("%d model samples in %.1f s", 2 * o.samples, grove.now() - t0))
  local train_specs, eval_specs = {}, {}
  for i = 1, o.samples do train_specs[i], eval_specs[i] = b.specs[i], b.specs[o.samples + i] end
  sample_pool = { images = images:narrow(1, 1, o.samples), specs = train_specs, position = 0 }
  evals[#evals + 1] = { "samples", J.pairs(images:narrow(1, o.samples + 1, o.samples), eval_specs, { seed = o.seed + 4000 }) }
end

local function sample_batch(step)
  local p, n = sample_pool, math.min(o.batch, o.samples)
  local first = p.position % o.samples
  n = math.min(n, o.samples - first)
  p.position = p.position + n
  local specs = {}
  for i = 1, n do specs[i] = p.specs[first + i] end
  return J.pairs(p.images:narrow(1, first + 1, n), specs, { seed = o.seed * 7919 + step, kinds = kinds })
end

local opt = grove.optim.adamw(judge:parameters(), { lr = o.lr, weight_decay = 0.01 })
local sched = grove.optim.schedule.warmup_constant { warmup = o.warmup }
sched:attach(opt)
local data = grove.data.shapes { batch = o.batch, seed = o.seed, size = o.size }
local losses, avg = {}, nil
local t0 = grove.now()
judge:train()
for step = 1, o.steps do
  local p
  if sample_pool and step % o.sample_every == 0 then p = sample_batch(step)
  else
    local b = data:next()
    p = J.pairs(b.images, b.specs, { seed = o.seed * 7919 + step, kinds = kinds })
  end
  local loss = grove.cross_entropy(judge:logits(p.images, p.captions), p.labels)
  loss:backward()
  grove.optim.clip_grad_norm(judge:parameters(), 1.0)
  opt:step()
  sched:step()
  opt:zero_grad()
  local l = loss:item()
  losses[step] = l
  avg = avg and 0.98 * avg + 0.02 * l or l
  if step % 50 == 0 or step == o.steps then
    print(string.format("step %d/%d  loss %.4f  avg %.4f  %.1f s", step, o.steps, l, avg, grove.now() - t0))
  end
end
judge:eval()
local path = o.out .. "/judge.safetensors"
judge:save(path, { ["grove.judge.steps"] = o.steps, ["grove.judge.checkpoint"] = o.checkpoint or "" })

local lines = { string.format("%-9s %-14s %9s %7s", "set", "kind or category", "accuracy", "pairs") }
for _, e in ipairs(evals) do
  local r = J.accuracy(judge, e[2])
  for _, kind in ipairs { "match", "color", "count", "shape", "relation", "swap" } do
    local k = r.per_kind[kind]
    if k then lines[#lines + 1] = string.format("%-9s %-14s %9.3f %7d", e[1], kind, k.accuracy, k.total) end
  end
  -- the same pairs by the prompt category of their image
  for _, cat in ipairs(grove.data.captions.categories) do
    local k = r.per_category[cat]
    if k then lines[#lines + 1] = string.format("%-9s %-14s %9.3f %7d", e[1], cat, k.accuracy, k.total) end
  end
  lines[#lines + 1] = string.format("%-9s %-14s %9.3f %7d", e[1], "overall", r.overall, r.total)
end
local text = table.concat(lines, "\n")
print(text)
local f = io.open(o.out .. "/accuracy.txt", "w")
if f then f:write(text, "\n"); f:close() end
if #losses > 1 then
  require("grove.plot").lines { path = o.out .. "/loss.png", title = "judge training loss", xlabel = "step",
    ylabel = "cross-entropy", series = { { name = "loss", y = losses } } }
end
print(string.format("judge -> %s (%.1f s)", path, grove.now() - t0))
