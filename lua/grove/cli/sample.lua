-- grove sample: images from a training checkpoint for one or more prompts.
--   grove sample --checkpoint runs/tiny/checkpoint.safetensors --prompt "two red circles" \
--                --seed 1 --steps 20 --cfg 4.5 --sampler dpm -n 8 -o out.png
local args = require "grove.cli.args"

local spec = {
  { "checkpoint", "string", nil, "training checkpoint (safetensors)", required = true },
  { "prompt", "list", nil, "prompt (repeat for several)", short = "p" },
  { "n", "number", 4, "images per prompt", short = "n" },
  { "seed", "number", 1, "noise seed", short = "s" },
  { "steps", "number", 20, "sampling steps" },
  { "cfg", "number", 4.5, "classifier-free guidance scale (1: off)" },
  { "sampler", "string", "dpm", "dpm (Flow-DPM-Solver), euler, a registered name, or a .lua file returning a sampler" },
  { "size", "number", 32, "image size" },
  { "output", "string", "sample.png", "output PNG (a grid)", short = "o" },
  { "raw", "boolean", false, "use the raw weights instead of the EMA weights" },
  args.device_option(),
}

return function(argv)
  local o, rest = args.parse(argv, spec, { usage = "grove sample --checkpoint FILE --prompt TEXT [options]",
    description = "Samples images from a grove training checkpoint and writes them as one grid." })
  if not o then print(rest); return end
  if not o.prompt then error("give at least one --prompt", 0) end
  local parts = grove.train.load_for_inference(o.checkpoint, { ema = not o.raw, device = o.device })
  local prompts = {}
  for _, p in ipairs(o.prompt) do
    for _ = 1, o.n do prompts[#prompts + 1] = p end
  end
  local t0 = grove.now()
  local images = grove.train.sample_prompts(parts, prompts, { size = o.size, seed = o.seed, steps = o.steps, cfg = o.cfg,
                                                              sampler = grove.sample.load(o.sampler) })
  grove.image.save(o.output, grove.image.grid(images, { cols = math.min(o.n, 8), captions = prompts, scale = 3 }))
  print(string.format("%d images in %.1f s (%s weights, step %d) -> %s", #prompts, grove.now() - t0,
    parts.ema_used and "EMA" or "raw", parts.step or 0, o.output))
end
