-- Comparisons (eq ne lt le gt ge), logic (logical_and/or/not) and the any /
-- all reductions: u8 masks against float64 references, with broadcasting,
-- scalars on either side, ties and NaN; masks feeding where and
-- masked_fill (whose gradients are checked by finite differences); errors.
local spec = require "spec"
local ref = require "ref"

local cmp = {
  eq = function(x, z) return x == z end,
  ne = function(x, z) return x ~= z end,
  lt = function(x, z) return x < z end,
  le = function(x, z) return x <= z end,
  gt = function(x, z) return x > z end,
  ge = function(x, z) return x >= z end,
}
local names = { "eq", "ne", "lt", "le", "gt", "ge" }
local function b01(v) return v and 1 or 0 end

-- Small integers from a seed, so that ties are frequent and every value is
-- exact in f32.
local function ints_tensor(shape, lo, hi, seed)
  grove.manual_seed(seed or 7)
  local r = grove.rand(shape):view{ -1 }:tolist()
  for i = 1, #r do r[i] = lo + math.floor(r[i] * (hi - lo + 1)) end
  return grove.tensor(r):view(shape)
end

local function mask_ref(a, b, f)
  return ref.zip(a, b, function(x, z) return b01(f(x, z)) end)
end

spec.describe("compare", function()
  for _, name in ipairs(names) do
    spec.it(name .. " broadcasts [3,1,4] against [5,1] like float64", function()
      local a, b = ints_tensor({ 3, 1, 4 }, -2, 2, 1), ints_tensor({ 5, 1 }, -2, 2, 2)
      local m = a[name](a, b)
      spec.eq(m:dtype(), "u8")
      local got, want = ref.from_tensor(m), mask_ref(ref.from_tensor(a), ref.from_tensor(b), cmp[name])
      spec.eq(table.concat(got.shape, ","), "3,5,4")
      spec.eq(spec.rel_error(got, want), 0, name)
    end)
    spec.it(name .. " against a number on either side", function()
      local a = ints_tensor({ 4, 6 }, -3, 3, 3)
      local A = ref.from_tensor(a)
      local right = ref.from_tensor(a[name](a, 1))
      local left = ref.from_tensor(grove[name](1, a))
      for i = 1, #A.data do
        spec.eq(right.data[i], b01(cmp[name](A.data[i], 1)), name .. " x op 1")
        spec.eq(left.data[i], b01(cmp[name](1, A.data[i])), name .. " 1 op x")
      end
    end)
  end
  spec.it("a transposed input reads through its strides", function()
    local a = ints_tensor({ 5, 3 }, -2, 2, 4)
    local b = ints_tensor({ 3, 5 }, -2, 2, 5)
    local got = ref.from_tensor(a:t():lt(b))
    local want = mask_ref(ref.from_tensor(a:t():contiguous()), ref.from_tensor(b), cmp.lt)
    spec.eq(spec.rel_error(got, want), 0)
  end)
  spec.it("NaN is unequal to everything and ordered against nothing", function()
    local x = grove.tensor{ 0 / 0, 1, 0 / 0 }
    local y = grove.tensor{ 0 / 0, 0 / 0, 1 }
    spec.eq(table.concat(x:eq(y):tolist(), ","), "0,0,0")
    spec.eq(table.concat(x:ne(y):tolist(), ","), "1,1,1")
    for _, name in ipairs{ "lt", "le", "gt", "ge" } do
      spec.eq(table.concat(x[name](x, y):tolist(), ","), "0,0,0", name)
    end
  end)
  spec.it("large inputs (threaded path) match float64", function()
    local a, b = ints_tensor({ 300, 257 }, -4, 4, 8), ints_tensor({ 257 }, -4, 4, 9)
    local got = ref.from_tensor(a:ge(b))
    spec.eq(spec.rel_error(got, mask_ref(ref.from_tensor(a), ref.from_tensor(b), cmp.ge)), 0)
  end)
  spec.it("integer tensors compare exactly (token ids against a pad id)", function()
    local ids = grove.tensor({ 5, 0, 16777217, 0 }):to("i64")
    spec.eq(table.concat(ids:ne(0):tolist(), ","), "1,0,1,0")
  end)
  spec.it("masks are off the tape", function()
    local x = grove.randn{ 3 }:requires_grad_(true)
    local m = x:gt(0)
    spec.eq(m.requires_grad, false)
    spec.eq(m:grad_fn(), nil)
  end)
  spec.it("shapes that do not broadcast are refused, naming both", function()
    spec.raises(function() grove.randn{ 2, 3 }:lt(grove.randn{ 4 }) end, "lt: [2,3] < [4]: shapes cannot broadcast")
  end)
end)

spec.describe("logical", function()
  local a = grove.tensor({ 0, 1, 0, 1 }):to("u8")
  local b = grove.tensor({ 0, 0, 1, 1 }):to("u8")
  spec.it("and, or, not follow their truth tables", function()
    spec.eq(table.concat(a:logical_and(b):tolist(), ","), "0,0,0,1")
    spec.eq(table.concat(a:logical_or(b):tolist(), ","), "0,1,1,1")
    spec.eq(table.concat(a:logical_not():tolist(), ","), "1,0,1,0")
  end)
  spec.it("any nonzero byte is true, and masks broadcast", function()
    local m = grove.tensor({ { 0, 7 }, { 255, 0 } }):to("u8")
    local col = grove.tensor({ { 1 }, { 0 } }):to("u8")
    spec.eq(table.concat(m:logical_and(col):view{ -1 }:tolist(), ","), "0,1,0,0")
    spec.eq(table.concat(m:logical_or(col):view{ -1 }:tolist(), ","), "1,1,1,0")
  end)
  spec.it("combines comparisons: 0 < x <= 1", function()
    local x = grove.tensor{ -1, 0, 0.5, 1, 2 }
    spec.eq(table.concat(x:gt(0):logical_and(x:le(1)):tolist(), ","), "0,0,1,1,0")
  end)
  spec.it("refuses f32 inputs, saying to compare first", function()
    spec.raises(function() grove.randn{ 2 }:logical_and(b) end, "logical_and: first mask must be a u8 mask")
    spec.raises(function() grove.randn{ 2 }:logical_not() end, "logical_not: input must be a u8 mask")
  end)
end)

spec.describe("any / all", function()
  local function reduce_ref(M, dim, all)
    -- M: a ref array (rows, cols); dim 1 or 2
    local rows, cols = M.shape[1], M.shape[2]
    local n = dim == 1 and cols or rows
    local out = ref.new({ n }, 0)
    for i = 1, n do
      local v = all and 1 or 0
      for j = 1, (dim == 1 and rows or cols) do
        local x = dim == 1 and ref.get(M, { j, i }) or ref.get(M, { i, j })
        if all and x == 0 then v = 0 end
        if not all and x ~= 0 then v = 1 end
      end
      out.data[i] = v
    end
    return out
  end
  local m = ints_tensor({ 6, 5 }, -1, 1, 11):ne(0)
  for _, op in ipairs{ "any", "all" } do
    for dim = 1, 2 do
      spec.it(op .. " over dimension " .. dim .. " matches the reference", function()
        local got = ref.from_tensor(m[op](m, dim))
        spec.eq(spec.rel_error(got, reduce_ref(ref.from_tensor(m), dim, op == "all")), 0)
      end)
    end
  end
  spec.it("everything, keepdim, and a transposed mask", function()
    local rows = grove.tensor({ { 1, 1 }, { 0, 1 } }):to("u8")
    spec.eq(rows:any():item(), 1)
    spec.eq(rows:all():item(), 0)
    spec.eq(table.concat(rows:all(2, true):shape(), ","), "2,1")
    spec.eq(table.concat(rows:t():all(1):tolist(), ","), "1,0")
  end)
  spec.it("an empty reduction: any is 0, all is 1", function()
    local e = grove.zeros({ 3, 0 }):gt(0)
    spec.eq(table.concat(e:any(2):tolist(), ","), "0,0,0")
    spec.eq(table.concat(e:all(2):tolist(), ","), "1,1,1")
  end)
  spec.it("refuses an f32 input", function()
    spec.raises(function() grove.randn{ 2 }:any() end, "any: expected a u8 mask")
  end)
end)

spec.describe("masks select", function()
  spec.it("where(x > 0, x, 0.1 x) matches float64 and finite differences", function()
    spec.check_op{
      fn = function(x) return grove.where(x:gt(0), x, x * 0.1) end,
      ref = function(X) return ref.map(X, function(v) return v > 0 and v or 0.1 * v end) end,
      inputs = { { 4, 7 } },
    }
  end)
  spec.it("masked_fill with a broadcast comparison matches float64 and finite differences", function()
    local limit = grove.tensor{ { 0.5 }, { -0.5 }, { 0 } }
    spec.check_op{
      fn = function(x) return x:masked_fill(x:gt(limit), -1) end,
      ref = function(X)
        local L = ref.from_tensor(limit)
        return ref.zip(X, L, function(v, l) return v > l and -1 or v end)
      end,
      inputs = { { 3, 6 } },
    }
  end)
end)
