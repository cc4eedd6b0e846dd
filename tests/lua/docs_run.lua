-- Runs the ```lua blocks of one markdown file in sequence, in one fresh
-- environment, in the current directory (tests/lua/test_docs.lua starts it
-- in a scratch folder):
--
--   grove tests/lua/docs_run.lua FILE.md NAME
--
-- NAME is the file's name in messages (docs/growth.md). The last line of
-- output is "docs-run: ok N" (N blocks ran) or "docs-run: fail LINE" (the
-- opening fence of the failing block), after the error and its traceback.
local here = (arg and arg[0] or "tests/lua/docs_run.lua"):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local snippets = require "docs_snippets"

local path, name = arg[1], arg[2] or arg[1]
local text = assert(snippets.read(path))
local blocks, _, nlines = snippets.parse(text)

local current, ran = nil, 0
local env = setmetatable({}, { __index = _G })
env.__docs_block = function(line) current, ran = line, ran + 1 end

local chunk, err = loadstring(snippets.chunk(blocks, nlines), "@" .. name)
if not chunk then
  -- a syntax error: "NAME:LINE: message"; name the block holding LINE
  local line = tonumber(tostring(err):match(":(%d+):")) or 0
  local fence = 0
  for _, b in ipairs(blocks) do
    if not b.skip and b.fence <= line then fence = b.fence end
  end
  io.write(tostring(err), "\n")
  io.write("docs-run: fail ", fence, "\n")
  os.exit(1)
end
setfenv(chunk, env)
local ok, e = xpcall(chunk, debug.traceback)
io.stdout:flush()
if not ok then
  io.write(tostring(e), "\n")
  io.write("docs-run: fail ", current or 0, "\n")
  os.exit(1)
end
io.write("docs-run: ok ", ran, "\n")
os.exit(0, true)
