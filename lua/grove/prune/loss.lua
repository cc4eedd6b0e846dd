-- Block importance as the damage its absence does: the calibration set's
-- flow-matching loss with block i dropped, minus the full model's loss.
-- An identity block scores exactly 0; a block whose removal helps scores
-- below 0. It costs N + 1 passes over the calibration set where the cosine
-- metric needs one.
local grove = require "grove"

return function(model, calib)
  local N = #model.blocks
  local base = grove.prune.calib_loss(model, calib)
  local out = {}
  for i = 1, N do
    local rest = {}
    for j = 1, N do if j ~= i then rest[#rest + 1] = j end end
    out[i] = grove.prune.calib_loss(grove.prune.view(model, rest), calib) - base
  end
  return out
end
