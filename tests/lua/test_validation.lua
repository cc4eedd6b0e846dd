-- Arguments that used to give a silent wrong answer or an unclear error:
-- 1-based positions and dimensions (0 is an error, never "the first" or
-- "all"), messages in the Lua user's numbering, sampling options, pruning
-- to nothing, and the CLI's option checks and messages.
local spec = require "spec"
local args = require "grove.cli.args"

local exe = arg and arg[-1]
local run = spec.run

local function tiny()
  local parts = grove.train.build { preset = "tiny", seed = 3, text_depth = 1, text_heads = 2,
                                    config = { depth = 2, width = 64, cross_heads = 2 } }
  parts.model:eval(); parts.text:eval()
  return parts
end

spec.describe("1-based positions", function()
  spec.it("t[0] is an error, reading or writing; t[1] and t[-1] are the ends", function()
    local t = grove.tensor { { 1, 2 }, { 3, 4 } }
    spec.raises(function() return t[0] end, "select: index 0 is invalid (positions are 1-based; -1 is the last)")
    spec.raises(function() t[0] = 5 end, "index 0 is invalid")
    spec.raises(function() return t[1.5] end, "index 1.5 is invalid")
    spec.eq(t[1][1], 1)
    spec.eq(t[-1][2], 4)
    local v = grove.tensor { 7, 8, 9 }
    spec.raises(function() return v[0] end, "index 0 is invalid")
    spec.eq(v[3], 9)
    spec.raises(function() return t:select(1, 0) end, "select: index 0 is invalid")
  end)

  spec.it("narrow refuses start 0 and a negative length", function()
    local t = grove.arange(5)
    spec.raises(function() return t:narrow(1, 0, 2) end, "narrow: start 0 is invalid")
    spec.raises(function() return t:narrow(1, 1, -1) end, "narrow: length -1")
    spec.eq(t:narrow(1, 2, 2):tolist()[1], 1)
    spec.eq(t:narrow(1, -2, 2):tolist()[2], 4)
  end)

  spec.it("a dimension far out of range is an error, never a read outside the shape (it was a segfault)", function()
    local t = grove.zeros { 3, 4 }
    spec.raises(function() return t:narrow(2 ^ 40, 1, 1) end, "narrow: dimension 1099511627776 out of range for [3,4]")
    spec.raises(function() return t:narrow(-2 ^ 40, 1, 1) end, "out of range for [3,4]")
    spec.raises(function() return t:narrow(1, 2 ^ 62, 2 ^ 62) end, "out of bounds for dimension 1 of [3,4]")
    spec.raises(function() return t:size("2") end, "size: dimension 2 is invalid")
    spec.raises(function() return grove.arange(nil) end, "arange: end must be a number, got nil")
    spec.raises(function() return grove.stack({ t, t }, 0) end, "stack: dimension 0 is invalid")
    spec.raises(function() return t:expand { 2 ^ 40, 3, 4 }:tolist() end, "elements; reading into Lua is limited to")
  end)

  spec.it("tolist of a tensor with no elements but huge leading sizes is refused (it built 2^40 tables until out of memory)", function()
    spec.raises(function() return grove.zeros { 2 ^ 40, 1, 0 }:tolist() end,
                "tolist: [1099511627776,1,0] would make more than 134217728 nested tables")
    spec.raises(function() return grove.zeros { 0, 3 }:expand { 2 ^ 30, 0, 3 }:tolist() end, "nested tables")
    local l = grove.zeros { 3, 0 }:tolist()
    spec.eq(#l, 3)
    spec.eq(#l[1], 0)
    spec.eq(#grove.zeros { 0, 2 ^ 40 }:tolist(), 0)
  end)

  spec.it("sizes whose product overflows are refused even when the tensor has no elements", function()
    spec.raises(function() return grove.zeros { 0, 2 ^ 40, 2 ^ 40 } end, "has too many elements")
    spec.raises(function() return grove.zeros { 0, 3 }:view { 0, 2 ^ 40, 2 ^ 40 } end, "has too many elements")
    spec.raises(function() return grove.zeros { 0, 3 }:reshape { 2 ^ 62, 2 ^ 62, 0 } end, "has too many elements")
    spec.raises(function() return grove.zeros { 1, 3 }:expand { 2 ^ 40, 2 ^ 40, 3 } end, "expand: shape [")
    spec.raises(function() return grove.zeros { 2, 3 }:pad { 2 ^ 62, 2 ^ 62 } end, "pad: padding")
    spec.eq(grove.zeros { 0, 3 }:view { 0, 3, 1 }:shape_str(), "[0,3,1]")
  end)

  spec.it("squeeze(0) is an error, not squeeze-all; squeeze(d) drops only d", function()
    local t = grove.zeros { 1, 3, 1 }
    spec.raises(function() return t:squeeze(0) end, "squeeze: dimension 0 is invalid")
    spec.raises(function() return t:squeeze(4) end, "squeeze: dimension 4 out of range for [1,3,1]")
    spec.raises(function() return t:squeeze(-4) end, "squeeze: dimension -4 out of range")
    spec.eq(t:squeeze(1):shape_str(), "[3,1]")
    spec.eq(t:squeeze(-1):shape_str(), "[1,3]")
    spec.eq(t:squeeze(2):shape_str(), "[1,3,1]")
    spec.eq(t:squeeze():shape_str(), "[3]")
  end)

  spec.it("unsqueeze(0) is an error; -1 appends", function()
    local t = grove.zeros { 2, 3 }
    spec.raises(function() return t:unsqueeze(0) end, "unsqueeze: dimension 0 is invalid")
    spec.raises(function() return t:unsqueeze(4) end, "unsqueeze: dimension 4 out of range")
    spec.eq(t:unsqueeze(-1):shape_str(), "[2,3,1]")
    spec.eq(t:unsqueeze(1):shape_str(), "[1,2,3]")
    spec.eq(t:unsqueeze(3):shape_str(), "[2,3,1]")
  end)
end)

spec.describe("messages in the Lua numbering", function()
  spec.it("dimensions and positions from the C core are shown 1-based", function()
    local v = grove.zeros { 4 }
    spec.raises(function() return v[5] end, "select: index 5 out of range for dimension 1 of [4]")
    spec.raises(function() return v[-5] end, "select: index -5 out of range for dimension 1 of [4]")
    local m = grove.zeros { 2, 3 }
    spec.raises(function() return m:permute { 1, 1 } end, "permute: dimension 1 repeated for [2,3]")
    spec.raises(function() return m:permute { 2, 2 } end, "permute: dimension 2 repeated")
    spec.raises(function() return m:select(3, 1) end, "select: dimension 3 out of range for [2,3]")
    spec.raises(function() return m:narrow(2, 2, 3) end, "narrow: range 2..4 out of bounds for dimension 2 of [2,3]")
    spec.raises(function() return m + grove.zeros { 3, 3 } end, "shapes cannot broadcast (dimension 1: 2 vs 3)")
    spec.raises(function() return m:sum { 2, 2 } end, "sum: dimension 2 repeated in dimensions [2,2]")
  end)

  spec.it("translates C messages in one place, leaving negative numbers and other numbers alone", function()
    local f = grove._lua_numbering
    spec.eq(f("op: dimension 0 of [4]"), "op: dimension 1 of [4]")
    spec.eq(f("op: dimension -1 out of range"), "op: dimension -1 out of range")
    spec.eq(f("op: dimensions [0, -1, 2] of [1,2,3]"), "op: dimensions [1, -1, 3] of [1,2,3]")
    spec.eq(f("embedding: index 7 out of range for 4 embeddings"), "embedding: index 7 out of range for 4 embeddings")
    spec.eq(f("x: head_dimension 3"), "x: head_dimension 3")
    spec.eq(f("x: 3 dimensions requested"), "x: 3 dimensions requested")
  end)
end)

spec.describe("work a view cannot bound", function()
  spec.it("writes into an expanded view are refused, naming the shared dimension", function()
    local huge = grove.zeros { 1 }:expand { 1, 2, 2 ^ 40 }
    spec.raises(function() huge:fill_(1) end, "fill_: in-place write to [1,2,1099511627776], an expanded view")
    spec.raises(function() huge:copy_(grove.tensor { 3 }) end, "(dimension 2 has stride 0)")
    spec.raises(function() grove.zeros { 3 }:expand { 2, 3 }:zero_() end, "expanded view")
    -- a size-1 dimension of stride 0 shares nothing
    local one = grove.zeros { 3 }:expand { 1, 3 }
    one:fill_(2)
    spec.eq(one:sum():item(), 6)
  end)

  spec.it("split and chunk take integers and make at most 2^24 pieces", function()
    local long = grove.zeros { 1 }:expand { 2 ^ 30 }
    spec.raises(function() long:split(1) end, "split: 1073741824 pieces of size 1")
    spec.raises(function() grove.zeros { 4 }:split(1.5) end, "split: size must be a positive integer")
    spec.raises(function() grove.zeros { 4 }:chunk(2.5) end, "chunk: number of chunks must be an integer")
    spec.eq(#grove.zeros { 5 }:split(2), 3)
  end)
end)

spec.describe("sampling options", function()
  spec.it("model:sample refuses steps < 1, fractional steps, a NaN cfg and a negative seed", function()
    local p = tiny()
    local feats, mask = grove.no_grad(function() return grove.train.encode(p, { "a red circle" }) end)
    local o = { shape = { 1, 8, 8, p.model.config.in_channels }, text = feats, mask = mask, seed = 1 }
    local function with(k, v)
      local c = {}
      for a, b in pairs(o) do c[a] = b end
      c[k] = v
      return function() return p.model:sample(c) end
    end
    spec.raises(with("steps", -2), "sample: steps must be an integer >= 1, got -2")
    spec.raises(with("steps", 0), "sample: steps must be an integer >= 1, got 0")
    spec.raises(with("steps", 2.5), "sample: steps must be an integer >= 1, got 2.5")
    spec.raises(with("cfg", 0 / 0), "sample: cfg must be a finite number")
    spec.raises(with("cfg", math.huge), "sample: cfg must be a finite number, got inf")
    spec.raises(with("seed", -1), "sample: seed must be an integer >= 0, got -1")
    local x, info = with("steps", 1)()
    spec.eq(info.steps, 1)
    spec.eq(x:shape_str(), "[1,8,8," .. p.model.config.in_channels .. "]")
  end)
end)

spec.describe("grove.prune.build", function()
  spec.it("refuses an empty, out-of-range or repeated kept list", function()
    local p = tiny()
    spec.raises(function() grove.prune.build(p.model, {}) end, "prune.build: kept must list at least one block of 1..2")
    spec.raises(function() grove.prune.build(p.model, { 3 }) end, "prune.build: kept[1] is 3, but the model has blocks 1..2")
    spec.raises(function() grove.prune.build(p.model, { 0 }) end, "kept[1] is 0")
    spec.raises(function() grove.prune.build(p.model, { 1, 1 }) end, "block 1 is listed twice")
    local m = grove.prune.build(p.model, { 2 })
    spec.eq(#m.blocks, 1)
    spec.eq(m.config.depth, 1)
  end)
end)

spec.describe("grove.cli.args checks", function()
  spec.it("counts, seeds and finite numbers", function()
    spec.eq(args.count(1), nil)
    spec.eq(args.count(0), "an integer >= 1")
    spec.eq(args.count(1.5), "an integer >= 1")
    spec.eq(args.count(0 / 0), "an integer >= 1")
    spec.eq(args.seed(0), nil)
    spec.eq(args.seed(-1), "an integer >= 0")
    spec.eq(args.seed(2 ^ 53), "an integer >= 0")
    spec.eq(args.finite(-3.5), nil)
    spec.eq(args.finite(0 / 0), "a finite number")
    spec.eq(args.finite(-math.huge), "a finite number")
    spec.eq(args.number(0, 1)(2), "a finite number from 0 to 1")
    spec.raises(function() args.validate(0, args.count, "option --n") end, "option --n must be an integer >= 1, got 0")
    spec.raises(function() args.validate("x", args.count, "steps") end, "steps must be an integer >= 1, got 'x'")
  end)

  spec.it("parse() applies a spec's check and names the option", function()
    local sp = { { "n", "number", 4, "images", short = "n", check = args.count },
                 { "cfg", "number", 4.5, "guidance", check = args.finite } }
    spec.eq(args.parse({ "-n", "3" }, sp).n, 3)
    spec.raises(function() args.parse({ "-n", "-3" }, sp) end, "option --n must be an integer >= 1, got -3")
    spec.raises(function() args.parse({ "--cfg", "nan" }, sp) end, "option --cfg must be a finite number, got nan")
    spec.raises(function() args.parse({}, sp, { base = { n = 0 } }) end, "option --n must be an integer >= 1, got 0")
  end)
end)

spec.describe("CLI validation and messages", function()
  local dir, ckpt
  local function setup()
    if dir then return end
    dir = spec.tmpdir()
    ckpt = dir .. "/w.safetensors"
    grove.train.save_weights(ckpt, tiny())
  end

  spec.it("grove sample rejects -n -3, -n 0, --steps 0, --cfg nan and --seed -1 with exit status 1", function()
    if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
    setup()
    local base = "'" .. exe .. "' sample --checkpoint " .. ckpt .. " --prompt 'a red circle' --size 8 -o " .. dir .. "/s.png "
    for _, c in ipairs {
      { "-n -3", "option --n must be an integer >= 1, got -3" },
      { "-n 0", "option --n must be an integer >= 1, got 0" },
      { "--steps 0", "option --steps must be an integer >= 1, got 0" },
      { "--steps -2", "option --steps must be an integer >= 1, got -2" },
      { "--cfg nan", "option --cfg must be a finite number, got nan" },
      { "--seed -1", "option --seed must be an integer >= 0, got -" },
    } do
      local out, status = run(base .. c[1])
      spec.eq(status, 1, c[1] .. ": " .. out)
      spec.assert(out:find(c[2], 1, true), c[1] .. ": " .. out)
      spec.assert(not out:find("%.lua:%d+"), c[1] .. " shows a Lua position: " .. out)
    end
    local out, status = run(base .. "-n 1 --steps 1")
    spec.eq(status, 0, out)
  end)

  spec.it("an error from inside grove reaches the user without Lua positions; GROVE_DEBUG=1 keeps the traceback", function()
    if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
    setup()
    local missing = dir .. "/missing.safetensors"
    local out, status = run("'" .. exe .. "' sample --checkpoint " .. missing .. " --prompt x")
    spec.eq(status, 1, out)
    spec.assert(out:find("missing.safetensors", 1, true), out)
    spec.assert(not out:find("%.lua:%d+"), out)
    out, status = run("GROVE_DEBUG=1 '" .. exe .. "' sample --checkpoint " .. missing .. " --prompt x")
    spec.eq(status, 1, out)
    spec.assert(out:find("stack traceback", 1, true) and out:find("%.lua:%d+"), out)
  end)

  spec.it("every command refuses 0, negative, fractional and NaN counts and negative seeds before any work", function()
    if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
    setup()
    local common = " --checkpoint " .. ckpt .. " --judge evaluator --prompt x "
    for _, c in ipairs {
      { "eval --checkpoint " .. ckpt .. " --steps 0", "option --steps must be an integer >= 1, got 0" },
      { "eval --checkpoint " .. ckpt .. " --prompts 1.5", "option --prompts must be an integer >= 1, got 1.5" },
      { "eval --checkpoint " .. ckpt .. " --cfg inf", "option --cfg must be a finite number" },
      { "search" .. common .. "-n 0", "option --n must be an integer >= 1, got 0" },
      { "search" .. common .. "--pick -1", "option --pick must be an integer >= 1, got -1" },
      { "search" .. common .. "--seed -4", "option --seed must be an integer >= 0, got -" },
      { "search" .. common .. "--cfg nan", "option --cfg must be a finite number" },
      { "prune --in " .. ckpt .. " --out " .. dir .. "/p.safetensors --depth 0", "option --depth must be an integer >= 1, got 0" },
      { "prune --in " .. ckpt .. " --out " .. dir .. "/p.safetensors --depth 1 --batch 0", "option --batch must be an integer >= 1" },
      { "grow --in " .. ckpt .. " --out " .. dir .. "/g.safetensors --depth -2", "option --depth must be an integer >= 1, got -2" },
      { "grow --in " .. ckpt .. " --out " .. dir .. "/g.safetensors --depth 3 --noise nan", "option --noise must be a finite number >= 0" },
    } do
      local out, status = run("'" .. exe .. "' " .. c[1])
      spec.eq(status, 1, c[1] .. ": " .. out)
      spec.assert(out:find(c[2], 1, true), c[1] .. ": " .. out)
      spec.assert(not out:find("%.lua:%d+"), c[1] .. " shows a Lua position: " .. out)
    end
  end)

  spec.it("cli.message strips Lua positions, nested ones too", function()
    local cli = require "grove.cli"
    spec.eq(cli.message("/a/b/tensor.lua:12: cat: expected at least one tensor"), "cat: expected at least one tensor")
    spec.eq(cli.message("x.lua:1: y/z.lua:22: boom"), "boom")
    spec.eq(cli.message('[string "grove"]:3: bad'), "bad")
    spec.eq(cli.message("no position here: 3"), "no position here: 3")
  end)
end)
