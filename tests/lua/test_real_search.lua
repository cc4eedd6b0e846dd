-- Search on a diffusers pipeline folder (`grove search --model`,
-- grove.search.run_pipeline): candidates from the pipeline, one seed each,
-- picked by a policy with any Lua judge; the output records every
-- candidate's seed and `grove sample --model DIR --seed S` gives the pick
-- again bit for bit; the example judges (examples/judge_colour.lua,
-- examples/judge_shapes.lua) answer as they say.
local spec = require "spec"

local exe = arg and arg[-1]
local diffusers = grove.diffusers
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local examples = here .. "/../../examples"

-- a judge that likes bright images: its answers are easy to check here
local BRIGHT = "return function(image, prompt) return (image:mean():item() + 1) / 2 end\n"

spec.describe("grove search --model", function()
  local spm = io.popen("command -v spm_train 2>/dev/null"):read("*l")
  if not spm or spm == "" then spec.skip("spm_train is not installed (scripts/install-deps)"); return end
  if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
  if type(diffusers.vae) ~= "function" then spec.skip("this build has no DC-AE decoder"); return end
  local root = spec.tmpdir()
  local src = root .. "/tiny"
  diffusers.tiny_folder(src, { seed = 9 })
  local judge_file = root .. "/bright.lua"
  spec.write_all(judge_file, BRIGHT)
  local settings = { steps = 2, cfg = 4.5, height = 64, width = 64, binning = false }

  spec.it("a tournament picks the brightest; every seed is recorded; grove sample --seed S gives the pick bit for bit", function()
    local text, code = spec.run(q(exe) .. " search --model " .. q(src) .. " -p 'a red cat' -n 4 --policy tournament " ..
      "--judge " .. q(judge_file) .. " --seed 7 -H 64 -W 64 --no-binning --steps 2 -o " .. q(root .. "/pick.png"))
    spec.eq(code, 0, text)
    local doc = grove.json.read(root .. "/pick.json")
    spec.eq(#doc.candidates, 4)
    -- each candidate again, alone, from its seed; the judge's answer recomputed
    local pipe = diffusers.pipeline(src)
    local judge = dofile(judge_file)
    local best
    for i, c in ipairs(doc.candidates) do
      spec.eq(c.seed, 7 + i, "candidate " .. i .. " seed")
      local image = grove.search.pipeline_image(pipe, "a red cat", c.seed, settings)
      spec.near(c.score, judge(image, "a red cat"), 1e-12, "candidate " .. i .. " score")
      if not best or c.score > best.score then best = c end
    end
    spec.eq(#doc.picked, 1)
    spec.eq(doc.picked[1].seed, best.seed, "with all answers on one side, the tournament's winner is the best score")
    spec.assert(doc.candidates[best.index].picked, "the record marks the pick")
    -- the recorded command makes the pick again
    local cmd = doc.picked[1].regenerate
    spec.assert(cmd:find("^grove sample %-%-model "), cmd)
    local again, c2 = spec.run(q(exe) .. cmd:sub(6) .. " -o " .. q(root .. "/again.png"))
    spec.eq(c2, 0, again)
    local a, b = grove.image.load(root .. "/pick.png"), grove.image.load(root .. "/again.png")
    spec.eq(a:shape_str(), "[64,64,3]")
    spec.eq(spec.max_diff(a:float(), b:float()), 0, "grove sample --seed gives the picked image bit for bit")
    local meta = grove.image.read_text(root .. "/pick.png")
    spec.eq(meta.seed, tostring(best.seed))
    spec.eq(meta.prompt, "a red cat")
    spec.eq(grove.image.read_text(root .. "/again.png").seed, tostring(best.seed))
    spec.eq(grove.image.load(root .. "/pick-candidates.png"):dim(), 3)
  end)

  spec.it("from Lua: any function judges; best_of_n keeps two; the colour judge runs on the pipeline's images", function()
    local pipe = diffusers.pipeline(src)
    local asked = 0
    local o = { n = 3, pick = 2, policy = "best_of_n", seed = 20, judge = function(image, prompt)
      asked = asked + 1
      spec.eq(prompt, "a blue dog")
      spec.eq(image:shape_str(), "[64,64,3]")
      return (1 - image:mean():item()) / 2
    end }
    for k, v in pairs(settings) do o[k] = v end
    local picked, cands = grove.search.run_pipeline(pipe, "a blue dog", o)
    spec.eq(#cands, 3)
    spec.eq(#picked, 2)
    spec.assert(asked >= 3, "every candidate judged")
    local sorted = { cands[1].score, cands[2].score, cands[3].score }
    table.sort(sorted, function(x, y) return x > y end)
    spec.eq(picked[1].score, sorted[1])
    spec.eq(picked[2].score, sorted[2])
    o.judge = examples .. "/judge_colour.lua"
    o.pick, o.policy = 1, "tournament"
    o.n = 2
    local p2 = grove.search.run_pipeline(pipe, "a blue dog", o)
    spec.assert(p2[1].score >= 0 and p2[1].score <= 1)
  end)

  spec.it("refuses what it cannot do, with clear messages", function()
    local function fails(args, want)
      local o, c = spec.run(q(exe) .. " search " .. args)
      spec.assert(c ~= 0, "non-zero exit for " .. args .. "\n" .. o)
      spec.assert(o:find(want, 1, true), "message for " .. args .. " says '" .. want .. "':\n" .. o)
      spec.assert(not o:find("%.lua:%d+:"), "no Lua file:line:\n" .. o)
    end
    local m = "--model " .. q(src) .. " -p cat -n 2 -H 32 -W 32 --no-binning --steps 1 -o " .. q(root .. "/x.png") .. " "
    fails(m .. "--judge " .. q(root .. "/none.lua"), "cannot load the judge file")
    spec.write_all(root .. "/num.lua", "return 3\n")
    fails(m .. "--judge " .. q(root .. "/num.lua"), "must return a function (image, prompt) -> probability, got number")
    spec.write_all(root .. "/two.lua", "return function() return 2 end\n")
    fails(m .. "--judge " .. q(root .. "/two.lua"), "the judge must return a probability in [0, 1], got 2")
    fails(m .. "--judge " .. q(judge_file) .. " --policy halving", "searches inside grove's own sampler")
    fails(m .. "--judge " .. q(judge_file) .. " --policy tournament -n 3", "tournament needs a power of two")
    fails(m .. "--judge " .. q(judge_file) .. " --checkpoint x", "one of them")
    fails("--checkpoint x --judge evaluator -p cat -H 32", "apply to --model")
  end)

  os.execute("rm -rf " .. q(root))
end)

spec.describe("the example judges", function()
  local function solid(rgb, size)
    local t = grove.zeros { size, size, 3 }
    for c = 1, 3 do t:narrow(3, c, 1):fill_(rgb[c] / 127.5 - 1) end
    return t
  end

  spec.it("judge_colour: the share of the named colours' pixels", function()
    local judge = dofile(examples .. "/judge_colour.lua")
    local red, blue = solid({ 200, 30, 30 }, 80), solid({ 30, 70, 200 }, 80)
    spec.eq(judge(red, "a red apple"), 1)
    spec.eq(judge(blue, "a red apple"), 0)
    spec.eq(judge(red, "a cat"), 0.5, "no colour word: no opinion")
    spec.eq(judge(red, "a red apple on a blue plate"), 0.5, "one of two colours")
    local half = grove.cat({ red:narrow(1, 1, 40), blue:narrow(1, 41, 40) }, 1)
    spec.eq(judge(half, "a red apple on a blue plate"), 1, "both colours, half each")
    spec.eq(judge(solid({ 128, 128, 128 }, 16), "a grey cat"), 1, "grey is gray")
  end)

  spec.it("judge_shapes: 1 when the evaluator passes, below 0.5 when it fails", function()
    local judge = dofile(examples .. "/judge_shapes.lua")
    local img = grove.data.shapes.render({ "a red circle" }, { size = 32, seed = 1 }):select(1, 1):contiguous()
    spec.eq(judge(img, "a red circle"), 1)
    local blank = solid(grove.data.shapes.background, 32)
    local s = judge(blank, "a red circle")
    spec.assert(s < 0.5, "an empty image is a no: " .. s)
    local score = judge(img, "two blue squares")
    spec.assert(score < 0.5, "the wrong shapes: " .. score)
    spec.raises(function() judge(img, "a cyberpunk cat") end, "is not a shapes caption")
  end)
end)
