-- The small fused ops of the SANA block: norm_modulate, gated_residual,
-- glu_silu, timestep_embedding. Forward against float64 references,
-- gradients against finite differences (small shapes, per-sample vectors as
-- non-contiguous views) and against float64 analytic gradients on shapes large
-- enough to run threaded, thread-count independence, errors and leaks.
local grove = grove or require "grove"
local spec = require "spec"
local ref = require "ref"

-- A (B, D) leaf that is a non-contiguous row view of a (B, 3, D) tensor,
-- as the rows of SANA's (B, 6, D) modulation table are; plain: no grad.
local function row_view(b, d, k, plain)
  return function()
    local v = grove.randn{ b, 3, d }:select(2, k or 1):detach()
    return plain and v or v:requires_grad_(true)
  end
end

-- ---- float64 references ------------------------------------------------------------

-- LayerNorm (no affine, biased variance) of each D-row: xh and rstd per row.
local function ln_rows(X, eps)
  local B, N, D = X.shape[1], X.shape[2], X.shape[3]
  local XH, RS = ref.new(X.shape, 0), {}
  for r = 0, B * N - 1 do
    local mean, ss = 0, 0
    for j = 1, D do mean = mean + X.data[r * D + j] end
    mean = mean / D
    for j = 1, D do ss = ss + (X.data[r * D + j] - mean) ^ 2 end
    local rs = 1 / math.sqrt(ss / D + eps)
    RS[r + 1] = rs
    for j = 1, D do XH.data[r * D + j] = (X.data[r * D + j] - mean) * rs end
  end
  return XH, RS
end

local function norm_modulate_ref(eps)
  return function(X, SH, SC)
    local B, N, D = X.shape[1], X.shape[2], X.shape[3]
    local XH = ln_rows(X, eps)
    local Y = ref.new(X.shape, 0)
    for b = 0, B - 1 do
      for i = 0, N - 1 do
        for j = 1, D do
          local p = (b * N + i) * D + j
          Y.data[p] = XH.data[p] * (1 + SC.data[b * D + j]) + SH.data[b * D + j]
        end
      end
    end
    return Y
  end
end

-- Analytic float64 gradients of norm_modulate for an output weighting G.
local function norm_modulate_grads(eps, X, SC, G)
  local B, N, D = X.shape[1], X.shape[2], X.shape[3]
  local XH, RS = ln_rows(X, eps)
  local dX, dSH, dSC = ref.new(X.shape, 0), ref.new({ B, D }, 0), ref.new({ B, D }, 0)
  for b = 0, B - 1 do
    for i = 0, N - 1 do
      local r = b * N + i
      local su, sux = 0, 0
      for j = 1, D do
        local p = r * D + j
        local u = G.data[p] * (1 + SC.data[b * D + j])
        su, sux = su + u, sux + u * XH.data[p]
        dSH.data[b * D + j] = dSH.data[b * D + j] + G.data[p]
        dSC.data[b * D + j] = dSC.data[b * D + j] + G.data[p] * XH.data[p]
      end
      for j = 1, D do
        local p = r * D + j
        local u = G.data[p] * (1 + SC.data[b * D + j])
        dX.data[p] = RS[r + 1] * (u - su / D - XH.data[p] * sux / D)
      end
    end
  end
  return dX, dSH, dSC
end

local function gated_residual_ref(X, GT, Y)
  local B, N, D = X.shape[1], X.shape[2], X.shape[3]
  local O = ref.new(X.shape, 0)
  for p = 1, #X.data do
    local b = math.floor((p - 1) / (N * D))
    local j = (p - 1) % D + 1
    O.data[p] = X.data[p] + GT.data[b * D + j] * Y.data[p]
  end
  return O
end

local function silu(z) return z / (1 + math.exp(-z)) end

local function glu_silu_ref(H)
  local C2 = H.shape[#H.shape]
  local C = C2 / 2
  local shape = {}
  for i = 1, #H.shape do shape[i] = H.shape[i] end
  shape[#shape] = C
  local O = ref.new(shape, 0)
  for r = 0, #H.data / C2 - 1 do
    for j = 1, C do O.data[r * C + j] = H.data[r * C2 + j] * silu(H.data[r * C2 + C + j]) end
  end
  return O
end

local function timestep_ref(ts, dim, max_period)
  local half = math.floor(dim / 2)
  local E = ref.new({ #ts, dim }, 0)
  for i, t in ipairs(ts) do
    for j = 0, half - 1 do
      local arg = t * math.exp(-math.log(max_period) * j / half)
      E.data[(i - 1) * dim + j + 1] = math.cos(arg)
      E.data[(i - 1) * dim + half + j + 1] = math.sin(arg)
    end
  end
  return E
end

local function max_rel(a, b) return spec.rel_error(a, b) end

-- ---- norm_modulate --------------------------------------------------------------------

spec.describe("norm_modulate", function()
  spec.it("matches float64 and finite differences with row-view shift and scale", function()
    spec.check_op{
      fn = function(x, sh, sc) return grove.norm_modulate(x, sh, sc, 1e-6) end,
      ref = norm_modulate_ref(1e-6),
      inputs = { { 2, 5, 6 }, row_view(2, 6, 1), row_view(2, 6, 2) },
      fwd_tol = 1e-5, grad_tol = 1e-3,
    }
  end)

  spec.it("accepts a non-contiguous x and an expanded scale", function()
    spec.check_op{
      fn = function(x, sh, sc) return grove.norm_modulate(x, sh, sc, 1e-5) end,
      ref = norm_modulate_ref(1e-5),
      inputs = {
        function() return grove.randn{ 5, 2, 7 }:transpose(1, 2):detach():requires_grad_(true) end,
        { 2, 7 },
        function() return grove.randn{ 1, 7 }:expand{ 2, 7 }:detach():requires_grad_(true) end,
      },
      fwd_tol = 1e-5, grad_tol = 1e-3,
    }
  end)

  spec.it("differentiates only the inputs that require grad", function()
    spec.check_op{
      fn = function(x, sh, sc) return grove.norm_modulate(x, sh, sc, 1e-6) end,
      ref = norm_modulate_ref(1e-6),
      inputs = { { 2, 4, 6 }, row_view(2, 6, 3, true), row_view(2, 6, 1) },
      nograd = { [1] = true, [2] = true },
      fwd_tol = 1e-5, grad_tol = 1e-3,
    }
  end)

  spec.it("matches float64 gradients threaded, independent of the thread count", function()
    grove.manual_seed(7)
    local B, N, D = 3, 97, 131
    local function run()
      local x = grove.randn{ B, N, D }:requires_grad_(true)
      local sh = grove.randn{ B, 6, D }:select(2, 1):detach():requires_grad_(true)
      local sc = grove.randn{ B, 6, D }:select(2, 2):detach():requires_grad_(true)
      return x, sh, sc
    end
    local x, sh, sc = run()
    local G = grove.randn{ B, N, D }
    local y = grove.norm_modulate(x, sh, sc, 1e-6)
    y:backward(G)
    local X, SH, SC, GR = ref.from_tensor(x), ref.from_tensor(sh), ref.from_tensor(sc), ref.from_tensor(G)
    spec.assert(max_rel(ref.from_tensor(y), norm_modulate_ref(1e-6)(X, SH, SC)) < 1e-5, "forward")
    local dX, dSH, dSC = norm_modulate_grads(1e-6, X, SC, GR)
    spec.assert(max_rel(ref.from_tensor(x.grad), dX) < 1e-4, "dx")
    spec.assert(max_rel(ref.from_tensor(sh.grad), dSH) < 1e-4, "dshift")
    spec.assert(max_rel(ref.from_tensor(sc.grad), dSC) < 1e-4, "dscale")

    local n0 = grove.num_threads()
    local function grads(threads)
      grove.set_num_threads(threads)
      local x2, sh2, sc2 = x:detach():requires_grad_(true), sh:detach():requires_grad_(true),
        sc:detach():requires_grad_(true)
      local y2 = grove.norm_modulate(x2, sh2, sc2, 1e-6)
      y2:backward(G)
      return { y2:tolist(), x2.grad:tolist(), sh2.grad:tolist(), sc2.grad:tolist() }
    end
    local one, many = grads(1), grads(math.max(4, n0))
    grove.set_num_threads(n0)
    for k = 1, 4 do
      local a, b = ref.new({ 1 }, 0), ref.new({ 1 }, 0)
      local function flat(t, out) for _, v in ipairs(t) do if type(v) == "table" then flat(v, out) else out[#out + 1] = v end end end
      a.data, b.data = {}, {}
      flat(one[k], a.data); flat(many[k], b.data)
      for i = 1, #a.data do
        if a.data[i] ~= b.data[i] then error("result " .. k .. " differs between 1 and many threads at " .. i) end
      end
    end
  end)

  spec.it("rejects bad arguments", function()
    local x, v = grove.randn{ 2, 5, 6 }, grove.randn{ 2, 6 }
    spec.raises(function() grove.norm_modulate(grove.randn{ 10, 6 }, v, v) end, "norm_modulate: x [10,6] must be 3-d")
    spec.raises(function() grove.norm_modulate(x, grove.randn{ 3, 6 }, v) end,
      "norm_modulate: shift [3,6] does not match x [2,5,6] (expected [2,6]")
    spec.raises(function() grove.norm_modulate(x, v, grove.randn{ 2, 5 }) end, "scale [2,5] does not match x [2,5,6]")
    spec.raises(function() grove.norm_modulate(x, v, grove.randn{ 2, 1, 6 }) end, "scale [2,1,6] does not match")
    spec.raises(function() grove.norm_modulate(x:to("i64"), v, v) end, "norm_modulate: expected an f32 tensor")
    spec.raises(function() grove.norm_modulate(x, v, v, -1) end, "eps must be finite and >= 0")
  end)
end)

-- ---- gated_residual --------------------------------------------------------------------

spec.describe("gated_residual", function()
  spec.it("matches float64 and finite differences with a row-view gate", function()
    spec.check_op{
      fn = function(x, g, y) return grove.gated_residual(x, g, y) end,
      ref = gated_residual_ref,
      inputs = { { 2, 5, 6 }, row_view(2, 6, 3), { 2, 5, 6 } },
      fwd_tol = 1e-6, grad_tol = 1e-3,
    }
  end)

  spec.it("differentiates a subset of the inputs", function()
    spec.check_op{
      fn = function(x, g, y) return grove.gated_residual(x, g, y) end,
      ref = gated_residual_ref,
      inputs = { { 2, 5, 6 }, row_view(2, 6, 2, true), function() return grove.randn{ 5, 2, 6 }:transpose(1, 2) end },
      nograd = { [2] = true },
      fwd_tol = 1e-6, grad_tol = 1e-3,
    }
    spec.check_op{
      fn = function(x, g, y) return grove.gated_residual(x, g, y) end,
      ref = gated_residual_ref,
      inputs = { { 2, 5, 6 }, row_view(2, 6, 2), { 2, 5, 6 } },
      nograd = { [1] = true, [3] = true },
      fwd_tol = 1e-6, grad_tol = 1e-3,
    }
  end)

  spec.it("matches float64 gradients threaded", function()
    grove.manual_seed(11)
    local B, N, D = 3, 97, 131
    local x, y = grove.randn{ B, N, D }:requires_grad_(true), grove.randn{ B, N, D }:requires_grad_(true)
    local gate = grove.randn{ B, 6, D }:select(2, 3):detach():requires_grad_(true)
    local G = grove.randn{ B, N, D }
    local out = grove.gated_residual(x, gate, y)
    out:backward(G)
    local X, GT, Y, GR = ref.from_tensor(x), ref.from_tensor(gate), ref.from_tensor(y), ref.from_tensor(G)
    spec.assert(max_rel(ref.from_tensor(out), gated_residual_ref(X, GT, Y)) < 1e-6, "forward")
    local dY, dGT = ref.new(Y.shape, 0), ref.new(GT.shape, 0)
    for p = 1, #Y.data do
      local b, j = math.floor((p - 1) / (N * D)), (p - 1) % D + 1
      dY.data[p] = GR.data[p] * GT.data[b * D + j]
      dGT.data[b * D + j] = dGT.data[b * D + j] + GR.data[p] * Y.data[p]
    end
    spec.assert(max_rel(ref.from_tensor(x.grad), GR) == 0, "dx is g")
    spec.assert(max_rel(ref.from_tensor(y.grad), dY) < 1e-6, "dy")
    spec.assert(max_rel(ref.from_tensor(gate.grad), dGT) < 1e-5, "dgate")
  end)

  spec.it("rejects bad arguments", function()
    local x, g = grove.randn{ 2, 5, 6 }, grove.randn{ 2, 6 }
    spec.raises(function() grove.gated_residual(x, g, grove.randn{ 2, 4, 6 }) end,
      "gated_residual: x [2,5,6] and y [2,4,6] must have the same shape")
    spec.raises(function() grove.gated_residual(x, grove.randn{ 2, 5 }, x) end,
      "gated_residual: gate [2,5] does not match x [2,5,6] (expected [2,6]")
    spec.raises(function() grove.gated_residual(x, grove.randn{ 6 }, x) end, "gate [6] does not match")
    spec.raises(function() grove.gated_residual(grove.randn{ 2, 5 }, g, x) end, "x [2,5] must be 3-d (B, N, D)")
    spec.raises(function() grove.gated_residual(x, g:to("i32"), x) end, "expected an f32 tensor")
  end)
end)

-- ---- glu_silu ----------------------------------------------------------------------------

spec.describe("glu_silu", function()
  spec.it("matches float64 and finite differences", function()
    spec.check_op{
      fn = grove.glu_silu, ref = glu_silu_ref,
      inputs = { { 2, 5, 6 } },
      fwd_tol = 1e-6, grad_tol = 1e-3,
    }
    spec.check_op{
      fn = grove.glu_silu, ref = glu_silu_ref,
      inputs = { function() return grove.randn{ 8, 3 }:t() * 4 end },
      fwd_tol = 1e-6, grad_tol = 1e-3,
    }
  end)

  spec.it("takes the value from the first half and the gate from the second", function()
    local h = grove.tensor{ { 2, 3, 0, 1 } }
    local out = grove.glu_silu(h):tolist()
    spec.near(out[1][1], 0, 1e-7, "value 2 gated by silu(0)")
    spec.near(out[1][2], 3 * silu(1), 1e-6, "value 3 gated by silu(1)")
  end)

  spec.it("saturates at large gates and keeps NaN", function()
    local gates = { -1e30, -200, -87.5, -30, 30, 87.5, 200, 1e30, 0 / 0 }
    local row = {}
    for i = 1, #gates do row[i] = 1 end
    for i = 1, #gates do row[#gates + i] = gates[i] end
    local h = grove.tensor{ row }:requires_grad_(true)
    local out = grove.glu_silu(h)
    out:sum():backward()
    local o, g = out:tolist()[1], h.grad:tolist()[1]
    for i = 1, #gates - 1 do
      local z = gates[i]
      spec.near(o[i], z > 0 and z or 0, 1e-6, "silu(" .. z .. ")")
      spec.near(g[i], z > 0 and z or 0, 1e-6, "d/da at " .. z)
      spec.near(g[#gates + i], z > 0 and 1 or 0, 1e-6, "d/dgate at " .. z)
    end
    spec.assert(o[#gates] ~= o[#gates], "NaN gate gives NaN")
    spec.assert(g[2 * #gates] ~= g[2 * #gates], "NaN gate gives a NaN gradient")
  end)

  spec.it("matches a * silu(gate) threaded, with float64 gradients", function()
    grove.manual_seed(5)
    local rows, C = 301, 123
    local h = (grove.randn{ rows, 2 * C } * 3):detach():requires_grad_(true)
    local G = grove.randn{ rows, C }
    local out = grove.glu_silu(h)
    local composed = h:narrow(-1, 1, C) * h:narrow(-1, C + 1, C):silu()
    spec.assert(max_rel(ref.from_tensor(out), ref.from_tensor(composed)) < 1e-6, "glu_silu vs a * silu(gate)")
    spec.assert(max_rel(ref.from_tensor(out), glu_silu_ref(ref.from_tensor(h))) < 1e-6, "glu_silu vs float64")
    out:backward(G)
    local H, GR = ref.from_tensor(h), ref.from_tensor(G)
    local dH = ref.new(H.shape, 0)
    for r = 0, rows - 1 do
      for j = 1, C do
        local a, z, g = H.data[r * 2 * C + j], H.data[r * 2 * C + C + j], GR.data[r * C + j]
        local s = 1 / (1 + math.exp(-z))
        dH.data[r * 2 * C + j] = g * z * s
        dH.data[r * 2 * C + C + j] = g * a * s * (1 + z * (1 - s))
      end
    end
    spec.assert(max_rel(ref.from_tensor(h.grad), dH) < 1e-5, "dh")
  end)

  spec.it("rejects bad arguments", function()
    spec.raises(function() grove.glu_silu(grove.randn{ 2, 5 }) end,
      "glu_silu: the last dimension of [2,5] is 5, which is odd")
    spec.raises(function() grove.glu_silu(grove.tensor(3)) end, "glu_silu: input [] needs at least 1 dimension")
    spec.raises(function() grove.glu_silu(grove.zeros{ 2, 4 }:to("u8")) end, "glu_silu: expected an f32 tensor")
  end)
end)

-- ---- timestep_embedding ----------------------------------------------------------------

spec.describe("timestep_embedding", function()
  local ts = { 0, 1, 500.5, 999 }

  spec.it("matches float64 [cos, sin] at dim 256", function()
    local e = grove.timestep_embedding(grove.tensor(ts), 256, 10000)
    spec.eq(table.concat(e:shape(), ","), "4,256", "shape")
    local err = max_rel(ref.from_tensor(e), timestep_ref(ts, 256, 10000))
    spec.assert(err < 2e-7, "error " .. err)
    local row = e:tolist()[1]
    spec.eq(row[1], 1, "cos(0) first")
    spec.eq(row[129], 0, "sin(0) second")
  end)

  spec.it("zero-pads an odd dim and reads a strided t", function()
    local t = grove.tensor{ { 0, 7 }, { 1, 7 }, { 500.5, 7 }, { 999, 7 } }:select(2, 1)
    spec.assert(not t:is_contiguous(), "t is a strided view")
    local e = grove.timestep_embedding(t, 7, 1000)
    local R = timestep_ref(ts, 7, 1000)
    spec.assert(max_rel(ref.from_tensor(e), R) < 2e-7, "odd dim")
    for i, row in ipairs(e:tolist()) do spec.eq(row[7], 0, "padding of row " .. i) end
    local e2 = grove.timestep_embedding(grove.tensor{ 3 }, 2, 10000):tolist()[1]
    spec.near(e2[1], math.cos(3), 1e-7, "dim 2 cos")
    spec.near(e2[2], math.sin(3), 1e-7, "dim 2 sin")
  end)

  spec.it("records nothing on the tape", function()
    local t = grove.tensor{ 1, 2 }:requires_grad_(true)
    local e = grove.timestep_embedding(t, 8, 10000)
    spec.assert(not e.requires_grad, "no gradient through t")
  end)

  spec.it("rejects bad arguments", function()
    spec.raises(function() grove.timestep_embedding(grove.randn{ 2, 2 }, 8, 10000) end,
      "timestep_embedding: t [2,2] must be 1-d (B)")
    spec.raises(function() grove.timestep_embedding(grove.randn{ 2 }, 1, 10000) end, "dim must be >= 2, got 1")
    spec.raises(function() grove.timestep_embedding(grove.randn{ 2 }, 8, 0) end, "max_period must be finite and > 0")
    spec.raises(function() grove.timestep_embedding(grove.tensor({ 1, 2 }, { dtype = "i64" }), 8, 10000) end,
      "timestep_embedding: expected an f32 tensor")
  end)
end)

-- ---- memory --------------------------------------------------------------------------------

spec.describe("SANA ops memory", function()
  spec.it("leave no tensors, tape nodes or bytes alive", function()
    local function work()
      local x = grove.randn{ 2, 5, 8 }:requires_grad_(true)
      local tab = grove.randn{ 2, 6, 8 }:requires_grad_(true)
      local sh, sc, gate = tab:select(2, 1), tab:select(2, 2), tab:select(2, 3)
      local m = grove.norm_modulate(x, sh, sc, 1e-6)
      local h = grove.glu_silu(grove.cat({ m, m * 2 }, -1))
      local out = grove.gated_residual(x, gate, h)
      local temb = grove.timestep_embedding(grove.tensor{ 1, 999 }, 8, 10000)
      ;(out * temb:unsqueeze(2)):sum():backward()
      pcall(grove.norm_modulate, x, sh, grove.randn{ 3, 8 })
      pcall(grove.glu_silu, grove.randn{ 3 })
    end
    spec.no_leaks(work)
  end)
end)
