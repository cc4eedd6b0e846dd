-- Optimizer updates against independent float64 references of their rules
-- (SGD, AdamW, CAME), CAME-8bit against 32-bit CAME step by step, the rule
-- chosen per parameter, and gradient clipping.
local spec = require "spec"
local ffi = require "ffi"

if not grove.optim then require "grove.optim"(grove) end
local optim = grove.optim

-- ---- helpers -------------------------------------------------------------------
local function flat(t) return t:contiguous():view { -1 }:tolist() end

local function numel(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end

local function copy(a)
  local out = {}
  for i = 1, #a do out[i] = a[i] end
  return out
end

local function zeros(n)
  local out = {}
  for i = 1, n do out[i] = 0 end
  return out
end

-- max |a − b| / max |b|, or / max |scale| when given
local function rel(a, b, scale)
  local worst, m = 0, 0
  for i = 1, #b do
    local d = math.abs(a[i] - b[i])
    if d ~= d then d = math.huge end
    if d > worst then worst = d end
    local s = scale and math.abs(scale[i]) or math.abs(b[i])
    if s > m then m = s end
  end
  return worst / (m > 0 and m or 1)
end

local function diff(a, b)
  local out = {}
  for i = 1, #a do out[i] = a[i] - b[i] end
  return out
end

-- Parameters named and shaped as given, f32 normal with std 0.05 (a
-- network's scale: the f32 rounding of the parameters stays well below the
-- displacement being checked); their float64 copies.
local function make_params(list, seed)
  local gen = grove.Generator(seed)
  local named, P = {}, {}
  for i, e in ipairs(list) do
    local t = (grove.randn(e[2], { generator = gen }) * 0.05):requires_grad_()
    named[i] = { e[1], t }
    P[i] = flat(t)
  end
  return named, P
end

-- ---- float64 references ----------------------------------------------------------
local function sgd_ref(P, G, S, step, o)
  for i = 1, #P do
    local d = G[i] + o.weight_decay * P[i]
    if o.momentum > 0 then
      if step == 1 then S.buf[i] = d
      else S.buf[i] = o.momentum * S.buf[i] + (1 - o.dampening) * d end
      d = o.nesterov and (d + o.momentum * S.buf[i]) or S.buf[i]
    end
    P[i] = P[i] - o.lr * d
  end
end

local function adamw_ref(P, G, S, step, o)
  local b1, b2 = o.betas[1], o.betas[2]
  local bc1, bc2 = 1 - b1 ^ step, 1 - b2 ^ step
  for i = 1, #P do
    P[i] = P[i] - o.lr * o.weight_decay * P[i]
    S.m[i] = b1 * S.m[i] + (1 - b1) * G[i]
    S.v[i] = b2 * S.v[i] + (1 - b2) * G[i] * G[i]
    local mhat, vhat = S.m[i] / bc1, S.v[i] / bc2
    P[i] = P[i] - o.lr * mhat / (math.sqrt(vhat) + o.eps)
  end
end

-- Row and column means of X (rows × cols, row-major).
local function row_col_means(X, rows, cols)
  local r, c = zeros(rows), zeros(cols)
  for i = 1, rows do
    for j = 1, cols do
      local x = X[(i - 1) * cols + j]
      r[i] = r[i] + x
      c[j] = c[j] + x
    end
  end
  for i = 1, rows do r[i] = r[i] / cols end
  for j = 1, cols do c[j] = c[j] / rows end
  return r, c
end

-- v_ij = r_i·c_j / mean(r): the factored estimate of a matrix of squares.
local function factored(r, c)
  local mean = 0
  for i = 1, #r do mean = mean + r[i] end
  mean = mean / #r
  return function(i, j) return r[i] * c[j] / mean end
end

-- The CAME paper's rule (no bias correction), for one parameter.
-- S: m, and v (full) or vr, vc, sr, sc (factored over rows × cols).
local function came_ref(P, G, S, o, rows, cols)
  local b1, b2, b3 = o.betas[1], o.betas[2], o.betas[3]
  local e1, e2 = o.eps[1], o.eps[2]
  local n = #P
  local U = {}
  local sq = {}
  for i = 1, n do sq[i] = G[i] * G[i] + e1 end
  if rows then
    local r, c = row_col_means(sq, rows, cols)
    for i = 1, rows do S.vr[i] = b2 * S.vr[i] + (1 - b2) * r[i] end
    for j = 1, cols do S.vc[j] = b2 * S.vc[j] + (1 - b2) * c[j] end
    local v = factored(S.vr, S.vc)
    for i = 1, rows do
      for j = 1, cols do
        local k = (i - 1) * cols + j
        U[k] = G[k] / math.sqrt(v(i, j))
      end
    end
  else
    for i = 1, n do
      S.v[i] = b2 * S.v[i] + (1 - b2) * sq[i]
      U[i] = G[i] / math.sqrt(S.v[i])
    end
  end
  local ss = 0
  for i = 1, n do ss = ss + U[i] * U[i] end
  local d = math.max(1, math.sqrt(ss / n) / o.clip_threshold)
  for i = 1, n do
    U[i] = U[i] / d
    S.m[i] = b1 * S.m[i] + (1 - b1) * U[i]
  end
  local step = {}
  if rows then
    local res = {}
    for i = 1, n do res[i] = (U[i] - S.m[i]) ^ 2 + e2 end
    local r, c = row_col_means(res, rows, cols)
    for i = 1, rows do S.sr[i] = b3 * S.sr[i] + (1 - b3) * r[i] end
    for j = 1, cols do S.sc[j] = b3 * S.sc[j] + (1 - b3) * c[j] end
    local s = factored(S.sr, S.sc)
    for i = 1, rows do
      for j = 1, cols do
        local k = (i - 1) * cols + j
        step[k] = S.m[k] / math.sqrt(s(i, j))
      end
    end
  else
    for i = 1, n do step[i] = S.m[i] end
  end
  for i = 1, n do P[i] = P[i] - o.lr * o.weight_decay * P[i] - o.lr * step[i] end
end

-- Runs `steps` steps of an optimizer over named params with random
-- gradients (one generator), and the reference alongside; returns the
-- largest relative errors of the displacement and of the state tensors.
local function compare(make_opt, params, ref_step, init_state, state_of, steps, seed)
  local named, P = make_params(params, seed)
  local P0 = {}
  for i = 1, #P do P0[i] = copy(P[i]) end
  local opt = make_opt(named)
  local S = {}
  for i, e in ipairs(params) do S[i] = init_state(e, opt) end
  local gen = grove.Generator(seed + 1)
  for step = 1, steps do
    for i, e in ipairs(params) do
      local g = grove.randn(e[2], { generator = gen }) * (e.grad_scale or 1)
      named[i][2].grad = g
      ref_step(i, P[i], flat(g), S[i], step, opt)
    end
    opt:step()
  end
  local out = {}
  for i, e in ipairs(params) do
    local got = flat(named[i][2])
    out[e[1]] = { disp = rel(diff(got, P0[i]), diff(P[i], P0[i])), state = state_of(e, opt, S[i]) }
  end
  return out, opt
end

-- ---- tests ------------------------------------------------------------------------------
spec.describe("sgd", function()
  local params = { { "w", { 12, 20 } }, { "b", { 20 } }, { "conv", { 4, 3, 3, 3 } } }
  for _, o in ipairs {
    { lr = 0.05, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false },
    { lr = 0.05, momentum = 0.9, dampening = 0.1, weight_decay = 0.01, nesterov = false },
    { lr = 0.02, momentum = 0.9, dampening = 0, weight_decay = 0.05, nesterov = true },
  } do
    local label = string.format("momentum %g dampening %g nesterov %s", o.momentum, o.dampening, tostring(o.nesterov))
    spec.it(label .. " matches the float64 reference over 20 steps", function()
      local res = compare(
        function(named) return optim.sgd(named, o) end, params,
        function(_, P, G, S, step) sgd_ref(P, G, S, step, o) end,
        function(e) return { buf = zeros(numel(e[2])) } end,
        function(e, opt, S)
          if o.momentum == 0 then return 0 end
          return rel(flat(opt:state_of(e[1]).momentum_buffer), S.buf)
        end, 20, 100)
      for name, r in pairs(res) do
        spec.assert(r.disp < 1e-5, name .. ": displacement error " .. r.disp)
        spec.assert(r.state < 1e-5, name .. ": momentum error " .. r.state)
      end
    end)
  end
end)

spec.describe("adamw", function()
  local params = { { "w", { 24, 40 } }, { "b", { 40 } }, { "conv", { 8, 4, 3, 3 } },
                   { "tiny_grads", { 10, 10 }, grad_scale = 1e-3 } }
  local o = { lr = 1e-2, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.1 }
  spec.it("matches the float64 reference over 20 steps (relative error < 1e-5)", function()
    local res = compare(
      function(named) return optim.adamw(named, o) end, params,
      function(_, P, G, S, step) adamw_ref(P, G, S, step, o) end,
      function(e) return { m = zeros(numel(e[2])), v = zeros(numel(e[2])) } end,
      function(e, opt, S)
        local st = opt:state_of(e[1])
        return math.max(rel(flat(st.exp_avg), S.m), rel(flat(st.exp_avg_sq), S.v))
      end, 20, 200)
    for name, r in pairs(res) do
      spec.assert(r.disp < 1e-5, name .. ": displacement error " .. r.disp)
      spec.assert(r.state < 1e-5, name .. ": state error " .. r.state)
    end
  end)
  -- opt:step() updates a group in one kernel call: the same bits as one
  -- grove_adamw_step per parameter, each with its own step count
  spec.it("a group's step is bit for bit one step per parameter", function()
    grove.manual_seed(11)
    local shapes = { { 24, 40 }, { 40 }, { 8, 4, 3, 3 }, { 7 } }
    local named, ref, refstate = {}, {}, {}
    for i, sh in ipairs(shapes) do
      local w = grove.randn(sh)
      named[i] = { "p" .. i, w:clone():requires_grad_() }
      ref[i] = w:clone()
      refstate[i] = { m = grove.zeros(sh), v = grove.zeros(sh), step = 0 }
    end
    local opt = optim.adamw(named, o)
    local copt = ffi.new("grove_adamw_options", { lr = o.lr, beta1 = o.betas[1], beta2 = o.betas[2], eps = o.eps,
                                                  weight_decay = o.weight_decay })
    for step = 1, 3 do
      for i, sh in ipairs(shapes) do
        local g = (step > 1 or i % 2 == 0) and grove.randn(sh) or nil -- odd ones start a step late
        named[i][2].grad = g
        if g then
          local r = refstate[i]
          r.step = r.step + 1
          assert(grove.C.grove_adamw_step(ref[i].p, g.p, r.m.p, r.v.p, copt, r.step) == 0)
        end
      end
      opt:step()
    end
    for i = 1, #shapes do
      spec.eq(named[i][2]:detach():sub(ref[i]):abs():max():item(), 0, "parameter " .. i)
      spec.eq(opt:state_of("p" .. i).exp_avg_sq:sub(refstate[i].v):abs():max():item(), 0, "exp_avg_sq " .. i)
    end
  end)

  spec.it("a bad parameter in a group stops the step before any update, naming it", function()
    local a, b = grove.ones({ 3 }):requires_grad_(), grove.ones({ 4 }):requires_grad_()
    local opt = optim.adamw({ { "a", a }, { "b", b } }, o)
    a.grad, b.grad = grove.ones { 3 }, grove.ones { 4 }
    opt:step()
    local a1 = a:detach():clone()
    a.grad, b.grad = grove.ones { 3 }, grove.ones { 4 }
    opt.entries[2].state.exp_avg = grove.zeros { 5 } -- a state of the wrong size: the C front-end refuses it
    spec.raises(function() opt:step() end, "(parameter 'b')")
    spec.eq(a:detach():sub(a1):abs():max():item(), 0, "a was not updated")
    spec.eq(opt.entries[1].step, 1, "step counts rolled back")
  end)

  spec.it("defaults are torch's", function()
    local opt = optim.adamw({ grove.zeros { 2 }:requires_grad_() })
    local g = opt.param_groups[1]
    spec.eq(g.lr, 1e-3); spec.eq(g.betas[1], 0.9); spec.eq(g.betas[2], 0.999)
    spec.eq(g.eps, 1e-8); spec.eq(g.weight_decay, 1e-2)
  end)
end)

spec.describe("came", function()
  -- matrices and 1×1 convs factor; vectors, tables and k×k convs do not
  local params = {
    { "w", { 24, 40 } }, { "wide", { 3, 70 } }, { "conv1x1", { 16, 12, 1, 1 } },
    { "bias", { 40 } }, { "depthwise", { 8, 1, 3, 3 } }, { "blocks.0.scale_shift_table", { 6, 40 } },
    { "small_grads", { 10, 30 }, grad_scale = 1e-4 },
  }
  local want_rules = { w = "factored", wide = "factored", conv1x1 = "factored", bias = "full", depthwise = "full",
                       ["blocks.0.scale_shift_table"] = "full", small_grads = "factored" }
  local function geometry(e)
    local rule, rows, cols = optim.came_rule(e[2], e[1])
    return rule, rows, cols
  end
  local function init(e)
    local n = numel(e[2])
    local _, rows, cols = geometry(e)
    if rows then return { m = zeros(n), vr = zeros(rows), vc = zeros(cols), sr = zeros(rows), sc = zeros(cols) } end
    return { m = zeros(n), v = zeros(n) }
  end
  local function state_err(e, opt, S)
    local st = opt:state_of(e[1])
    local worst = rel(flat(st.exp_avg), S.m)
    if S.vr then
      for _, kv in ipairs { { "exp_avg_sq_row", "vr" }, { "exp_avg_sq_col", "vc" }, { "exp_avg_res_row", "sr" },
                            { "exp_avg_res_col", "sc" } } do
        worst = math.max(worst, rel(flat(st[kv[1]]), S[kv[2]]))
      end
    else
      worst = math.max(worst, rel(flat(st.exp_avg_sq), S.v))
    end
    return worst
  end

  for _, o in ipairs {
    { lr = 1e-2, betas = { 0.9, 0.999, 0.9999 }, eps = { 1e-30, 1e-16 }, clip_threshold = 1.0, weight_decay = 0 },
    { lr = 3e-3, betas = { 0.8, 0.99, 0.999 }, eps = { 1e-30, 1e-16 }, clip_threshold = 0.5, weight_decay = 0.1 },
  } do
    spec.it(string.format("matches the float64 reference over 20 steps (lr %g, clip %g, weight decay %g)", o.lr,
                          o.clip_threshold, o.weight_decay), function()
      local res, opt = compare(
        function(named) return optim.came(named, o) end, params,
        function(i, P, G, S) local _, rows, cols = geometry(params[i]); came_ref(P, G, S, o, rows, cols) end,
        init, state_err, 20, 300)
      for name, r in pairs(res) do
        spec.assert(r.disp < 1e-5, name .. ": displacement error " .. r.disp)
        spec.assert(r.state < 1e-5, name .. ": state error " .. r.state)
      end
      local rules = opt:rules()
      for name, want in pairs(want_rules) do spec.eq(rules[name], want, name) end
    end)
  end

  spec.it("skips parameters without a gradient and counts steps per parameter", function()
    local a, b = grove.randn { 4, 5 }:requires_grad_(), grove.randn { 5 }:requires_grad_()
    local b0 = b:tolist()
    local opt = optim.came({ { "a", a }, { "b", b } }, { lr = 0.1 })
    a.grad = grove.ones { 4, 5 }
    opt:step()
    spec.eq(opt.entries[1].step, 1)
    spec.eq(opt.entries[2].step, 0)
    local b1 = b:tolist()
    for i = 1, 5 do spec.eq(b1[i], b0[i]) end
    opt:zero_grad()
    spec.assert(a.grad == nil, "zero_grad drops gradients")
  end)

  spec.it("factored statistics do not depend on the thread count", function()
    local function run(threads)
      local n0 = grove.num_threads()
      grove.set_num_threads(threads)
      local w = grove.randn({ 300, 500 }, { generator = grove.Generator(5) }):requires_grad_()
      local opt = optim.came({ { "w", w } }, { lr = 1e-3 })
      for s = 1, 3 do
        w.grad = grove.randn({ 300, 500 }, { generator = grove.Generator(10 + s) })
        opt:step()
      end
      grove.set_num_threads(n0)
      return w, opt:state_of("w")
    end
    local w1, s1 = run(1)
    local w2, s2 = run(2)
    spec.eq((w1 - w2):abs():max():item(), 0, "parameters")
    for _, k in ipairs { "exp_avg", "exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_res_row", "exp_avg_res_col" } do
      spec.eq((s1[k] - s2[k]):abs():max():item(), 0, k)
    end
  end)
end)

spec.describe("came8bit", function()
  local shape = { 192, 256 } -- 49152 elements: above the 16384 threshold, 192 blocks
  local quants = { "dynamic", "affine" }

  -- The resolution of a quantizer at each element: half the distance
  -- between the codes around it.
  local map = optim.dynamic_map()
  local function half_gap(v)
    for k = 1, 255 do
      if v >= map[k] and v <= map[k + 1] then return 0.5 * (map[k + 1] - map[k]) end
    end
    return 0.5 * (map[2] - map[1])
  end
  local function resolution(quant, m, scales)
    local s = flat(scales)
    local out = {}
    for i = 1, #m do
      local b = math.floor((i - 1) / 256)
      if quant == "affine" then out[i] = 0.5 * s[2 * b + 2]
      else out[i] = s[b + 1] * half_gap(s[b + 1] > 0 and m[i] / s[b + 1] or 0) end
    end
    return out
  end

  local function pair(quant, lr)
    local gen = grove.Generator(40)
    local p32 = grove.randn(shape, { generator = gen }):requires_grad_()
    local p8 = p32:detach():clone():requires_grad_()
    local o32 = optim.came({ { "w", p32 } }, { lr = lr })
    local o8 = optim.came8bit({ { "w", p8 } }, { lr = lr, quant = quant })
    return p32, p8, o32, o8, o32:state_of("w"), o8:state_of("w")
  end

  local stats = { "exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_res_row", "exp_avg_res_col" }

  for _, quant in ipairs(quants) do
    spec.it(quant .. ": with CAME's state set to the dequantized 8-bit state, a step gives the same parameters " ..
            "and a first moment within the quantizer's resolution", function()
      local p32, p8, o32, o8, s32, s8 = pair(quant, 1e-3)
      spec.eq(o8:rules().w, "factored-8bit")
      local gen = grove.Generator(41)
      local worst_outside, n = 0, numel(shape)
      for step = 1, 20 do
        grove.no_grad(function()
          p32:copy_(p8)
          s32.exp_avg:view { -1 }:copy_(optim.dequantize(s8.exp_avg_codes, s8.exp_avg_scales, { quant = quant }))
          for _, k in ipairs(stats) do s32[k]:copy_(s8[k]) end
        end)
        local g = grove.randn(shape, { generator = gen })
        p32.grad, p8.grad = g, g
        o32:step(); o8:step()
        -- the parameter update is CAME's own f32 arithmetic on the same state
        spec.eq((p8 - p32):abs():max():item(), 0, "step " .. step .. " parameters")
        local m32 = flat(s32.exp_avg)
        local m8 = flat(optim.dequantize(s8.exp_avg_codes, s8.exp_avg_scales, { quant = quant }))
        local res = resolution(quant, m32, s8.exp_avg_scales)
        local outside = 0
        for i = 1, n do
          local d = math.abs(m8[i] - m32[i])
          spec.assert(d <= res[i] * (1 + 1e-5) + 1e-7,
            string.format("step %d element %d: |%g - %g| beyond resolution %g", step, i, m8[i], m32[i], res[i]))
          if d > 3e-3 + 1e-3 * math.abs(m32[i]) then outside = outside + 1 end
        end
        worst_outside = math.max(worst_outside, outside)
      end
      -- the issue's tolerance (abs 3e-3, rel 1e-3, as bitsandbytes' tests) for
      -- CAME's first moment, which lives in units of the clipped update
      -- (RMS ≤ 1): only the default quantizer meets it but for a small fraction
      if quant == optim.kinds.came8bit.spec.quant[1] then
        spec.assert(worst_outside <= 0.002 * n, quant .. ": " .. worst_outside .. " of " .. n .. " outside abs 3e-3 / rel 1e-3")
      end
    end)

    spec.it(quant .. ": with the 8-bit state quantized from CAME's, the parameter error of a step is small", function()
      local p32, p8, o32, o8, s32, s8 = pair(quant, 1e-3)
      local gen = grove.Generator(42)
      local worst = 0
      for step = 1, 20 do
        grove.no_grad(function()
          p8:copy_(p32)
          local c, s = optim.quantize(s32.exp_avg, { quant = quant })
          s8.exp_avg_codes:copy_(c); s8.exp_avg_scales:copy_(s)
          for _, k in ipairs(stats) do s8[k]:copy_(s32[k]) end
        end)
        local g = grove.randn(shape, { generator = gen })
        p32.grad, p8.grad = g, g
        o32:step(); o8:step()
        worst = math.max(worst, (p8 - p32):abs():mean():item())
      end
      if quant == optim.kinds.came8bit.spec.quant[1] then
        spec.assert(worst < 6e-5, quant .. ": mean parameter error " .. worst .. " at lr 1e-3")
      else
        spec.assert(worst < 1e-4, quant .. ": mean parameter error " .. worst .. " at lr 1e-3")
      end
    end)
  end

  spec.it("small matrices, vectors and tables fall back to 32-bit CAME, bit for bit", function()
    local params = { { "m", { 64, 256 } }, { "m_big", { 65, 256 } }, { "v", { 30000 } },
                     { "y_embedding", { 300, 64 } } }
    local named_a = make_params(params, 50)
    local named_b = make_params(params, 50)
    local a = optim.came(named_a, { lr = 1e-3 })
    local b = optim.came8bit(named_b, { lr = 1e-3 })
    local rules = b:rules()
    spec.eq(rules.m, "factored") -- exactly 16384 elements: not more than the threshold
    spec.eq(rules.m_big, "factored-8bit")
    spec.eq(rules.v, "full")
    spec.eq(rules.y_embedding, "full")
    local gen = grove.Generator(51)
    for _ = 1, 3 do
      for i, e in ipairs(params) do
        local g = grove.randn(e[2], { generator = gen })
        named_a[i][2].grad, named_b[i][2].grad = g, g
      end
      a:step(); b:step()
    end
    for i, e in ipairs(params) do
      if e[1] ~= "m_big" then
        spec.eq((named_a[i][2] - named_b[i][2]):abs():max():item(), 0, e[1])
      end
    end
  end)

  spec.it("a zero gradient on a fresh state gives no NaN", function()
    local w = grove.randn { 200, 200 }:requires_grad_()
    for _, quant in ipairs(quants) do
      local opt = optim.came8bit({ { "w", w } }, { lr = 1e-3, quant = quant })
      w.grad = grove.zeros { 200, 200 }
      opt:step()
      local s = opt:state_of("w")
      local m = optim.dequantize(s.exp_avg_codes, s.exp_avg_scales, { quant = quant })
      spec.eq(m:abs():max():item(), 0, quant .. " first moment")
      local v = w:abs():max():item()
      spec.assert(v == v, quant .. ": parameters stay finite")
    end
  end)
end)

spec.describe("clip_grad_norm", function()
  spec.it("returns the global norm and scales gradients to max_norm", function()
    local a, b, c = grove.randn { 30, 40 }:requires_grad_(), grove.randn { 7 }:requires_grad_(), grove.randn { 3 }:requires_grad_()
    a.grad = grove.randn { 30, 40 } * 3
    b.grad = grove.randn { 7 }
    local want = 0
    for _, g in ipairs { a.grad, b.grad } do
      for _, x in ipairs(flat(g)) do want = want + x * x end
    end
    want = math.sqrt(want)
    local ga0 = flat(a.grad)
    local norm = optim.clip_grad_norm({ a, b, c }, 1.5)
    spec.near(norm, want, 1e-6, "norm before clipping")
    local after = optim.clip_grad_norm({ a, b, c })
    spec.near(after, 1.5, 1e-5, "norm after clipping")
    local ga = flat(a.grad)
    spec.near(ga[1], ga0[1] * 1.5 / (want + 1e-6), 1e-6)
    spec.assert(c.grad == nil, "no gradient stays none")
    -- below max_norm nothing changes
    local n2 = optim.clip_grad_norm({ a, b }, 10)
    spec.near(n2, 1.5, 1e-5)
    spec.near(optim.clip_grad_norm({ a, b }), 1.5, 1e-5)
    spec.eq(grove.nn.clip_grad_norm, optim.clip_grad_norm, "grove.nn uses the C-backed one")
    spec.raises(function() optim.clip_grad_norm({ a }, -1) end, "max_norm must be a number >= 0")
  end)
end)

spec.describe("optimizer registry", function()
  spec.it("an optimizer is a Lua file + register; a registered copy gives the built-in's bits", function()
    local def = require("grove.optim.adamw")(grove, optim)
    def.name = "adamw_copy"
    optim.register("adamw_copy", def)
    local function run(make)
      local w = grove.tensor({ { 0.5, -0.25 }, { 1, 2 } }):requires_grad_()
      local opt = make({ { "w", w } }, { lr = 0.1 })
      for _ = 1, 3 do
        opt:zero_grad()
        local loss = (w * w):sum() + w:sum()
        loss:backward()
        opt:step()
      end
      return w
    end
    spec.eq(spec.max_diff(run(optim.adamw), run(optim.adamw_copy)), 0)
    spec.eq(optim.kinds.adamw_copy.name, "adamw_copy")
    optim.kinds.adamw_copy, optim.adamw_copy = nil, nil
    spec.raises(function() optim.register("broken", { spec = {}, layout = function() end }) end, "needs a function c_options")
    spec.raises(function() optim.register("", def) end, "expected an optimizer name")
  end)
end)
