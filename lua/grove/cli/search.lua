-- grove search: inference-time search for one prompt (SANA 1.5). Samples N
-- candidates from seeds SEED+1 … SEED+N, scores them with a judge, keeps
-- `pick` by a policy, and writes the picked images and a grid of all
-- candidates captioned with seed and judge score (picked ones starred).
--   grove search --checkpoint runs/tiny/checkpoint.safetensors --judge runs/judge/judge.safetensors \
--                --prompt "two red circles" -n 32 --pick 4 --policy tournament -o picked.png
-- With a diffusers folder the candidates come from its pipeline and any Lua
-- judge picks (grove.search.run_pipeline); out.json records every
-- candidate's seed, and `grove sample --model DIR --seed S` with the same
-- settings gives the pick again bit for bit:
--   grove search --model DIR -p "a red apple" -n 16 --policy tournament --judge examples/judge_colour.lua -o apple.png
local args = require "grove.cli.args"

local spec = {
  { "checkpoint", "string", nil, "diffusion training checkpoint (safetensors)" },
  { "model", "string", nil, "a diffusers SANA folder (model_index.json): candidates from its pipeline" },
  { "judge", "string", nil, "judge weights (recipes/train_judge.lua), 'evaluator' for the analytic oracle, or a .lua " ..
    "file returning a function (image, prompt) -> probability", required = true },
  { "prompt", "string", nil, "the prompt", short = "p", required = true },
  { "n", "number", 32, "candidates", short = "n", check = args.count },
  { "pick", "number", nil, "images to keep (default 4; --model: 1)", check = args.count },
  { "policy", "string", "tournament", "tournament, best_of_n, topk, random, halving, or a .lua file returning a policy" },
  { "seed", "number", 0, "base seed: candidate i starts from seed + i", short = "s", check = args.seed },
  { "steps", "number", nil, "sampling steps (default 20; --model: the scheduler's)", check = args.count },
  { "cfg", "number", 4.5, "classifier-free guidance scale (1: off)", check = args.finite },
  { "sampler", "string", nil, "dpm (Flow-DPM-Solver) or euler (default dpm; --model: the folder's scheduler)" },
  { "size", "number", 32, "image size (--checkpoint)", check = args.count },
  { "height", "number", nil, "--model: image height in pixels (default the model's native size)", short = "H",
    check = args.count },
  { "width", "number", nil, "--model: image width in pixels", short = "W", check = args.count },
  { "no_binning", "boolean", false, "--model: generate at exactly -H x -W, as grove sample --no-binning" },
  { "negative_prompt", "string", nil, "--model: negative prompt (default \"\")" },
  { "dtype", "string", nil, "--model: bf16 or f32, how the weights are held (default: as stored)" },
  { "compute", "string", "f32", "--model: f32, or bf16 GEMMs" },
  { "batch", "number", 1, "candidates per sampling batch (faster when larger; a pick then regenerates from seed, batch and slot)", check = args.count },
  { "output", "string", "picked.png", "picked images (a grid); the candidates go to <output>-candidates.png", short = "o" },
  { "raw", "boolean", false, "use the raw weights instead of the EMA weights" },
}

local function quote(s)
  if s:match("^[%w%./_%-=:,]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- NAME.png for one pick, NAME-1.png ... for several.
local function pick_names(output, k)
  if k == 1 then return { output } end
  local out = {}
  for i = 1, k do out[i] = string.format("%s-%d.png", output:sub(1, -5), i) end
  return out
end

local function search_model(o)
  args.check_choice(o, "dtype", { "bf16", "f32" })
  args.check_choice(o, "compute", { "f32", "bf16" })
  if not o.output:lower():find("%.png$") then error("option --output must name a .png file, got '" .. o.output .. "'", 0) end
  local policy = grove.search.load_policy(o.policy)
  local t0 = grove.now()
  local stem = o.output:sub(1, -5)
  local ok, res = pcall(function()
    local judge = grove.search.load_judge(o.judge)
    local pipe = grove.diffusers.pipeline(o.model, { dtype = o.dtype, compute = o.compute })
    local picked, cands = grove.search.run_pipeline(pipe, o.prompt, { n = o.n, pick = o.pick or 1, policy = policy,
      judge = judge, seed = o.seed, steps = o.steps, cfg = o.cfg, height = o.height, width = o.width,
      negative_prompt = o.negative_prompt, sampler = o.sampler, binning = not o.no_binning,
      progress = function(i, n, c)
        io.stderr:write(string.format("candidate %d/%d (seed %d) %.1f s\n", i, n, c.seed, grove.now() - t0))
      end })
    return { picked = picked, cands = cands }
  end)
  if not ok then error((tostring(res):gsub("^search: ", "")), 0) end
  local first = res.cands[1]
  -- the command that makes a candidate again: grove sample with its seed
  local sample = { "grove sample --model", quote(o.model), "-p", quote(o.prompt) }
  local function flag(f, v) if v ~= nil then sample[#sample + 1] = f .. " " .. quote(tostring(v)) end end
  flag("--steps", o.steps); flag("--cfg", o.cfg); flag("-H", o.height); flag("-W", o.width)
  flag("--sampler", o.sampler); flag("--negative-prompt", o.negative_prompt); flag("--dtype", o.dtype)
  if o.compute ~= "f32" then flag("--compute", o.compute) end
  if o.no_binning then sample[#sample + 1] = "--no-binning" end
  local regen = table.concat(sample, " ") .. " --seed "
  local names = pick_names(o.output, #res.picked)
  local is_picked, record = {}, { cands = {}, picked = {} }
  for k, c in ipairs(res.picked) do
    is_picked[c] = k
    grove.image.save(names[k], c.image, { text = {
      prompt = o.prompt, seed = tostring(c.seed), steps = tostring(c.steps), sampler = c.sampler, cfg = tostring(o.cfg),
      size = string.format("%dx%d", c.width, c.height), model = o.model, Software = "grove " .. grove._VERSION,
      dtype = o.dtype or "as stored", compute = o.compute, negative_prompt = o.negative_prompt or "",
      search = string.format("pick %d of %d from %d candidates by %s, judge %s, score %.6g", k, #res.picked,
                             #res.cands, type(o.policy) == "string" and o.policy or "policy", o.judge, c.score),
      regenerate = regen .. c.seed } })
  end
  for i, c in ipairs(res.cands) do
    record.cands[i] = { index = c.index, seed = c.seed, score = c.score, picked = is_picked[c] ~= nil }
  end
  for k, c in ipairs(res.picked) do
    record.picked[k] = { seed = c.seed, score = c.score, index = c.index, file = names[k], regenerate = regen .. c.seed }
  end
  local grid_path = stem .. "-candidates.png"
  grove.image.save(grid_path, grove.search.grid(res.cands, res.picked, { scale = 1, cols = math.min(#res.cands, 4) }))
  local doc = { prompt = o.prompt, model = o.model, judge = o.judge, policy = o.policy, n = #res.cands,
                pick = #res.picked, seed = o.seed, steps = first.steps, sampler = first.sampler, cfg = o.cfg,
                width = first.width, height = first.height, binning = not o.no_binning,
                negative_prompt = o.negative_prompt or "", dtype = o.dtype or "as stored", compute = o.compute,
                candidates = grove.json.array(record.cands), picked = grove.json.array(record.picked),
                grid = grid_path, seconds = grove.now() - t0,
                note = "candidate i starts from seed (seed + i); grove sample --model with its seed and these " ..
                       "settings makes it again bit for bit" }
  require("grove.files").write_atomic(stem .. ".json", grove.json.encode(doc) .. "\n")
  local seeds = {}
  for k, c in ipairs(res.picked) do seeds[k] = string.format("%d (%.3f)", c.seed, c.score) end
  print(string.format("%s: %d candidates, picked seed%s %s by %s in %.1f s -> %s, %s, %s", o.prompt, #res.cands,
    #res.picked == 1 and "" or "s", table.concat(seeds, ", "), type(o.policy) == "string" and o.policy or "policy",
    grove.now() - t0, table.concat(names, ", "), grid_path, stem .. ".json"))
  print("again: " .. regen .. res.picked[1].seed .. " -o " .. quote(names[1]))
end

return function(argv)
  local o, rest = args.parse(argv, spec, { usage = "grove search (--checkpoint FILE | --model DIR) --judge FILE|evaluator|judge.lua --prompt TEXT [options]",
    description = "Samples candidates, judges them and keeps the best; see docs/search.md." })
  if not o then print(rest); return end
  if #rest > 0 then error("unexpected argument '" .. rest[1] .. "' (see grove search --help)", 0) end
  if (o.checkpoint == nil) == (o.model == nil) then
    error("give --checkpoint FILE (a grove training checkpoint) or --model DIR (a diffusers SANA folder), one of them", 0)
  end
  if o.model then return search_model(o) end
  if o.height or o.width or o.no_binning or o.negative_prompt or o.dtype then
    error("--height, --width, --no-binning, --negative-prompt and --dtype apply to --model", 0)
  end
  o.pick, o.steps, o.sampler = o.pick or 4, o.steps or 20, o.sampler or "dpm"
  local policy = grove.search.load_policy(o.policy)
  local t0 = grove.now()
  local ok, res = pcall(function()
    local judge = o.judge == "evaluator" and "evaluator" or o.judge:match("%.lua$") and grove.search.load_judge(o.judge)
                  or grove.judge.load(o.judge)
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
