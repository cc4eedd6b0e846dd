-- Parity cases (CPU vs CUDA) of the shape family: cat along every kind of
-- dimension (first, middle, last, with pieces of odd byte widths so the
-- CUDA copy falls back to narrower words), of strided pieces, of 1-, 2- and
-- 8-byte dtypes; stack; constant padding of 1-3 trailing dimensions with
-- zero and nonzero fill, also for u8, bf16 and i64 data (1-, 2- and 8-byte
-- elements). Non-f32 results are turned back to f32 inside fn so they
-- compare as floats.
local grove = grove or require "grove"

local cases = {}
local function add(c) cases[#cases + 1] = c end

-- small integers from random normals, per dtype
local function ints(x, dtype) return (x:abs() * 20):to(dtype) end

-- cat
add { name = "cat dim 1 [3,5] [4,5]", fn = function(a, b) return grove.cat({ a, b }, 1) end,
      inputs = { { 3, 5 }, { 4, 5 } }, grad = true }
add { name = "cat dim 2 [3,5] [3,7] [3,1]", fn = function(a, b, c) return grove.cat({ a, b, c }, 2) end,
      inputs = { { 3, 5 }, { 3, 7 }, { 3, 1 } }, grad = true }
add { name = "cat dim 2 [2,33,4] [2,1,4] [2,30,4]", fn = function(a, b, c) return grove.cat({ a, b, c }, 2) end,
      inputs = { { 2, 33, 4 }, { 2, 1, 4 }, { 2, 30, 4 } }, grad = true }
add { name = "cat dim -1 [4,6,32] [4,6,36] (16-byte rows)", fn = function(a, b) return grove.cat({ a, b }, -1) end,
      inputs = { { 4, 6, 32 }, { 4, 6, 36 } }, grad = true }
add { name = "cat dim 1 of transposed pieces [33,7]^T [33,5]^T",
      fn = function(a, b) return grove.cat({ a:t(), b:t() }, 1) end, inputs = { { 33, 7 }, { 33, 5 } }, grad = true }
add { name = "cat dim 2 of a narrowed piece [5,40]->[5,17] and [5,3]",
      fn = function(a, b) return grove.cat({ a:narrow(2, 3, 17), b }, 2) end, inputs = { { 5, 40 }, { 5, 3 } },
      grad = true }
add { name = "cat dim 2 [300,65] [300,130] (large)", fn = function(a, b) return grove.cat({ a, b }, 2) end,
      inputs = { { 300, 65 }, { 300, 130 } }, grad = true }
add { name = "cat dim 2 u8 [3,5] [3,3] (byte copies)",
      fn = function(a, b) return grove.cat({ ints(a, "u8"), ints(b, "u8") }, 2):float() end,
      inputs = { { 3, 5 }, { 3, 3 } }, grad = false }
add { name = "cat dim 2 bf16 [4,3] [4,6] (2-byte copies)",
      fn = function(a, b) return grove.cat({ a:bf16(), b:bf16() }, 2):float() end,
      inputs = { { 4, 3 }, { 4, 6 } }, grad = false }
add { name = "cat dim 1 i64 [3,5] [2,5]",
      fn = function(a, b) return grove.cat({ ints(a, "i64"), ints(b, "i64") }, 1):float() end,
      inputs = { { 3, 5 }, { 2, 5 } }, grad = false }
add { name = "stack dim 2 of three [5,7]", fn = function(a, b, c) return grove.stack({ a, b, c }, 2) end,
      inputs = { { 5, 7 }, { 5, 7 }, { 5, 7 } }, grad = true }

-- pad
add { name = "pad [7,33] last (1,2)", fn = function(x) return x:pad { 1, 2 } end, inputs = { { 7, 33 } }, grad = true }
add { name = "pad [7,33] (2,0),(1,3) value -1.5", fn = function(x) return x:pad({ 2, 0, 1, 3 }, -1.5) end,
      inputs = { { 7, 33 } }, grad = true }
add { name = "pad [2,5,9,6] three dims value 0.25", fn = function(x) return x:pad({ 1, 1, 0, 2, 3, 0 }, 0.25) end,
      inputs = { { 2, 5, 9, 6 } }, grad = true }
add { name = "pad of a transposed [33,7]^T (0,5)", fn = function(x) return x:t():pad { 0, 5 } end,
      inputs = { { 33, 7 } }, grad = true }
add { name = "pad [129] (31,0) value 2", fn = function(x) return x:pad({ 31, 0 }, 2) end, inputs = { { 129 } },
      grad = true }
add { name = "pad [40,300] (3,4),(2,2) (large)", fn = function(x) return x:pad { 3, 4, 2, 2 } end,
      inputs = { { 40, 300 } }, grad = true }
add { name = "pad u8 [5,7] (2,1) value 9", fn = function(x) return ints(x, "u8"):pad({ 2, 1 }, 9):float() end,
      inputs = { { 5, 7 } }, grad = false }
add { name = "pad bf16 [5,7] (1,1),(1,0) value 0.5",
      fn = function(x) return x:bf16():pad({ 1, 1, 1, 0 }, 0.5):float() end, inputs = { { 5, 7 } }, grad = false }
add { name = "pad i64 [3,4,5] (0,3) value -7", fn = function(x) return ints(x, "i64"):pad({ 0, 3 }, -7):float() end,
      inputs = { { 3, 4, 5 } }, grad = false }

return cases
