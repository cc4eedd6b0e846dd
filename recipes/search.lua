-- Inference-time search over a list of prompts (docs/search.md): for each
-- prompt, N candidates from their own seeds, judged, one picked by a policy;
-- writes a sheet with, per prompt, the first candidate (what one sample
-- gives) beside the pick, and prints the evaluator's verdict on both.
--   grove recipes/search.lua --checkpoint runs/tiny/checkpoint.safetensors --judge runs/judge/judge.safetensors
--   grove recipes/search.lua ... --policy my_policy.lua --prompts "two red circles;a blue square above a green circle"
-- A policy is any function (prompt, candidates, judge, opts) -> picked; the
-- one below, "confident", is written here to show how short one is.
local args = require "grove.cli.args"

local spec = {
  { "checkpoint", "string", "runs/tiny/checkpoint.safetensors", "diffusion checkpoint" },
  { "judge", "string", "runs/judge/judge.safetensors", "judge weights, or 'evaluator' (the oracle)" },
  { "prompts", "string", nil, "prompts separated by ';' (default: the first evaluation prompt of each category)" },
  { "n", "number", 16, "candidates per prompt", short = "n" },
  { "policy", "string", "tournament", "tournament, best_of_n, topk, random, halving, confident, or a .lua file returning a policy" },
  { "seed", "number", 0, "base seed: candidate i of prompt p starts from seed + (p-1)·n + i" },
  { "steps", "number", 20, "sampling steps" },
  { "size", "number", 32, "image size" },
  { "batch", "number", 16, "candidates per sampling batch" },
  { "out", "string", "runs/search", "output folder" },
  args.device_option(),
}
local o, rest = args.parse(arg, spec, { usage = "grove recipes/search.lua [options]",
  description = "Judged search over a list of prompts; see docs/search.md." })
if not o then print(rest); return end
os.execute("mkdir -p '" .. o.out .. "'")

-- "confident": the best-scored candidate, but among those the judge is sure
-- of (yes probability ≥ 0.9) the lowest seed wins, so a search that finds
-- several sure candidates keeps the one a smaller N would have found.
grove.search.register("confident", function(prompt, cands, judge)
  local best
  for _, c in ipairs(cands) do
    c.score = judge(c.image, prompt)
    if c.score >= 0.9 then return { c } end
    if not best or c.score > best.score then best = c end
  end
  return { best }
end)

-- a name, or a .lua file returning a policy (as `grove search --policy`)
local policy = grove.search.load_policy(o.policy)

local prompts = {}
if o.prompts then
  for p in o.prompts:gmatch("[^;]+") do prompts[#prompts + 1] = p:match("^%s*(.-)%s*$") end
else
  for _, cat in ipairs(grove.data.captions.categories) do prompts[#prompts + 1] = grove.data.shapes.prompts(cat)[1] end
end

local parts = grove.train.load_for_inference(o.checkpoint, { device = o.device })
local judge = o.judge == "evaluator" and "evaluator" or grove.judge.load(o.judge):to(o.device)
local check = function(image, prompt) return grove.eval.shapes.check(image:unsqueeze(1), prompt, 1) and "pass" or "fail" end
local sheet, caps = {}, {}
local before, after = 0, 0
for i, prompt in ipairs(prompts) do
  local picked, cands = grove.search.run(parts, prompt, { n = o.n, pick = 1, policy = policy, judge = judge,
    seed = o.seed + (i - 1) * o.n, steps = o.steps, size = o.size, batch = o.batch })
  local first, pick = cands[1], picked[1]
  local v1, v2 = check(first.image, prompt), check(pick.image, prompt)
  before, after = before + (v1 == "pass" and 1 or 0), after + (v2 == "pass" and 1 or 0)
  print(string.format("%-40s seed %d: %s  ->  picked seed %d (judge %.2f): %s", prompt, first.seed, v1, pick.seed,
    pick.score, v2))
  sheet[#sheet + 1], caps[#caps + 1] = first.image, string.format("%d %s", first.seed, v1)
  sheet[#sheet + 1], caps[#caps + 1] = pick.image, string.format("*%d %s", pick.seed, v2)
end
grove.image.save(o.out .. "/search.png", grove.image.grid(sheet, { cols = 2, captions = caps, scale = 3 }))
print(string.format("one sample passes %d/%d prompts, the picks %d/%d -> %s/search.png", before, #prompts, after,
  #prompts, o.out))
