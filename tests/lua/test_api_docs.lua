-- docs/api.md is what scripts/gen-api-docs.lua makes of the sources now.
local spec = require "spec"

local exe = arg and arg[-1]
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/lua"
local root = here:gsub("/?tests/lua$", "")
if root == "" then root = "." end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

spec.describe("docs/api.md", function()
  spec.it("is up to date with the sources", function()
    spec.assert(exe, "needs the grove executable (arg[-1])")
    local dir = spec.tmpdir()
    local fresh_path = dir .. "/api.md"
    local out, status = spec.run(string.format("%s %s -o %s", quote(exe), quote(root .. "/scripts/gen-api-docs.lua"),
      quote(fresh_path)))
    local fresh = read(fresh_path)
    os.execute("rm -rf " .. quote(dir))
    spec.eq(status, 0, "scripts/gen-api-docs.lua failed: " .. out)
    spec.assert(fresh and #fresh > 0, "scripts/gen-api-docs.lua wrote nothing")
    local current = read(root .. "/docs/api.md")
    local fix = "; run `build/grove scripts/gen-api-docs.lua -o docs/api.md`"
    spec.assert(current, "docs/api.md is missing" .. fix)
    if current ~= fresh then
      local n, a_line, b_line = 0, nil, nil
      local a_iter, b_iter = current:gmatch("([^\n]*)\n"), fresh:gmatch("([^\n]*)\n")
      repeat
        n = n + 1
        a_line, b_line = a_iter(), b_iter()
      until a_line ~= b_line
      error(string.format("docs/api.md is out of date%s (first difference at line %d: file has %q, the sources give %q)",
        fix, n, tostring(a_line), tostring(b_line)), 0)
    end
  end)

  spec.it("lists documented functions and no runnable snippets", function()
    local text = read(root .. "/docs/api.md") or ""
    spec.assert(text:find("### `grove.optim.param_groups(", 1, true), "module functions are shown by their public name")
    spec.assert(text:find("### `t:view(", 1, true), "tensor methods are shown as t:name")
    spec.assert(not text:find("```lua", 1, true), "api.md must hold no ```lua blocks (tests/lua/test_docs.lua would run them)")
  end)
end)
