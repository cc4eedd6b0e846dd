-- Block importance as SANA 1.5 measures it: BI_i = 1 − mean cos(x_in, x_out),
-- the cosine between block i's input and output token vectors, averaged over
-- every token of every calibration image and noise level. A block that
-- passes its input through scores 0; one that turns it around scores up to 2.
--
-- A metric is a function (model, calib, opts) -> {importance of block 1..N},
-- run under grove.no_grad; a higher number means a block matters more.
-- Copy this file to write your own, and pass it as
-- grove.prune(model, {metric = mine}) or register it with
-- grove.prune.register_metric("mine", mine).
local grove = require "grove"

return function(model, calib)
  local N = #model.blocks
  local sum, count = {}, {}
  for i = 1, N do sum[i], count[i] = 0, 0 end
  local hook = function(i, x_in, x_out)
    local cos = grove.cosine_similarity(x_in, x_out, -1) -- (B, tokens)
    local s = cos:sum()
    sum[i], count[i] = sum[i] + s:item(), count[i] + cos:numel()
    cos:free(); s:free()
  end
  for item in calib:batches() do
    model:forward(item.x, item.t, item.text, item.mask, { hook = hook }):free()
  end
  local out = {}
  for i = 1, N do out[i] = 1 - sum[i] / count[i] end
  return out
end
