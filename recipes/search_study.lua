-- The candidates-vs-steps study of inference-time search (docs/search.md).
-- For every prompt of the evaluation set it samples max_n candidates once
-- (each from its own seed), scores each with the judge and with the
-- evaluator, and then, for N = 1, 2, 4, ..., max_n, lets each policy pick
-- among the first N candidates: the judge's tournament and best-of-N, the
-- evaluator itself (the oracle: the ceiling), and a random pick (the floor, by
-- its expected score).
-- Against them, the same model evaluations spent on one candidate: 20·N
-- denoising steps instead of 20. Reports the evaluator's score of the picks
-- per category and overall. The study itself is grove.search.study
-- (lua/grove/search/study.lua), which recipes/pipeline.lua runs too.
--   grove recipes/search_study.lua --checkpoint runs/tiny/checkpoint.safetensors --judge runs/judge/judge.safetensors
-- Writes OUT/table.md, OUT/comparisons.md (paired differences with 95% CIs), OUT/results.csv,
-- OUT/scaling.png and OUT/example.png.
local args = require "grove.cli.args"
local d = grove.search.study_defaults

local spec = {
  { "checkpoint", "string", "runs/tiny/checkpoint.safetensors", "diffusion checkpoint" },
  { "judge", "string", "runs/judge/judge.safetensors", "judge weights (or 'evaluator')" },
  { "prompts", "number", d.prompts, "prompts per category, from the evaluation set" },
  { "max_n", "number", d.max_n, "most candidates per prompt (a power of two)" },
  { "steps", "number", d.steps, "denoising steps of one candidate" },
  { "steps_max_n", "number", d.steps_max_n, "the steps line runs up to steps·this (more steps cost as much as that many candidates)" },
  { "cfg", "number", d.cfg, "classifier-free guidance scale" },
  { "batch", "number", d.batch, "images per sampler batch" },
  { "size", "number", d.size, "image size" },
  { "seed", "number", d.seed, "base seed: prompt i's candidate k starts from seed + (i-1)·max_n + k" },
  { "out", "string", d.out, "output folder" },
  args.device_option(),
}
local o, rest = args.parse(arg, spec, { usage = "grove recipes/search_study.lua [options]",
  description = "Candidates vs denoising steps for inference-time search; see docs/search.md." })
if not o then print(rest); return end
io.stdout:setvbuf("line")

local r = grove.search.study(o)
print(r.table)
print(r.comparisons_table)
print(string.format("search study -> %s (%.0f s)", o.out, r.time))
