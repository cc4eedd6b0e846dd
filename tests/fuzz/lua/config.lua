-- A transformer folder's config.json: the key checks and the config
-- translation, then the model built from it with shapes only (meta: no
-- weights are allocated, but every size the config implies is checked).
package.path = debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/?.lua;" .. package.path
local common = require "common"
local dir = common.folder("config")

return function(bytes)
  common.write(dir .. "/config.json", bytes)
  grove.describe(dir)
  local m = grove.diffusers.transformer(dir, { meta = true })
  assert(#m.blocks >= 1, "FUZZ-INVARIANT: a model without blocks")
end
