-- Parity cases (CPU vs CUDA) of the depthwise convolution on NHWC data
-- (conv2d with groups = channels), and the 1x1 convolution (a GEMM).
local grove = grove or require "grove"

return {
  { name = "depthwise 3x3 pad 1 [2,9,11,40] + bias",
    fn = function(x, w, b) return grove.conv2d(x, w, b, { padding = 1, groups = 40 }) end,
    inputs = { { 2, 9, 11, 40 }, { 40, 1, 3, 3 }, { 40 } }, grad = true },
  { name = "depthwise 5x5 pad 2 [1,7,6,33]",
    fn = function(x, w) return grove.conv2d(x, w, nil, { padding = 2, groups = 33 }) end,
    inputs = { { 1, 7, 6, 33 }, { 33, 1, 5, 5 } }, grad = true },
  { name = "depthwise 3x3 pad 0 [2,8,8,20] + bias",
    fn = function(x, w, b) return grove.conv2d(x, w, b, { padding = 0, groups = 20 }) end,
    inputs = { { 2, 8, 8, 20 }, { 20, 1, 3, 3 }, { 20 } }, grad = true },
  { name = "depthwise 3x3 pad 1 on a transposed [2,11,9,70] view",
    fn = function(x, w, b) return grove.conv2d(x:transpose(2, 3), w, b, { padding = 1, groups = 70 }) end,
    inputs = { { 2, 11, 9, 70 }, { 70, 1, 3, 3 }, { 70 } }, grad = true },
  { name = "depthwise 3x3 pad 1 [4,16,16,320] (SANA's Mix-FFN width)",
    fn = function(x, w, b) return grove.conv2d(x, w, b, { padding = 1, groups = 320 }) end,
    inputs = { { 4, 16, 16, 320 }, { 320, 1, 3, 3 }, { 320 } }, grad = true },
  { name = "conv 1x1 [2,5,7,24] -> 40 + bias",
    fn = function(x, w, b) return grove.conv2d(x, w, b) end,
    inputs = { { 2, 5, 7, 24 }, { 40, 24, 1, 1 }, { 40 } }, grad = true },
}
