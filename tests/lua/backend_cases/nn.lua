-- Parity cases (CPU vs CUDA) of the nn family (softmax, norms, embedding,
-- where): softmax and log-softmax over the last dimension (a warp per row)
-- and over a middle or first dimension (a thread per column), layer and RMS
-- norm with and without affine parameters (the weight/bias gradients are
-- sums over rows: many rows exercise them), embedding with repeated ids
-- (i64 and i32; the backward adds the repeats), where with broadcast
-- conditions and masked_fill (its fill value is a one-element operand read
-- with zero strides).
local grove = grove or require "grove"

-- Index tensors (0-based ids < vocab) with repeats, and u8 masks.
local function ids(rows, dtype) return function() return grove.tensor(rows, { dtype = dtype or "i64" }) end end
local function mask(rows) return function() return grove.tensor(rows, { dtype = "u8" }) end end

-- An alternating u8 pattern of the given shape.
local function pattern(shape, period)
  return function()
    local n = 1
    for _, s in ipairs(shape) do n = n * s end
    local flat = {}
    for i = 1, n do flat[i] = (i % period == 0 or i % 3 == 1) and 1 or 0 end
    return grove.tensor(flat, { dtype = "u8" }):reshape(shape)
  end
end

local cases = {}
local function add(c) cases[#cases + 1] = c end

-- softmax / log_softmax
for _, v in ipairs { { "softmax", grove.softmax }, { "log_softmax", grove.log_softmax } } do
  local name, f = v[1], v[2]
  add { name = name .. " dim -1 [7,33]", fn = function(x) return f(x * 3, -1) end, inputs = { { 7, 33 } }, grad = true }
  add { name = name .. " dim -1 [3,5,129]", fn = function(x) return f(x, -1) end, inputs = { { 3, 5, 129 } },
        grad = true }
  add { name = name .. " dim 2 [4,37,6] (strided)", fn = function(x) return f(x * 2, 2) end, inputs = { { 4, 37, 6 } },
        grad = true }
  add { name = name .. " dim 1 [33,7] (strided)", fn = function(x) return f(x, 1) end, inputs = { { 33, 7 } },
        grad = true }
  add { name = name .. " dim -1 of a transposed [33,7]^T", fn = function(x) return f(x:t(), -1) end,
        inputs = { { 33, 7 } }, grad = true }
  add { name = name .. " dim -1 [2,3000] (long rows)", fn = function(x) return f(x * 4, -1) end,
        inputs = { { 2, 3000 } }, grad = true }
  add { name = name .. " dim -1 [700,3] (short rows)", fn = function(x) return f(x, -1) end, inputs = { { 700, 3 } },
        grad = true }
end

-- layer norm
add { name = "layer_norm [7,33] w b", fn = function(x, w, b) return grove.layer_norm(x, w, b) end,
      inputs = { { 7, 33 }, { 33 }, { 33 } }, grad = true }
add { name = "layer_norm [7,33] no affine", fn = function(x) return grove.layer_norm(x) end, inputs = { { 7, 33 } },
      grad = true }
add { name = "layer_norm [2,5,129] w only, eps 1e-3", fn = function(x, w) return grove.layer_norm(x, w, nil, 1e-3) end,
      inputs = { { 2, 5, 129 }, { 129 } }, grad = true }
add { name = "layer_norm of a transposed [33,7]^T w b", fn = function(x, w, b) return grove.layer_norm(x:t(), w, b) end,
      inputs = { { 33, 7 }, { 33 }, { 33 } }, grad = true }
add { name = "layer_norm [300,40] w b (weight grads over 300 rows)",
      fn = function(x, w, b) return grove.layer_norm(x * 2 + 1, w, b) end,
      inputs = { { 300, 40 }, { 40 }, { 40 } }, grad = true }
add { name = "layer_norm [3,1100] w b (long rows)", fn = function(x, w, b) return grove.layer_norm(x, w, b) end,
      inputs = { { 3, 1100 }, { 1100 }, { 1100 } }, grad = true }
add { name = "layer_norm [9,33] only w needs grad", fn = function(x, w, b) return grove.layer_norm(x, w, b) end,
      inputs = { { 9, 33 }, { 33 }, { 33 } }, nograd = { [1] = true, [3] = true }, grad = true }

-- RMS norm
add { name = "rms_norm [7,33] w", fn = function(x, w) return grove.rms_norm(x, w) end, inputs = { { 7, 33 }, { 33 } },
      grad = true }
add { name = "rms_norm [7,33] no weight", fn = function(x) return grove.rms_norm(x) end, inputs = { { 7, 33 } },
      grad = true }
add { name = "rms_norm [2,5,129] w eps 1e-2", fn = function(x, w) return grove.rms_norm(x, w, 1e-2) end,
      inputs = { { 2, 5, 129 }, { 129 } }, grad = true }
add { name = "rms_norm of a narrowed [6,50]->[6,37] w", fn = function(x, w) return grove.rms_norm(x:narrow(2, 7, 37), w) end,
      inputs = { { 6, 50 }, { 37 } }, grad = true }
add { name = "rms_norm [300,40] w (weight grad over 300 rows)", fn = function(x, w) return grove.rms_norm(x, w) end,
      inputs = { { 300, 40 }, { 40 } }, grad = true }

-- embedding
add { name = "embedding [11,33] ids [2,4] i64 (repeats)", fn = function(w, i) return grove.embedding(w, i) end,
      inputs = { { 11, 33 }, ids { { 1, 4, 4, 10 }, { 0, 2, 4, 7 } } }, nograd = { [2] = true }, grad = true }
add { name = "embedding [11,33] ids [6] i32", fn = function(w, i) return grove.embedding(w, i) end,
      inputs = { { 11, 33 }, ids({ 3, 3, 9, 0, 3, 10 }, "i32") }, nograd = { [2] = true }, grad = true }
add { name = "embedding [50,7] ids [3,2,5]", fn = function(w, i) return grove.embedding(w, i) end,
      inputs = { { 50, 7 }, ids { { { 49, 1, 2, 3, 49 }, { 0, 0, 0, 5, 6 } }, { { 7, 8, 9, 10, 11 }, { 12, 13, 14, 15, 16 } },
                                  { { 49, 48, 47, 46, 45 }, { 1, 1, 1, 1, 1 } } } },
      nograd = { [2] = true }, grad = true }
add { name = "embedding [3,300] ids [5] (few rows, wide)", fn = function(w, i) return grove.embedding(w, i) end,
      inputs = { { 3, 300 }, ids { 2, 0, 2, 2, 1 } }, nograd = { [2] = true }, grad = true }

-- where and masked_fill
add { name = "where cond [7,33] a [7,33] b [7,33]", fn = function(c, a, b) return grove.where(c, a, b) end,
      inputs = { pattern({ 7, 33 }, 5), { 7, 33 }, { 7, 33 } }, nograd = { [1] = true }, grad = true }
add { name = "where cond [7,1] a [7,33] b [33] (broadcast)", fn = function(c, a, b) return grove.where(c, a, b) end,
      inputs = { mask { { 1 }, { 0 }, { 0 }, { 1 }, { 1 }, { 0 }, { 1 } }, { 7, 33 }, { 33 } },
      nograd = { [1] = true }, grad = true }
add { name = "where cond [37] a [5,1] b [5,37]", fn = function(c, a, b) return grove.where(c, a, b) end,
      inputs = { pattern({ 37 }, 4), { 5, 1 }, { 5, 37 } }, nograd = { [1] = true }, grad = true }
add { name = "where with transposed a [33,7]^T", fn = function(c, a, b) return grove.where(c, a:t(), b) end,
      inputs = { pattern({ 7, 33 }, 2), { 33, 7 }, { 7, 33 } }, nograd = { [1] = true }, grad = true }
add { name = "masked_fill [7,33] mask [7,33] -2.5", fn = function(x, m) return x:masked_fill(m, -2.5) end,
      inputs = { { 7, 33 }, pattern({ 7, 33 }, 7) }, nograd = { [2] = true }, grad = true }
add { name = "masked_fill [4,9,37] mask [9,1] 1e4", fn = function(x, m) return x:masked_fill(m, 1e4) end,
      inputs = { { 4, 9, 37 }, pattern({ 9, 1 }, 2) }, nograd = { [2] = true }, grad = true }

return cases
