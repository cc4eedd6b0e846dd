-- The fused attention ops of the SANA block: ReLU linear attention and
-- masked softmax cross attention. Forward against float64 references (the
-- naive O(N²) formula for linear attention, proving the O(N·d²) kernel
-- computes the same thing), gradients against finite differences, larger
-- threaded cases against the same attention built from grove's primitive ops
-- (forward and gradients), strided inputs, bad input and leaks.
local grove = grove or require "grove"
local spec = require "spec"
local ref = require "ref"

-- The C entry points, called directly so these specs do not depend on the
-- Lua bindings.
local function lin_attn(q, k, v, hd, eps)
  return grove._wrap(grove.C.grove_linear_attention(q.p, k.p, v.p, hd, eps))
end
local function cross_attn(q, k, v, mask, heads)
  return grove._wrap(grove.C.grove_cross_attention(q.p, k.p, v.p, mask and mask.p or nil, heads))
end

local function relu(x) return x > 0 and x or 0 end

-- o_i = Σ_j v_j (φ(k_j)·φ(q_i)) / (Σ_j φ(k_j)·φ(q_i) + eps) per head, the
-- N×N weights formed explicitly.
local function lin_attn_ref(hd, eps)
  return function(Q, K, V)
    local B, N, D = Q.shape[1], Q.shape[2], Q.shape[3]
    local O = ref.new({ B, N, D }, 0)
    local q, k, v, o = Q.data, K.data, V.data, O.data
    for b = 0, B - 1 do
      for h = 0, D / hd - 1 do
        local c0 = h * hd
        for i = 0, N - 1 do
          local qi = (b * N + i) * D + c0
          local den, num = eps, {}
          for e = 1, hd do num[e] = 0 end
          for j = 0, N - 1 do
            local kj = (b * N + j) * D + c0
            local w = 0
            for c = 1, hd do w = w + relu(q[qi + c]) * relu(k[kj + c]) end
            den = den + w
            for e = 1, hd do num[e] = num[e] + w * v[kj + e] end
          end
          for e = 1, hd do o[qi + e] = num[e] / den end
        end
      end
    end
    return O
  end
end

-- softmax(q_h k_hᵀ/√dh + (1 − mask)·(−10000)) v_h per head; M is a ref array
-- or nil.
local function cross_attn_ref(heads)
  return function(Q, K, V, Mk)
    local B, N, D, M = Q.shape[1], Q.shape[2], Q.shape[3], K.shape[2]
    local dh = D / heads
    local scale = 1 / math.sqrt(dh)
    local O = ref.new({ B, N, D }, 0)
    local q, k, v, o = Q.data, K.data, V.data, O.data
    for b = 0, B - 1 do
      for h = 0, heads - 1 do
        local c0 = h * dh
        for i = 0, N - 1 do
          local qi = (b * N + i) * D + c0
          local s, mx = {}, -math.huge
          for j = 0, M - 1 do
            local kj = (b * M + j) * D + c0
            local x = 0
            for c = 1, dh do x = x + q[qi + c] * k[kj + c] end
            x = x * scale
            if Mk then x = x + (1 - (Mk.data[b * M + j + 1] ~= 0 and 1 or 0)) * -10000 end
            s[j + 1] = x
            if x > mx then mx = x end
          end
          local z = 0
          for j = 1, M do s[j] = math.exp(s[j] - mx); z = z + s[j] end
          for e = 1, dh do
            local acc = 0
            for j = 0, M - 1 do acc = acc + s[j + 1] / z * v[(b * M + j) * D + c0 + e] end
            o[qi + e] = acc
          end
        end
      end
    end
    return O
  end
end

-- The same attentions from grove's primitive ops (their own autograd): an
-- independent f32 implementation for shapes too large for the references.
local function lin_attn_ops(q, k, v, hd, eps)
  local B, N, D = q:size(1), q:size(2), q:size(3)
  local H = D / hd
  local function heads(x) return x:reshape{ B, N, H, hd }:permute{ 1, 3, 2, 4 } end
  local a, b, vh = heads(q):relu(), heads(k):relu(), heads(v)
  local kv = b:transpose(3, 4):matmul(vh)
  local s = b:sum(3, true)
  local den = (a * s):sum(4, true) + eps
  return (a:matmul(kv) / den):permute{ 1, 3, 2, 4 }:reshape{ B, N, D }
end

local function cross_attn_ops(q, k, v, mask, heads)
  local B, N, D, M = q:size(1), q:size(2), q:size(3), k:size(2)
  local dh = D / heads
  local function split(x, n) return x:reshape{ B, n, heads, dh }:permute{ 1, 3, 2, 4 } end
  local s = split(q, N):matmul(split(k, M):transpose(3, 4)) * (1 / math.sqrt(dh))
  if mask then s = s + ((1 - mask:float()) * -10000):reshape{ B, 1, 1, M } end
  return grove.softmax(s, -1):matmul(split(v, M)):permute{ 1, 3, 2, 4 }:reshape{ B, N, D }
end

local function rel(a, b) return spec.rel_error(ref.from_tensor(a), ref.from_tensor(b)) end

local function has_nan(t)
  for _, x in ipairs(ref.from_tensor(t).data) do if x ~= x then return true end end
  return false
end

-- Runs f on fresh leaf copies of the inputs, backpropagates W; returns the
-- output and the inputs' gradients.
local function run_with_grads(f, inputs, W)
  local xs = {}
  for i, x in ipairs(inputs) do xs[i] = x:detach():clone():requires_grad_(true) end
  local y = f(unpack(xs))
  y:backward(W)
  local g = {}
  for i, x in ipairs(xs) do g[i] = x.grad end
  return y, g
end

-- Compares an op and its primitive-op twin on the same inputs: forward and
-- every input's gradient.
local function compare_to_ops(fused, ops, inputs, fwd_tol, grad_tol, names)
  local y0 = fused(unpack(inputs))
  local W = grove.randn(y0:shape())
  local y1, g1 = run_with_grads(fused, inputs, W)
  local y2, g2 = run_with_grads(ops, inputs, W)
  local e = rel(y1, y2)
  spec.assert(e <= fwd_tol, string.format("forward differs by %.3g", e))
  for i = 1, #inputs do
    local ge = rel(g1[i], g2[i])
    spec.assert(ge <= grad_tol, string.format("gradient of %s differs by %.3g", names[i], ge))
  end
end

spec.describe("linear_attention", function()
  local eps = 1e-15

  spec.it("matches the naive O(N^2) formula and finite differences (2 heads of 32)", function()
    spec.check_op{
      fn = function(q, k, v) return lin_attn(q, k, v, 32, eps) end,
      ref = lin_attn_ref(32, eps),
      inputs = { { 2, 5, 64 }, { 2, 5, 64 }, { 2, 5, 64 } },
    }
  end)

  spec.it("matches with another head size and a larger eps", function()
    spec.check_op{
      fn = function(q, k, v) return lin_attn(q, k, v, 8, 0.5) end,
      ref = lin_attn_ref(8, 0.5),
      inputs = { { 2, 6, 24 }, { 2, 6, 24 }, { 2, 6, 24 } },
      seed = 3,
    }
  end)

  spec.it("reads a narrow of a wider projection and a transposed view", function()
    spec.check_op{
      fn = function(q, k, v) return lin_attn(q, k, v, 32, eps) end,
      ref = lin_attn_ref(32, eps),
      inputs = {
        function() return grove.randn{ 2, 5, 192 }:narrow(3, 65, 64) end,
        function() return grove.randn{ 2, 5, 192 }:narrow(3, 1, 64) end,
        function() return grove.randn{ 2, 64, 5 }:transpose(2, 3) end,
      },
      seed = 5,
    }
  end)

  spec.it("gives each input the same gradient when only some need one", function()
    grove.manual_seed(7)
    local q, k, v = grove.randn{ 2, 9, 64 }, grove.randn{ 2, 9, 64 }, grove.randn{ 2, 9, 64 }
    local W = grove.randn{ 2, 9, 64 }
    local f = function(a, b, c) return lin_attn(a, b, c, 32, eps) end
    local _, all = run_with_grads(f, { q, k, v }, W)
    for i = 1, 3 do
      local xs = { q, k, v }
      xs[i] = xs[i]:detach():clone():requires_grad_(true)
      f(xs[1], xs[2], xs[3]):backward(W)
      spec.eq(rel(xs[i].grad, all[i]), 0, "gradient " .. i)
    end
  end)

  spec.it("gives zero for a query with no positive channel", function()
    local q = -grove.rand{ 1, 3, 32 }
    local y = lin_attn(q, grove.randn{ 1, 3, 32 }, grove.randn{ 1, 3, 32 }, 32, eps)
    spec.eq(y:abs():max():item(), 0, "output")
  end)

  spec.it("matches the reference at N=256, D=128 (threaded)", function()
    spec.check_op{
      fn = function(q, k, v) return lin_attn(q, k, v, 32, eps) end,
      ref = lin_attn_ref(32, eps),
      inputs = { { 1, 256, 128 }, { 1, 256, 128 }, { 1, 256, 128 } },
      fwd_tol = 2e-5,
      no_backward = true,
    }
  end)

  spec.it("agrees with primitive ops in forward and gradients at B=2, N=256, D=128", function()
    grove.manual_seed(11)
    local x = { grove.randn{ 2, 256, 128 }, grove.randn{ 2, 256, 128 }, grove.randn{ 2, 256, 128 } }
    compare_to_ops(function(q, k, v) return lin_attn(q, k, v, 32, eps) end,
      function(q, k, v) return lin_attn_ops(q, k, v, 32, eps) end, x, 1e-5, 2e-5, { "q", "k", "v" })
  end)

  spec.it("gives the same bits on one thread and many", function()
    grove.manual_seed(13)
    local x = { grove.randn{ 2, 200, 96 }, grove.randn{ 2, 200, 96 }, grove.randn{ 2, 200, 96 } }
    local W = grove.randn{ 2, 200, 96 }
    local f = function(q, k, v) return lin_attn(q, k, v, 32, eps) end
    local threads = grove.num_threads()
    grove.set_num_threads(1)
    local y1, g1 = run_with_grads(f, x, W)
    grove.set_num_threads(math.max(threads, 4))
    local y2, g2 = run_with_grads(f, x, W)
    grove.set_num_threads(threads)
    spec.eq(rel(y1, y2), 0, "forward")
    for i = 1, 3 do spec.eq(rel(g1[i], g2[i]), 0, "gradient " .. i) end
  end)

  spec.it("handles empty token sets", function()
    local y = lin_attn(grove.randn{ 2, 0, 64 }, grove.randn{ 2, 0, 64 }, grove.randn{ 2, 0, 64 }, 32, eps)
    spec.eq(y:numel(), 0, "numel")
  end)

  spec.it("keeps a NaN in q or k instead of cutting it with the ReLU", function()
    for i = 1, 2 do
      local x = { grove.randn{ 1, 3, 32 }, grove.randn{ 1, 3, 32 }, grove.randn{ 1, 3, 32 } }
      x[i] = grove.cat({ grove.full({ 1, 1, 32 }, 0 / 0), grove.randn{ 1, 2, 32 } }, 2)
      spec.assert(has_nan(lin_attn(x[1], x[2], x[3], 32, eps)), "NaN lost (input " .. i .. ")")
    end
  end)

  spec.it("rejects bad input", function()
    local x = grove.randn{ 2, 5, 64 }
    spec.raises(function() lin_attn(grove.randn{ 5, 64 }, x, x, 32, eps) end, "linear_attention: q [5,64] must be 3-d")
    spec.raises(function() lin_attn(x, grove.randn{ 2, 4, 64 }, x, 32, eps) end,
      "linear_attention: q [2,5,64], k [2,4,64] and v [2,5,64] must have the same shape")
    spec.raises(function() lin_attn(x, x, grove.randn{ 1, 5, 64 }, 32, eps) end, "must have the same shape")
    spec.raises(function() lin_attn(x, x, x, 48, eps) end,
      "linear_attention: width 64 of q [2,5,64] is not divisible by head_dim 48")
    spec.raises(function() lin_attn(x, x, x, 0, eps) end, "head_dim must be in [1, 4096] (got 0)")
    spec.raises(function() lin_attn(x, x, x, 32, -1) end, "linear_attention: eps must be a finite number >= 0")
    spec.raises(function() lin_attn(x, x, x, 32, 0 / 0) end, "eps must be a finite number >= 0")
    spec.raises(function() lin_attn(x, x:to("i64"), x, 32, eps) end, "linear_attention: expected an f32 tensor")
  end)

  spec.it("agrees with the Lua binding", function()
    if not grove.linear_attention then spec.skip("linear_attention: no grove.linear_attention binding to compare"); return end
    grove.manual_seed(17)
    local q, k, v = grove.randn{ 1, 7, 64 }, grove.randn{ 1, 7, 64 }, grove.randn{ 1, 7, 64 }
    spec.eq(rel(grove.linear_attention(q, k, v, 32, eps), lin_attn(q, k, v, 32, eps)), 0, "output")
  end)
end)

spec.describe("cross_attention", function()
  -- batch 1 pads its last token; batch 2 is padding throughout
  local function mask_u8() return grove.tensor({ { 1, 1, 0 }, { 0, 0, 0 } }, { dtype = "u8" }) end
  local function mask_f32() return grove.tensor{ { 0, 1, 1 }, { 1, 0, 1 } } end

  spec.it("matches float64 and finite differences with padding and an all-padding caption", function()
    spec.check_op{
      fn = function(q, k, v, m) return cross_attn(q, k, v, m, 2) end,
      ref = cross_attn_ref(2),
      inputs = { { 2, 4, 8 }, { 2, 3, 8 }, { 2, 3, 8 }, mask_u8 },
      nograd = { [4] = true },
    }
  end)

  spec.it("matches with an f32 mask", function()
    spec.check_op{
      fn = function(q, k, v, m) return cross_attn(q, k, v, m, 2) end,
      ref = cross_attn_ref(2),
      inputs = { { 2, 4, 8 }, { 2, 3, 8 }, { 2, 3, 8 }, mask_f32 },
      nograd = { [4] = true },
      seed = 2,
    }
  end)

  spec.it("matches without a mask", function()
    spec.check_op{
      fn = function(q, k, v) return cross_attn(q, k, v, nil, 2) end,
      ref = cross_attn_ref(2),
      inputs = { { 2, 4, 8 }, { 2, 3, 8 }, { 2, 3, 8 } },
      seed = 3,
    }
  end)

  spec.it("lets an all-padding caption attend as if unmasked, without NaN", function()
    -- (1 − mask)·(−10000) is then the same shift on every score, which
    -- softmax ignores
    grove.manual_seed(4)
    local q, k, v = grove.randn{ 2, 4, 8 }, grove.randn{ 2, 3, 8 }, grove.randn{ 2, 3, 8 }
    local masked = cross_attn(q, k, v, mask_u8(), 2)
    spec.assert(not has_nan(masked), "NaN in the output")
    local free = cross_attn(q, k, v, nil, 2)
    spec.assert(rel(masked:select(1, 2), free:select(1, 2)) < 1e-6, "all-padding caption differs from unmasked")
    spec.assert(rel(masked:select(1, 1), free:select(1, 1)) > 1e-3, "padding had no effect")
    -- with zero scores an all-padding caption attends uniformly
    local y = cross_attn(grove.zeros{ 1, 2, 8 }, k:narrow(1, 1, 1), v:narrow(1, 1, 1),
      grove.zeros({ 1, 3 }, { dtype = "u8" }), 2)
    local mean = v:narrow(1, 1, 1):mean(2, true):expand{ 1, 2, 8 }
    spec.assert(rel(y, mean) < 1e-6, "not uniform")
  end)

  spec.it("handles an empty query set", function()
    local q = grove.randn{ 2, 0, 8 }:requires_grad_(true)
    local k = grove.randn{ 2, 3, 8 }:requires_grad_(true)
    local y = cross_attn(q, k, k, mask_u8(), 2)
    spec.eq(y:numel(), 0, "numel")
    y:sum():backward()
    spec.eq(k.grad:abs():max():item(), 0, "gradient of k")
  end)

  spec.it("reads a narrow of a wider projection and a transposed view", function()
    spec.check_op{
      fn = function(q, k, v, m) return cross_attn(q, k, v, m, 2) end,
      ref = cross_attn_ref(2),
      inputs = {
        function() return grove.randn{ 2, 4, 24 }:narrow(3, 9, 8) end,
        function() return grove.randn{ 2, 3, 16 }:narrow(3, 1, 8) end,
        function() return grove.randn{ 2, 8, 3 }:transpose(2, 3) end,
        mask_u8,
      },
      nograd = { [4] = true },
      seed = 6,
    }
  end)

  spec.it("gives each input the same gradient when only some need one", function()
    grove.manual_seed(8)
    local q, k, v = grove.randn{ 2, 6, 16 }, grove.randn{ 2, 5, 16 }, grove.randn{ 2, 5, 16 }
    local m = grove.tensor({ { 1, 1, 1, 0, 0 }, { 1, 0, 1, 1, 1 } }, { dtype = "u8" })
    local W = grove.randn{ 2, 6, 16 }
    local f = function(a, b, c) return cross_attn(a, b, c, m, 4) end
    local _, all = run_with_grads(f, { q, k, v }, W)
    for i = 1, 3 do
      local xs = { q, k, v }
      xs[i] = xs[i]:detach():clone():requires_grad_(true)
      f(xs[1], xs[2], xs[3]):backward(W)
      spec.eq(rel(xs[i].grad, all[i]), 0, "gradient " .. i)
    end
  end)

  spec.it("matches the reference at N=256, M=40, D=128 (threaded)", function()
    spec.check_op{
      fn = function(q, k, v, m) return cross_attn(q, k, v, m, 4) end,
      ref = cross_attn_ref(4),
      inputs = { { 2, 256, 128 }, { 2, 40, 128 }, { 2, 40, 128 },
        function() return (grove.rand{ 2, 40 } + 0.3):to("u8") end },
      nograd = { [4] = true },
      fwd_tol = 2e-5,
      no_backward = true,
    }
  end)

  spec.it("agrees with primitive ops in forward and gradients at B=2, N=256, M=40, D=128", function()
    grove.manual_seed(12)
    local x = { grove.randn{ 2, 256, 128 }, grove.randn{ 2, 40, 128 }, grove.randn{ 2, 40, 128 } }
    local m = (grove.rand{ 2, 40 } + 0.3):to("u8")
    compare_to_ops(function(q, k, v) return cross_attn(q, k, v, m, 4) end,
      function(q, k, v) return cross_attn_ops(q, k, v, m, 4) end, x, 1e-5, 2e-5, { "q", "k", "v" })
  end)

  spec.it("rejects bad input", function()
    local q, k = grove.randn{ 2, 4, 8 }, grove.randn{ 2, 3, 8 }
    local m = grove.ones({ 2, 3 }, { dtype = "u8" })
    spec.raises(function() cross_attn(grove.randn{ 4, 8 }, k, k, m, 2) end,
      "cross_attention: q [4,8], k [2,3,8] and v [2,3,8] must be 3-d")
    spec.raises(function() cross_attn(q, k, grove.randn{ 2, 4, 8 }, m, 2) end,
      "cross_attention: k [2,3,8] and v [2,4,8] must have the same shape")
    spec.raises(function() cross_attn(q, grove.randn{ 3, 3, 8 }, grove.randn{ 3, 3, 8 }, nil, 2) end,
      "cross_attention: batch sizes of q [2,4,8] and k [3,3,8] differ (2 vs 3)")
    spec.raises(function() cross_attn(q, grove.randn{ 2, 3, 6 }, grove.randn{ 2, 3, 6 }, nil, 2) end,
      "cross_attention: widths of q [2,4,8] and k [2,3,6] differ (8 vs 6)")
    spec.raises(function() cross_attn(q, k, k, m, 3) end, "cross_attention: width 8 of q [2,4,8] is not divisible by heads 3")
    spec.raises(function() cross_attn(q, k, k, m, 0) end, "cross_attention: heads must be >= 1 (got 0)")
    spec.raises(function() cross_attn(q, k, k, grove.ones({ 2, 4 }, { dtype = "u8" }), 2) end,
      "cross_attention: mask [2,4] does not match k [2,3,8] (expected [2,3])")
    spec.raises(function() cross_attn(q, k, k, grove.ones({ 3 }, { dtype = "u8" }), 2) end, "does not match k")
    spec.raises(function() cross_attn(q, k, k, grove.ones({ 2, 3 }, { dtype = "i64" }), 2) end,
      "cross_attention: mask must be u8 or f32, got i64 [2,3]")
    spec.raises(function() cross_attn(q, grove.randn{ 2, 0, 8 }, grove.randn{ 2, 0, 8 }, nil, 2) end,
      "cross_attention: k [2,0,8] has no tokens to attend to")
    spec.raises(function() cross_attn(q:to("bf16"), k, k, nil, 2) end, "cross_attention: expected an f32 tensor")
  end)

  spec.it("agrees with the Lua binding", function()
    if not grove.cross_attention then spec.skip("cross_attention: no grove.cross_attention binding to compare"); return end
    grove.manual_seed(18)
    local q, k, v = grove.randn{ 2, 4, 8 }, grove.randn{ 2, 3, 8 }, grove.randn{ 2, 3, 8 }
    local m = mask_u8()
    spec.eq(rel(grove.cross_attention(q, k, v, m, 2), cross_attn(q, k, v, m, 2)), 0, "output")
  end)
end)

spec.describe("attention memory", function()
  spec.it("leaves no tensors or tape nodes alive", function()
    local function work()
      local q = grove.randn{ 2, 6, 64 }:requires_grad_(true)
      local k = grove.randn{ 2, 6, 192 }:narrow(3, 65, 64):detach():requires_grad_(true)
      local v = grove.randn{ 2, 6, 64 }:requires_grad_(true)
      local y = lin_attn(q, k, v, 32, 1e-15)
      local t = grove.randn{ 2, 3, 64 }:requires_grad_(true)
      local m = grove.tensor({ { 1, 1, 0 }, { 0, 0, 0 } }, { dtype = "u8" })
      local z = cross_attn(y, t, t, m, 4)
      z:sum():backward()
      pcall(lin_attn, q, k, v, 48, 1e-15)
      pcall(cross_attn, q, t, t, grove.ones{ 2, 4 }, 4)
    end
    spec.no_leaks(work)
  end)
end)
