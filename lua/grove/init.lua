-- grove — the Lua side of the engine. Loads libgrove through the FFI with
-- declarations generated from core/include/grove.h, then assembles the
-- grove table from the modules beside this file.
--
-- Inside the grove executable this module is preloaded as the global `grove`.
-- From stock LuaJIT, put lua/ and build/lua/ on package.path:
--   LUA_PATH="lua/?.lua;lua/?/init.lua;build/lua/?.lua;;" luajit -e 'grove = require "grove"'
local ffi = require "ffi"

local defs = require "grove.cdefs"
ffi.cdef(defs.cdef)

local lib = os.getenv("GROVE_LIB") or defs.library
local ok, C = pcall(ffi.load, lib)
if not ok then
  error("grove: cannot load libgrove from " .. lib .. " (" .. tostring(C) .. "); build it with `make build` or set GROVE_LIB", 0)
end

local grove = { C = C, _VERSION = ffi.string(C.grove_version()) }
package.loaded.grove = grove

require "grove.tensor"(grove)
require "grove.autograd"(grove)
require "grove.runtime"(grove)
require "grove.io"(grove)
require "grove.nn"(grove)
require "grove.ema"(grove)
require "grove.text"(grove)
require "grove.image"(grove)
require "grove.data.folder"(grove)

return grove
