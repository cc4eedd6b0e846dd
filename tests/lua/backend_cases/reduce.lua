-- Parity cases (CPU vs CUDA) of the reduce family: sum and mean over all,
-- one, several (non-adjacent) dimensions, with and without keepdim, over
-- transposed and narrowed inputs; the three GPU paths (a thread per output
-- for short or column-wise reductions, a warp per output, a block per
-- output for long reductions into few outputs, and blocks per part of each
-- output with a second pass for the longest); max/min with their
-- gradients (which go to the first extreme), argmax/argmin, and ties, where
-- the first position must win on both devices. Positions (i64) are
-- compared as floats.
local grove = grove or require "grove"

-- Ties in every row (rows 2 and 4 are constant): the first extreme wins.
local function ties()
  return grove.tensor { { 1, 3, 3, 2, -1 }, { 5, 5, 5, 5, 5 }, { -1, -2, -2, -1, 0 }, { 0, 0, 0, 0, 0 } }
end

local cases = {}
local function add(c) cases[#cases + 1] = c end

-- sum and mean
add { name = "sum all [7,33]", fn = function(x) return x:sum() end, inputs = { { 7, 33 } }, grad = true }
add { name = "sum dim 1 [7,33]", fn = function(x) return x:sum(1) end, inputs = { { 7, 33 } }, grad = true }
add { name = "sum dim -1 keepdim [7,33]", fn = function(x) return x:sum(-1, true) end, inputs = { { 7, 33 } },
      grad = true }
add { name = "sum dims {1,3} [5,6,7]", fn = function(x) return x:sum { 1, 3 } end, inputs = { { 5, 6, 7 } }, grad = true }
add { name = "sum dims {2,3} keepdim [3,5,6,7]", fn = function(x) return x:sum({ 2, 3 }, true) end,
      inputs = { { 3, 5, 6, 7 } }, grad = true }
add { name = "sum dim 2 of a transposed [33,7]^T", fn = function(x) return x:t():sum(2) end, inputs = { { 33, 7 } },
      grad = true }
add { name = "sum dim 1 of a narrowed [9,40]->[9,21]", fn = function(x) return x:narrow(2, 10, 21):sum(1) end,
      inputs = { { 9, 40 } }, grad = true }
add { name = "mean all [129]", fn = function(x) return x:mean() end, inputs = { { 129 } }, grad = true }
add { name = "mean dim 2 keepdim [4,37,5]", fn = function(x) return x:mean(2, true) end, inputs = { { 4, 37, 5 } },
      grad = true }
add { name = "mean dims {1,2} of a permuted [6,5,4] -> [4,6,5]",
      fn = function(x) return x:permute { 3, 1, 2 }:mean { 1, 2 } end, inputs = { { 6, 5, 4 } }, grad = true }
-- sizes that pick each GPU path
add { name = "sum all [100,257] (block per output)", fn = function(x) return x:sum() end, inputs = { { 100, 257 } },
      grad = true }
add { name = "mean dim 1 [9000,5] (long columns, few outputs)", fn = function(x) return x:mean(1) end,
      inputs = { { 9000, 5 } }, grad = true }
add { name = "sum dim 1 [70,1500] (many columns: thread per output)", fn = function(x) return x:sum(1) end,
      inputs = { { 70, 1500 } }, grad = true }
add { name = "sum dim -1 [1500,70] (warp per row)", fn = function(x) return x:sum(-1) end, inputs = { { 1500, 70 } },
      grad = true }
add { name = "mean dim -1 [3,20000] (long rows)", fn = function(x) return x:mean(-1) end, inputs = { { 3, 20000 } },
      grad = true }
add { name = "sum all [600,257] (split into parts)", fn = function(x) return x:sum() end, inputs = { { 600, 257 } },
      grad = true }
add { name = "mean dim 2 [3,100003] (split, a short last part)", fn = function(x) return x:mean(2) end,
      inputs = { { 3, 100003 } } }
add { name = "sum dim 1 of a transposed [70001,2]^T (split, strided)", fn = function(x) return x:t():sum(2) end,
      inputs = { { 70001, 2 } } }
add { name = "sum dim 2 [4,31,6] (short reduction)", fn = function(x) return x:sum(2) end, inputs = { { 4, 31, 6 } },
      grad = true }

-- max and min (values; the gradient goes to the first extreme)
add { name = "max all [7,33]", fn = function(x) return x:max() end, inputs = { { 7, 33 } }, grad = true }
add { name = "max dim -1 [7,33]", fn = function(x) return (x:max(-1)) end, inputs = { { 7, 33 } }, grad = true }
add { name = "min dim 1 keepdim [7,33]", fn = function(x) return (x:min(1, true)) end, inputs = { { 7, 33 } },
      grad = true }
add { name = "max dim 2 [5,37,4]", fn = function(x) return (x:max(2)) end, inputs = { { 5, 37, 4 } }, grad = true }
add { name = "min dims {1,3} [5,6,7]", fn = function(x) return x:min { 1, 3 } end, inputs = { { 5, 6, 7 } },
      grad = true }
add { name = "max dim 1 of a transposed [33,7]^T", fn = function(x) return (x:t():max(1)) end,
      inputs = { { 33, 7 } }, grad = true }
add { name = "max all [100,257] (block per output)", fn = function(x) return x:max() end, inputs = { { 100, 257 } },
      grad = true }
add { name = "max all [600,257] (split into parts)", fn = function(x) return x:max() end, inputs = { { 600, 257 } },
      grad = true }
add { name = "argmax dim -1 [2,80000] all equal (split: the first part's first wins)",
      fn = function(x) return x:argmax(-1):float() end, inputs = { function() return grove.zeros { 2, 80000 } end },
      grad = false }
add { name = "argmin dim -1 [2,90000] with a NaN in the last part (split)",
      fn = function(x) return x:argmin(-1):float() end,
      inputs = { function()
        local t = grove.randn { 2, 90000 }
        t:narrow(1, 1, 1):narrow(2, 89000, 1):fill_(0 / 0) -- row 1, column 89000
        return t
      end }, grad = false }
add { name = "min dim 1 [9000,5] (long columns)", fn = function(x) return (x:min(1)) end, inputs = { { 9000, 5 } },
      grad = true }
add { name = "max dim 1 [70,1500] (many columns)", fn = function(x) return (x:max(1)) end, inputs = { { 70, 1500 } },
      grad = true }
add { name = "max dim -1 with ties (first position wins)", fn = function(x) return (x:max(-1)) end,
      inputs = { ties }, grad = true }
add { name = "min dim 1 with ties (first position wins)", fn = function(x) return (x:min(1)) end,
      inputs = { ties }, grad = true }

-- positions
add { name = "max indices dim -1 [7,33]", fn = function(x) local _, i = x:max(-1); return i:float() end,
      inputs = { { 7, 33 } }, grad = false }
add { name = "argmax dim 2 keepdim [5,37,4]", fn = function(x) return x:argmax(2, true):float() end,
      inputs = { { 5, 37, 4 } }, grad = false }
add { name = "argmin all [300,257]", fn = function(x) return x:argmin():float() end, inputs = { { 300, 257 } }, grad = false }
add { name = "argmax dim 1 [9000,5]", fn = function(x) return x:argmax(1):float() end, inputs = { { 9000, 5 } }, grad = false }
add { name = "argmax dim -1 with ties", fn = function(x) return x:argmax(-1):float() end, inputs = { ties }, grad = false }
add { name = "argmin dim 1 with ties", fn = function(x) return x:argmin(1):float() end, inputs = { ties }, grad = false }
add { name = "argmin all of a transposed [33,7]^T", fn = function(x) return x:t():argmin():float() end,
      inputs = { { 33, 7 } }, grad = false }

return cases
