-- Elementwise ops: unary maps, broadcasting binary ops, scalar forms, pow
-- and clamp, forward against float64 references and gradients against
-- finite differences; NaN propagation, errors, thread independence.
local spec = require "spec"
local ref = require "ref"

local function positive(shape)
  return function() return (grove.rand(shape) + 0.5):detach() end
end

local function transposed(rows, cols)
  -- a non-contiguous input; check_op makes it a (still strided) leaf
  return function() return grove.randn{cols, rows}:t() end
end

local function sigmoid(x) return 1 / (1 + math.exp(-x)) end
local function tanh(x)
  if x > 20 then return 1 elseif x < -20 then return -1 end
  local e = math.exp(2 * x)
  return (e - 1) / (e + 1)
end

local unary = {
  neg = function(x) return -x end,
  exp = math.exp,
  log = math.log,
  sqrt = math.sqrt,
  rsqrt = function(x) return 1 / math.sqrt(x) end,
  abs = math.abs,
  relu = function(x) return x > 0 and x or 0 end,
  silu = function(x) return x * sigmoid(x) end,
  gelu = function(x) return 0.5 * x * (1 + tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ^ 3))) end,
  sigmoid = sigmoid,
  tanh = tanh,
}
local needs_positive = { log = true, sqrt = true, rsqrt = true }
local names = { "neg", "exp", "log", "sqrt", "rsqrt", "abs", "relu", "silu", "gelu", "sigmoid", "tanh" }

spec.describe("unary", function()
  for _, name in ipairs(names) do
    local f = unary[name]
    spec.it(name .. " matches float64 and finite differences", function()
      spec.check_op{
        fn = function(x) return x[name](x) end,
        ref = function(X) return ref.map(X, f) end,
        inputs = { needs_positive[name] and positive{3, 4} or {3, 4} },
      }
    end)
    spec.it(name .. " on a transposed input", function()
      local input = transposed(3, 5)
      if needs_positive[name] then input = function() return (grove.rand{5, 3} + 0.5):t() end end
      spec.check_op{
        fn = function(x) return x[name](x) end,
        ref = function(X) return ref.map(X, f) end,
        inputs = { input },
      }
    end)
  end
  spec.it("large inputs (threaded path) match float64", function()
    spec.check_op{
      fn = function(x) return x:gelu() end,
      ref = function(X) return ref.map(X, unary.gelu) end,
      inputs = { {300, 200} },
      no_backward = true,
    }
  end)
  spec.it("-x is neg", function()
    local x = grove.randn{4}
    spec.eq(((-x) + x):abs():sum():item(), 0)
  end)
  spec.it("propagates NaN without an error", function()
    local x = grove.tensor{0 / 0, 1}
    for _, name in ipairs(names) do
      local y = x[name](x)
      local v = y[1]
      spec.assert(v ~= v, name .. " of NaN should be NaN")
    end
    local c = x:clamp(-1, 1)
    spec.assert(c[1] ~= c[1], "clamp of NaN should be NaN")
  end)
  spec.it("rejects non-f32 tensors", function()
    spec.raises(function() grove.zeros({2}, {dtype = "i32"}):exp() end, "exp: expected an f32 tensor")
    spec.raises(function() grove.zeros({2}, {dtype = "i64"}):relu() end, "relu: expected an f32 tensor")
  end)
end)

local binary = {
  { "add", function(a, b) return a + b end, function(x, y) return x + y end },
  { "sub", function(a, b) return a - b end, function(x, y) return x - y end },
  { "mul", function(a, b) return a * b end, function(x, y) return x * y end },
  { "div", function(a, b) return a / b end, function(x, y) return x / y end },
}
local layouts = {
  { "same shape", {2, 3}, {2, 3} },
  { "{2,3} and {3}", {2, 3}, {3} },
  { "{3} and {2,3}", {3}, {2, 3} },
  { "{4,1,3} and {2,1}", {4, 1, 3}, {2, 1} },
  { "{2,1} and {1,3}", {2, 1}, {1, 3} },
  { "0-d and {2,3}", {}, {2, 3} },
  { "{2,3} and 0-d", {2, 3}, {} },
}

spec.describe("binary", function()
  for _, op in ipairs(binary) do
    local name, fn, f = op[1], op[2], op[3]
    for _, l in ipairs(layouts) do
      spec.it(name .. " " .. l[1], function()
        local b = l[3]
        if name == "div" then b = positive(l[3]) end
        spec.check_op{
          fn = fn,
          ref = function(A, B) return ref.zip(A, B, f) end,
          inputs = { l[2], b },
        }
      end)
    end
    spec.it(name .. " with transposed inputs", function()
      spec.check_op{
        fn = fn,
        ref = function(A, B) return ref.zip(A, B, f) end,
        inputs = { transposed(3, 4), name == "div" and function() return (grove.rand{4, 3} + 0.5):t() end
                   or transposed(3, 4) },
      }
    end)
    spec.it(name .. " of a transposed input with a broadcast row", function()
      spec.check_op{
        fn = fn,
        ref = function(A, B) return ref.zip(A, B, f) end,
        inputs = { transposed(4, 5), name == "div" and positive{1, 5} or {1, 5} },
      }
    end)
    spec.it(name .. " through grove." .. name, function()
      local a, b = grove.randn{2, 3}, grove.randn{3}
      local d = (grove[name](a, b) - fn(a, b)):abs():max():item()
      spec.eq(d, 0)
    end)
  end
  spec.it("large broadcast (threaded path) matches float64", function()
    spec.check_op{
      fn = function(a, b) return a * b end,
      ref = function(A, B) return ref.zip(A, B, function(x, y) return x * y end) end,
      inputs = { {300, 200}, {200} },
      no_backward = true,
    }
  end)
  spec.it("a tensor used twice gets both gradients", function()
    spec.check_op{
      fn = function(a) return a * a + a end,
      ref = function(A) return ref.map(A, function(x) return x * x + x end) end,
      inputs = { {3, 4} },
    }
  end)
  spec.it("rejects shapes that do not broadcast", function()
    spec.raises(function() return grove.zeros{2, 3} + grove.zeros{4, 5} end,
      "add: [2,3] + [4,5]: shapes cannot broadcast")
    spec.raises(function() return grove.zeros{2, 3} - grove.zeros{2} end, "sub: [2,3] - [2]")
    spec.raises(function() return grove.zeros{2, 3} * grove.zeros{3, 3} end, "mul: [2,3] * [3,3]")
    spec.raises(function() return grove.zeros{2, 3} / grove.zeros{4} end, "div: [2,3] / [4]")
  end)
  spec.it("rejects non-f32 tensors", function()
    local i = grove.zeros({2}, {dtype = "i32"})
    spec.raises(function() return i + grove.zeros{2} end, "add: expected an f32 tensor, got i32")
    spec.raises(function() return grove.zeros{2} * i end, "mul: expected an f32 tensor, got i32")
    spec.raises(function() return i * 2 end, "mul: expected an f32 tensor")
  end)
  spec.it("empty tensors give empty results", function()
    local z = grove.zeros{0, 3}
    local y = z + grove.ones{3}
    spec.eq(y:numel(), 0)
    spec.eq(#y:shape(), 2)
    spec.eq((z * 2):exp():clamp(0, 1):numel(), 0)
  end)
  spec.it("division by zero gives inf and NaN, not an error", function()
    local y = grove.tensor{1, 0} / grove.tensor{0, 0}
    spec.eq(y[1], math.huge)
    spec.assert(y[2] ~= y[2])
  end)
end)

spec.describe("scalar forms", function()
  local cases = {
    { "a + 2", function(a) return a + 2 end, function(x) return x + 2 end },
    { "2 + a", function(a) return 2 + a end, function(x) return 2 + x end },
    { "a - 1.5", function(a) return a - 1.5 end, function(x) return x - 1.5 end },
    { "1.5 - a", function(a) return 1.5 - a end, function(x) return 1.5 - x end },
    { "a * 3", function(a) return a * 3 end, function(x) return x * 3 end },
    { "-0.5 * a", function(a) return -0.5 * a end, function(x) return -0.5 * x end },
    { "a / 4", function(a) return a / 4 end, function(x) return x / 4 end },
    { "3 / a", function(a) return 3 / a end, function(x) return 3 / x end, true },
    { "pow 2", function(a) return a:pow(2) end, function(x) return x * x end },
    { "pow 3", function(a) return a:pow(3) end, function(x) return x ^ 3 end },
    { "pow 0", function(a) return a:pow(0) end, function() return 1 end },
    { "pow 0.5", function(a) return a:pow(0.5) end, math.sqrt, true },
    { "pow -1.5", function(a) return a:pow(-1.5) end, function(x) return x ^ -1.5 end, true },
  }
  for _, c in ipairs(cases) do
    spec.it(c[1], function()
      spec.check_op{ fn = c[2], ref = function(A) return ref.map(A, c[3]) end,
                     inputs = { c[4] and positive{3, 4} or {3, 4} } }
    end)
    spec.it(c[1] .. " on a transposed input", function()
      spec.check_op{ fn = c[2], ref = function(A) return ref.map(A, c[3]) end,
                     inputs = { c[4] and function() return (grove.rand{4, 3} + 0.5):t() end or transposed(3, 4) } }
    end)
  end
  spec.it("pow rejects a non-number exponent", function()
    spec.raises(function() grove.randn{2}:pow(grove.randn{2}) end, "pow: exponent must be a number")
  end)
end)

spec.describe("clamp", function()
  local function clampf(lo, hi)
    return function(x)
      if lo and x < lo then return lo end
      if hi and x > hi then return hi end
      return x
    end
  end
  local bounds = { { -0.5, 0.5 }, { nil, 0.3 }, { -0.2, nil }, { 1, 1 } }
  for _, b in ipairs(bounds) do
    spec.it(string.format("clamp(%s, %s)", tostring(b[1]), tostring(b[2])), function()
      spec.check_op{
        fn = function(a) return a:clamp(b[1], b[2]) end,
        ref = function(A) return ref.map(A, clampf(b[1], b[2])) end,
        inputs = { {4, 5} },
      }
    end)
  end
  spec.it("passes the gradient where lo <= x <= hi, including the bounds", function()
    local x = grove.tensor{-2, -1, 0, 1, 2}:requires_grad_(true)
    x:clamp(-1, 1):sum():backward()
    local g = x.grad:tolist()
    local want = {0, 1, 1, 1, 0}
    for i = 1, 5 do spec.eq(g[i], want[i]) end
  end)
  spec.it("rejects lo > hi", function()
    spec.raises(function() grove.randn{3}:clamp(1, -1) end, "clamp: lower bound 1 is above upper bound -1")
    spec.raises(function() grove.randn{3}:clamp(0 / 0, 1) end, "clamp: NaN bound")
  end)
  spec.it("rejects non-f32 tensors", function()
    spec.raises(function() grove.zeros({2}, {dtype = "i32"}):clamp(0, 1) end, "clamp: expected an f32 tensor")
  end)
end)

spec.describe("threads", function()
  spec.it("results do not depend on the thread count", function()
    local n0 = grove.num_threads()
    local a, b = grove.randn{257, 301}, grove.randn{301}
    local function run() return ((a * b):gelu() / 3):tolist() end
    grove.set_num_threads(1)
    local one = run()
    grove.set_num_threads(4)
    local four = run()
    grove.set_num_threads(n0)
    for i = 1, #one do
      for j = 1, #one[i] do
        if one[i][j] ~= four[i][j] then error("differs at " .. i .. "," .. j) end
      end
    end
  end)
end)

spec.describe("memory", function()
  spec.it("ops, backward and errors leave no tensors or nodes behind", function()
    local function work()
      local a = grove.randn{3, 4}:requires_grad_(true)
      local b = grove.randn{4}:requires_grad_(true)
      local c = grove.randn{4, 3}:t():detach():requires_grad_(true)
      local y = ((a * b + c) / (b:abs() + 1)):gelu():exp():clamp(-1, 2):pow(2) * 2 - 1
      y = (1 - y):relu() + (2 / (y:sigmoid() + 1)):log():silu():tanh():neg()
      y:sum():backward()
      pcall(function() return a + grove.randn{5} end)
      pcall(function() return a:clamp(1, 0) end)
    end
    spec.no_leaks(work)
  end)
end)

spec.describe("lincomb_into", function()
  spec.it("writes the combination into an existing tensor, which may be a term", function()
    grove.manual_seed(4)
    local a, b = grove.randn{ 5, 7 }, grove.randn{ 5, 7 }
    local want = grove.lincomb({ a, b }, { 0.9, 0.1 })
    local dst = a:clone()
    spec.assert(grove.lincomb_into(dst, { dst, b }, { 0.9, 0.1 }) == dst, "returns dst")
    spec.eq(dst:sub(want):abs():max():item(), 0, "the same bits as lincomb, in place")
    local other = grove.zeros{ 5, 7 }
    grove.lincomb_into(other, { a, b, a }, { 1, 2, -1 })
    spec.eq(other:sub(grove.lincomb({ a, b, a }, { 1, 2, -1 })):abs():max():item(), 0, "three terms, as lincomb")
  end)

  spec.it("refuses what it cannot write safely", function()
    local a = grove.randn{ 4, 6 }
    spec.raises(function() grove.lincomb_into(a:t(), { a:t() }, { 1 }) end, "is not contiguous")
    spec.raises(function() grove.lincomb_into(a:narrow(1, 1, 2), { a:narrow(1, 2, 2) }, { 1 }) end,
                "term 1 shares memory with the destination without being it")
    spec.raises(function() grove.lincomb_into(grove.zeros{ 4, 5 }, { a }, { 1 }) end,
                "the destination is [4,5], the terms [4,6]")
    local w = grove.zeros({ 4, 6 }):requires_grad_()
    spec.raises(function() grove.lincomb_into(w, { a }, { 1 }) end, "the destination requires grad")
    spec.raises(function() grove.lincomb_into(a, { a, a, a, a, a }, { 1, 1, 1, 1, 1 }) end, "5 tensors given (1 to 4)")
  end)
end)
