-- Depth pruning (grove.prune) and `grove prune`: identity blocks score 0 and
-- go first, importance is deterministic, kept blocks are bit-identical,
-- the schedules (one-shot, iterative, the baselines, user functions), clear
-- errors, and a pruned file that loads, fine-tunes and prunes again.
local spec = require "spec"

local exe = arg and arg[-1]

local tmpdir = spec.tmpdir

local run = spec.run

local join = spec.join

local max_diff = spec.max_diff

local params = spec.params

-- The tiny preset at width 64 with a one-layer text encoder; every weight
-- perturbed, so no block is an identity by accident of the default init
-- (which has zero biases), then the blocks in `identity` made exact
-- identities by zeroing their three output projections.
local function make_parts(depth, identity)
  local parts = grove.train.build { preset = "tiny", seed = 3, text_depth = 1, text_heads = 2,
                                    config = { depth = depth, width = 64, cross_heads = 2 } }
  local g = grove.Generator(77)
  grove.no_grad(function()
    for _, p in ipairs(parts.model:parameters()) do p:copy_(p + grove.randn(p:shape(), { generator = g }) * 0.05) end
    for _, i in ipairs(identity or {}) do
      for _, np in ipairs(parts.model.blocks[i]:named_parameters()) do
        for _, z in ipairs(grove.grow.ZERO) do if np[1] == z then np[2]:zero_() end end
      end
    end
  end)
  parts.model:eval()
  return parts
end

-- a small calibration set: 6 shapes prompts at 2 noise levels, 16×16 images
local small = { prompts = 6, timesteps = 2, batch = 3, size = 16, seed = 0 }
local function with(o, extra)
  local out = {}
  for k, v in pairs(o) do out[k] = v end
  for k, v in pairs(extra or {}) do out[k] = v end
  return out
end

spec.describe("importance", function()
  local parts = make_parts(5, { 2, 4 })
  local model = parts.model

  spec.it("is 0 for identity blocks under both metrics, and clearly above 0 for the others", function()
    local cos = grove.prune.importance(model, parts, small)
    spec.eq(#cos, 5)
    for _, i in ipairs { 2, 4 } do spec.assert(math.abs(cos[i]) < 1e-6, "cosine: block " .. i .. " scores " .. cos[i]) end
    for _, i in ipairs { 1, 3, 5 } do spec.assert(cos[i] > 1e-3, "cosine: block " .. i .. " scores " .. cos[i]) end
    local loss = grove.prune.importance(model, parts, with(small, { metric = "loss" }))
    spec.eq(loss[2], 0, "loss: block 2")
    spec.eq(loss[4], 0, "loss: block 4")
    for _, i in ipairs { 1, 3, 5 } do spec.assert(loss[i] ~= 0, "loss: block " .. i .. " scores 0") end
  end)

  spec.it("is deterministic: the same seed gives the same numbers, whatever the batch", function()
    local a, calib = grove.prune.importance(model, parts, small)
    local b = grove.prune.importance(model, parts, small)
    for i = 1, 5 do spec.eq(a[i], b[i], "block " .. i) end
    local c = grove.prune.importance(model, calib) -- the calibration set reused
    for i = 1, 5 do spec.eq(c[i], a[i], "reused calibration, block " .. i) end
    local d = grove.prune.importance(model, parts, with(small, { batch = 6 }))
    for i = 1, 5 do spec.near(d[i], a[i], 1e-4, "batch 6, block " .. i) end
    local e = grove.prune.importance(model, parts, with(small, { seed = 1 }))
    spec.assert(e[1] ~= a[1], "another seed, other prompts and noise")
  end)

  spec.it("calibrates on the shapes prompts, a prompt file, the model's own samples, or given latents", function()
    local calib = grove.prune.calibration(model, parts, small)
    spec.eq(#calib.prompts, 6)
    spec.eq(calib.x0_kind, "render")
    spec.eq(calib:count(), 12)
    spec.eq(join(calib.sigmas), join(grove.prune.sigmas(2, model.config.flow_shift)))
    spec.near(calib.sigmas[1], 3 * 0.25 / (1 + 2 * 0.25), 1e-12, "midpoint 0.25 through shift 3")
    -- one prompt of each category in turn
    local cats = {}
    for i, p in ipairs(calib.prompts) do cats[i] = grove.data.captions.parse(p).category end
    spec.eq(join(cats), join(grove.data.captions.categories))
    -- from the training split: each category's stream of the seed, not the evaluation files
    spec.eq(calib.origin, "shapes training split")
    for i, name in ipairs(grove.data.captions.categories) do
      local b = grove.data.shapes { batch = 1, seed = small.seed or 0, split = "train", categories = { name }, size = 16 }:next()
      spec.eq(calib.prompts[i], b.captions[1], name)
    end
    local eval_position = {}
    for _, p in ipairs(grove.data.shapes.prompts("position")) do eval_position[p] = true end
    local outside = 0
    for _, p in ipairs(grove.prune.default_prompts(60, 3)) do if not eval_position[p] and p:match(" of ") then outside = outside + 1 end end
    spec.assert(outside > 0, "position captions come from the grammar, not the evaluation file")

    local dir = tmpdir()
    local path = dir .. "/prompts.txt"
    local f = io.open(path, "w")
    f:write("a misty harbour at dawn\n\n  a red circle  \n")
    f:close()
    local own = grove.prune.calibration(model, parts, with(small, { prompts = path, sample_steps = 2 }))
    spec.eq(join(own.prompts), "a misty harbour at dawn,a red circle")
    spec.eq(own.x0_kind, "sample", "not every prompt is a shapes caption")
    local s = grove.prune.importance(model, own)
    spec.assert(math.abs(s[2]) < 1e-6 and s[1] > 1e-3, "sampled x0: " .. join(s))

    local x0 = grove.randn({ 2, 16, 16, 3 }, { generator = grove.Generator(5) })
    local given = grove.prune.calibration(model, parts, with(small, { prompts = { "a red circle", "a blue square" }, x0 = x0 }))
    spec.eq(given.x0_kind, "given")
    spec.eq(#grove.prune.importance(model, given), 5)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  spec.it("gives clear errors for empty calibration sets and missing encoders", function()
    spec.raises(function() grove.prune.importance(model, parts, with(small, { prompts = {} })) end,
                "prune: the calibration set is empty (no prompts)")
    spec.raises(function() grove.prune.importance(model, parts, with(small, { prompts = 0 })) end,
                "the calibration set is empty")
    local dir = tmpdir()
    local f = io.open(dir .. "/empty.txt", "w")
    f:write("\n  \n")
    f:close()
    spec.raises(function() grove.prune.importance(model, parts, with(small, { prompts = dir .. "/empty.txt" })) end,
                "the calibration set is empty: " .. dir .. "/empty.txt has no prompts")
    os.execute("rm -rf '" .. dir .. "'")
    spec.raises(function() grove.prune.importance(model, parts, with(small, { prompts = "/nonexistent/p.txt" })) end,
                "cannot read the calibration prompts")
    spec.raises(function() grove.prune.importance(model, parts, with(small, { timesteps = {} })) end,
                "timesteps must be a positive count or a non-empty list")
    spec.raises(function() grove.prune.importance(model, parts, with(small, { timesteps = { 0.5, 1.5 } })) end,
                "timestep 2 must be a noise level σ in (0, 1], got 1.5")
    spec.raises(function() grove.prune.importance(model, nil, small) end, "captions need the text encoder")
    spec.raises(function() grove.prune.importance(model, parts, with(small, { metric = "entropy" })) end,
                "unknown metric 'entropy' (known: cosine, loss)")
    spec.raises(function() grove.prune.importance(model, parts, with(small, { x0 = "render", prompts = { "a misty harbour" } })) end,
                "x0 = \"render\" needs shapes captions")
    spec.raises(function() grove.prune.importance(model, parts, with(small, { metric = function() return { 1, 2 } end })) end,
                "metric (function) returned 2 scores for 5 blocks")
  end)
end)

spec.describe("grove.prune", function()
  local parts = make_parts(5, { 2, 4 })
  local model = parts.model
  local o = with(small, { calib = parts })

  spec.it("removes the identity blocks first; the pruned model computes what the source did", function()
    local pruned, info = grove.prune(model, with(o, { depth = 3 }))
    spec.eq(join(info.removed), "2,4")
    spec.eq(join(info.kept), "1,3,5")
    spec.eq(#info.scores, 5)
    spec.eq(#pruned.blocks, 3)
    spec.eq(pruned.config.depth, 3)
    spec.eq(model.config.depth, 5, "the source's config is untouched")
    -- under the loss metric a block whose removal lowers the loss (this model
    -- is random) may go before an identity block; the lowest two go
    local _, li = grove.prune(model, with(o, { depth = 3, metric = "loss" }))
    spec.eq(li.scores[2], 0)
    spec.eq(li.scores[4], 0)
    local order = { 1, 2, 3, 4, 5 }
    table.sort(order, function(a, b) if li.scores[a] ~= li.scores[b] then return li.scores[a] < li.scores[b] end return a < b end)
    local lowest = { order[1], order[2] }
    table.sort(lowest)
    spec.eq(join(li.removed), join(lowest))
    local _, pos = grove.prune(model, with(o, { depth = 3, metric = function(m, calib, opts)
      local s = grove.prune.metrics.loss(m, calib, opts)
      for i = 1, #s do s[i] = math.abs(s[i]) end
      return s
    end }))
    spec.eq(join(pos.removed), "2,4", "loss increase in absolute value")
    local g = grove.Generator(9)
    local x, t = grove.randn({ 2, 16, 16, 3 }, { generator = g }), grove.full({ 2 }, 700)
    local text, mask = grove.train.encode(parts, { "a red circle", "two blue squares" })
    local a = grove.no_grad(function() return model:forward(x, t, text, mask) end)
    local b = grove.no_grad(function() return pruned:forward(x, t, text, mask) end)
    spec.eq(max_diff(a, b), 0, "identity blocks removed")
  end)

  spec.it("keeps the remaining blocks bit-identical and leaves the source alone", function()
    local sp = params(model)
    local before = {}
    for name, p in pairs(sp) do before[name] = p:clone() end
    local pruned, info = grove.prune(model, with(o, { depth = 2, schedule = "last" }))
    spec.eq(join(info.kept), "1,2")
    spec.eq(info.scores, nil, "the last-blocks baseline scores nothing")
    local pp = params(pruned)
    local count = 0
    for name, p in pairs(pp) do
      local src = name
      local i, rest = name:match("^transformer_blocks%.(%d+)%.(.+)$")
      if i then src = "transformer_blocks." .. (info.kept[tonumber(i) + 1] - 1) .. "." .. rest end
      spec.assert(sp[src], "no source tensor for " .. name)
      spec.eq(max_diff(p, sp[src]), 0, name)
      count = count + 1
    end
    local kept3 = grove.prune(model, with(o, { depth = 3 }))
    spec.eq(max_diff(params(kept3)["transformer_blocks.2.ff.conv_inverted.weight"],
                     sp["transformer_blocks.4.ff.conv_inverted.weight"]), 0, "block 5 became block 3")
    grove.no_grad(function()
      for _, p in ipairs(pruned:parameters()) do p:fill_(7) end
    end)
    for name, p in pairs(sp) do spec.eq(max_diff(p, before[name]), 0, name) end
    spec.eq(#model.blocks, 5)
    spec.assert(count > 0)
  end)

  spec.it("iterative re-scores after each removal", function()
    local pruned, info = grove.prune(model, with(o, { depth = 2, schedule = "iterative" }))
    spec.eq(#pruned.blocks, 2)
    spec.eq(#info.rounds, 3)
    spec.eq(#info.rounds[1].alive, 5)
    spec.eq(#info.rounds[3].alive, 3)
    -- the first two rounds take out the identity blocks, the third the weakest of the rest
    spec.eq(join(info.rounds[3].alive), "1,3,5")
    local s3 = info.rounds[3].scores
    local weakest = (s3[1] <= s3[3] and s3[1] <= s3[5]) and 1 or (s3[3] <= s3[5] and 3 or 5)
    local expect = { 2, 4, weakest }
    table.sort(expect)
    spec.eq(join(info.removed), join(expect))
    local _, two = grove.prune(model, with(o, { depth = 3, schedule = "iterative", step = 2 }))
    spec.eq(#two.rounds, 1, "two blocks per round")
    spec.eq(join(two.removed), "2,4")
  end)

  spec.it("runs user schedules and metrics, protects keep, and has seeded baselines", function()
    -- always keep the first and the last block
    local function ends(ctx)
      local scores = ctx.score()
      local inner = {}
      for j = 2, ctx.n - 1 do inner[#inner + 1] = j end
      table.sort(inner, function(a, b) return scores[a] > scores[b] end)
      local kept = { 1, ctx.n }
      for k = 1, ctx.depth - 2 do kept[#kept + 1] = inner[k] end
      return kept
    end
    local _, info = grove.prune(model, with(o, { depth = 3, schedule = ends }))
    spec.eq(join(info.kept), "1,3,5")
    spec.eq(info.schedule, "(function)")

    -- a metric that ranks blocks by position: the first ones go
    local position = function(m) local s = {} for i = 1, #m.blocks do s[i] = i end return s end
    grove.prune.register_metric("position", position)
    local _, pi = grove.prune(model, { depth = 3, metric = "position", calib = parts, prompts = 3, timesteps = 1 })
    spec.eq(join(pi.kept), "3,4,5")
    local _, pk = grove.prune(model, { depth = 3, metric = "position", calib = parts, prompts = 3, timesteps = 1, keep = { 1 } })
    spec.eq(join(pk.kept), "1,4,5")
    grove.prune.metrics.position = nil

    local _, last = grove.prune(model, { depth = 3, schedule = "last", keep = { 5 } })
    spec.eq(join(last.kept), "1,2,5")
    local _, r1 = grove.prune(model, { depth = 2, schedule = "random", seed = 4 })
    local _, r2 = grove.prune(model, { depth = 2, schedule = "random", seed = 4 })
    spec.eq(join(r1.kept), join(r2.kept), "same seed, same blocks")
    local differs = false
    for seed = 5, 12 do
      local _, r = grove.prune(model, { depth = 2, schedule = "random", seed = seed })
      differs = differs or join(r.kept) ~= join(r1.kept)
    end
    spec.assert(differs, "the seed picks the blocks")
    local _, rk = grove.prune(model, { depth = 2, schedule = "random", seed = 4, keep = { 3, 4 } })
    spec.eq(join(rk.kept), "3,4")

    grove.prune.register_schedule("middle", function(ctx) return { 2, 3, 4 } end)
    local _, mid = grove.prune(model, { depth = 3, schedule = "middle" })
    spec.eq(join(mid.removed), "1,5")
    grove.prune.schedules.middle = nil
  end)

  spec.it("refuses depths out of range and bad schedules, naming the numbers", function()
    for _, k in ipairs { 0, 6, 2.5, -1 } do
      spec.raises(function() grove.prune(model, with(o, { depth = k })) end,
                  "prune: depth must be an integer from 1 to 5 (the model has 5 blocks), got " .. tostring(k))
    end
    spec.raises(function() grove.prune(model, with(o, {})) end, "depth must be an integer from 1 to 5")
    spec.raises(function() grove.prune(model) end, "expected an options table")
    spec.raises(function() grove.prune({}, { depth = 1 }) end, "expected a model with a list of blocks")
    spec.raises(function() grove.prune(model, with(o, { depth = 3, schedule = "spiral" })) end,
                "unknown schedule 'spiral' (known: iterative, last, oneshot, random)")
    spec.raises(function() grove.prune(model, with(o, { depth = 3, keep = { 6 } })) end,
                "keep names block 6, but the model has blocks 1..5")
    spec.raises(function() grove.prune(model, with(o, { depth = 2, keep = { 1, 2, 3 } })) end,
                "keep protects 3 blocks, more than the depth 2")
    spec.raises(function() grove.prune(model, with(o, { depth = 3, schedule = function() return { 1, 2 } end })) end,
                "schedule (function) kept 2 blocks for depth 3")
    spec.raises(function() grove.prune(model, with(o, { depth = 2, schedule = function() return { 1, 1 } end })) end,
                "keeps block 1 twice")
    spec.raises(function() grove.prune(model, with(o, { depth = 2, schedule = function() return { 1, 9 } end })) end,
                "keeps block 9, but the model has blocks 1..5")
    spec.raises(function() grove.prune(model, with(o, { depth = 2, keep = { 5 }, schedule = function() return { 1, 2 } end })) end,
                "removed block 5, which keep protects")
    spec.raises(function() grove.prune(model, { depth = 3 }) end, "captions need the text encoder")
    spec.raises(function() grove.prune(model, with(o, { depth = 3, prompts = {} })) end, "the calibration set is empty")
  end)
end)

spec.describe("grove prune (command line)", function()
  local dir = tmpdir()
  local parts = make_parts(5, { 2, 4 })
  local src = dir .. "/weights.safetensors"
  grove.train.save_weights(src, parts)
  local flags = " --prompts 6 --timesteps 2 --size 16 --batch 3"

  spec.it("writes weights that load as depth K, the chart, and a file that starts a fine-tune", function()
    local out, chart = dir .. "/pruned.safetensors", dir .. "/importance.png"
    local text, status = run(exe .. " prune --in " .. src .. " --out " .. out .. " --depth 3 --chart " .. chart .. flags)
    spec.eq(status, 0, text)
    spec.assert(text:find("5 -> 3 blocks (cosine metric, oneshot schedule); removed blocks 2,4 (transformer_blocks.{1,3})",
                          1, true), text)
    local p = grove.train.load_for_inference(out)
    spec.eq(#p.model.blocks, 3)
    spec.eq(p.model.config.depth, 3)
    local tensors, meta = grove.load_safetensors(out)
    spec.assert(meta["grove.prune"]:find("metric=cosine schedule=oneshot source_depth=5 depth=3 removed=2,4", 1, true),
                meta["grove.prune"])
    spec.eq(select(2, meta["grove.prune.scores"]:gsub(",", "")) + 1, 5, "one score per source block")
    local sp = params(parts.both)
    spec.eq(max_diff(tensors["model.transformer_blocks.1.attn1.to_q.weight"], sp["model.transformer_blocks.2.attn1.to_q.weight"]), 0)
    spec.eq(max_diff(tensors["model.proj_out.weight"], sp["model.proj_out.weight"]), 0)
    local text_tensors = 0
    for name, v in pairs(sp) do
      if name:match("^text%.") then
        spec.eq(max_diff(tensors[name], v), 0, name)
        text_tensors = text_tensors + 1
      end
    end
    spec.assert(text_tensors > 0, "the text encoder travels with the model")
    local f = io.open(chart, "rb")
    spec.assert(f, "no chart at " .. chart)
    spec.eq(f:read(8), "\137PNG\r\n\26\n", "a PNG")
    f:close()

    -- the pruned weights start a training run, whose checkpoint (with EMA) prunes again
    local ft = dir .. "/ft"
    local res = grove.train.run { init = out, steps = 1, batch = 2, size = 16, out = ft, eval = false, sample_every = 0,
                                  save_every = 1000, log_every = 1000 }
    spec.eq(res.step, 1)
    spec.eq(#res.parts.model.blocks, 3)
    local again = dir .. "/again.safetensors"
    text, status = run(exe .. " prune --in " .. ft .. "/checkpoint.safetensors --out " .. again ..
                       " --depth 2 --schedule last --chart " .. dir .. "/last.png" .. flags)
    spec.eq(status, 0, text)
    spec.assert(text:find("(EMA weights): 3 -> 2 blocks (cosine metric, last schedule); removed blocks 3", 1, true), text)
    spec.eq(#grove.train.load_for_inference(again).model.blocks, 2)
    spec.assert(io.open(dir .. "/last.png"), "the baselines chart the metric too")
  end)

  spec.it("takes a schedule from a Lua file and reports errors as the command", function()
    local path = dir .. "/ends.lua"
    local f = io.open(path, "w")
    f:write("return function(ctx) return { 1, ctx.n } end\n")
    f:close()
    local out = dir .. "/ends.safetensors"
    local text, status = run(exe .. " prune --in " .. src .. " --out " .. out .. " --depth 2 --schedule " .. path .. flags)
    spec.eq(status, 0, text)
    spec.assert(text:find("removed blocks 2,3,4", 1, true), text)

    text, status = run(exe .. " prune --in " .. src .. " --out " .. out .. " --depth 9" .. flags)
    spec.eq(status, 1)
    spec.assert(text:find("grove prune: depth must be an integer from 1 to 5 (the model has 5 blocks), got 9", 1, true), text)
    text, status = run(exe .. " prune --in " .. src .. " --out " .. out .. " --depth 2 --calib " .. dir .. "/none.txt")
    spec.eq(status, 1)
    spec.assert(text:find("cannot read the calibration prompts", 1, true), text)
    text, status = run(exe .. " prune --in " .. src .. " --out " .. out)
    spec.assert(status == 1 and text:find("option --depth is required", 1, true), text)
  end)

  os.execute("rm -rf '" .. dir .. "'")
end)

spec.describe("recipes/prune_study.lua", function()
  spec.it("runs the whole study at toy size and writes its report and charts", function()
    local dir = tmpdir()
    local out, status = run(string.format("GROVE_NUM_THREADS=1 %s recipes/prune_study.lua --deep-depth 2 --deep-steps 3 " ..
      "--fractions 1/2 --schedules oneshot,last --steps 2 --batch 4 --eval-prompts 1 --out %s/study", exe, dir))
    spec.eq(status, 0, out)
    local f = assert(io.open(dir .. "/study/report.md"))
    local report = f:read("*a")
    f:close()
    for _, row in ipairs { "| oneshot_1 |", "| last_1 |", "| 1 |" } do
      spec.assert(report:find(row, 1, true), row .. " row in:\n" .. report)
    end
    -- the scratch model gets the whole path's compute: 3 deep steps at depth 2,
    -- the calibration forwards and 2 fine-tuning steps at depth 1, in steps of depth 1
    local steps = tonumber(report:match("\n| 1 | [%d.e+-]+ | (%d+) |"))
    spec.assert(steps and steps >= 2 + 2 * 3, "scratch steps cover the deep training and the fine-tuning:\n" .. report)
    for _, phrase in ipairs { "scratch at depth 1 with the same compute (difference", "last blocks removed + fine-tuned",
                              "the deep model (2 blocks)", "shapes training split" } do
      spec.assert(report:find(phrase, 1, true), phrase .. " in:\n" .. report)
    end
    for _, png in ipairs { "importance.png", "recovery.png" } do
      local g = io.open(dir .. "/study/" .. png, "rb")
      spec.assert(g and g:read(8) == "\137PNG\r\n\26\n", png)
      if g then g:close() end
    end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  spec.it("needs the given deep model's compute for the same-compute scratch models", function()
    local out, status = run(string.format("%s recipes/prune_study.lua --deep /nonexistent.safetensors", exe))
    spec.assert(status ~= 0 and out:find("--deep needs --deep-tflop", 1, true), out)
  end)
end)
