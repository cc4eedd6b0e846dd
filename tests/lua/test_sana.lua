-- The SANA model from Lua: construction, presets, forward/backward shapes,
-- gradients reaching every parameter, block-list surgery, checkpoints,
-- flow matching and the samplers.
local spec = require "spec"

local cfg = { depth = 2, width = 64, head_dim = 32, cross_heads = 2, patch_size = 2, in_channels = 4,
              out_channels = 4, caption_channels = 16, text_len = 6 }

local function inputs(B, seed)
  local g = grove.Generator(seed or 1)
  local x = grove.randn({ B, 8, 8, 4 }, { generator = g })
  local t = grove.rand({ B }, { generator = g }) * 1000
  local text = grove.randn({ B, 6, 16 }, { generator = g })
  local mask = grove.tensor({ { 1, 1, 1, 1, 0, 0 }, { 1, 1, 1, 1, 1, 1 } })
  return x, t, text, mask
end

spec.describe("Sana model", function()
  spec.it("presets construct and report parameter counts", function()
    local n = grove.nn.Sana("sana_1600m", { meta = true }):num_parameters()
    spec.assert(n > 1.55e9 and n < 1.65e9, "1600M preset has " .. n)
    local n6 = grove.nn.Sana("sana_600m", { meta = true }):num_parameters()
    spec.assert(n6 > 5.5e8 and n6 < 6.5e8, "600M preset has " .. n6)
    spec.assert(grove.nn.Sana("tiny", { seed = 1 }):num_parameters() > 1e5)
  end)
  spec.it("names follow diffusers' SanaTransformer2DModel", function()
    local m = grove.nn.Sana(cfg, { seed = 1 })
    local names = {}
    for _, np in ipairs(m:named_parameters()) do names[np[1]] = np[2]:shape_str() end
    spec.eq(names["transformer_blocks.1.attn1.to_q.weight"], "[64,64]")
    spec.eq(names["transformer_blocks.0.attn1.norm_q.weight"], "[64]")
    spec.eq(names["transformer_blocks.0.attn2.to_out.0.bias"], "[64]")
    spec.eq(names["transformer_blocks.0.ff.conv_inverted.weight"], "[320,64,1,1]")
    spec.eq(names["transformer_blocks.0.ff.conv_depth.weight"], "[320,1,3,3]")
    spec.eq(names["transformer_blocks.0.ff.conv_point.weight"], "[64,160,1,1]")
    spec.eq(names["transformer_blocks.0.scale_shift_table"], "[6,64]")
    spec.eq(names["patch_embed.proj.weight"], "[64,4,2,2]")
    spec.eq(names["time_embed.linear.weight"], "[384,64]")
    spec.eq(names["caption_norm.weight"], "[64]")
    spec.eq(names["proj_out.weight"], "[16,64]")
    spec.eq(names["scale_shift_table"], "[2,64]")
    spec.eq(names["y_embedding"], "[6,16]")
  end)
  spec.it("forward gives the latent shape and backward reaches every parameter", function()
    local m = grove.nn.Sana(cfg, { seed = 2 })
    local x, t, text, mask = inputs(2)
    local out = m:forward(x, t, text, mask)
    spec.eq(out:shape_str(), "[2,8,8,4]")
    out:square():mean():backward()
    for _, np in ipairs(m:named_parameters()) do
      if np[1] ~= "y_embedding" then
        local g = np[2].grad
        spec.assert(g, "no gradient for " .. np[1])
      end
    end
  end)
  spec.it("blocks are a plain list: removing one renames the rest", function()
    local m = grove.nn.Sana(cfg, { seed = 3 })
    table.insert(m.blocks, 1, m:new_block())
    spec.eq(#m.blocks, 3)
    local found = false
    for _, np in ipairs(m:named_parameters()) do
      if np[1] == "transformer_blocks.2.attn1.to_q.weight" then found = true end
    end
    spec.assert(found)
    table.remove(m.blocks, 1)
    local seen = {}
    m:forward(inputs(2), grove.full({ 2 }, 500), grove.randn { 2, 6, 16 }, nil, {
      hook = function(i, xin, xout) seen[#seen + 1] = i .. ":" .. xin:shape_str() .. xout:shape_str() end })
    spec.eq(#seen, 2)
    spec.eq(seen[1], "1:[2,16,64][2,16,64]")
  end)
  spec.it("save and load round-trip exactly, with config", function()
    local m = grove.nn.Sana(cfg, { seed = 4 })
    local path = os.tmpname()
    m:save(path)
    local m2 = grove.nn.load(path)
    os.remove(path)
    local x, t, text, mask = inputs(2)
    local a = grove.no_grad(function() return m:forward(x, t, text, mask) end)
    local b = grove.no_grad(function() return m2:forward(x, t, text, mask) end)
    spec.eq((a - b):abs():max():item(), 0)
  end)
  spec.it("load reports every mismatch at once, or loads partially when not strict", function()
    local m = grove.nn.Sana(cfg, { seed = 5 })
    local state = m:state_dict()
    state["transformer_blocks.0.attn1.to_q.weight"] = nil
    state["extra.weight"] = grove.zeros { 2 }
    local err = spec.raises(function() m:load_state_dict(state) end, "missing: transformer_blocks.0.attn1.to_q.weight")
    spec.assert(err:find("unexpected: extra.weight", 1, true), err)
    local missing, unexpected = m:load_state_dict(state, { strict = false })
    spec.eq(#missing, 1); spec.eq(#unexpected, 1)
    state["extra.weight"] = nil
    state["proj_out.weight"] = grove.zeros { 3, 3 }
    spec.raises(function() m:load_state_dict(state, { strict = false }) end, "shape mismatch: proj_out.weight")
  end)
end)

spec.describe("flow matching", function()
  spec.it("the loss is deterministic from a generator and trains down", function()
    local m = grove.nn.Sana(cfg, { seed = 6 })
    local x = grove.randn({ 2, 8, 8, 4 }, { generator = grove.Generator(9) }) * 0.5
    local text, mask = grove.randn { 2, 6, 16 }, grove.ones { 2, 6 }
    local l1 = m:flow_loss(x, text, mask, { generator = grove.Generator(3) }):item()
    local l2 = m:flow_loss(x, text, mask, { generator = grove.Generator(3) }):item()
    spec.eq(l1, l2)
    local params = m:parameters()
    local first, last
    for step = 1, 30 do
      local loss = m:flow_loss(x, text, mask, { generator = grove.Generator(step % 3) })
      loss:backward()
      grove.no_grad(function()
        for _, p in ipairs(params) do
          local g = p.grad
          if g then p:copy_(p - g * 0.02); p:zero_grad() end
        end
      end)
      if step <= 3 then first = (first or 0) + loss:item() end
      if step > 27 then last = (last or 0) + loss:item() end
    end
    spec.assert(last < first, string.format("loss went from %.4f to %.4f", first / 3, last / 3))
  end)
end)

spec.describe("samplers", function()
  local m = grove.nn.Sana(cfg, { seed = 7 })
  local text, mask = grove.randn { 2, 6, 16 }, grove.ones { 2, 6 }
  for _, name in ipairs { "euler", "dpm" } do
    spec.it(name .. " is deterministic from a seed", function()
      local a = m:sample { shape = { 2, 8, 8, 4 }, seed = 5, text = text, mask = mask, steps = 6, sampler = name }
      local b = m:sample { shape = { 2, 8, 8, 4 }, seed = 5, text = text, mask = mask, steps = 6, sampler = name }
      spec.eq((a - b):abs():max():item(), 0)
      local c = m:sample { shape = { 2, 8, 8, 4 }, seed = 6, text = text, mask = mask, steps = 6, sampler = name }
      spec.assert((a - c):abs():max():item() > 0)
      spec.assert(a:abs():max():item() < 1e3, "finite")
    end)
  end
  spec.it("the callback sees each step and can stop early", function()
    local seen = {}
    local x, info = m:sample { shape = { 2, 8, 8, 4 }, seed = 1, text = text, mask = mask, steps = 10,
      callback = function(i, sigma, xi, x0)
        seen[#seen + 1] = sigma
        spec.eq(x0:shape_str(), "[2,8,8,4]")
        if i == 4 then return false end
      end }
    spec.eq(#seen, 4); spec.eq(info.steps, 4); spec.assert(info.stopped)
    spec.assert(seen[1] > seen[4], "σ falls")
  end)
  spec.it("the callback can alter the trajectory", function()
    local x = m:sample { shape = { 1, 8, 8, 4 }, seed = 1, text = text:narrow(1, 1, 1), mask = mask:narrow(1, 1, 1), steps = 3,
      callback = function(i, sigma, xi) if i == 3 then return grove.zeros_like(xi) end end }
    spec.eq(x:abs():max():item(), 0)
  end)
  spec.it("a sampler is a file + register: a registered copy gives the built-in's bits", function()
    local o = { shape = { 2, 8, 8, 4 }, seed = 5, text = text, mask = mask, steps = 4 }
    local function with(name) local r = {}; for k, v in pairs(o) do r[k] = v end; r.sampler = name; return r end
    grove.sample.register("dpm_copy", dofile("lua/grove/sample/dpm.lua"))
    spec.eq(spec.max_diff(m:sample(with "dpm"), m:sample(with "dpm_copy")), 0)
    -- a plain step function, and a sampler with its own schedule
    local steps = 0
    grove.sample.register("counting", function(ctx, i, x, s, t)
      steps = steps + 1
      return grove.sample.samplers.euler.step(ctx, i, x, s, t)
    end)
    spec.eq(spec.max_diff(m:sample(with "euler"), m:sample(with "counting")), 0)
    spec.eq(steps, 4)
    local seen = {}
    local r = with { step = grove.sample.samplers.euler.step,
                     sigmas = function(n) spec.eq(n, 4); return { 1, 0.7, 0.2, 0.1, 0 } end }
    r.callback = function(i, sigma) seen[i] = sigma end
    m:sample(r)
    spec.eq(table.concat(seen, ","), "0.7,0.2,0.1,0")
    grove.sample.samplers.dpm_copy, grove.sample.samplers.counting = nil, nil
    spec.raises(function() m:sample(with "nope") end, "sample: unknown sampler 'nope' (known: dpm, euler)")
    spec.raises(function() grove.sample.register("bad", { sigmas = 1 }) end, "must be a step function")
  end)
  spec.it("Euler with one step from pure noise is x0 = x − v", function()
    local noise = grove.randn({ 1, 8, 8, 4 }, { generator = grove.Generator(2) })
    local t1, m1 = text:narrow(1, 1, 1), mask:narrow(1, 1, 1)
    local x = m:sample { noise = noise, text = t1, mask = m1, steps = 1, sampler = "euler", cfg = 1 }
    local v = grove.no_grad(function() return m:eval():forward(noise, grove.full({ 1 }, 1000), t1, m1) end)
    m:train()
    spec.assert((x - (noise - v)):abs():max():item() < 1e-5)
  end)
end)

spec.describe("docs/model.md", function()
  spec.it("the preset table is what grove.nn.presets builds", function()
    local f = assert(io.open("docs/model.md"))
    local text = f:read("*a"); f:close()
    local seen = 0
    for name, row in text:gmatch("\n| `([%w_]+)` |([^\n]*)") do
      local p = grove.nn.presets[name]
      if p then
        local m = grove.nn.Sana(name, { meta = true })
        local c = m.config
        local n = tostring(m:num_parameters()):reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
        local want = string.format(" %d | %d | %d | %d | %d | %d | %d | %s |", c.depth, c.width, c.cross_heads, c.patch_size,
                                   c.in_channels, c.caption_channels, c.text_len, n)
        spec.eq(row, want, "docs/model.md row of " .. name)
        seen = seen + 1
      end
    end
    local count = 0
    for _ in pairs(grove.nn.presets) do count = count + 1 end
    spec.eq(seen, count, "every preset has a row")
  end)
end)
