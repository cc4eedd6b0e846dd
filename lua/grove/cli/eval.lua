-- grove eval: the GenEval-like table of a checkpoint on the shapes prompt sets.
--   grove eval --checkpoint runs/tiny/checkpoint.safetensors --set shapes
local args = require "grove.cli.args"

local spec = {
  { "checkpoint", "string", nil, "training checkpoint (safetensors)", required = true },
  { "set", "string", "shapes", "prompt set: shapes (all categories) or one category name, or heldout" },
  { "prompts", "number", 60, "prompts per category", check = args.count },
  { "seed", "number", 1, "noise seed", check = args.seed },
  { "steps", "number", 20, "sampling steps", check = args.count },
  { "cfg", "number", 4.5, "classifier-free guidance scale", check = args.finite },
  { "sampler", "string", "dpm", "dpm or euler" },
  { "size", "number", 32, "image size", check = args.count },
  { "grid", "string", nil, "also write a grid of the first images to this PNG" },
  { "raw", "boolean", false, "use the raw weights instead of the EMA weights" },
  args.device_option(),
}

return function(argv)
  local o, rest = args.parse(argv, spec, { usage = "grove eval --checkpoint FILE [--set shapes] [options]",
    description = "Samples the shapes evaluation prompts and prints the evaluator's per-category table." })
  if not o then print(rest); return end
  local parts = grove.train.load_for_inference(o.checkpoint, { ema = not o.raw, device = o.device })
  local sets = o.set == "shapes" and grove.data.captions.categories or { o.set }
  local prompts = {}
  for _, name in ipairs(sets) do
    local set = grove.data.shapes.prompts(name)
    for i = 1, math.min(#set, o.prompts) do prompts[#prompts + 1] = set[i] end
  end
  local t0 = grove.now()
  local images = grove.train.sample_prompts(parts, prompts, { size = o.size, seed = o.seed, steps = o.steps, cfg = o.cfg,
                                                              sampler = o.sampler, batch = 60 })
  local r = grove.eval.shapes.score(images, prompts)
  print(string.format("%s (%s weights, step %d): %d prompts, %d steps, cfg %g, %.0f s", o.checkpoint,
    parts.ema_used and "EMA" or "raw", parts.step or 0, #prompts, o.steps, o.cfg, grove.now() - t0))
  print(grove.eval.shapes.format(r))
  if o.grid then
    local n = math.min(24, #prompts)
    local caps = {}
    for i = 1, n do caps[i] = prompts[i] end
    grove.image.save(o.grid, grove.image.grid(images:narrow(1, 1, n), { cols = 6, captions = caps, scale = 3 }))
  end
  return r
end
