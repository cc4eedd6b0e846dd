-- The candidates-vs-steps study of inference-time search (docs/search.md).
-- For every prompt of the evaluation set it samples max_n candidates once
-- (each from its own seed), scores each with the judge and with the
-- evaluator, and then, for N = 1, 2, 4, ..., max_n, lets each policy pick
-- among the first N candidates: the judge's tournament and best-of-N, the
-- evaluator itself (the oracle: the ceiling), and a random pick (the floor).
-- Against them, the same model evaluations spent on one candidate: 20·N
-- denoising steps instead of 20. Reports the evaluator's score of the picks
-- per category and overall.
--   grove recipes/search_study.lua --checkpoint runs/tiny/checkpoint.safetensors --judge runs/judge/judge.safetensors
-- Writes OUT/table.md, OUT/results.csv, OUT/scaling.png and OUT/example.png.
local args = require "grove.cli.args"
local search = grove.search

local spec = {
  { "checkpoint", "string", "runs/tiny/checkpoint.safetensors", "diffusion checkpoint" },
  { "judge", "string", "runs/judge/judge.safetensors", "judge weights (or 'evaluator')" },
  { "prompts", "number", 20, "prompts per category, from the evaluation set" },
  { "max_n", "number", 64, "most candidates per prompt (a power of two)" },
  { "steps", "number", 20, "denoising steps of one candidate" },
  { "steps_max_n", "number", 16, "the steps line runs up to steps·this (more steps cost as much as that many candidates)" },
  { "cfg", "number", 4.5, "classifier-free guidance scale" },
  { "batch", "number", 64, "images per sampler batch" },
  { "size", "number", 32, "image size" },
  { "seed", "number", 0, "base seed: prompt i's candidate k starts from seed + (i-1)·max_n + k" },
  { "out", "string", "runs/search_study", "output folder" },
}
local o, rest = args.parse(arg, spec, { usage = "grove recipes/search_study.lua [options]",
  description = "Candidates vs denoising steps for inference-time search; see docs/search.md." })
if not o then print(rest); return end
local function power_of_two(n) return n >= 1 and n % 1 == 0 and 2 ^ math.floor(math.log(n) / math.log(2) + 0.5) == n end
if not power_of_two(o.max_n) then error("search_study: --max_n must be a power of two, got " .. o.max_n, 0) end
os.execute("mkdir -p '" .. o.out .. "'")
io.stdout:setvbuf("line")

local parts = grove.train.load_for_inference(o.checkpoint)
local judge_model = o.judge ~= "evaluator" and grove.judge.load(o.judge) or nil
local E = grove.eval.shapes
local categories = grove.data.captions.categories

local prompts, category = {}, {}
for _, cat in ipairs(categories) do
  local set = grove.data.shapes.prompts(cat)
  for i = 1, math.min(o.prompts, #set) do
    prompts[#prompts + 1] = set[i]
    category[#prompts] = cat
  end
end
local Ns = {}
do
  local n = 1
  while n <= o.max_n do Ns[#Ns + 1] = n; n = n * 2 end
end
print(string.format("%d prompts, N = 1..%d, %d steps per candidate", #prompts, o.max_n, o.steps))

local function passes(image, prompt) return E.check(image:unsqueeze(1), prompt, 1) and true or false end

-- Candidates: per prompt, the judge's score and the evaluator's verdict of each.
local t0 = grove.now()
local rows = {}            -- rows[i] = {cands = {...}, pass = {bool...}, score = {...}}
local example              -- the first prompt's candidates, for a grid
for i, prompt in ipairs(prompts) do
  local cands = search.candidates(parts, prompt, { n = o.max_n, seed = o.seed + (i - 1) * o.max_n, steps = o.steps,
                                                   cfg = o.cfg, batch = o.batch, size = o.size })
  local images = {}
  for k, c in ipairs(cands) do images[k] = c.image end
  local scores
  if judge_model then scores = judge_model:score(images, (function()
      local ps = {}
      for k = 1, #images do ps[k] = prompt end
      return ps
    end)())
  else
    scores = {}
    for k, img in ipairs(images) do scores[k] = passes(img, prompt) and 1 or 0 end
  end
  local pass = {}
  for k, img in ipairs(images) do pass[k] = passes(img, prompt) end
  -- keep the images of the first prompt only: the rest are summarised by
  -- their scores and verdicts
  if i == 1 then example = cands end
  for _, c in ipairs(cands) do if i ~= 1 then c.image = nil end end
  rows[i] = { cands = cands, pass = pass, score = scores }
  if i % 10 == 0 or i == #prompts then
    print(string.format("candidates: %d/%d prompts  %.0f s", i, #prompts, grove.now() - t0))
  end
end

-- A policy run on the first N candidates with precomputed scores: the
-- policies themselves (lua/grove/search/) pick, from a judge that looks the
-- score up instead of running the model again.
local function pick_with(policy, row, N, which, seed)
  local subset, where = {}, {}
  for k = 1, N do
    local c = { index = k, seed = row.cands[k].seed, image = {} } -- a stand-in image: the lookup key
    subset[k], where[c.image] = c, k
  end
  local lookup = function(image) return which[where[image]] end
  local picked = policy(nil, subset, lookup, { pick = 1, seed = seed })
  return where[picked[1].image]
end

local policies = {
  { name = "tournament", fn = search.policies.tournament.fn, by = "judge" },
  { name = "best_of_n", fn = search.policies.best_of_n.fn, by = "judge" },
  { name = "oracle", fn = search.policies.best_of_n.fn, by = "evaluator" },
  { name = "random", fn = search.policies.random.fn, by = "none" },
}

-- results[line][N] = {per_category =, overall =}
local function summarise(pass_of)
  local per, sum, n = {}, 0, 0
  local hit, total = {}, {}
  for i = 1, #prompts do
    local cat = category[i]
    hit[cat] = (hit[cat] or 0) + (pass_of(i) and 1 or 0)
    total[cat] = (total[cat] or 0) + 1
  end
  for _, cat in ipairs(categories) do
    if total[cat] then
      per[cat] = hit[cat] / total[cat]
      sum, n = sum + per[cat], n + 1
    end
  end
  return { per_category = per, overall = sum / n }
end

local results = {}
for _, p in ipairs(policies) do
  results[p.name] = {}
  for _, N in ipairs(Ns) do
    results[p.name][N] = summarise(function(i)
      local row = rows[i]
      local which = row.score
      if p.by == "evaluator" then
        which = {}
        for k = 1, N do which[k] = row.pass[k] and 1 or 0 end
      end
      return row.pass[pick_with(p.fn, row, N, which, o.seed + i)]
    end)
  end
end

-- The steps line: one candidate per prompt (each prompt's first seed), with
-- steps·N denoising steps, all prompts in batches.
local function sample_prompts_at(steps)
  local pass = {}
  for start = 1, #prompts, o.batch do
    local chunk, noises = {}, {}
    for i = start, math.min(#prompts, start + o.batch - 1) do
      chunk[#chunk + 1] = prompts[i]
      noises[#noises + 1] = search.noise(o.seed + (i - 1) * o.max_n + 1,
        { size = o.size, channels = parts.model.config.in_channels })
    end
    local feats, mask = grove.no_grad(function() return grove.train.encode(parts, chunk) end)
    local x = grove.no_grad(function()
      return parts.model:sample { noise = grove.cat(noises, 1), text = feats, mask = mask, steps = steps, cfg = o.cfg,
                                  sampler = "dpm" }
    end):clamp(-1, 1)
    for k = 1, #chunk do pass[start + k - 1] = passes(x:select(1, k):contiguous(), chunk[k]) end
  end
  return pass
end
results.steps = {}
for _, N in ipairs(Ns) do
  if N <= o.steps_max_n then
    local t1 = grove.now()
    local pass = sample_prompts_at(o.steps * N)
    results.steps[N] = summarise(function(i) return pass[i] end)
    print(string.format("steps line: %d steps  overall %.3f  %.0f s", o.steps * N, results.steps[N].overall,
      grove.now() - t1))
  end
end

-- Table, CSV, plot.
local lines_order = { "tournament", "best_of_n", "oracle", "random", "steps" }
local short = { single_object = "single", two_object = "two", counting = "count", colors = "colors",
                position = "position", color_attr = "c_attr" }
local md = { "| line | N | model evals | " .. (function()
  local t = {}
  for _, cat in ipairs(categories) do t[#t + 1] = short[cat] or cat end
  return table.concat(t, " | ")
end)() .. " | overall |", "|" .. string.rep("---|", 4 + #categories) }
local csv = { "line,n,model_evals," .. table.concat(categories, ",") .. ",overall" }
for _, line in ipairs(lines_order) do
  for _, N in ipairs(Ns) do
    local r = results[line][N]
    if r then
      local cells, cc = {}, {}
      for _, cat in ipairs(categories) do
        cells[#cells + 1] = string.format("%.3f", r.per_category[cat] or 0)
        cc[#cc + 1] = string.format("%.4f", r.per_category[cat] or 0)
      end
      local label = line == "steps" and string.format("steps ×%d", N) or line
      md[#md + 1] = string.format("| %s | %d | %d | %s | **%.3f** |", label, line == "steps" and 1 or N, N * o.steps,
        table.concat(cells, " | "), r.overall)
      csv[#csv + 1] = string.format("%s,%d,%d,%s,%.4f", line, N, N * o.steps, table.concat(cc, ","), r.overall)
    end
  end
end
local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text, "\n")
  f:close()
end
write(o.out .. "/table.md", table.concat(md, "\n"))
write(o.out .. "/results.csv", table.concat(csv, "\n"))
print(table.concat(md, "\n"))

local series = {}
for _, line in ipairs(lines_order) do
  local x, y = {}, {}
  for _, N in ipairs(Ns) do
    if results[line][N] then
      x[#x + 1] = math.log(N * o.steps) / math.log(2)
      y[#y + 1] = results[line][N].overall
    end
  end
  series[#series + 1] = { name = line == "steps" and "more steps" or line, x = x, y = y }
end
require("grove.plot").lines { path = o.out .. "/scaling.png", title = "score against compute",
  xlabel = "log2 model evaluations per prompt", ylabel = "overall score", series = series, y_min = 0 }

-- the first prompt's candidates, with judge scores, the tournament's pick starred
do
  local r = rows[1]
  for k, c in ipairs(example) do c.score = r.score[k] end
  local pk = pick_with(search.policies.tournament.fn, r, #example, r.score, o.seed + 1)
  grove.image.save(o.out .. "/example.png", search.grid(example, { example[pk] }))
end
print(string.format("search study -> %s (%.0f s)", o.out, grove.now() - t0))
