-- Runs Lua spec files (all tests/lua/test_*.lua, or those named on the
-- command line) inside the grove executable and ends with the line
-- "N passed, N failed". Exit status 1 when anything failed.
local here = (arg and arg[0] or "tests/lua/run.lua"):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path

local spec = require "spec"

local files = {}
for i = 1, #arg do files[#files + 1] = arg[i] end
if #files == 0 then
  local p = io.popen('ls "' .. here .. '"/test_*.lua 2>/dev/null')
  for f in p:lines() do files[#files + 1] = f end
  p:close()
end

for _, f in ipairs(files) do
  spec.run_file(f)
end
-- closing the state runs every finalizer, so LeakSanitizer sees no live tensors
os.exit(spec.report() and 0 or 1, true)
