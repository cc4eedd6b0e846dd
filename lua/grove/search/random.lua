-- Baseline: `pick` candidates drawn at random (seeded by opts.seed), judging
-- nothing. The floor a judge has to beat.
local grove = require "grove"

return function(_, candidates, _, opts)
  local n = #candidates
  local keys = grove.rand({ n }, { generator = grove.Generator(opts.seed or 0) }):tolist()
  local order = {}
  for i = 1, n do order[i] = i end
  table.sort(order, function(a, b) if keys[a] ~= keys[b] then return keys[a] < keys[b] end return a < b end)
  local out = {}
  for k = 1, math.min(opts.pick or 1, n) do out[k] = candidates[order[k]] end
  return out
end
