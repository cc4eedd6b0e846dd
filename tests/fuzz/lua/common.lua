-- Shared by the Lua fuzz scripts: a scratch folder per process (under
-- $TMPDIR) and writing bytes to a file in it.
local ffi = require "ffi"
pcall(ffi.cdef, "int getpid(void);")
local common = {}

function common.folder(name)
  local base = os.getenv("TMPDIR")
  if not base or base == "" then base = "/tmp" end
  local dir = string.format("%s/grove-fuzz-%d-%s", base, ffi.C.getpid(), name)
  os.execute("rm -rf '" .. dir .. "' && mkdir -p '" .. dir .. "'")
  return dir
end

function common.write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

function common.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

return common
