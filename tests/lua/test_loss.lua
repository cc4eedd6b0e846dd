-- mse_loss, cross_entropy, dropout and cosine_similarity: forward against
-- float64 references, gradients against finite differences, dropout's
-- statistics and determinism, and the errors.
local grove = grove or require "grove"
local spec = require "spec"
local ref = require "ref"

local function scalar(v) return { shape = {}, data = { v } } end

local function mse_ref(A, B)
  local s = 0
  for i = 1, #A.data do
    local d = A.data[i] - B.data[i]
    s = s + d * d
  end
  return scalar(s / #A.data)
end

-- logits (N, C), targets 0-based class indices.
local function cross_entropy_ref(X, T)
  local n, c = X.shape[1], X.shape[2]
  local s = 0
  for i = 1, n do
    local m = -math.huge
    for j = 1, c do m = math.max(m, ref.get(X, { i, j })) end
    local z = 0
    for j = 1, c do z = z + math.exp(ref.get(X, { i, j }) - m) end
    s = s + m + math.log(z) - ref.get(X, { i, T.data[i] + 1 })
  end
  return scalar(s / n)
end

-- Σab / max(√(Σa²·Σb²), eps) along Lua dimension d of the broadcast shape.
local function cosine_ref(d, eps)
  return function(A, B)
    local AB = ref.zip(A, B, function(x, y) return x * y end)
    local AA = ref.zip(A, B, function(x) return x * x end)
    local BB = ref.zip(A, B, function(_, y) return y * y end)
    local shape = AB.shape
    if d < 0 then d = #shape + 1 + d end
    local oshape = {}
    for i = 1, #shape do if i ~= d then oshape[#oshape + 1] = shape[i] end end
    local out = ref.new(oshape, 0)
    for k = 1, #out.data do
      local oidx = ref.unflatten(oshape, k)
      local idx, sab, saa, sbb = {}, 0, 0, 0
      for j = 1, shape[d] do
        local o = 1
        for i = 1, #shape do
          if i == d then idx[i] = j else idx[i] = oidx[o]; o = o + 1 end
        end
        sab = sab + ref.get(AB, idx)
        saa = saa + ref.get(AA, idx)
        sbb = sbb + ref.get(BB, idx)
      end
      out.data[k] = sab / math.max(math.sqrt(saa * sbb), eps)
    end
    return out
  end
end

local function i64(t) return grove.tensor(t, { dtype = "i64" }) end

spec.describe("mse_loss", function()
  spec.it("matches float64 and finite differences for both inputs", function()
    spec.check_op {
      fn = function(a, b) return grove.mse_loss(a, b) end,
      ref = mse_ref,
      inputs = { { 3, 4 }, { 3, 4 } },
    }
  end)
  spec.it("differentiates the input alone when the target is constant", function()
    spec.check_op {
      fn = function(a, b) return grove.mse_loss(a, b) end,
      ref = mse_ref,
      inputs = { { 2, 3, 5 }, function() return grove.randn { 2, 3, 5 } end },
      nograd = { [2] = true },
    }
  end)
  spec.it("reads non-contiguous inputs in logical order", function()
    spec.check_op {
      fn = function(a, b) return grove.mse_loss(a:t(), b) end,
      ref = function(A, B)
        local At = ref.new({ A.shape[2], A.shape[1] }, 0)
        for i = 1, A.shape[1] do
          for j = 1, A.shape[2] do ref.set(At, { j, i }, ref.get(A, { i, j })) end
        end
        return mse_ref(At, B)
      end,
      inputs = { { 3, 5 }, { 5, 3 } },
    }
  end)
  spec.it("gives a 0-d result", function()
    local l = grove.mse_loss(grove.tensor { 1, 2, 3 }, grove.tensor { 1, 2, 5 })
    spec.eq(l:dim(), 0)
    spec.near(l:item(), 4 / 3, 1e-6)
  end)
  spec.it("rejects different shapes, naming both", function()
    local err = spec.raises(function() grove.mse_loss(grove.randn { 2, 3 }, grove.randn { 3, 2 }) end, "mse_loss")
    spec.assert(err:find("[2,3]", 1, true) and err:find("[3,2]", 1, true), err)
    spec.raises(function() grove.mse_loss(grove.randn { 2, 3 }, grove.randn { 3 }) end, "shapes differ")
  end)
  spec.it("rejects non-f32 tensors", function()
    spec.raises(function() grove.mse_loss(grove.randn { 3 }, i64 { 1, 2, 3 }) end, "f32")
  end)
end)

spec.describe("cross_entropy", function()
  spec.it("matches float64 and finite differences", function()
    spec.check_op {
      fn = function(x, t) return grove.cross_entropy(x, t) end,
      ref = cross_entropy_ref,
      inputs = { { 4, 5 }, function() return i64 { 0, 3, 4, 1 } end },
      nograd = { [2] = true },
    }
  end)
  spec.it("handles a single class and repeated targets", function()
    spec.check_op {
      fn = function(x, t) return grove.cross_entropy(x, t) end,
      ref = cross_entropy_ref,
      inputs = { { 3, 1 }, function() return i64 { 0, 0, 0 } end },
      nograd = { [2] = true },
    }
    spec.check_op {
      fn = function(x, t) return grove.cross_entropy(x, t) end,
      ref = cross_entropy_ref,
      inputs = { { 6, 3 }, function() return i64 { 2, 2, 0, 2, 1, 2 } end },
      nograd = { [2] = true },
    }
  end)
  spec.it("is stable for large logits", function()
    local x = grove.tensor({ { 1000, 0, -1000 }, { -500, 500, 0 } }, { requires_grad = true })
    local l = grove.cross_entropy(x, i64 { 0, 0 })
    spec.near(l:item(), (0 + 1000) / 2, 1e-5)
    l:backward()
    local g = x.grad:tolist()
    -- (softmax − onehot)/N: row 1 is already one-hot, row 2 puts all mass on class 2
    spec.near(g[1][1], 0, 1e-6); spec.near(g[1][2], 0, 1e-6); spec.near(g[1][3], 0, 1e-6)
    spec.near(g[2][1], -0.5, 1e-6); spec.near(g[2][2], 0.5, 1e-6); spec.near(g[2][3], 0, 1e-6)
  end)
  spec.it("gives log C for uniform logits", function()
    spec.near(grove.cross_entropy(grove.zeros { 3, 7 }, i64 { 0, 5, 6 }):item(), math.log(7), 1e-6)
  end)
  spec.it("rejects targets outside [0, C), naming the value and C", function()
    local err = spec.raises(function() grove.cross_entropy(grove.randn { 2, 5 }, i64 { 1, 5 }) end, "target value 5")
    spec.assert(err:find("5 classes", 1, true), err)
    spec.raises(function() grove.cross_entropy(grove.randn { 2, 5 }, i64 { -1, 0 }) end, "target value -1")
  end)
  spec.it("rejects bad shapes and dtypes", function()
    spec.raises(function() grove.cross_entropy(grove.randn { 5 }, i64 { 1 }) end, "(N, C)")
    spec.raises(function() grove.cross_entropy(grove.randn { 2, 5 }, i64 { 1, 2, 3 }) end, "does not match logits")
    spec.raises(function() grove.cross_entropy(grove.randn { 2, 5 }, grove.tensor { 1, 2 }) end, "i64")
  end)
end)

spec.describe("dropout", function()
  local n, p = 200000, 0.3

  spec.it("zeros about a fraction p and scales kept values by exactly 1/(1-p)", function()
    grove.manual_seed(11)
    local y = grove.dropout(grove.ones { n }, p, true):tolist()
    local zeros, kept = 0, 1 / (1 - p)
    for i = 1, n do
      if y[i] == 0 then zeros = zeros + 1
      elseif math.abs(y[i] - kept) > 1e-7 * kept then error("kept value " .. y[i] .. ", expected " .. kept) end
    end
    -- the fraction's standard deviation is √(p(1−p)/n) ≈ 0.001
    spec.near(zeros / n, p, 0.006, "fraction of zeros")
  end)

  spec.it("draws its mask from the uniforms a fill with the same generator state gives", function()
    local m = 1003
    local u = grove.rand({ m }, { generator = grove.Generator(42) }):tolist()
    local g = grove.Generator(42)
    local x = grove.randn { m }
    local xs = x:tolist()
    local y = grove.dropout(x, 0.6, true, g):tolist()
    for i = 1, m do
      local expect = u[i] > 0.6 and xs[i] / 0.4 or 0
      spec.near(y[i], expect, 1e-6, "element " .. i)
    end
    spec.eq(tonumber(g.offset), math.floor((m + 3) / 4), "generator offset")
  end)

  spec.it("repeats with the same seed and differs on the next draw", function()
    local x = grove.ones { 64, 33 }
    grove.manual_seed(5)
    local a = grove.dropout(x, 0.5):tolist()
    local b = grove.dropout(x, 0.5):tolist()
    grove.manual_seed(5)
    local c = grove.dropout(x, 0.5):tolist()
    local differ = false
    for i = 1, 64 do
      for j = 1, 33 do
        spec.eq(a[i][j], c[i][j], "same seed")
        if a[i][j] ~= b[i][j] then differ = true end
      end
    end
    spec.assert(differ, "two consecutive draws gave the same mask")
  end)

  spec.it("is the identity in eval mode and for p = 0", function()
    local x = grove.randn { 4, 5 }
    local y = grove.dropout(x, 0.5, false)
    spec.assert(y.p == x.p, "eval mode should return the input itself")
    local z = grove.dropout(x, 0, true)
    spec.assert(z.p == x.p, "p = 0 should return the input itself")
    local g = grove.Generator(3)
    grove.dropout(x, 0.5, false, g)
    spec.eq(tonumber(g.offset), 0, "eval mode draws nothing")
  end)

  spec.it("drops everything for p = 1", function()
    local x = grove.randn({ 10, 10 }, { requires_grad = true })
    local y = grove.dropout(x, 1, true)
    for _, row in ipairs(y:tolist()) do for _, v in ipairs(row) do spec.eq(v, 0) end end
    y:backward(grove.ones { 10, 10 })
    for _, row in ipairs(x.grad:tolist()) do for _, v in ipairs(row) do spec.eq(v, 0) end end
  end)

  spec.it("backpropagates through the same mask", function()
    local x = grove.randn({ 30, 40 }, { requires_grad = true })
    local y = grove.dropout(x:t(), 0.25, true)
    local w = grove.randn { 40, 30 }
    y:backward(w)
    local ys, ws, gs = y:tolist(), w:tolist(), x.grad:tolist()
    for i = 1, 40 do
      for j = 1, 30 do
        local expect = ys[i][j] ~= 0 and ws[i][j] / 0.75 or 0
        spec.near(gs[j][i], expect, 1e-6, "gradient")
      end
    end
  end)

  spec.it("rejects p outside [0, 1]", function()
    spec.raises(function() grove.dropout(grove.randn { 3 }, 1.5, true) end, "outside [0, 1]")
    spec.raises(function() grove.dropout(grove.randn { 3 }, -0.1, true) end, "outside [0, 1]")
    spec.raises(function() grove.dropout(grove.randn { 3 }, 0 / 0, true) end, "outside [0, 1]")
  end)
end)

spec.describe("cosine_similarity", function()
  spec.it("matches float64 and finite differences along the last dimension", function()
    spec.check_op {
      fn = function(a, b) return grove.cosine_similarity(a, b, -1) end,
      ref = cosine_ref(-1, 1e-8),
      inputs = { { 4, 6 }, { 4, 6 } },
    }
  end)
  spec.it("works along the first dimension", function()
    spec.check_op {
      fn = function(a, b) return grove.cosine_similarity(a, b, 1) end,
      ref = cosine_ref(1, 1e-8),
      inputs = { { 5, 3 }, { 5, 3 } },
    }
  end)
  spec.it("works along a middle dimension of 3-d inputs", function()
    spec.check_op {
      fn = function(a, b) return grove.cosine_similarity(a, b, 2) end,
      ref = cosine_ref(2, 1e-8),
      inputs = { { 2, 4, 3 }, { 2, 4, 3 } },
    }
  end)
  spec.it("broadcasts its inputs and sums their gradients back", function()
    spec.check_op {
      fn = function(a, b) return grove.cosine_similarity(a, b, -1) end,
      ref = cosine_ref(-1, 1e-8),
      inputs = { { 3, 1, 5 }, { 4, 5 } },
    }
  end)
  spec.it("differentiates one input alone", function()
    spec.check_op {
      fn = function(a, b) return grove.cosine_similarity(a, b, -1) end,
      ref = cosine_ref(-1, 1e-8),
      inputs = { { 3, 6 }, function() return grove.randn { 3, 6 } end },
      nograd = { [2] = true },
    }
  end)
  spec.it("clamps the denominator at eps", function()
    -- norms 0.1·0.2 = 0.02 < eps = 0.5: the result is Σab / eps
    spec.check_op {
      fn = function(a, b) return grove.cosine_similarity(a, b, -1, 0.5) end,
      ref = cosine_ref(-1, 0.5),
      inputs = { function() return grove.randn { 2, 4 } * 0.05 end, function() return grove.randn { 2, 4 } * 0.1 end },
    }
    local z = grove.zeros({ 2, 3 }, { requires_grad = true })
    local y = grove.cosine_similarity(z, grove.randn { 2, 3 })
    for _, v in ipairs(y:tolist()) do spec.eq(v, 0) end
    y:backward(grove.ones { 2 })
    for _, row in ipairs(z.grad:tolist()) do for _, v in ipairs(row) do spec.assert(v == v, "NaN gradient") end end
  end)
  spec.it("gives 1 for parallel and -1 for opposite vectors", function()
    local a = grove.tensor { { 1, 2, 3 }, { 1, 2, 3 } }
    local b = grove.tensor { { 2, 4, 6 }, { -1, -2, -3 } }
    local y = grove.cosine_similarity(a, b):tolist()
    spec.near(y[1], 1, 1e-6)
    spec.near(y[2], -1, 1e-6)
  end)
  spec.it("rejects bad dimensions, shapes and eps", function()
    spec.raises(function() grove.cosine_similarity(grove.randn { 2, 3 }, grove.randn { 2, 3 }, 3) end, "out of range")
    spec.raises(function() grove.cosine_similarity(grove.randn { 2, 3 }, grove.randn { 4, 3 }) end, "cannot broadcast")
    spec.raises(function() grove.cosine_similarity(grove.randn { 2, 3 }, grove.randn { 2, 3 }, -1, -1) end, "eps")
  end)
end)

spec.describe("loss ops", function()
  spec.it("release every tensor and tape node they create", function()
    grove.collect()
    local before = grove.memory()
    do
      local a = grove.randn({ 6, 5 }, { requires_grad = true })
      local b = grove.randn({ 6, 5 }, { requires_grad = true })
      local t = i64 { 0, 1, 2, 3, 4, 0 }
      local l = grove.mse_loss(a, b) + grove.cross_entropy(a, t)
        + grove.dropout(a, 0.5, true):sum() + grove.cosine_similarity(a, b:narrow(1, 1, 1)):sum()
      l:backward()
      a, b, t, l = nil, nil, nil, nil
    end
    grove.collect()
    local after = grove.memory()
    spec.eq(after.live_tensors, before.live_tensors, "live tensors")
    spec.eq(after.live_nodes, before.live_nodes, "live nodes")
    spec.eq(after.live_bytes, before.live_bytes, "live bytes")
  end)
  spec.it("give the same results with 1 and 2 threads", function()
    local saved = grove.num_threads()
    local function run(threads)
      grove.set_num_threads(threads)
      grove.manual_seed(3)
      local x = grove.randn { 300, 400 }
      local y = grove.randn { 300, 400 }
      local t = grove.zeros({ 300 }, { dtype = "i64" })
      return { grove.mse_loss(x, y):item(), grove.cross_entropy(x, t):item(),
               grove.dropout(x, 0.5):sum():item(), grove.cosine_similarity(x, y, 1):sum():item() }
    end
    local one, two = run(1), run(2)
    grove.set_num_threads(saved)
    for i = 1, #one do spec.eq(two[i], one[i], "result " .. i) end
  end)
end)
