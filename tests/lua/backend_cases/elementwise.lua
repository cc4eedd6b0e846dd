-- Parity cases (CPU vs CUDA) of the elementwise family: every unary map and
-- its derivative, broadcasting binary ops (strided and transposed operands),
-- scalar forms on either side, pow (its special exponents) and clamp (one-
-- and two-sided, with inputs exactly on the bounds), and lincomb. Maps with
-- a restricted domain (log, sqrt, rsqrt, fractional pow, division) get
-- inputs moved away from it inside fn, so both devices see the same values.
local grove = grove or require "grove"

-- |x| + c: positive inputs for log, sqrt, rsqrt, pow and divisors.
local function pos(x, c) return x:abs() + (c or 0.25) end

-- Exactly representable values on and around the clamp bounds -0.5 and 0.75.
local function on_bounds()
  return grove.tensor { { -2, -0.5, -0.25, 0, 0.5, 0.75, 1, 3 }, { 0.75, -0.5, 0.125, -1, 2, -0.5, 0.75, 0.25 } }
end

local cases = {}
local function add(c) cases[#cases + 1] = c end

-- unary maps, each on a matrix off multiples of 32 and on a long vector
local unary = {
  neg = function(x) return -x end,
  exp = function(x) return x:exp() end,
  log = function(x) return pos(x):log() end,
  sqrt = function(x) return pos(x):sqrt() end,
  rsqrt = function(x) return pos(x):rsqrt() end,
  abs = function(x) return x:abs() end,
  relu = function(x) return x:relu() end,
  silu = function(x) return (x * 3):silu() end,
  gelu = function(x) return (x * 3):gelu() end,
  sigmoid = function(x) return (x * 4):sigmoid() end,
  tanh = function(x) return (x * 2):tanh() end,
}
local names = {}
for name in pairs(unary) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do
  add { name = name .. " [7,33]", fn = unary[name], inputs = { { 7, 33 } }, grad = true }
  add { name = name .. " [1025]", fn = unary[name], inputs = { { 1025 } }, grad = true }
end
add { name = "exp of a transposed [33,7]^T", fn = function(x) return x:t():exp() end, inputs = { { 33, 7 } }, grad = true }
add { name = "tanh of a narrowed [5,40] -> [5,29]", fn = function(x) return x:narrow(2, 4, 29):tanh() end,
      inputs = { { 5, 40 } }, grad = true }
add { name = "silu [3,70,50] (past the CPU's parallel threshold)", fn = function(x) return x:silu() end,
      inputs = { { 3, 70, 50 } }, grad = true }

-- binary, same shapes and broadcasting
add { name = "add [7,33] + [7,33]", fn = function(a, b) return a + b end, inputs = { { 7, 33 }, { 7, 33 } }, grad = true }
add { name = "sub [5,1,9] - [4,9]", fn = function(a, b) return a - b end, inputs = { { 5, 1, 9 }, { 4, 9 } }, grad = true }
add { name = "mul [3,1,37] * [1,6,1]", fn = function(a, b) return a * b end, inputs = { { 3, 1, 37 }, { 1, 6, 1 } },
      grad = true }
add { name = "div [7,33] / [33]", fn = function(a, b) return a / pos(b, 0.5) end, inputs = { { 7, 33 }, { 33 } },
      grad = true }
add { name = "div [33,1] / [1,7] (outer broadcast)", fn = function(a, b) return a / pos(b, 0.5) end,
      inputs = { { 33, 1 }, { 1, 7 } }, grad = true }
add { name = "add [33,7]^T + [7,33] (transposed operand)", fn = function(a, b) return a:t() + b end,
      inputs = { { 33, 7 }, { 7, 33 } }, grad = true }
add { name = "mul [2,3,4,5,6] * [3,1,5,1] (rank 5)", fn = function(a, b) return a * b end,
      inputs = { { 2, 3, 4, 5, 6 }, { 3, 1, 5, 1 } }, grad = true }
add { name = "sub narrowed [6,40]->[6,33] - [6,1]", fn = function(a, b) return a:narrow(2, 5, 33) - b end,
      inputs = { { 6, 40 }, { 6, 1 } }, grad = true }
add { name = "add [300,130] + [130] (large)", fn = function(a, b) return a + b end, inputs = { { 300, 130 }, { 130 } },
      grad = true }
add { name = "mul [] * [7,33] (0-d operand)", fn = function(a, b) return a * b end, inputs = { {}, { 7, 33 } },
      grad = true }

-- scalar forms, both sides
add { name = "x * 2.5 [7,33]", fn = function(x) return x * 2.5 end, inputs = { { 7, 33 } }, grad = true }
add { name = "x + 1 [129]", fn = function(x) return x + 1 end, inputs = { { 129 } }, grad = true }
add { name = "3 - x [7,33]", fn = function(x) return 3 - x end, inputs = { { 7, 33 } }, grad = true }
add { name = "x / 4 [7,33]", fn = function(x) return x / 4 end, inputs = { { 7, 33 } }, grad = true }
add { name = "2 / x [7,33]", fn = function(x) return 2 / pos(x, 0.5) end, inputs = { { 7, 33 } }, grad = true }
add { name = "x - 0.5 of a transposed [33,7]^T", fn = function(x) return x:t() - 0.5 end, inputs = { { 33, 7 } },
      grad = true }

-- pow: the squaring fast path, integer, fractional and negative exponents, 0
add { name = "pow 2 [7,33]", fn = function(x) return x:pow(2) end, inputs = { { 7, 33 } }, grad = true }
add { name = "pow 3 [7,33] (negative bases)", fn = function(x) return x:pow(3) end, inputs = { { 7, 33 } }, grad = true }
add { name = "pow 1.5 [7,33]", fn = function(x) return pos(x):pow(1.5) end, inputs = { { 7, 33 } }, grad = true }
add { name = "pow -1 [129]", fn = function(x) return pos(x, 0.5):pow(-1) end, inputs = { { 129 } }, grad = true }
add { name = "pow 0.5 transposed [33,7]^T", fn = function(x) return pos(x:t()):pow(0.5) end, inputs = { { 33, 7 } },
      grad = true }
add { name = "pow 0 [7,33] (zero gradient)", fn = function(x) return x:pow(0) end, inputs = { { 7, 33 } }, grad = true }

-- clamp
add { name = "clamp -0.5..0.75 [7,33]", fn = function(x) return x:clamp(-0.5, 0.75) end, inputs = { { 7, 33 } },
      grad = true }
add { name = "clamp max only 0.3 [129]", fn = function(x) return x:clamp(nil, 0.3) end, inputs = { { 129 } },
      grad = true }
add { name = "clamp min only -0.2 transposed [33,7]^T", fn = function(x) return x:t():clamp(-0.2) end,
      inputs = { { 33, 7 } }, grad = true }
add { name = "clamp inputs on the bounds (gradient passes at lo and hi)", fn = function(x) return x:clamp(-0.5, 0.75) end,
      inputs = { on_bounds }, grad = true }

-- lincomb (the flow samplers' weighted sum)
add { name = "lincomb of 3 [7,33]", fn = function(a, b, c) return grove.lincomb({ a, b, c }, { 0.5, -1.25, 2 }) end,
      inputs = { { 7, 33 }, { 7, 33 }, { 7, 33 } }, grad = true }
add { name = "lincomb of 4 [2,3,45]",
      fn = function(a, b, c, d) return grove.lincomb({ a, b, c, d }, { 1, -0.5, 0.25, 3 }) end,
      inputs = { { 2, 3, 45 }, { 2, 3, 45 }, { 2, 3, 45 }, { 2, 3, 45 } }, grad = true }
add { name = "lincomb of 1 [1025]", fn = function(a) return grove.lincomb({ a }, { -0.75 }) end,
      inputs = { { 1025 } }, grad = true }

return cases
