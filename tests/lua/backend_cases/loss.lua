-- Parity cases (CPU vs CUDA) of mse_loss and cross_entropy: the forward
-- sums run as fixed two-stage double reductions on the GPU, so sizes span
-- one partial block to many; cross entropy has one warp per row, with rows
-- shorter and longer than a warp, transposed logits and i64 targets (made by
-- a function input, not differentiated).
local grove = grove or require "grove"

-- targets[i] = (i * step) % c, 0-based, as an i64 tensor of n entries.
local function targets(n, c, step)
  return function()
    local t = {}
    for i = 1, n do t[i] = ((i - 1) * (step or 7)) % c end
    return grove.tensor(t, { dtype = "i64" })
  end
end

local cases = {}
local function add(c) cases[#cases + 1] = c end

-- mse
add { name = "mse_loss [7,33]", fn = function(a, b) return grove.mse_loss(a, b) end, inputs = { { 7, 33 }, { 7, 33 } },
      grad = true }
add { name = "mse_loss [129]", fn = function(a, b) return grove.mse_loss(a, b) end, inputs = { { 129 }, { 129 } },
      grad = true }
add { name = "mse_loss [3000,70] (many partial blocks)", fn = function(a, b) return grove.mse_loss(a, b) end,
      inputs = { { 3000, 70 }, { 3000, 70 } }, grad = true }
add { name = "mse_loss of a transposed [33,7]^T vs [7,33]", fn = function(a, b) return grove.mse_loss(a:t(), b) end,
      inputs = { { 33, 7 }, { 7, 33 } }, grad = true }
add { name = "mse_loss target not differentiated", fn = function(a, b) return grove.mse_loss(a, b) end,
      inputs = { { 5, 37 }, { 5, 37 } }, nograd = { [2] = true }, grad = true }

-- cross entropy
add { name = "cross_entropy [7,33]", fn = function(x, t) return grove.cross_entropy(x * 2, t) end,
      inputs = { { 7, 33 }, targets(7, 33) }, nograd = { [2] = true }, grad = true }
add { name = "cross_entropy [5,3] (short rows)", fn = function(x, t) return grove.cross_entropy(x, t) end,
      inputs = { { 5, 3 }, targets(5, 3, 2) }, nograd = { [2] = true }, grad = true }
add { name = "cross_entropy [64,1000]", fn = function(x, t) return grove.cross_entropy(x * 3, t) end,
      inputs = { { 64, 1000 }, targets(64, 1000, 131) }, nograd = { [2] = true }, grad = true }
add { name = "cross_entropy [2100,10] (many partial blocks)", fn = function(x, t) return grove.cross_entropy(x, t) end,
      inputs = { { 2100, 10 }, targets(2100, 10, 3) }, nograd = { [2] = true }, grad = true }
add { name = "cross_entropy of transposed logits [33,9]^T", fn = function(x, t) return grove.cross_entropy(x:t(), t) end,
      inputs = { { 33, 9 }, targets(9, 33, 5) }, nograd = { [2] = true }, grad = true }

return cases
