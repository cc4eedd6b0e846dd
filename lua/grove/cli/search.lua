-- grove search: inference-time search for one prompt (SANA 1.5). Samples N
-- candidates from seeds SEED+1 … SEED+N, scores them with a judge, keeps
-- `pick` by a policy, and writes the picked images and a grid of all
-- candidates captioned with seed and judge score (picked ones starred).
--   grove search --checkpoint runs/tiny/checkpoint.safetensors --judge runs/judge/judge.safetensors \
--                --prompt "two red circles" -n 32 --pick 4 --policy tournament -o picked.png
local args = require "grove.cli.args"

local spec = {
  { "checkpoint", "string", nil, "diffusion training checkpoint (safetensors)", required = true },
  { "judge", "string", nil, "judge weights (recipes/train_judge.lua), or 'evaluator' for the analytic oracle",
    required = true },
  { "prompt", "string", nil, "the prompt", short = "p", required = true },
  { "n", "number", 32, "candidates", short = "n", check = args.count },
  { "pick", "number", 4, "images to keep", check = args.count },
  { "policy", "string", "tournament", "tournament, best_of_n, topk, random, halving, or a .lua file returning a policy" },
  { "seed", "number", 0, "base seed: candidate i starts from seed + i", short = "s", check = args.seed },
  { "steps", "number", 20, "sampling steps", check = args.count },
  { "cfg", "number", 4.5, "classifier-free guidance scale (1: off)", check = args.finite },
  { "sampler", "string", "dpm", "dpm (Flow-DPM-Solver) or euler" },
  { "size", "number", 32, "image size", check = args.count },
  { "batch", "number", 1, "candidates per sampling batch (faster when larger; a pick then regenerates from seed, batch and slot)", check = args.count },
  { "output", "string", "picked.png", "picked images (a grid); the candidates go to <output>-candidates.png", short = "o" },
  { "raw", "boolean", false, "use the raw weights instead of the EMA weights" },
}

return function(argv)
  local o, rest = args.parse(argv, spec, { usage = "grove search --checkpoint FILE --judge FILE|evaluator --prompt TEXT [options]",
    description = "Samples candidates, judges them and keeps the best; see docs/search.md." })
  if not o then print(rest); return end
  if #rest > 0 then error("unexpected argument '" .. rest[1] .. "' (see grove search --help)", 0) end
  local policy = grove.search.load_policy(o.policy)
  local t0 = grove.now()
  local ok, res = pcall(function()
    local judge = o.judge == "evaluator" and "evaluator" or grove.judge.load(o.judge)
    local parts = grove.train.load_for_inference(o.checkpoint, { ema = not o.raw })
    local picked, cands = grove.search.run(parts, o.prompt, { n = o.n, pick = o.pick, policy = policy, judge = judge,
      seed = o.seed, steps = o.steps, cfg = o.cfg, sampler = o.sampler, size = o.size, batch = o.batch })
    return { picked = picked, cands = cands }
  end)
  if not ok then error((tostring(res):gsub("^search: ", "")), 0) end
  local images, caps = {}, {}
  for k, c in ipairs(res.picked) do
    images[k] = c.image
    caps[k] = string.format("seed %d %.2f", c.seed, c.score)
  end
  grove.image.save(o.output, grove.image.grid(images, { cols = math.min(#images, 4), captions = caps, scale = 3 }))
  local grid_path = o.output:gsub("%.png$", "") .. "-candidates.png"
  grove.image.save(grid_path, grove.search.grid(res.cands, res.picked))
  local seeds, batched = {}, false
  for k, c in ipairs(res.picked) do
    seeds[k] = string.format("%d (%.3f%s%s)", c.seed, c.score,
      (c.batch or 1) > 1 and string.format(", batch %d slot %d", c.batch, c.slot) or "",
      c.parent and (", refilled from seed " .. c.parent) or "")
    batched = batched or (c.batch or 1) > 1
  end
  print(string.format("%s: %d candidates, picked seeds %s by %s in %.1f s -> %s, %s", o.prompt, #res.cands,
    table.concat(seeds, ", "), type(o.policy) == "string" and o.policy or "policy", grove.now() - t0, o.output, grid_path))
  print(string.format("each pick regenerates alone: grove.search.regenerate(parts, prompt, seed, {steps = %d, cfg = %g, " ..
    "sampler = %q, size = %d%s})", o.steps, o.cfg, o.sampler, o.size, batched and ", batch = B, slot = S" or ""))
end
