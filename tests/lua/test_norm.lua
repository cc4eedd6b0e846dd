-- softmax, log_softmax, layer_norm and rms_norm: forward against float64
-- references, gradients against finite differences (small shapes) and
-- against float64 analytic gradients (shapes large enough to run threaded),
-- and the errors.
local grove = grove or require "grove"
local spec = require "spec"
local ref = require "ref"

-- Calls f(positions) for every 1-d slice along Lua dimension d of shape;
-- positions lists the slice's flat 1-based offsets.
local function each_slice(shape, d, f)
  if d < 0 then d = #shape + 1 + d end
  local st = ref.strides(shape)
  local oshape = {}
  for i = 1, #shape do oshape[i] = i == d and 1 or shape[i] end
  for k = 1, ref.numel(oshape) do
    local idx = ref.unflatten(oshape, k)
    local base = 1
    for i = 1, #shape do base = base + (idx[i] - 1) * st[i] end
    local pos = {}
    for j = 1, shape[d] do pos[j] = base + (j - 1) * st[d] end
    f(pos)
  end
end

local function softmax_ref(d, log)
  return function(X)
    local Y = ref.new(X.shape, 0)
    each_slice(X.shape, d, function(pos)
      local m = -math.huge
      for _, p in ipairs(pos) do m = math.max(m, X.data[p]) end
      local z = 0
      for _, p in ipairs(pos) do z = z + math.exp(X.data[p] - m) end
      for _, p in ipairs(pos) do
        Y.data[p] = log and (X.data[p] - m - math.log(z)) or math.exp(X.data[p] - m) / z
      end
    end)
    return Y
  end
end

-- Layer norm (centered) or RMS norm over the last dimension.
local function norm_ref(centered, eps)
  return function(X, W, B)
    local Y = ref.new(X.shape, 0)
    each_slice(X.shape, -1, function(pos)
      local n, mean, ss = #pos, 0, 0
      if centered then
        for _, p in ipairs(pos) do mean = mean + X.data[p] end
        mean = mean / n
      end
      for _, p in ipairs(pos) do ss = ss + (X.data[p] - mean) ^ 2 end
      local rstd = 1 / math.sqrt(ss / n + eps)
      for j, p in ipairs(pos) do
        local v = (X.data[p] - mean) * rstd
        if W then v = v * W.data[j] end
        if B then v = v + B.data[j] end
        Y.data[p] = v
      end
    end)
    return Y
  end
end

-- Analytic float64 gradients of the norms for an output weighting G.
local function norm_grads_ref(centered, eps, X, W, G)
  local C = X.shape[#X.shape]
  local dX, dW, dB = ref.new(X.shape, 0), ref.new({ C }, 0), ref.new({ C }, 0)
  each_slice(X.shape, -1, function(pos)
    local n, mean, ss = #pos, 0, 0
    if centered then
      for _, p in ipairs(pos) do mean = mean + X.data[p] end
      mean = mean / n
    end
    for _, p in ipairs(pos) do ss = ss + (X.data[p] - mean) ^ 2 end
    local rstd = 1 / math.sqrt(ss / n + eps)
    local sd, sdx = 0, 0
    for j, p in ipairs(pos) do
      local xh, d = (X.data[p] - mean) * rstd, G.data[p] * (W and W.data[j] or 1)
      sd, sdx = sd + d, sdx + d * xh
      dW.data[j] = dW.data[j] + G.data[p] * xh
      dB.data[j] = dB.data[j] + G.data[p]
    end
    for j, p in ipairs(pos) do
      local xh, d = (X.data[p] - mean) * rstd, G.data[p] * (W and W.data[j] or 1)
      dX.data[p] = rstd * (d - (centered and sd / n or 0) - xh * sdx / n)
    end
  end)
  return dX, dW, dB
end

local function check_grad(t, expect, tol, what)
  local e = spec.rel_error(ref.from_tensor(t.grad), expect)
  spec.assert(e < tol, what .. " gradient error " .. e)
end

spec.describe("softmax", function()
  for _, log in ipairs { false, true } do
    local name = log and "log_softmax" or "softmax"
    local op = log and grove.log_softmax or grove.softmax
    for _, d in ipairs { 1, 2, -1 } do
      spec.it(name .. " over dimension " .. d .. " of a 3-d tensor", function()
        spec.check_op { fn = function(x) return op(x, d) end, ref = softmax_ref(d, log), inputs = { { 3, 4, 5 } } }
      end)
    end
    spec.it(name .. " of a strided view, inner size over one block", function()
      spec.check_op { fn = function(x) return op(x, 2) end, ref = softmax_ref(2, log),
                      inputs = { function() return grove.randn { 70, 3, 2 }:permute { 3, 2, 1 } end } }
    end)
    spec.it(name .. " of a large tensor (threaded) matches float64", function()
      grove.manual_seed(3)
      for _, d in ipairs { 2, -1 } do
        local x = (grove.randn { 6, 80, 90 } * 4):detach():requires_grad_(true)
        local y = op(x, d)
        local X = ref.from_tensor(x)
        local Y = softmax_ref(d, log)(X)
        local e = spec.rel_error(ref.from_tensor(y), Y)
        spec.assert(e < 1e-5, "forward error " .. e)
        local g = grove.randn { 6, 80, 90 }
        y:backward(g)
        local G = ref.from_tensor(g)
        local dX = ref.new(X.shape, 0)
        each_slice(X.shape, d, function(pos)
          local s = 0
          for _, p in ipairs(pos) do s = s + G.data[p] * (log and 1 or Y.data[p]) end
          for _, p in ipairs(pos) do
            dX.data[p] = log and G.data[p] - math.exp(Y.data[p]) * s or Y.data[p] * (G.data[p] - s)
          end
        end)
        check_grad(x, dX, 1e-5, name)
      end
    end)
  end
  spec.it("is stable for large inputs", function()
    local y = grove.softmax(grove.tensor { 1000, 1001, 1002 }, 1):tolist()
    local z = 1 + math.exp(-1) + math.exp(-2)
    spec.near(y[3], 1 / z, 1e-6)
    local l = grove.log_softmax(grove.tensor { -1000, 0 }, 1):tolist()
    spec.near(l[1], -1000, 1e-6)
  end)
  spec.it("rejects bad arguments", function()
    spec.raises(function() grove.softmax(grove.randn { 2, 3 }, 3) end, "out of range")
    spec.raises(function() grove.log_softmax(grove.randn { 2, 3 }:to("i64"), 1) end, "f32")
  end)
end)

spec.describe("layer_norm", function()
  spec.it("with affine", function()
    spec.check_op { fn = function(x, w, b) return grove.layer_norm(x, w, b, 1e-5) end, ref = norm_ref(true, 1e-5),
                    inputs = { { 3, 4, 6 }, { 6 }, { 6 } } }
  end)
  spec.it("without affine", function()
    spec.check_op { fn = function(x) return grove.layer_norm(x, nil, nil, 1e-6) end, ref = norm_ref(true, 1e-6),
                    inputs = { { 4, 7 } } }
  end)
  spec.it("weight only, strided input", function()
    spec.check_op { fn = function(x, w) return grove.layer_norm(x, w, nil, 1e-5) end,
                    ref = function(X, W) return norm_ref(true, 1e-5)(X, W) end,
                    inputs = { function() return grove.randn { 5, 3 }:t() end, { 5 } } }
  end)
  spec.it("large (threaded) matches float64", function()
    grove.manual_seed(5)
    local x = (grove.randn { 120, 300 } * 3 + 2):detach():requires_grad_(true)
    local w = grove.randn { 300 }:requires_grad_(true)
    local b = grove.randn { 300 }:requires_grad_(true)
    local y = grove.layer_norm(x, w, b, 1e-5)
    local X, W, B = ref.from_tensor(x), ref.from_tensor(w), ref.from_tensor(b)
    local e = spec.rel_error(ref.from_tensor(y), norm_ref(true, 1e-5)(X, W, B))
    spec.assert(e < 1e-5, "forward error " .. e)
    local g = grove.randn { 120, 300 }
    y:backward(g)
    local dX, dW, dB = norm_grads_ref(true, 1e-5, X, W, ref.from_tensor(g))
    check_grad(x, dX, 1e-4, "x")
    check_grad(w, dW, 1e-5, "w")
    check_grad(b, dB, 1e-5, "b")
  end)
  spec.it("rejects bad arguments", function()
    spec.raises(function() grove.layer_norm(grove.randn { 2, 5 }, grove.randn { 4 }) end,
                "layer_norm: weight [4] does not match the last dimension of input [2,5]")
    spec.raises(function() grove.layer_norm(grove.randn { 2, 5 }, grove.randn { 5 }, grove.randn { 5, 1 }) end,
                "bias [5,1] does not match")
    spec.raises(function() grove.layer_norm(grove.randn { 2, 5 }, nil, nil, -1) end, "eps must be")
    spec.raises(function() grove.layer_norm(grove.randn { 2, 5 }:to("i64")) end, "f32")
    spec.raises(function() grove.layer_norm(grove.randn { 2, 2 }:sum()) end, "at least 1 dimension")
  end)
end)

spec.describe("rms_norm", function()
  spec.it("with weight", function()
    spec.check_op { fn = function(x, w) return grove.rms_norm(x, w, 1e-5) end, ref = norm_ref(false, 1e-5),
                    inputs = { { 3, 4, 6 }, { 6 } } }
  end)
  spec.it("without weight", function()
    spec.check_op { fn = function(x) return grove.rms_norm(x, nil, 1e-6) end, ref = norm_ref(false, 1e-6),
                    inputs = { { 4, 7 } } }
  end)
  spec.it("large (threaded) matches float64", function()
    grove.manual_seed(6)
    local x = grove.randn { 100, 400 }:requires_grad_(true)
    local w = grove.randn { 400 }:requires_grad_(true)
    local y = grove.rms_norm(x, w, 1e-5)
    local X, W = ref.from_tensor(x), ref.from_tensor(w)
    local e = spec.rel_error(ref.from_tensor(y), norm_ref(false, 1e-5)(X, W))
    spec.assert(e < 1e-5, "forward error " .. e)
    local g = grove.randn { 100, 400 }
    y:backward(g)
    local dX, dW = norm_grads_ref(false, 1e-5, X, W, ref.from_tensor(g))
    check_grad(x, dX, 1e-4, "x")
    check_grad(w, dW, 1e-5, "w")
  end)
  spec.it("rejects bad arguments", function()
    spec.raises(function() grove.rms_norm(grove.randn { 2, 5 }, grove.randn { 6 }) end,
                "rms_norm: weight [6] does not match the last dimension of input [2,5]")
    spec.raises(function() grove.rms_norm(grove.randn { 2, 5 }, nil, 0 / 0) end, "eps must be")
    spec.raises(function() grove.rms_norm(grove.randn { 2, 5 }, grove.randn { 5 }:to("i32")) end, "f32")
  end)
end)

spec.describe("optional arguments", function()
  -- every op's trailing options table gives the bits of its positional form
  local g = function(seed) return grove.Generator(seed) end
  local x = grove.randn({ 3, 8 }, { generator = g(1) })
  local y = grove.randn({ 3, 8 }, { generator = g(2) })
  local w, b = grove.randn({ 8 }, { generator = g(3) }), grove.randn({ 8 }, { generator = g(4) })
  local function same(a, c) return spec.max_diff(a:float(), c:float()) == 0 end
  spec.it("norms: one default eps for tensor:rms_norm and nn.RMSNorm, options tables as positional", function()
    spec.eq(grove.norm_eps.rms, 1e-5)
    local make = grove.nn.param_factory()
    local m = grove.nn.RMSNorm(make, 8)
    spec.eq(m.eps, grove.norm_eps.rms)
    spec.assert(same(m:forward(x), x:rms_norm(grove.ones { 8 })))
    spec.assert(same(x:rms_norm(w), x:rms_norm(w, 1e-5)))
    spec.assert(same(x:rms_norm { weight = w, eps = 1e-3 }, x:rms_norm(w, 1e-3)))
    spec.assert(same(x:rms_norm(w, { eps = 1e-3 }), x:rms_norm(w, 1e-3)))
    spec.assert(not same(x:rms_norm(w, { eps = 1 }), x:rms_norm(w)), "eps reaches the op")
    spec.eq(grove.nn.RMSNorm(make, 8, { eps = 1e-3 }).eps, 1e-3)
    spec.eq(grove.nn.LayerNorm(make, 8).eps, grove.norm_eps.layer)
    spec.eq(grove.nn.LayerNorm(make, 8, { eps = 1e-3 }).eps, 1e-3)
    spec.assert(same(x:layer_norm(w, b), x:layer_norm(w, b, 1e-5)))
    spec.assert(same(x:layer_norm { weight = w, bias = b, eps = 1e-2 }, x:layer_norm(w, b, 1e-2)))
    spec.assert(same(x:layer_norm(w, b, { eps = 1e-2 }), x:layer_norm(w, b, 1e-2)))
  end)
  spec.it("dropout, cosine_similarity, pad, reductions, random fills", function()
    spec.assert(same(x:dropout { p = 0.3, generator = g(5) }, x:dropout(0.3, true, g(5))))
    spec.assert(same(x:dropout { p = 0.3, training = false }, x))
    spec.assert(same(x:dropout(0.3, { generator = g(6) }), x:dropout(0.3, true, g(6))))
    spec.assert(same(grove.cosine_similarity(x, y, { dim = 1, eps = 1e-3 }), grove.cosine_similarity(x, y, 1, 1e-3)))
    spec.assert(same(x:pad({ 1, 2 }, { value = 7 }), x:pad({ 1, 2 }, 7)))
    spec.assert(same(x:sum(2, { keepdim = true }), x:sum(2, true)))
    spec.assert(same(x:mean { dim = { 1, 2 }, keepdim = true }, x:mean({ 1, 2 }, true)))
    spec.assert(same(x:sum { 1, 2 }, x:sum({ 1, 2 })))
    local v1, i1 = x:max { dim = 2, keepdim = true }
    local v2, i2 = x:max(2, true)
    spec.assert(same(v1, v2) and same(i1, i2))
    spec.assert(same(x:argmax { dim = -1 }, x:argmax(-1)))
    spec.assert(same(grove.empty({ 4, 4 }):uniform_ { low = -2, high = 3, generator = g(7) },
                     grove.empty({ 4, 4 }):uniform_(-2, 3, g(7))))
    spec.assert(same(grove.empty({ 4, 4 }):normal_(1, 2, { generator = g(8) }), grove.empty({ 4, 4 }):normal_(1, 2, g(8))))
    local t = grove.tensor { 0.5, 3 }
    spec.assert(same(t:timestep_embedding { dim = 16, max_period = 100 }, t:timestep_embedding(16, 100)))
  end)
end)
