-- Parity cases (CPU vs CUDA) of the resampling family: nearest upsampling
-- by 1, 2 and 3, pixel shuffle and unshuffle by 2 and 3, on batches, odd
-- and non-square sizes, channel counts that are not multiples of 32,
-- non-contiguous inputs (the view is made inside fn so the gradient flows
-- back through it), and DC-AE's channel repeat / group mean written with
-- views.
local grove = grove or require "grove"

local cases = {}
local function add(c) cases[#cases + 1] = c end

add { name = "upsample_nearest 2 [2,3,5,7]", fn = function(x) return x:upsample_nearest(2) end,
      inputs = { { 2, 3, 5, 7 } }, grad = true }
add { name = "upsample_nearest 3 [1,4,2,33]", fn = function(x) return x:upsample_nearest(3) end,
      inputs = { { 1, 4, 2, 33 } }, grad = true }
add { name = "upsample_nearest 1 [2,2,3,5]", fn = function(x) return x:upsample_nearest(1) end,
      inputs = { { 2, 2, 3, 5 } }, grad = true }
add { name = "upsample_nearest 2 of a transposed [2,6,9,20]", fn = function(x) return x:transpose(2, 3):upsample_nearest(2) end,
      inputs = { { 2, 6, 9, 20 } }, grad = true }
add { name = "upsample_nearest 2 [2,32,24,64] (large)", fn = function(x) return x:upsample_nearest(2) end,
      inputs = { { 2, 32, 24, 64 } }, grad = true }

add { name = "pixel_shuffle 2 [2,3,5,12]", fn = function(x) return x:pixel_shuffle(2) end,
      inputs = { { 2, 3, 5, 12 } }, grad = true }
add { name = "pixel_shuffle 3 [1,2,3,18]", fn = function(x) return x:pixel_shuffle(3) end,
      inputs = { { 1, 2, 3, 18 } }, grad = true }
add { name = "pixel_shuffle 2 of a narrowed [2,4,3,11]->[..,8]", fn = function(x) return x:narrow(4, 2, 8):pixel_shuffle(2) end,
      inputs = { { 2, 4, 3, 11 } }, grad = true }
add { name = "pixel_unshuffle 2 [2,6,10,3]", fn = function(x) return x:pixel_unshuffle(2) end,
      inputs = { { 2, 6, 10, 3 } }, grad = true }
add { name = "pixel_unshuffle 3 [1,9,6,5]", fn = function(x) return x:pixel_unshuffle(3) end,
      inputs = { { 1, 9, 6, 5 } }, grad = true }
add { name = "pixel_unshuffle 2 of a transposed [2,8,6,4]", fn = function(x) return x:transpose(2, 3):pixel_unshuffle(2) end,
      inputs = { { 2, 8, 6, 4 } }, grad = true }
add { name = "pixel_unshuffle 2 [2,64,48,33] (large)", fn = function(x) return x:pixel_unshuffle(2) end,
      inputs = { { 2, 64, 48, 33 } }, grad = true }

-- DC-AE's shortcuts: repeat each channel in place then shuffle; unshuffle
-- then average consecutive channel groups.
add { name = "repeat in place x2 then pixel_shuffle 2 [2,3,5,6]",
      fn = function(x) return x:unsqueeze(-1):expand(2, 3, 5, 6, 2):reshape(2, 3, 5, 12):pixel_shuffle(2) end,
      inputs = { { 2, 3, 5, 6 } }, grad = true }
add { name = "pixel_unshuffle 2 then group mean of 2 [2,6,10,3]",
      fn = function(x) return x:pixel_unshuffle(2):view(2, 3, 5, 6, 2):mean(5) end,
      inputs = { { 2, 6, 10, 3 } }, grad = true }

return cases
