-- matmul and linear: forward against float64 references, gradients against
-- finite differences, transposed and strided operands, batch broadcasting,
-- 1-d operands as in torch, and the errors.
local grove = grove or require "grove"
local spec = require "spec"
local ref = require "ref"

-- torch.matmul in float64: 1-d operands become a row (left) or a column
-- (right) and that dimension is removed again; batch dimensions broadcast.
local function matmul_ref(A, B)
  local a1, b1 = #A.shape == 1, #B.shape == 1
  local As = { shape = a1 and { 1, A.shape[1] } or A.shape, data = A.data }
  local Bs = { shape = b1 and { B.shape[1], 1 } or B.shape, data = B.data }
  local na, nbd = #As.shape, #Bs.shape
  local M, K, N = As.shape[na - 1], As.shape[na], Bs.shape[nbd]
  assert(Bs.shape[nbd - 1] == K, "matmul_ref: inner dimensions differ")
  local nb = math.max(na, nbd) - 2
  local batch = {}
  for i = 1, nb do
    local da = As.shape[i - (nb - (na - 2))] or 1
    local db = Bs.shape[i - (nb - (nbd - 2))] or 1
    batch[i] = da == 1 and db or da
  end
  local full = {}
  for i = 1, nb do full[i] = batch[i] end
  full[nb + 1], full[nb + 2] = M, N
  local out = ref.new(full, 0)
  local function operand_index(X, bidx, r, c)
    local nx = #X.shape
    local idx = {}
    for d = 1, nx - 2 do
      local bi = bidx[d + nb - (nx - 2)]
      idx[d] = X.shape[d] == 1 and 1 or bi
    end
    idx[nx - 1], idx[nx] = r, c
    return ref.offset(X, idx)
  end
  for k = 1, #out.data do
    local idx = ref.unflatten(full, k)
    local i, j = idx[nb + 1], idx[nb + 2]
    local s = 0
    for q = 1, K do
      s = s + As.data[operand_index(As, idx, i, q)] * Bs.data[operand_index(Bs, idx, q, j)]
    end
    out.data[k] = s
  end
  local shape = {}
  for i = 1, nb do shape[#shape + 1] = batch[i] end
  if not a1 then shape[#shape + 1] = M end
  if not b1 then shape[#shape + 1] = N end
  return { shape = shape, data = out.data }
end

local function transpose_ref(A)
  local r, c = A.shape[1], A.shape[2]
  local T = ref.new({ c, r }, 0)
  for i = 1, r do for j = 1, c do ref.set(T, { j, i }, ref.get(A, { i, j })) end end
  return T
end

-- x (..., in) @ w (out, in)ᵀ + b.
local function linear_ref(X, W, B)
  local n = #X.shape
  local inf, outf = X.shape[n], W.shape[1]
  local rows = ref.numel(X.shape) / inf
  local shape = {}
  for i = 1, n - 1 do shape[i] = X.shape[i] end
  shape[n] = outf
  local Y = ref.new(shape, 0)
  for r = 0, rows - 1 do
    for o = 1, outf do
      local s = B and B.data[o] or 0
      for q = 1, inf do s = s + X.data[r * inf + q] * W.data[(o - 1) * inf + q] end
      Y.data[r * outf + o] = s
    end
  end
  return Y
end

local function mm_case(sa, sb, extra)
  local o = {
    fn = function(a, b) return grove.matmul(a, b) end,
    ref = matmul_ref,
    inputs = { sa, sb },
    fwd_tol = 1e-5,
    grad_tol = 1e-3,
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  spec.check_op(o)
end

spec.describe("matmul", function()
  spec.it("2-d @ 2-d", function() mm_case({ 3, 4 }, { 4, 5 }) end)

  spec.it("transposed operands (views, no copy)", function()
    mm_case(function() return grove.randn { 4, 3 }:t() end, { 4, 5 })
    mm_case({ 3, 4 }, function() return grove.randn { 5, 4 }:t() end)
    mm_case(function() return grove.randn { 4, 3 }:t() end, function() return grove.randn { 5, 4 }:t() end)
  end)

  spec.it("a @ aᵀ through the tape", function()
    spec.check_op { fn = function(a) return grove.matmul(a, a:t()) end, ref = function(A)
      return matmul_ref(A, transpose_ref(A)) end, inputs = { { 3, 4 } } }
  end)

  spec.it("strided and expanded operands", function()
    -- rows with a leading dimension larger than the row length
    mm_case(function() return grove.randn { 3, 7 }:narrow(2, 2, 4) end, { 4, 5 })
    -- neither layout usable: copied
    mm_case(function() return grove.randn { 3, 1 }:expand { 3, 4 } end, { 4, 2 })
    mm_case(function() return grove.randn { 3, 4, 2 }:permute { 3, 1, 2 } end, { 2, 4, 5 })
    mm_case(function() return grove.randn { 4, 2, 3 }:permute { 2, 3, 1 } end, { 4, 5 })
  end)

  spec.it("batched with broadcasting", function()
    mm_case({ 2, 3, 4, 5 }, { 5, 6 })
    mm_case({ 3, 4, 5 }, { 1, 5, 2 })
    mm_case({ 2, 3, 4 }, { 2, 4, 5 })
    mm_case({ 2, 1, 3, 4 }, { 5, 4, 2 })
    mm_case({ 3, 4 }, { 2, 4, 5 })
    mm_case(function() return grove.randn { 2, 4, 3 }:transpose(2, 3) end,
            function() return grove.randn { 2, 5, 4 }:transpose(2, 3) end)
  end)

  spec.it("1-d operands", function()
    mm_case({ 5 }, { 5 })
    mm_case({ 5 }, { 5, 3 })
    mm_case({ 3, 5 }, { 5 })
    mm_case({ 5 }, { 2, 5, 3 })
    mm_case({ 2, 3, 5 }, { 5 })
  end)

  spec.it("empty inner dimension gives zeros", function()
    local a, b = grove.randn { 3, 0 }, grove.randn { 0, 2 }
    local y = grove.matmul(a, b)
    spec.eq(y:size(1), 3); spec.eq(y:size(2), 2)
    for _, row in ipairs(y:tolist()) do for _, v in ipairs(row) do spec.eq(v, 0) end end
  end)

  spec.it("64x70 @ 70x33 matches float64, with its gradients", function()
    grove.manual_seed(7)
    local a = grove.randn { 64, 70 }:requires_grad_(true)
    local b = grove.randn { 70, 33 }:requires_grad_(true)
    local y = grove.matmul(a, b)
    local A, B = ref.from_tensor(a), ref.from_tensor(b)
    -- f32 products summed over 70 terms: a few ulps of the result's scale
    local e = spec.rel_error(ref.from_tensor(y), matmul_ref(A, B))
    spec.assert(e < 2e-6, "forward error " .. e)
    local w = grove.randn { 64, 33 }
    y:backward(w)
    local W = ref.from_tensor(w)
    local ga = spec.rel_error(ref.from_tensor(a.grad), matmul_ref(W, transpose_ref(B)))
    local gb = spec.rel_error(ref.from_tensor(b.grad), matmul_ref(transpose_ref(A), W))
    spec.assert(ga < 2e-6, "grad a error " .. ga)
    spec.assert(gb < 2e-6, "grad b error " .. gb)
  end)

  spec.it("rejects bad operands", function()
    spec.raises(function() grove.matmul(grove.randn { 2, 3 }, grove.randn { 4, 5 }) end,
                "matmul: [2,3] @ [4,5]: inner dimensions differ (3 vs 4)")
    spec.raises(function() grove.matmul(grove.randn { 2, 2 }:sum(), grove.randn { 2 }) end, "at least 1 dimension")
    spec.raises(function() grove.matmul(grove.randn { 3 }, grove.randn { 3, 3 }:sum()) end, "at least 1 dimension")
    spec.raises(function() grove.matmul(grove.randn { 2, 3 }:to("i64"), grove.randn { 3, 2 }) end, "f32")
    spec.raises(function() grove.matmul(grove.randn { 2, 3 }, grove.randn { 3, 2 }:to("i32")) end, "f32")
    spec.raises(function() grove.matmul(grove.randn { 2, 3, 4 }, grove.randn { 3, 4, 2 }) end,
                "batch dimensions cannot broadcast")
  end)
end)

spec.describe("linear", function()
  spec.it("with bias", function()
    spec.check_op { fn = function(x, w, b) return grove.linear(x, w, b) end, ref = linear_ref,
                    inputs = { { 4, 5 }, { 3, 5 }, { 3 } } }
  end)
  spec.it("without bias", function()
    spec.check_op { fn = function(x, w) return grove.linear(x, w) end, ref = linear_ref, inputs = { { 4, 5 }, { 3, 5 } } }
  end)
  spec.it("3-d and 1-d input", function()
    spec.check_op { fn = function(x, w, b) return grove.linear(x, w, b) end, ref = linear_ref,
                    inputs = { { 2, 4, 5 }, { 3, 5 }, { 3 } } }
    spec.check_op { fn = function(x, w, b) return grove.linear(x, w, b) end, ref = linear_ref,
                    inputs = { { 5 }, { 3, 5 }, { 3 } } }
  end)
  spec.it("strided input and transposed weight", function()
    spec.check_op { fn = function(x, w, b) return grove.linear(x, w, b) end, ref = linear_ref,
                    inputs = { function() return grove.randn { 4, 2, 5 }:transpose(1, 2) end,
                               function() return grove.randn { 5, 3 }:t() end, { 3 } } }
  end)
  spec.it("rejects bad shapes", function()
    spec.raises(function() grove.linear(grove.randn { 2, 5 }, grove.randn { 3, 4 }) end, "in features differ (5 vs 4)")
    spec.raises(function() grove.linear(grove.randn { 2, 5 }, grove.randn { 5 }) end, "must be 2-d")
    spec.raises(function() grove.linear(grove.randn { 2, 5 }, grove.randn { 3, 5 }, grove.randn { 4 }) end,
                "bias [4] does not match weight [3,5]")
    spec.raises(function() grove.linear(grove.randn { 2, 5 }:to("i64"), grove.randn { 3, 5 }) end, "f32")
  end)
end)

spec.describe("thread count", function()
  spec.it("gives the same bits on 1, 2 and 3 threads (GEMMs split by shape, not by thread count)", function()
    local g = grove.Generator(11)
    -- tall, wide and odd shapes above the split threshold, and a linear with bias
    local cases = {
      { grove.randn({ 300, 500 }, { generator = g }), grove.randn({ 500, 70 }, { generator = g }) },
      { grove.randn({ 70, 300 }, { generator = g }), grove.randn({ 300, 517 }, { generator = g }) },
      { grove.randn({ 4, 333, 96 }, { generator = g }), grove.randn({ 96, 200 }, { generator = g }) },
    }
    local w, b = grove.randn({ 192, 96 }, { generator = g }), grove.randn({ 192 }, { generator = g })
    local x = grove.randn({ 8, 256, 96 }, { generator = g })
    local before = grove.num_threads()
    local results = {}
    for threads = 1, 3 do
      grove.set_num_threads(threads)
      local r = {}
      for i, c in ipairs(cases) do r[i] = c[1]:matmul(c[2]) end
      r[#r + 1] = grove.linear(x, w, b)
      results[threads] = r
    end
    grove.set_num_threads(before)
    for threads = 2, 3 do
      for i, t in ipairs(results[threads]) do
        spec.eq((t - results[1][i]):abs():max():item(), 0, "case " .. i .. " on " .. threads .. " threads")
      end
    end
  end)
end)
