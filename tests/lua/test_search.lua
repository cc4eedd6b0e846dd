-- Inference-time search (grove.search) and its judge (grove.judge): the
-- tournament's rules on hand-made scores, deterministic policies, user
-- judges and policies, picks that regenerate bit for bit from their seeds,
-- the sampling-time policy, the judge model and its training pairs, and
-- `grove search`.
local spec = require "spec"

local exe = arg and arg[-1]

local tmpdir = spec.tmpdir

local run = spec.run

-- candidates whose "image" is their index, judged from a score table
local function fake(scores)
  local cands, calls = {}, { n = 0 }
  for i = 1, #scores do cands[i] = { index = i, seed = 100 + i, image = i } end
  local judge = function(image)
    calls.n = calls.n + 1
    return scores[image]
  end
  return cands, judge, calls
end

local function indices(list)
  local out = {}
  for k, c in ipairs(list) do out[k] = c.index end
  return table.concat(out, ",")
end

local function policy(name) return grove.search.policy(name).fn end

-- a tiny random model: results mean nothing, but every number is fixed
local parts
local function tiny()
  if not parts then
    parts = grove.train.build { preset = "tiny", seed = 3, text_depth = 1, text_heads = 2,
                                config = { depth = 1, width = 64, cross_heads = 2 } }
    parts.model:eval(); parts.text:eval()
  end
  return parts
end
local fast = { steps = 3, size = 16, cfg = 4.5 }
local function with(extra)
  local o = {}
  for k, v in pairs(fast) do o[k] = v end
  for k, v in pairs(extra) do o[k] = v end
  return o
end

local function same(a, b) return (a - b):abs():max():item() == 0 end

spec.describe("search policies", function()
  spec.it("the tournament follows SANA's knockout rules", function()
    local t = policy("tournament")
    -- round 1: 0.6 v 0.9 (two yes: higher yes), 0.4 v 0.3 (two no: lower
    -- no), 0.55 v 0.55 (tie: the earlier), 0.1 v 0.2; round 2: 0.9 v 0.4
    -- (yes beats no), 0.55 v 0.2
    local scores = { 0.6, 0.9, 0.4, 0.3, 0.55, 0.55, 0.1, 0.2 }
    local c, j, calls = fake(scores)
    spec.eq(indices(t("p", c, j, { pick = 1 })), "2")
    spec.eq(calls.n, 8, "each candidate judged once")
    spec.eq(indices(t("p", c, j, { pick = 2 })), "2,5")
    spec.eq(indices(t("p", c, j, { pick = 4 })), "2,3,5,8")
    spec.eq(indices(t("p", c, j, { pick = 8 })), "1,2,3,4,5,6,7,8")
    -- a "yes" at exactly 0.5 beats a "no" just below it
    c, j = fake { 0.4999, 0.5 }
    spec.eq(indices(t("p", c, j, { pick = 1 })), "2")
    -- ties between two "no" go to the earlier candidate too
    c, j = fake { 0.2, 0.2, 0.7, 0.7 }
    spec.eq(indices(t("p", c, j, { pick = 2 })), "1,3")
    spec.eq(t("p", c, j, {})[1].score, 0.7, "scores are recorded")
  end)

  spec.it("the tournament rejects counts that are not powers of two", function()
    local t = policy("tournament")
    local c, j = fake { 0.1, 0.2, 0.3, 0.4, 0.5, 0.6 }
    spec.raises(function() t("p", c, j, { pick = 1 }) end, "power of two of candidates (1, 2, 4, 8, ...), got 6")
    c, j = fake { 0.1, 0.2, 0.3, 0.4 }
    spec.raises(function() t("p", c, j, { pick = 3 }) end, "pick a power of two no larger than the 4 candidates, got 3")
    spec.raises(function() t("p", c, j, { pick = 8 }) end, "got 8")
  end)

  spec.it("best-of-N and top-k rank by score, ties in order", function()
    local c, j = fake { 0.3, 0.8, 0.8, 0.1, 0.9 }
    spec.eq(indices(policy("best_of_n")("p", c, j, { pick = 1 })), "5")
    spec.eq(indices(policy("best_of_n")("p", c, j, { pick = 3 })), "5,2,3")
    spec.eq(indices(policy("topk")("p", c, j, { pick = 4 })), "5,2,3,1")
  end)

  spec.it("policies are deterministic from a seed", function()
    local scores = {}
    for i = 1, 16 do scores[i] = (i * 37 % 17) / 17 end
    for _, name in ipairs { "best_of_n", "topk", "tournament", "random" } do
      local c, j = fake(scores)
      local a = indices(policy(name)("p", c, j, { pick = 4, seed = 5 }))
      c, j = fake(scores)
      spec.eq(indices(policy(name)("p", c, j, { pick = 4, seed = 5 })), a, name)
    end
    local c, j = fake(scores)
    local r5 = indices(policy("random")("p", c, j, { pick = 4, seed = 5 }))
    local r6 = indices(policy("random")("p", c, j, { pick = 4, seed = 6 }))
    spec.assert(r5 ~= r6, "another seed draws another pick")
  end)

  spec.it("names a policy it does not know", function()
    spec.raises(function() grove.search.policy("nope") end, "unknown policy 'nope' (known: best_of_n, halving, random")
    spec.raises(function() grove.search.register("x", 3) end, "must be a function")
  end)
end)

spec.describe("search.run", function()
  spec.it("runs a user judge and a user policy, seeds distinct and reported", function()
    local p = tiny()
    local seen = {}
    local judge = function(image, prompt)
      spec.eq(prompt, "a red circle")
      seen[#seen + 1] = image
      return (image:mean():item() + 1) / 2
    end
    local mine = function(prompt, cands, j, opts)
      spec.eq(opts.pick, 2)
      return { cands[3], cands[1] }
    end
    local picked, cands = grove.search.run(p, "a red circle", with { n = 5, pick = 2, judge = judge, policy = mine, seed = 10,
                                                                      batch = 2 })
    spec.eq(#cands, 5)
    for i, c in ipairs(cands) do
      spec.eq(c.seed, 10 + i)
      spec.eq(table.concat(c.image:shape(), ","), "16,16,3")
      spec.assert(c.score >= 0 and c.score <= 1)
    end
    spec.eq(picked[1].seed, 13)
    spec.eq(picked[2].seed, 11)
    spec.eq(#seen, 5, "judged once per candidate")
    spec.assert(not same(cands[1].image, cands[2].image), "distinct seeds, distinct images")
  end)

  spec.it("regenerating a picked seed alone gives the same image bit for bit", function()
    local p = tiny()
    -- the default batch of 1: the seed alone says everything
    local picked, cands = grove.search.run(p, "two blue squares", with { n = 8, pick = 2, judge = "evaluator",
      policy = "best_of_n", seed = 3 })
    for _, c in ipairs(picked) do
      spec.assert(same(grove.search.regenerate(p, "two blue squares", c.seed, fast), c.image), "seed " .. c.seed)
    end
    for i = 1, 8 do
      spec.assert(same(grove.search.regenerate(p, "two blue squares", 3 + i, fast), cands[i].image), "candidate " .. i)
    end
    -- and `grove sample -n 1 --seed s-1` draws the same noise as seed s
    local one = grove.train.sample_prompts(p, { "two blue squares" }, with { seed = picked[1].seed - 1 })
    spec.assert(same(one:select(1, 1), picked[1].image), "grove sample reproduces the pick")
    -- batches of 3 (the last one of 2): a candidate regenerates from its seed, batch size and slot
    local _, batched = grove.search.run(p, "two blue squares", with { n = 8, judge = "evaluator", policy = "best_of_n",
                                                                     seed = 3, batch = 3 })
    for i = 1, 8 do
      local c = batched[i]
      spec.eq(c.batch, i <= 6 and 3 or 2)
      spec.eq(c.slot, (i - 1) % 3 + 1)
      spec.assert(same(grove.search.regenerate(p, "two blue squares", c, fast), c.image), "batched candidate " .. i)
      spec.assert(same(grove.search.regenerate(p, "two blue squares", c.seed, with { batch = c.batch, slot = c.slot }),
                       c.image), "from seed, batch and slot " .. i)
    end
    spec.raises(function() grove.search.regenerate(p, "a circle", 1, { batch = 2, slot = 3 }) end, "slot 3 is not in a batch of 2")
  end)

  spec.it("asks a batched judge (a table with :score) once for all candidates", function()
    local p = tiny()
    local calls = {}
    local batched = { score = function(_, images, prompts)
      calls[#calls + 1] = #images
      local out = {}
      for i, image in ipairs(images) do
        spec.eq(prompts[i], "a red circle")
        out[i] = (image:select(3, 1):mean():item() + 1) / 2
      end
      return out
    end }
    local picked, cands = grove.search.run(p, "a red circle", with { n = 4, judge = batched, policy = "best_of_n", seed = 1 })
    spec.eq(table.concat(calls, ","), "4", "one call with the four candidates")
    local best = 1
    for i, c in ipairs(cands) do if c.score > cands[best].score then best = i end end
    spec.eq(picked[1].seed, cands[best].seed, "the best-scored candidate is picked")
    -- alone, the same table judges one image per call
    spec.assert(grove.search.judge(batched)(cands[1].image, "a red circle") == cands[1].score)
  end)

  spec.it("rejects a bad judge or pick", function()
    local p = tiny()
    spec.raises(function() grove.search.run(p, "a circle", with { n = 2, judge = function() return 2 end }) end,
      "probability in [0, 1], got 2")
    spec.raises(function() grove.search.run(p, "a circle", with { n = 2, pick = 3, judge = "evaluator" }) end,
      "pick must be an integer from 1 to n (2), got 3")
    spec.raises(function() grove.search.run(p, "a circle", with { n = 2 }) end, "give a judge")
    spec.raises(function() grove.search.run(p, "a circle", with { n = 2, judge = "nope" }) end, "unknown judge 'nope'")
  end)

  spec.it("halving searches inside the sampler; untouched candidates regenerate exactly", function()
    local p = tiny()
    local picked, cands = grove.search.run(p, "a green triangle", with { n = 4, pick = 1, policy = "halving",
      judge = function(image) return (image:select(3, 2):mean():item() + 1) / 2 end, seed = 1, sampler = "euler" })
    spec.eq(#cands, 4)
    local refilled = 0
    for _, c in ipairs(cands) do
      if c.parent then
        refilled = refilled + 1
      else
        spec.assert(same(grove.search.regenerate(p, "a green triangle", c, with { sampler = "euler" }), c.image),
          "survivor " .. c.seed)
      end
    end
    spec.eq(refilled, 2, "the worse half refilled")
    spec.eq(#picked, 1)
  end)
end)

spec.describe("judge", function()
  local tok = grove.text.shapes_tokenizer()

  spec.it("scores image-prompt pairs as probabilities and saves, loads the same", function()
    local j = grove.judge.Judge({ vocab_size = tok:size(), width = 32, depth = 1, heads = 2, size = 16 }, { seed = 1 })
    local b = grove.data.shapes { batch = 3, seed = 1, size = 16 }:next()
    local s = j:score(b.images, b.captions)
    spec.eq(#s, 3)
    for _, v in ipairs(s) do spec.assert(v > 0 and v < 1) end
    local dir = tmpdir()
    j:save(dir .. "/j.safetensors")
    local k = grove.judge.load(dir .. "/j.safetensors")
    local s2 = k:score(b.images, b.captions)
    for i = 1, 3 do spec.eq(s2[i], s[i]) end
    -- alone, the image's matrix products may round differently than in a batch of 3
    spec.near(k:fn()(b.images:select(1, 2), b.captions[2]), s[2], 1e-5)
    spec.raises(function() j:score(grove.zeros { 1, 8, 8, 3 }, { "a circle" }) end, "images must be (B, 16, 16, 3)")
    grove.train.save_weights(dir .. "/w.safetensors", tiny())
    spec.raises(function() grove.judge.load(dir .. "/w.safetensors") end, "is not a judge")
    os.execute("rm -rf '" .. dir .. "'")
  end)

  spec.it("stacks 3x3 convolutions in its stem, and loads them back", function()
    local cfg = { vocab_size = tok:size(), width = 32, depth = 1, heads = 2, size = 16, stem = 8 }
    local one = grove.judge.Judge(cfg, { seed = 1 })
    cfg.stem_depth = 3
    local three = grove.judge.Judge(cfg, { seed = 1 })
    spec.eq(three:num_parameters() - one:num_parameters(), 2 * (9 * 8 * 8 + 8))
    local b = grove.data.shapes { batch = 2, seed = 4, size = 16 }:next()
    local s = three:score(b.images, b.captions)
    local dir = tmpdir()
    three:save(dir .. "/j.safetensors")
    local k = grove.judge.load(dir .. "/j.safetensors")
    spec.eq(k.config.stem_depth, 3)
    local s2 = k:score(b.images, b.captions)
    for i = 1, 2 do spec.eq(s2[i], s[i]) end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  spec.it("changes captions by colour, count, shape and relation", function()
    local r = grove.judge.rng(1)
    local pos = grove.data.captions.parse("a red circle left of a blue square")
    local function cap(s) return s and grove.data.captions.generate(s) end
    spec.assert(cap(grove.judge.mutate(pos, "relation", r)):find("circle") and
                not cap(grove.judge.mutate(pos, "relation", r)):find("left of"))
    local col = cap(grove.judge.mutate(pos, "color", r))
    spec.assert(col ~= "a red circle left of a blue square" and col:find("left of"), col)
    local two = grove.data.captions.parse("three red circles")
    for _ = 1, 5 do
      local m = grove.judge.mutate(two, "count", r)
      spec.assert(m.objects[1].count ~= 3 and m.objects[1].count >= 2, "count " .. m.objects[1].count)
    end
    spec.eq(grove.judge.mutate(grove.data.captions.parse("a circle"), "color", r), nil)
    spec.eq(grove.judge.mutate(grove.data.captions.parse("a circle"), "relation", r), nil)
    local shp = grove.judge.mutate(grove.data.captions.parse("a circle and a square"), "shape", r)
    spec.assert(shp.objects[1].shape ~= shp.objects[2].shape)
  end)

  spec.it("labels renders by the evaluator: captions yes, changed captions no", function()
    local b = grove.data.shapes { batch = 32, seed = 4, size = 32 }:next()
    local p = grove.judge.pairs(b.images, b.specs, { seed = 2 })
    spec.eq(#p.captions, 64)
    local yes, kinds = 0, {}
    for r = 1, 32 do yes = yes + p.label_list[r] end
    spec.assert(yes >= 30, "renders match their captions (" .. yes .. "/32)")
    local no = 0
    for r = 33, 64 do
      no = no + (1 - p.label_list[r]); kinds[p.kinds[r]] = true
    end
    spec.assert(no >= 28, "changed captions mostly fail (" .. no .. "/32)")
    spec.assert(kinds.color and kinds.count and kinds.shape, "several kinds of change")
  end)

  spec.it("never changes a caption into a held-out (shape, colour) pair the image lacks", function()
    -- the renders never show one, so such negatives would teach the judge
    -- to refuse the pair instead of looking at the image
    local C = grove.data.captions
    local b = grove.data.shapes { batch = 256, seed = 9, size = 32 }:next()
    local p = grove.judge.pairs(b.images, b.specs, { seed = 5 })
    local changed = 0
    for r = 257, 512 do
      for _, o in ipairs(C.parse(p.captions[r]).objects) do
        spec.assert(not (o.color and C.is_heldout(o.shape, o.color)), p.captions[r])
      end
      if p.kinds[r] ~= "swap" then changed = changed + 1 end
    end
    spec.assert(changed > 200, "most negatives are still changes (" .. changed .. "/256)")
  end)

  spec.it("learns: the loss on a fixed batch falls", function()
    local j = grove.judge.Judge({ vocab_size = tok:size(), width = 32, depth = 1, heads = 2, size = 16 }, { seed = 2 })
    local b = grove.data.shapes { batch = 8, seed = 1, size = 16 }:next()
    local p = grove.judge.pairs(b.images, b.specs, { seed = 1 })
    local opt = grove.optim.adamw(j:parameters(), { lr = 3e-3 })
    local first, last
    for step = 1, 30 do
      local loss = grove.cross_entropy(j:logits(p.images, p.captions), p.labels)
      loss:backward(); opt:step(); opt:zero_grad()
      last = loss:item()
      first = first or last
    end
    spec.assert(last < 0.7 * first, string.format("loss %.4f -> %.4f", first, last))
  end)
end)

spec.describe("recipes/train_judge.lua", function()
  spec.it("trains, saves a judge that loads, and prints accuracy per kind", function()
    local dir = tmpdir()
    local text, status = run(exe .. " recipes/train_judge.lua --steps 3 --batch 4 --eval-images 8 --width 32 --depth 1 --out " .. dir)
    spec.eq(status, 0, text)
    spec.assert(text:find("renders   match", 1, true) and text:find("heldout   overall", 1, true), text)
    local j = grove.judge.load(dir .. "/judge.safetensors")
    spec.eq(j.config.width, 32)
    spec.assert(io.open(dir .. "/accuracy.txt") ~= nil, "accuracy.txt written")
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)

spec.describe("recipes/search.lua", function()
  spec.it("searches a prompt list with its own policy and writes the sheet", function()
    local dir = tmpdir()
    grove.train.save_weights(dir .. "/m.safetensors", tiny())
    local text, status = run(exe .. " recipes/search.lua --checkpoint " .. dir .. "/m.safetensors --judge evaluator"
      .. " --prompts 'a red circle;two blue squares' -n 4 --steps 2 --size 16 --batch 2 --policy confident --out " .. dir)
    spec.eq(status, 0, text)
    spec.assert(text:find("a red circle", 1, true) and text:find("picked seed", 1, true), text)
    spec.assert(text:find("the picks %d/2"), text)
    spec.assert(io.open(dir .. "/search.png") ~= nil, "sheet written")
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)

spec.describe("recipes/search_study.lua", function()
  spec.it("writes the table, the CSV and the plot; more steps ×1 equals one candidate", function()
    local dir = tmpdir()
    grove.train.save_weights(dir .. "/m.safetensors", tiny())
    local text, status = run(exe .. " recipes/search_study.lua --checkpoint " .. dir .. "/m.safetensors --judge evaluator"
      .. " --prompts 1 --max-n 4 --steps 2 --steps-max-n 2 --size 16 --out " .. dir)
    spec.eq(status, 0, text)
    local csv = assert(io.open(dir .. "/results.csv")):read("*a")
    local overall = {}
    for line, n, v in csv:gmatch("\n(%a[%w_]*),(%d+),%d+,[^\n]-,([%d.]+)") do overall[line .. n] = tonumber(v) end
    for _, key in ipairs { "tournament1", "tournament4", "best_of_n4", "oracle4", "random4", "steps1", "steps2" } do
      spec.assert(overall[key], key .. " in results.csv:\n" .. csv)
    end
    spec.eq(overall.steps4, nil, "the steps line stops at --steps-max-n")
    -- one candidate is one candidate, whichever line it is on
    spec.eq(overall.steps1, overall.oracle1)
    spec.eq(overall.random1, overall.oracle1)
    -- the oracle picks a passing candidate whenever there is one
    spec.assert(overall.oracle4 >= overall.tournament4 and overall.oracle4 >= overall.random4)
    spec.assert(io.open(dir .. "/scaling.png") ~= nil and io.open(dir .. "/table.md") ~= nil, "plot and table written")
    -- the paired comparisons at N = 2 and 4 (the steps one at N = 2 only)
    local cmp = assert(io.open(dir .. "/comparisons.md")):read("*a")
    for _, what in ipairs { "tournament N = 4 − N = 1", "tournament − random pick, N = 2", "oracle − tournament, N = 4",
                            "2 candidates − 2× steps" } do
      spec.assert(cmp:find(what, 1, true), what .. " in comparisons.md:\n" .. cmp)
    end
    spec.assert(not cmp:find("4 candidates − 4× steps", 1, true), cmp)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  spec.it("study_comparisons pairs the lines prompt by prompt and names a winner only when the CI excludes 0", function()
    local ones, zeros, mixed = { 1, 1, 1, 1, 1, 1 }, { 0, 0, 0, 0, 0, 0 }, { 1, 0, 1, 0, 1, 0 }
    local rows = {
      { line = "tournament", n = 1, evals = 10, per_prompt = zeros },
      { line = "tournament", n = 2, evals = 20, per_prompt = ones },
      { line = "random", n = 2, evals = 20, per_prompt = mixed },
      { line = "oracle", n = 2, evals = 20, per_prompt = ones },
      { line = "steps ×2", n = 1, evals = 20, per_prompt = zeros },
    }
    local by = {}
    for _, c in ipairs(grove.search.study_comparisons(rows, 10)) do by[c.kind .. c.N] = c end
    -- every prompt gains 1: the interval is exactly [1, 1]
    spec.eq(by.gain2.result.diff, 1)
    spec.eq(by.gain2.result.lo, 1)
    spec.eq(by.gain2.result.better, 1)
    spec.eq(by.gain2.result.n, 6)
    -- tournament 1,1,1,1,1,1 against 1,0,1,0,1,0: differences 0 or 1, all ≥ 0, mean 0.5
    spec.near(by.chance2.result.diff, 0.5, 1e-12)
    spec.eq(by.chance2.result.better, 1)
    -- equal lines: no difference detected
    spec.eq(by.oracle2.result.diff, 0)
    spec.eq(by.oracle2.result.better, 0)
    spec.assert(by.oracle2.result.sentence:find("no difference detected", 1, true), by.oracle2.result.sentence)
    spec.eq(by.steps2.result.better, 1)
    spec.eq(by.steps2.what, "2 candidates − 2× steps (equal model evaluations)")
  end)
end)

spec.describe("grove search", function()
  spec.it("writes the picks and the candidates' grid", function()
    local dir = tmpdir()
    grove.train.save_weights(dir .. "/m.safetensors", tiny())
    local out = dir .. "/picked.png"
    local text, status = run(exe .. " search --checkpoint " .. dir .. "/m.safetensors --judge evaluator --prompt 'a red circle'"
      .. " -n 4 --pick 2 --steps 2 --size 16 --policy tournament -o " .. out)
    spec.eq(status, 0, text)
    spec.assert(text:find("picked seeds", 1, true), text)
    spec.assert(io.open(out) ~= nil and io.open(dir .. "/picked-candidates.png") ~= nil, "both images written")
    text, status = run(exe .. " search --checkpoint " .. dir .. "/m.safetensors --judge evaluator --prompt 'a red circle'"
      .. " -n 6 --pick 2 --steps 2 --size 16 -o " .. out)
    spec.assert(status ~= 0 and text:find("power of two", 1, true), text)
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
