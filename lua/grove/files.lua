-- Small file helpers shared by the Lua modules (grove.pipeline,
-- grove.report, grove.diffusers).
--
--   local files = require "grove.files"
--   files.write_atomic(path, text)   -- path.tmp, synced, then a rename: a reader never sees half a file
--   files.exists(path) -> boolean
--
-- The atomic write is libgrove's (grove_file_write_atomic, the one that also
-- writes safetensors files and PNG images), so this module loads the C core.
local files = {}

-- Writes text to path + ".tmp", syncs it and renames it over path; on any
-- failure the temporary is removed, an existing file at path is left as it
-- was, and the error names the path.
function files.write_atomic(path, text)
  if type(path) ~= "string" then error("write_atomic: expected a file path, got " .. type(path), 2) end
  if type(text) ~= "string" then error("write_atomic: " .. path .. ": expected a string, got " .. type(text), 2) end
  local grove = package.loaded.grove or require "grove"
  grove.check(grove.C.grove_file_write_atomic(path, text, #text), 2)
end

function files.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

return files
