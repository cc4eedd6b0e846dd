-- Activation recomputation (grove.recompute, model:recompute): the same
-- gradients as without, less peak memory, nothing leaked.
local spec = require "spec"

local function config(depth, width)
  return { depth = depth, width = width or 64, head_dim = 32, cross_heads = 2, mlp_ratio = 2.5, patch_size = 2,
           in_channels = 4, out_channels = 4, caption_channels = 32, text_len = 8 }
end

local function inputs(seed, size)
  local g = grove.Generator(seed)
  size = size or 8
  return {
    x = grove.randn({ 2, size, size, 4 }, g), t = grove.tensor { 300, 700 }, text = grove.randn({ 2, 8, 32 }, g),
    mask = grove.tensor { { 1, 1, 1, 1, 1, 0, 0, 0 }, { 1, 1, 1, 1, 1, 1, 1, 1 } },
    w = grove.randn({ 2, size, size, 4 }, g),
  }
end

-- One forward + backward; the loss, every parameter's gradient (cloned)
-- and the gradient of the latents.
local function grads(model, d, which)
  model:recompute(which)
  model:zero_grad()
  local x = d.x:clone():requires_grad_(true)
  local loss = (model:forward(x, d.t, d.text, d.mask) * d.w):sum()
  loss:backward()
  local out = {}
  for _, np in ipairs(model:named_parameters()) do
    if np[2].grad then out[np[1]] = np[2].grad:clone() end
  end
  return loss:item(), out, x.grad
end

local max_diff = spec.max_diff

spec.describe("activation recomputation", function()
  spec.it("gives the gradients of the plain model", function()
    local model = grove.nn.Sana(config(3), { seed = 3 })
    local d = inputs(5)
    local l0, g0, x0 = grads(model, d, false)
    local l1, g1, x1 = grads(model, d, true)
    spec.eq(l1, l0, "loss")
    spec.eq(max_diff(x1, x0), 0, "gradient of the latents")
    local n_exact, n = 0, 0
    for name, a in pairs(g0) do
      n = n + 1
      spec.assert(g1[name] ~= nil, name .. " has no gradient with recomputation")
      local diff = max_diff(g1[name], a)
      if name:find("^transformer_blocks") or name:find("^proj_out") or name:find("^patch_embed")
        or name == "scale_shift_table" then
        -- everything the block recompute and the latents path produce: bit for bit
        spec.eq(diff, 0, name)
      else
        -- t0 and the caption feed every block: the same per-block
        -- contributions, summed in another association (rounding only)
        spec.assert(diff <= 1e-5 * math.max(1, a:abs():max():item()), name .. " differs by " .. diff)
      end
      if diff == 0 then n_exact = n_exact + 1 end
    end
    print(string.format("    %d of %d parameter gradients bit-identical, the rest within rounding", n_exact, n))
  end)

  spec.it("selects blocks one by one", function()
    local model = grove.nn.Sana(config(4), { seed = 4 })
    model:recompute { 1, 3 }
    spec.eq(table.concat(model:recomputed(), ","), "1,3")
    spec.eq(model.blocks[2].recompute, false)
    model.blocks[2].recompute = true
    spec.eq(table.concat(model:recomputed(), ","), "1,2,3")
    model:recompute(true)
    spec.eq(#model:recomputed(), 4)
    model:recompute(false)
    spec.eq(#model:recomputed(), 0)
    spec.raises(function() model:recompute { 9 } end, "recompute: no block 9")
    -- the old names, for one release: the same functions, and a block's .checkpoint still counts
    spec.eq(grove.checkpoint, grove.recompute); spec.eq(grove.checkpoint_with, grove.recompute_with)
    spec.eq(grove.checkpoint_stats, grove.recompute_stats)
    spec.eq(model.checkpoint, model.recompute); spec.eq(model.checkpointed, model.recomputed)
    spec.eq(grove.train.save_checkpoint, grove.train.save_state)
    spec.eq(require "grove.nn.checkpoint", require "grove.nn.serialize")
    model.blocks[3].checkpoint = true
    spec.eq(table.concat(model:checkpointed(), ","), "3")
    model:recompute(false)
    spec.eq(model.blocks[3].checkpoint, nil)
    -- the selected blocks are recorded as one recompute node each
    local d = inputs(6)
    model:recompute { 2, 4 }
    local seen = {}
    local out = model:forward(d.x, d.t, d.text, d.mask, { hook = function(i, _, y) seen[i] = y:grad_fn() end })
    spec.eq(seen[2], "recompute")
    spec.eq(seen[4], "recompute")
    spec.assert(seen[1] ~= "recompute" and seen[3] ~= "recompute", "blocks 1 and 3 are recorded op by op")
    spec.assert(out.requires_grad, "output on the tape")
    -- partial selection: same gradients of the blocks as the plain model
    local l0, g0 = grads(model, d, false)
    local l1, g1 = grads(model, d, { 2, 4 })
    spec.eq(l1, l0, "loss")
    for name, a in pairs(g0) do
      if name:find("^transformer_blocks") then spec.eq(max_diff(g1[name], a), 0, name) end
    end
  end)

  spec.it("records nothing under no_grad and matches the forward", function()
    local model = grove.nn.Sana(config(2), { seed = 8 }):recompute(true)
    local d = inputs(9)
    local y1 = grove.no_grad(function() return model:forward(d.x, d.t, d.text, d.mask) end)
    spec.eq(y1.requires_grad, false)
    local y2 = model:forward(d.x, d.t, d.text, d.mask)
    spec.eq(max_diff(y1, y2:detach()), 0, "same forward values")
  end)

  spec.it("restores the generator for a random function", function()
    local w = grove.randn { 6 }:requires_grad_(true)
    local function noisy(x) return grove.dropout(x * w, 0.5, true, nil) end
    local x = grove.randn { 6 }:requires_grad_(true)
    grove.manual_seed(11)
    local y0 = noisy(x)
    y0:sum():backward()
    local gx0, gw0 = x.grad:clone(), w.grad:clone()
    x:zero_grad(); w:zero_grad()
    grove.manual_seed(11)
    local y1 = grove.recompute(noisy, x)
    spec.eq(max_diff(y0:detach(), y1:detach()), 0, "forward")
    grove.randn { 100 } -- moves the default generator on before backward
    y1:sum():backward()
    spec.eq(max_diff(x.grad, gx0), 0, "input gradient: the same dropout mask")
    spec.eq(max_diff(w.grad, gw0), 0, "parameter gradient reached through the recompute")
  end)

  spec.it("reports a failing recompute as an error", function()
    local calls = 0
    local x = grove.randn { 3 }:requires_grad_(true)
    local y = grove.recompute(function(a)
      calls = calls + 1
      if calls > 1 then error("boom") end
      return a * 2
    end, x)
    spec.raises(function() y:sum():backward() end, "boom")
    spec.raises(function() grove.recompute(function() return 1 end, x) end, "recompute: the function must return one tensor")
  end)

  spec.it("lowers peak memory of a deep model", function()
    local model = grove.nn.Sana(config(8, 128), { seed = 12 })
    local d = inputs(13, 16)
    local function peak(which)
      model:recompute(which)
      model:zero_grad()
      grove.collect()
      grove.reset_peak_memory()
      local base = grove.memory().live_bytes
      local loss = (model:forward(d.x, d.t, d.text, d.mask) * d.w):sum()
      loss:backward()
      loss = nil
      grove.collect()
      return grove.memory().peak_bytes - base
    end
    peak(false) -- warm the allocator and the gradients
    local plain, ck = peak(false), peak(true)
    print(string.format("    depth 8, width 128, 256 tokens: peak above the model %.2f MiB plain, %.2f MiB recomputed",
      plain / 2 ^ 20, ck / 2 ^ 20))
    spec.assert(ck < plain, "recomputation lowers the peak")
  end)

  spec.it("leaks no tensors, nodes or records", function()
    local model = grove.nn.Sana(config(2), { seed = 14 }):recompute(true)
    local d = inputs(15)
    spec.no_leaks(function()
      model:zero_grad()
      local loss = (model:forward(d.x, d.t, d.text, d.mask) * d.w):sum()
      loss:backward()
      -- a forward that is never backpropagated frees its node too
      local _ = model:forward(d.x, d.t, d.text, d.mask)
    end)
    grove.collect()
    local s = grove.recompute_stats()
    spec.eq(s.nodes, 0, "custom nodes alive")
    spec.eq(s.records, 0, "records kept on the Lua side")
  end)
end)
