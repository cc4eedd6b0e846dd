-- Small file helpers shared by the plain Lua modules (grove.pipeline,
-- grove.report), which do not load the C core.
--
--   local files = require "grove.files"
--   files.write_atomic(path, text)   -- path.tmp, then a rename: a reader never sees half a file
--   files.exists(path) -> boolean
local files = {}

function files.write_atomic(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then error("cannot write " .. tmp .. ": " .. tostring(err), 2) end
  local ok, werr = f:write(text)
  f:close()
  if not ok then
    os.remove(tmp)
    error("cannot write " .. tmp .. ": " .. tostring(werr), 2)
  end
  local renamed, e = os.rename(tmp, path)
  if not renamed then error("cannot rename " .. tmp .. " to " .. path .. ": " .. tostring(e), 2) end
end

function files.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

return files
