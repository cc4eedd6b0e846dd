-- Optimizer objects: option errors, parameter groups, exact state bytes,
-- state dicts and state files (a resumed run continues bit-identically;
-- wrong files are refused before anything changes), and schedules.
local spec = require "spec"

if not grove.optim then require "grove.optim"(grove) end
local optim = grove.optim

local base = os.tmpname()
local made = {}
local function path(name)
  local p = base .. "." .. name .. ".safetensors"
  made[#made + 1] = p
  return p
end

-- ---- a small model with every kind of parameter --------------------------------------
-- w1 (160, 128) is above the 8-bit threshold; "unused" never gets a gradient.
local function model(seed)
  local gen = grove.Generator(seed)
  local function p(shape, std, mean)
    return (grove.randn(shape, { generator = gen }) * std + (mean or 0)):detach():requires_grad_()
  end
  return {
    { "w1", p({ 160, 128 }, 0.05) }, { "b1", p({ 160 }, 0.01) }, { "norm.weight", p({ 160 }, 0.1, 1) },
    { "w2", p({ 4, 160 }, 0.05) }, { "scale_shift_table", p({ 2, 4 }, 0.1) }, { "unused", p({ 3, 3 }, 1) },
  }
end

local function by_name(named)
  local t = {}
  for _, np in ipairs(named) do t[np[1]] = np[2] end
  return t
end

-- One training step on batch `step` (data depends only on the step).
local function loss_at(named, step)
  local P = by_name(named)
  local gen = grove.Generator(1000 + step)
  local x = grove.randn({ 8, 128 }, { generator = gen })
  local target = x:narrow(2, 1, 4):tanh() -- a fixed function of the input
  local h = x:linear(P.w1, P.b1):rms_norm(P["norm.weight"], 1e-5):gelu()
  local y = h:linear(P.w2) * (P.scale_shift_table:select(1, 1) + 1) + P.scale_shift_table:select(1, 2)
  return grove.mse_loss(y, target)
end

local function train(named, opt, sched, from, to, losses)
  for step = from, to do
    opt:zero_grad()
    local loss = loss_at(named, step)
    loss:backward()
    optim.clip_grad_norm(named, 1.0)
    opt:step()
    if sched then sched:step() end
    losses[step] = loss:item()
  end
end

local function params_equal(a, b, msg)
  for i = 1, #a do
    local d = (a[i][2] - b[i][2]):abs():max():item()
    spec.eq(d, 0, msg .. " " .. a[i][1])
  end
end

local configs = {
  { "sgd", { lr = 1.0, momentum = 0.9, nesterov = true, weight_decay = 1e-3 } },
  { "adamw", { lr = 1e-2 } },
  { "came", { lr = 1e-3, weight_decay = 0.01 } },
  { "came8bit", { lr = 1e-3, quant = "dynamic" } },
  { "came8bit", { lr = 1e-3, quant = "affine" } },
}

spec.describe("state files", function()
  for _, cfg in ipairs(configs) do
    local kind, o = cfg[1], cfg[2]
    local label = kind .. (o.quant and (" " .. o.quant) or "")
    spec.it(label .. ": a run resumed from a saved state continues bit-identically", function()
      local function groups(named) return optim.param_groups(named) end
      -- straight through
      local a = model(1)
      local opt_a = optim[kind](groups(a), o)
      local sched_a = optim.schedule.cosine(opt_a, { warmup = 3, total = 12, min_lr = o.lr / 10 })
      local la = {}
      train(a, opt_a, sched_a, 1, 10, la)
      -- five steps, save, rebuild everything from other seeds, load, five more
      local b = model(1)
      local opt_b = optim[kind](groups(b), o)
      local sched_b = optim.schedule.cosine(opt_b, { warmup = 3, total = 12, min_lr = o.lr / 10 })
      local lb = {}
      train(b, opt_b, sched_b, 1, 5, lb)
      local mpath, opath = path(label .. ".model"), path(label .. ".opt")
      grove.save_safetensors(mpath, b)
      opt_b:save(opath)
      local c = model(2)
      local opt_c = optim[kind](groups(c), o)
      local sched_c = optim.schedule.cosine({ warmup = 3, total = 12, min_lr = o.lr / 10 })
      local saved = grove.load_safetensors(mpath)
      grove.no_grad(function() for _, np in ipairs(c) do np[2]:copy_(saved[np[1]]) end end)
      opt_c:load(opath)
      sched_c:attach(opt_c)
      spec.eq(opt_c.steps, 5)
      spec.eq(opt_c.param_groups[1].lr, opt_b.param_groups[1].lr, "lr comes back exactly")
      train(c, opt_c, sched_c, 6, 10, lb)
      for i = 1, 10 do spec.eq(lb[i], la[i], "loss " .. i) end
      params_equal(c, a, "after resuming")
      spec.assert(la[10] < la[1], "training reduces the loss")
      -- steps per parameter: "unused" never stepped
      for _, e in ipairs(opt_c.entries) do spec.eq(e.step, e.name == "unused" and 0 or 10, e.name) end
    end)
  end

  spec.it("state_dict and load_state_dict round-trip in memory", function()
    local a = model(3)
    local opt = optim.came8bit(a, { lr = 1e-3 })
    train(a, opt, nil, 1, 3, {})
    local sd = opt:state_dict()
    local copy = {}
    for k, t in pairs(sd.tensors) do copy[k] = t:clone() end
    spec.eq(sd.metadata["grove.optimizer"], "came8bit")
    spec.assert(sd.tensors["w1.exp_avg_codes"] ~= nil and sd.tensors["w1.exp_avg_scales"] ~= nil, "8-bit state is named")
    spec.assert(sd.tensors["w2.exp_avg_sq_row"] ~= nil, "factored state is named")
    spec.assert(sd.tensors["b1.exp_avg_sq"] ~= nil, "full state is named")
    local b = model(3)
    local opt2 = optim.came8bit(b, { lr = 5 }) -- options come back from the state, as in torch
    opt2:load_state_dict({ tensors = copy, metadata = sd.metadata })
    spec.eq(opt2.param_groups[1].lr, 1e-3)
    for k, t in pairs(opt2:state_dict().tensors) do spec.eq((t:float() - copy[k]:float()):abs():max():item(), 0, k) end
  end)

  spec.it("wrong state files are refused with a clear error, changing nothing", function()
    local a = model(4)
    local opt = optim.came(a, { lr = 1e-3 })
    train(a, opt, nil, 1, 2, {})
    local good = path("good")
    opt:save(good)
    local before = opt:state_dict().tensors["w1.exp_avg"]:clone()
    local function refused(fn, msg)
      spec.raises(fn, msg)
      spec.eq((opt:state_dict().tensors["w1.exp_avg"] - before):abs():max():item(), 0, "state unchanged")
      spec.eq(opt.steps, 2, "steps unchanged")
    end
    -- another optimizer's state
    local other = optim.adamw(model(4))
    local adam_path = path("adam")
    other:save(adam_path)
    refused(function() opt:load(adam_path) end, "the state is for adamw, this optimizer is came")
    -- a model checkpoint, not an optimizer state
    local ckpt = path("ckpt")
    grove.save_safetensors(ckpt, a)
    refused(function() opt:load(ckpt) end, "not an optimizer state")
    -- state of other parameters (other names)
    local renamed = {}
    for i, np in ipairs(model(4)) do renamed[i] = { "layer." .. np[1], np[2] } end
    local o2 = optim.came(renamed)
    local renamed_path = path("renamed")
    o2:save(renamed_path)
    refused(function() opt:load(renamed_path) end, "unexpected tensor 'layer.b1.exp_avg'")
    -- wrong shape, wrong dtype, extra tensor, missing file, lying metadata
    local sd = opt:state_dict()
    local function with(change)
      local t, m = {}, {}
      for k, v in pairs(sd.tensors) do t[k] = v end
      for k, v in pairs(sd.metadata) do m[k] = v end
      change(t, m)
      return { tensors = t, metadata = m }
    end
    refused(function() opt:load_state_dict(with(function(t) t["w1.exp_avg"] = grove.zeros { 128, 160 } end)) end,
            "'w1.exp_avg' has shape [128,160], expected [160,128]")
    refused(function() opt:load_state_dict(with(function(t) t["w2.exp_avg_sq_row"] = grove.zeros({ 4 }, { dtype = "i64" }) end)) end,
            "'w2.exp_avg_sq_row' is i64, expected f32")
    refused(function() opt:load_state_dict(with(function(t) t["w3.exp_avg"] = grove.zeros { 2 } end)) end,
            "unexpected tensor 'w3.exp_avg'")
    refused(function() opt:load_state_dict(with(function(_, m) m["group.1.lr"] = "-1" end)) end,
            "lr must be a finite number >= 0, got -1")
    refused(function() opt:load_state_dict(with(function(_, m) m["group.1.betas"] = "[0.9,1.5,0.9999]" end)) end,
            "betas[2] must lie in [0, 1), got 1.5")
    refused(function() opt:load_state_dict(with(function(_, m) m["step.w1"] = "x" end)) end,
            "metadata 'step.w1' is missing or not a count")
    refused(function() opt:load(path("missing")) end, "came: load:")
    refused(function() opt:load_state_dict({}) end, "expected {tensors = ..., metadata = ...}")
    -- 8-bit state saved with another quantizer
    local q1 = optim.came8bit(model(4), { quant = "affine" })
    local q2 = optim.came8bit(model(4), { quant = "dynamic" })
    local qpath = path("affine")
    q1:save(qpath)
    spec.raises(function() q2:load(qpath) end, "'w1' was saved with other structural options")
    -- the good file still loads
    opt:load(good)
  end)
end)

spec.describe("options", function()
  local p = grove.randn { 3, 4 }:requires_grad_()
  local cases = {
    { "sgd", { lr = -1 }, "sgd: lr must be a finite number >= 0, got -1" },
    { "sgd", { nesterov = true }, "nesterov needs momentum > 0 and dampening 0" },
    { "sgd", { momentum = 0.9, dampening = 2 }, "dampening must lie in [0, 1], got 2" },
    { "adamw", { betas = { 0.9, 1 } }, "adamw: betas[2] must lie in [0, 1), got 1" },
    { "adamw", { betas = { -0.1, 0.9 } }, "betas[1] must lie in [0, 1), got -0.1" },
    { "adamw", { betas = { 0.9 } }, "betas must be a list of 2 numbers in [0, 1), got 1 values" },
    { "adamw", { eps = -1e-8 }, "eps must be a finite number >= 0, got -1e-08" },
    { "adamw", { weight_decay = -0.1 }, "weight_decay must be a finite number >= 0" },
    { "adamw", { lr = 0 / 0 }, "lr must be a finite number >= 0" },
    { "came", { betas = { 0.9, 0.999 } }, "came: betas must be a list of 3 numbers" },
    { "came", { eps = { 1e-30, -1 } }, "eps[2] must be a finite number >= 0, got -1" },
    { "came", { clip_threshold = 0 }, "clip_threshold must be a finite number > 0" },
    { "came", { lrr = 1 }, "came: unknown option 'lrr'" },
    { "came", { quant = "affine" }, "came: unknown option 'quant'" },
    { "came8bit", { quant = "int4" }, "quant must be one of dynamic, affine, got int4" },
    { "came8bit", { block = 0 }, "block must be an integer >= 1, got 0" },
    { "came8bit", { min_8bit_size = 1.5 }, "min_8bit_size must be an integer >= 0" },
  }
  for _, c in ipairs(cases) do
    spec.it(c[1] .. " refuses " .. c[3], function()
      spec.raises(function() optim[c[1]]({ p }, c[2]) end, c[3])
    end)
  end
  spec.it("refuses bad parameter lists and groups", function()
    spec.raises(function() optim.came({ p, p }) end, "appears twice")
    spec.raises(function() optim.came({ { "a", p }, { "a", grove.randn { 2 } } }) end, "two parameters are named 'a'")
    spec.raises(function() optim.came({ 1 }) end, "entry 1 is neither a tensor nor a {name, tensor} pair")
    spec.raises(function() optim.came({ grove.zeros({ 2 }, { dtype = "i64" }) }) end, "is i64, expected f32")
    spec.raises(function() optim.came({ { params = { p }, foo = 1 } }) end, "unknown option 'foo'")
    spec.raises(function() optim.came({ { params = { p }, lr = -2 } }) end, "lr must be a finite number >= 0, got -2")
    spec.raises(function() optim.came("x") end, "expected a model, a parameter list or a list of groups")
    local err = spec.raises(function() optim.adamw({ p }, { lr = -1 }) end)
    spec.assert(err:find("test_optim_state.lua", 1, true), "errors point at the caller: " .. err)
  end)
  spec.it("group options override the optimizer's, which override defaults", function()
    local q = grove.randn { 5 }:requires_grad_()
    local opt = optim.came({ { params = { p } }, { params = { q }, lr = 1, weight_decay = 0.5 } }, { lr = 0.1 })
    spec.eq(opt.param_groups[1].lr, 0.1)
    spec.eq(opt.param_groups[2].lr, 1)
    spec.eq(opt.param_groups[2].weight_decay, 0.5)
    spec.eq(opt.param_groups[1].betas[3], 0.9999)
    spec.eq(opt:names()[2], "params.2")
  end)
  spec.it("takes strided gradients; refuses strided parameters, naming them", function()
    local w = grove.randn { 4, 4 }:requires_grad_()
    local opt = optim.came({ { "w", w } })
    w.grad = grove.randn({ 4, 4 }):t()
    opt:step()
    local nc = grove.randn({ 4, 8 }):t():detach():requires_grad_()
    local opt2 = optim.adamw({ { "nc", nc } })
    nc.grad = grove.randn { 8, 4 }
    spec.raises(function() opt2:step() end,
                "adamw: parameter [8,4] is not contiguous; optimizers update parameters in place (parameter 'nc')")
    spec.eq(opt2.entries[1].step, 0, "a failed step is not counted")
  end)
end)

spec.describe("state bytes", function()
  spec.it("are exact per kind and match the allocated tensors", function()
    local named = {
      { "w", grove.randn({ 300, 200 }):requires_grad_() }, -- 60000: 8-bit
      { "c", grove.randn({ 64, 32, 1, 1 }):requires_grad_() }, -- 1×1 conv, small: 32-bit factored
      { "b", grove.randn({ 300 }):requires_grad_() },
      { "dw", grove.randn({ 10, 1, 3, 3 }):requires_grad_() },
    }
    local n = 60000 + 2048 + 300 + 90
    grove.collect()
    local before = grove.memory()
    local adam = optim.adamw(named)
    local after = grove.memory()
    local sb = adam:state_bytes()
    spec.eq(sb.total, 8 * n); spec.eq(sb.first_moment, 4 * n); spec.eq(sb.second_moment, 4 * n)
    spec.eq(sb.params, n)
    -- two tensors per parameter; their bytes as counted by the allocator,
    -- which rounds blocks up (to 64 bytes, large ones to pages or to a
    -- cached block's size)
    spec.eq(after.live_tensors - before.live_tensors, 8, "state tensors")
    local live = after.live_bytes - before.live_bytes
    spec.assert(live >= sb.total and live <= 1.25 * sb.total, "allocated " .. live .. " for " .. sb.total)
    local came = optim.came(named):state_bytes()
    spec.eq(came.first_moment, 4 * n)
    spec.eq(came.second_moment, 4 * (300 + 200 + 64 + 32 + 300 + 90))
    spec.eq(came.instability, 4 * (300 + 200 + 64 + 32))
    spec.eq(came.scales, 0)
    for _, q in ipairs { { "dynamic", 1 }, { "affine", 2 } } do
      local o = optim.came8bit(named, { quant = q[1] })
      local s = o:state_bytes()
      spec.eq(s.first_moment, 60000 + 4 * (2048 + 300 + 90), q[1])
      spec.eq(s.scales, 4 * q[2] * math.ceil(60000 / 256), q[1])
      spec.eq(s.total, s.first_moment + s.second_moment + s.instability + s.scales)
      local counted = 0
      for _, st in pairs(o:state_dict().tensors) do
        counted = counted + st:numel() * (st:dtype() == "u8" and 1 or 4)
      end
      spec.eq(counted, s.total, q[1] .. " tensors")
    end
    local sgd = optim.sgd(named, { momentum = 0.9 }):state_bytes()
    spec.eq(sgd.momentum, 4 * n)
    spec.eq(optim.sgd(named):state_bytes().total, 0)
  end)

  spec.it("of a frozen parameter are allocated at its first update", function()
    local a, b = grove.randn({ 20, 30 }):requires_grad_(), grove.randn { 40, 10 }
    local opt = optim.adamw({ { "a", a }, { "b", b } })
    local s0 = opt:state_bytes()
    spec.eq(s0.total, 8 * 600); spec.eq(s0.unallocated, 8 * 400)
    spec.assert(next(opt:state_of("b")) == nil, "no state yet")
    a.grad = grove.ones { 20, 30 }
    opt:step()
    local early = opt:state_dict()
    spec.assert(early.tensors["b.exp_avg"] == nil and early.metadata["step.b"] == "0", "no state saved for b")
    b:requires_grad_(true)
    b.grad = grove.ones { 40, 10 }
    opt:step()
    spec.eq(opt:state_bytes().total, 8 * 1000)
    spec.eq(opt.entries[2].step, 1)
    -- a state saved before b was unfrozen loads: b starts fresh
    local copy = { tensors = {}, metadata = early.metadata }
    for k, t in pairs(early.tensors) do copy.tensors[k] = t:clone() end
    opt:load_state_dict(copy)
    spec.eq(opt:state_of("b").exp_avg:abs():max():item(), 0, "fresh state")
    spec.eq(opt.entries[2].step, 0)
    -- but a state claiming steps for b without its tensors does not
    local lying = { tensors = copy.tensors, metadata = {} }
    for k, v in pairs(copy.metadata) do lying.metadata[k] = v end
    lying.metadata["step.b"] = "3"
    spec.raises(function() opt:load_state_dict(lying) end, "the state of 'b' is missing (3 steps taken)")
    local partial = { tensors = { ["b.exp_avg"] = grove.zeros { 40, 10 } }, metadata = copy.metadata }
    for k, t in pairs(copy.tensors) do partial.tensors[k] = t end
    spec.raises(function() opt:load_state_dict(partial) end, "tensor 'b.exp_avg_sq' is missing")
  end)

  spec.it("are computed from shapes for a shape-only model, which cannot step", function()
    local m = grove.nn.Sana("tiny", { meta = true })
    local real = grove.nn.Sana("tiny", { seed = 1 })
    for _, kind in ipairs { "adamw", "came", "came8bit" } do
      local a, b = optim[kind](m):state_bytes(), optim[kind](real):state_bytes()
      for k, v in pairs(b) do spec.eq(a[k], v, kind .. " " .. k) end
    end
    local opt = optim.came8bit(m)
    spec.raises(function() opt:step() end, "shape-only")
  end)

  spec.it("rules follow the SANA parameter kinds", function()
    local m = grove.nn.Sana("small", { meta = true })
    local rules = optim.came8bit(m):rules()
    spec.eq(rules["transformer_blocks.0.attn1.to_q.weight"], "factored-8bit")
    spec.eq(rules["transformer_blocks.0.attn1.to_out.0.bias"], "full")
    spec.eq(rules["transformer_blocks.0.attn1.norm_q.weight"], "full")
    spec.eq(rules["transformer_blocks.0.scale_shift_table"], "full")
    spec.eq(rules["transformer_blocks.0.ff.conv_inverted.weight"], "factored-8bit")
    spec.eq(rules["transformer_blocks.0.ff.conv_depth.weight"], "full")
    spec.eq(rules["transformer_blocks.0.ff.conv_point.weight"], "factored-8bit")
    spec.eq(rules["y_embedding"], "full")
    spec.eq(rules["patch_embed.proj.weight"], "full") -- a 2×2 patch conv
    spec.eq(rules["proj_out.weight"], "factored") -- (12, 256): under the threshold
  end)
end)

spec.describe("param_groups", function()
  spec.it("puts norms, biases and tables in a group without weight decay", function()
    local m = grove.nn.Sana("tiny", { meta = true })
    local groups = optim.param_groups(m, { weight_decay = 0.03 })
    spec.eq(#groups, 2)
    spec.eq(groups[1].weight_decay, 0.03)
    spec.eq(groups[2].weight_decay, 0)
    local no = {}
    for _, np in ipairs(groups[2].params) do no[np[1]] = true end
    for _, np in ipairs(groups[1].params) do
      spec.assert(#np[2]:shape() >= 2, np[1] .. " decays")
      spec.assert(not np[1]:find("scale_shift_table") and not np[1]:find("y_embedding"), np[1] .. " decays")
    end
    spec.assert(no["transformer_blocks.0.attn1.norm_q.weight"] and no["caption_norm.weight"], "norms")
    spec.assert(no["transformer_blocks.0.attn2.to_q.bias"] and no["proj_out.bias"], "biases")
    spec.assert(no["transformer_blocks.0.scale_shift_table"] and no["scale_shift_table"] and no["y_embedding"], "tables")
    local total = #groups[1].params + #groups[2].params
    spec.eq(total, #m:named_parameters())
    local opt = optim.came(groups, { weight_decay = 0.5 })
    spec.eq(opt.param_groups[1].weight_decay, 0.03)
    spec.eq(opt.param_groups[2].weight_decay, 0)
    -- without a value the decaying group takes the optimizer's
    local opt2 = optim.came(optim.param_groups(m), { weight_decay = 0.5 })
    spec.eq(opt2.param_groups[1].weight_decay, 0.5)
  end)
end)

spec.describe("schedules", function()
  local function opt_with(lr)
    return optim.adamw({ { params = { grove.zeros { 2 }:requires_grad_() } },
                         { params = { grove.zeros { 2 }:requires_grad_() }, lr = lr * 2 } }, { lr = lr })
  end
  spec.it("warmup_constant ramps linearly then holds", function()
    local opt = opt_with(0.1)
    local s = optim.schedule.warmup_constant(opt, { warmup = 4 })
    spec.near(opt.param_groups[1].lr, 0.025, 1e-15, "attach sets step 1")
    spec.near(opt.param_groups[2].lr, 0.05, 1e-15, "each group from its own lr")
    spec.near(s:lr(2), 0.05, 1e-15)
    spec.near(s:lr(4), 0.1, 1e-15)
    spec.near(s:lr(100), 0.1, 1e-15)
    opt.steps = 2
    s:step()
    spec.near(opt.param_groups[1].lr, 0.075, 1e-15, "step follows the optimizer's count")
  end)
  spec.it("cosine warms up, decays to min_lr and stays", function()
    local opt = opt_with(1.0)
    local s = optim.schedule.cosine { optimizer = opt, warmup = 10, total = 110, min_lr = 0.1 }
    spec.near(s:lr(5), 0.5, 1e-15)
    spec.near(s:lr(10), 1.0, 1e-15)
    spec.near(s:lr(60), 0.1 + 0.9 * 0.5, 1e-12)
    spec.near(opt.param_groups[2].lr, 0.1 + 1.9 * 0.5, 1e-12)
    spec.near(s:lr(35), 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)), 1e-12)
    spec.near(s:lr(110), 0.1, 1e-12)
    spec.near(s:lr(500), 0.1, 1e-12)
  end)
  spec.it("wsd warms up, holds, then decays linearly to min_lr over the last steps", function()
    local opt = opt_with(1.0)
    local s = optim.schedule.wsd { optimizer = opt, warmup = 10, total = 110, decay = 40, min_lr = 0.2 }
    spec.near(s:lr(5), 0.5, 1e-15)
    spec.near(s:lr(10), 1.0, 1e-15)
    spec.near(s:lr(70), 1.0, 1e-15)
    spec.near(s:lr(80), 0.2 + 0.8 * 30 / 40, 1e-12)
    spec.near(opt.param_groups[2].lr, 0.2 + 1.8 * 30 / 40, 1e-12)
    spec.near(s:lr(110), 0.2, 1e-12)
    spec.near(s:lr(300), 0.2, 1e-12)
    spec.raises(function() optim.schedule.wsd { warmup = 10, total = 40, decay = 31 } end, "exceeds total 40")
    spec.raises(function() optim.schedule.wsd { decay = 3 } end, "total")
  end)
  spec.it("refuses bad settings", function()
    spec.raises(function() optim.schedule.cosine { warmup = 10, total = 5 } end, "total 5 must exceed warmup 10")
    spec.raises(function() optim.schedule.cosine { warmup = 1 } end, "total")
    spec.raises(function() optim.schedule.cosine { total = 10, min_lr = -1 } end, "min_lr must be a finite number >= 0")
    spec.raises(function() optim.schedule.warmup_constant { warmup = -1 } end, "warmup must be an integer >= 0")
    spec.raises(function() optim.schedule.warmup_constant { warmpu = 3 } end, "unknown option 'warmpu'")
    local s = optim.schedule.warmup_constant { warmup = 2 }
    spec.raises(function() s:step() end, "no optimizer attached")
    spec.raises(function() s:attach({}) end, "expected an optimizer")
  end)
end)

for _, p in ipairs(made) do os.remove(p); os.remove(p .. ".tmp") end
os.remove(base)
