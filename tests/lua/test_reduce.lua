-- Reductions: sum, mean, max, min over single, several and all dimensions
-- (keepdim, negative dims, strided inputs, the threaded paths), max/min with
-- positions, argmax/argmin, the gradient of broadcasting, empty tensors and
-- errors.
local spec = require "spec"
local ref = require "ref"

local function list_eq(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- Float64 reduction of A over dims (1-based, negatives from the end; nil =
-- all). Returns values and, for max/min, the 0-based row-major positions of
-- the first extreme within the reduced dimensions.
local function ref_reduce(A, kind, dims, keepdim)
  local nd = #A.shape
  local mask = {}
  if dims == nil then for d = 1, nd do mask[d] = true end
  else
    for _, d in ipairs(dims) do mask[d < 0 and nd + d + 1 or d] = true end
  end
  local oshape, kept, red = {}, {}, {}
  for d = 1, nd do
    if mask[d] then
      red[#red + 1] = d
      if keepdim then oshape[#oshape + 1] = 1 end
    else
      kept[#kept + 1] = d
      oshape[#oshape + 1] = A.shape[d]
    end
  end
  local rshape = {}
  for i, d in ipairs(red) do rshape[i] = A.shape[d] end
  local count = ref.numel(rshape)
  local kshape = {}
  for i, d in ipairs(kept) do kshape[i] = A.shape[d] end
  local nout = ref.numel(kshape)
  local acc, pos = {}, {}
  for k = 1, #A.data do
    local idx = ref.unflatten(A.shape, k)
    local o, r = 0, 0
    for _, d in ipairs(kept) do o = o * A.shape[d] + idx[d] - 1 end
    for _, d in ipairs(red) do r = r * A.shape[d] + idx[d] - 1 end
    o = o + 1
    local v = A.data[k]
    if kind == "sum" or kind == "mean" then acc[o] = (acc[o] or 0) + v
    elseif acc[o] == nil or (kind == "max" and v > acc[o]) or (kind == "min" and v < acc[o]) then
      acc[o], pos[o] = v, r
    end
  end
  local out = ref.new(oshape, 0)
  local idx = ref.new(oshape, 0)
  for o = 1, nout do
    local v = acc[o] or 0
    if kind == "mean" then v = v / count end
    out.data[o] = v
    idx.data[o] = pos[o] or 0
  end
  return out, idx
end

local function transposed(rows, cols)
  return function() return grove.randn{cols, rows}:t() end
end

local dim_cases = {
  { "dim 1", {1} }, { "dim 2", {2} }, { "dim 3", {3} }, { "dim -1", {-1} }, { "dim -3", {-3} },
  { "dims {1,3}", {1, 3} }, { "dims {3,1}", {3, 1} }, { "dims {-1,-2}", {-1, -2} },
  { "dims {1,2,3}", {1, 2, 3} }, { "all", nil },
}

for _, kind in ipairs{ "sum", "mean", "max", "min" } do
  spec.describe(kind, function()
    for _, c in ipairs(dim_cases) do
      for _, keep in ipairs{ false, true } do
        if keep == false or c[2] ~= nil then
          spec.it(c[1] .. (keep and " keepdim" or ""), function()
            spec.check_op{
              -- a table of dims selects grove_reduce also for max/min
              fn = function(x) return x[kind](x, c[2], keep) end,
              ref = function(X) return (ref_reduce(X, kind, c[2], keep)) end,
              inputs = { {2, 3, 4} },
            }
          end)
        end
      end
    end
    spec.it("a single number dim", function()
      spec.check_op{
        fn = function(x) return (x[kind](x, 2)) end,
        ref = function(X) return (ref_reduce(X, kind, {2}, false)) end,
        inputs = { {3, 4} },
      }
    end)
    for _, d in ipairs{ {1}, {2}, {1, 2} } do
      spec.it("transposed input over {" .. table.concat(d, ",") .. "}", function()
        spec.check_op{
          fn = function(x) return x[kind](x, d) end,
          ref = function(X) return (ref_reduce(X, kind, d, false)) end,
          inputs = { transposed(4, 5) },
        }
      end)
    end
    spec.it("a permuted 3-d input over {1,3}", function()
      spec.check_op{
        fn = function(x) return x[kind](x, {1, 3}) end,
        ref = function(X) return (ref_reduce(X, kind, {1, 3}, false)) end,
        inputs = { function() return grove.randn{4, 2, 3}:permute{2, 3, 1} end },
      }
    end)
    -- shapes that take the column path with several chunks, the per-row
    -- path with many outputs, and the blocked full reduction
    local large = { { {2, 5, 600}, {2} }, { {700, 4}, {1} }, { {40, 900}, {2} }, { {300, 200}, nil },
                    { {200, 300}, {1, 2} } }
    for _, l in ipairs(large) do
      spec.it("large " .. table.concat(l[1], "x") .. " over " .. (l[2] and table.concat(l[2], ",") or "all"), function()
        spec.check_op{
          fn = function(x) return x[kind](x, l[2]) end,
          ref = function(X) return (ref_reduce(X, kind, l[2], false)) end,
          inputs = { l[1] },
          no_backward = true,
        }
      end)
    end
    spec.it("rejects non-f32 tensors", function()
      spec.raises(function() grove.zeros({2}, {dtype = "i32"})[kind](grove.zeros({2}, {dtype = "i32"})) end,
        kind .. ": expected an f32 tensor, got i32")
    end)
    spec.it("rejects repeated and out-of-range dims", function()
      local x = grove.randn{2, 3}
      spec.raises(function() return x[kind](x, {1, 1}) end, kind .. ": dimension 1 repeated in dimensions [1,1]")
      spec.raises(function() return x[kind](x, {1, -2}) end, "repeated")
      spec.raises(function() return x[kind](x, {3}) end, "out of range")
      spec.raises(function() return x[kind](x, {-3}) end, "out of range")
    end)
  end)
end

spec.describe("max/min with positions", function()
  for _, kind in ipairs{ "max", "min" } do
    for _, d in ipairs{ 1, 2, 3, -1 } do
      for _, keep in ipairs{ false, true } do
        spec.it(kind .. " over dim " .. d .. (keep and " keepdim" or ""), function()
          spec.check_op{
            fn = function(x) return (x[kind](x, d, keep)) end,
            ref = function(X) return (ref_reduce(X, kind, {d}, keep)) end,
            inputs = { {2, 3, 4} },
          }
          local x = grove.randn{2, 3, 4}
          local v, i = x[kind](x, d, keep)
          spec.eq(i:dtype(), "i64")
          local rv, ri = ref_reduce(ref.from_tensor(x), kind, {d}, keep)
          spec.assert(list_eq(i:shape(), ri.shape), "indices shape")
          spec.assert(list_eq(v:shape(), rv.shape), "values shape")
          local got = ref.from_tensor(i)
          for k = 1, #ri.data do spec.eq(got.data[k], ri.data[k], "index " .. k) end
        end)
      end
      spec.it(kind .. " positions of a large strided input", function()
        local x = grove.randn{300, 40}:t()
        local _, i = x[kind](x, 2)
        local _, ri = ref_reduce(ref.from_tensor(x), kind, {2}, false)
        local got = ref.from_tensor(i)
        for k = 1, #ri.data do spec.eq(got.data[k], ri.data[k], "index " .. k) end
      end)
    end
  end
  spec.it("ties: the first position gets the value's index and the whole gradient", function()
    local x = grove.tensor{1, 3, 3, 2}:requires_grad_(true)
    x:max():backward()
    spec.assert(list_eq(x.grad:tolist(), {0, 1, 0, 0}))
    local y = grove.tensor{{3, 3}, {1, 1}}:requires_grad_(true)
    local v, i = y:min(2)
    spec.assert(list_eq(i:tolist(), {0, 0}))
    v:sum():backward()
    local g = y.grad:tolist()
    spec.assert(list_eq(g[1], {1, 0}) and list_eq(g[2], {1, 0}))
  end)
  spec.it("NaN is the extreme and propagates", function()
    local x = grove.tensor{1, 0 / 0, 5}
    local m = x:max():item()
    spec.assert(m ~= m, "max of NaN")
    spec.eq(x:argmax():item(), 1)
    spec.eq(x:argmin():item(), 1)
  end)
end)

spec.describe("argmax/argmin", function()
  spec.it("flattened gives a 0-d i64 flat index", function()
    local x = grove.randn{3, 4}
    local a = x:argmax()
    spec.eq(a:dim(), 0)
    spec.eq(a:dtype(), "i64")
    local _, ri = ref_reduce(ref.from_tensor(x), "max", nil, false)
    spec.eq(a:item(), ri.data[1])
    local _, rn = ref_reduce(ref.from_tensor(x), "min", nil, false)
    spec.eq(x:argmin():item(), rn.data[1])
  end)
  for _, d in ipairs{ 1, 2, -1, -2 } do
    spec.it("over dim " .. d, function()
      local x = grove.randn{3, 4}
      for _, kind in ipairs{ "max", "min" } do
        local a = x["arg" .. kind](x, d)
        local _, ri = ref_reduce(ref.from_tensor(x), kind, {d}, false)
        spec.assert(list_eq(a:shape(), ri.shape), "shape")
        local got = ref.from_tensor(a)
        for k = 1, #ri.data do spec.eq(got.data[k], ri.data[k]) end
      end
    end)
  end
  spec.it("keepdim", function()
    local x = grove.randn{3, 4}
    spec.assert(list_eq(x:argmax(2, true):shape(), {3, 1}))
    spec.assert(list_eq(x:argmin(nil, true):shape(), {1, 1}))
  end)
  spec.it("integer tensors", function()
    local x = grove.tensor({4, 9, -2, 9}, {dtype = "i64"})
    spec.eq(x:argmax():item(), 1)
    spec.eq(x:argmin():item(), 2)
  end)
  spec.it("rejects an empty tensor and bad dims", function()
    spec.raises(function() grove.zeros{0, 3}:argmax() end, "argmax: empty tensor [0,3] has no maximum")
    spec.raises(function() grove.randn{2, 3}:argmin(3) end, "out of range")
    spec.raises(function() grove.randn{2, 3}:argmax(-3) end, "out of range")
  end)
end)

spec.describe("empty and 0-d tensors", function()
  spec.it("sum of nothing is 0, mean is NaN", function()
    local z = grove.zeros{0, 3}
    spec.eq(z:sum():item(), 0)
    local m = z:mean():item()
    spec.assert(m ~= m, "mean of nothing")
    local s = z:sum(1)
    spec.assert(list_eq(s:shape(), {3}))
    spec.assert(list_eq(s:tolist(), {0, 0, 0}))
    local mm = z:mean(1):tolist()
    spec.assert(mm[1] ~= mm[1])
    spec.assert(list_eq(z:sum(2):shape(), {0}))
  end)
  spec.it("max and min of nothing are errors", function()
    spec.raises(function() grove.zeros{0, 3}:max() end, "max: empty tensor [0,3] has no maximum")
    spec.raises(function() grove.zeros{0, 3}:min() end, "min: empty tensor [0,3] has no minimum")
    spec.raises(function() grove.zeros{0, 3}:max(1) end, "max:")
    spec.assert(list_eq(grove.zeros{0, 3}:max(2):shape(), {0}))
  end)
  spec.it("0-d tensors reduce to themselves", function()
    local x = grove.tensor(2.5)
    spec.eq(x:sum():item(), 2.5)
    spec.eq(x:mean():item(), 2.5)
    spec.eq(x:max():item(), 2.5)
    spec.eq(x:sum(1):item(), 2.5)
  end)
  spec.it("the all-dims keepdim shape is all ones", function()
    local x = grove.randn{2, 3, 4}
    spec.assert(list_eq(x:sum({1, 2, 3}, true):shape(), {1, 1, 1}))
  end)
end)

spec.describe("sum_to (gradients of broadcasting)", function()
  spec.it("expand sums the gradient back", function()
    spec.check_op{
      fn = function(x) return x:expand{4, 2, 3} end,
      ref = function(X)
        local r = ref.new({4, 2, 3}, 0)
        for k = 1, #r.data do
          local idx = ref.unflatten({4, 2, 3}, k)
          r.data[k] = ref.get(X, {1, idx[3]})
        end
        return r
      end,
      inputs = { {1, 3} },
    }
  end)
  spec.it("a {3,1} operand of a {2,3,4} sum", function()
    spec.check_op{
      fn = function(a, b) return a + b end,
      ref = function(A, B) return ref.zip(A, B, function(x, y) return x + y end) end,
      inputs = { {2, 3, 4}, {3, 1} },
    }
  end)
end)

spec.describe("threads", function()
  spec.it("reductions do not depend on the thread count", function()
    local n0 = grove.num_threads()
    local x = grove.randn{513, 257}
    local xt = x:t()
    local function run()
      local r = {}
      for _, kind in ipairs{ "sum", "mean", "max", "min" } do
        r[#r + 1] = x[kind](x):item()
        r[#r + 1] = x[kind](x, {1}):tolist()
        r[#r + 1] = x[kind](x, {2}):tolist()
        r[#r + 1] = xt[kind](xt, {2}):tolist()
      end
      return r
    end
    grove.set_num_threads(1)
    local one = run()
    grove.set_num_threads(4)
    local four = run()
    grove.set_num_threads(n0)
    for i = 1, #one do
      if type(one[i]) == "number" then spec.eq(four[i], one[i], "result " .. i)
      else
        for j = 1, #one[i] do spec.eq(four[i][j], one[i][j], "result " .. i .. " element " .. j) end
      end
    end
  end)
end)

spec.describe("memory", function()
  spec.it("reductions, backward and errors leave no tensors or nodes behind", function()
    local function work()
      local a = grove.randn{3, 4, 5}:requires_grad_(true)
      local v, i = a:max(2)
      local y = v:sum() + a:sum({1, 3}):mean() + a:min({1, 2}, true):sum() + a:mean(-1):sum()
      y:backward()
      local _ = a:argmax(), a:argmin(2), i
      pcall(function() return a:sum({1, 1}) end)
      pcall(function() return grove.zeros{0, 2}:max() end)
    end
    spec.no_leaks(work)
  end)
end)
