-- grove — the Lua side of the engine. Loads libgrove through the FFI with
-- declarations generated from core/include/grove.h, then assembles the
-- grove table from the modules beside this file.
--
-- Inside the grove executable this module is preloaded as the global `grove`.
-- From stock LuaJIT, put lua/ and build/lua/ on package.path:
--   LUA_PATH="lua/?.lua;lua/?/init.lua;build/lua/?.lua;;" luajit -e 'grove = require "grove"'
-- or, after `cmake --install`, the installed modules (docs/install.md):
--   LUA_PATH="$P/share/grove/lua/?.lua;$P/share/grove/lua/?/init.lua;;"
local ffi = require "ffi"

local defs = require "grove.cdefs"
ffi.cdef(defs.cdef)

-- OpenMP workers that spin long after each parallel region steal the cores
-- from every other process (libgomp's default spin made training 4x slower
-- on a busy machine), while workers that sleep at once pay a wake-up per
-- region (10% of a tiny training step). A short spin keeps back-to-back
-- regions fast and bounds the waste; the user's OMP_WAIT_POLICY or
-- GOMP_SPINCOUNT wins. libgomp reads this when it loads, with libgrove below.
ffi.cdef "int setenv(const char *name, const char *value, int overwrite);"
if not os.getenv("OMP_WAIT_POLICY") and not os.getenv("GOMP_SPINCOUNT") then
  ffi.C.setenv("GOMP_SPINCOUNT", "20000", 0)
end

-- Which libgrove: GROVE_LIB when set; in an installed tree the library at
-- defs.library_relative from the module directory (<prefix>/share/grove/lua
-- -> <prefix>/lib/libgrove.so), so a moved prefix still works; else the path
-- recorded when cdefs.lua was written (the build tree's, or the install
-- prefix's).
local function module_dir()
  local src = debug.getinfo(1, "S").source
  return src:sub(1, 1) == "@" and src:sub(2):match("^(.-)/?grove/init%.lua$") or nil
end
local function readable(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end
local lib = os.getenv("GROVE_LIB")
if not lib and defs.library_relative then
  local dir = module_dir()
  if dir then
    local candidate = (dir == "" and "." or dir) .. "/" .. defs.library_relative
    if readable(candidate) then lib = candidate end
  end
end
lib = lib or defs.library
local ok, C = pcall(ffi.load, lib)
if not ok then
  error("grove: cannot load libgrove from " .. lib .. " (" .. tostring(C) .. "); build it with `make build` or set GROVE_LIB", 0)
end

-- _LIBRARY: the libgrove path loaded (grove info prints it)
local grove = { C = C, _VERSION = ffi.string(C.grove_version()), _LIBRARY = lib }
package.loaded.grove = grove

-- grove.registry: named, pluggable pieces (strategies, metrics, policies, samplers, optimizers)
grove.registry = require "grove.registry"
grove.stats = require "grove.stats"
require "grove.tensor"(grove)
require "grove.autograd"(grove)
require "grove.runtime"(grove)
require "grove.cuda"(grove)
require "grove.io"(grove)
require "grove.io_stream"(grove)
require "grove.json"(grove)
require "grove.nn"(grove)
require "grove.ema"(grove)
require "grove.text"(grove)
require "grove.image"(grove)
require "grove.data.permutation"(grove)
require "grove.data.folder"(grove)
require "grove.data.shapes"(grove)
require "grove.eval.shapes"(grove)
require "grove.eval.negatives"(grove)
require "grove.optim"(grove)
require "grove.recompute"(grove)
require "grove.amp"(grove)
require "grove.memory"(grove)
require "grove.profile"(grove)
require "grove.dist"(grove)
require "grove.train"(grove)
require "grove.grow"(grove)
require "grove.prune"(grove)
require "grove.judge"(grove)
require "grove.search"(grove)
require "grove.diffusers"(grove)
require "grove.diffusers.transformer"(grove)
require "grove.diffusers.sample"(grove)
require "grove.diffusers.binning"(grove, grove.diffusers)
require "grove.diffusers.pipeline"(grove, grove.diffusers)
require "grove.diffusers.tiny"(grove, grove.diffusers)
require "grove.diffusers.cache"(grove, grove.diffusers)
require "grove.diffusers.cache_dataset"(grove, grove.diffusers)
require "grove.diffusers.finetune"(grove, grove.diffusers)
require "grove.load"(grove)
-- grove.repl: the REPL's completion, help and printing, usable from scripts
grove.repl = require "grove.repl"

return grove
