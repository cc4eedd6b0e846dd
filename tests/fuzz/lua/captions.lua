-- The image-folder data set's caption reader: a real image beside a
-- caption file holding the input; the folder is listed, a batch is read.
package.path = debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/?.lua;" .. package.path
local common = require "common"
local dir = common.folder("captions")
grove.image.save(dir .. "/a.png", grove.zeros { 8, 8, 3 })

return function(bytes)
  common.write(dir .. "/a.txt", bytes)
  local ds = grove.data.folder { dir = dir, size = 8, batch = 1, cache_mb = 0 }
  local b = ds:next()
  assert(type(b.captions[1]) == "string", "FUZZ-INVARIANT: no caption string")
  b.images:free()
end
