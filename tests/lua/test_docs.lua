-- The ```lua blocks of README.md and docs/*.md run. Each file's blocks run
-- in sequence in one fresh grove process (tests/lua/docs_run.lua), so a
-- block may use the locals of the blocks before it, in a scratch folder
-- that is removed afterwards, so files they write do not land in the tree.
-- A block that cannot run here (a trained checkpoint under runs/, a GPU,
-- minutes of work, a summary of calls rather than a program) has the line
-- `<!-- no-test: reason -->` right before its fence, and is counted as
-- skipped with that reason.
local spec = require "spec"

local exe = arg and arg[-1]
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/lua"
local function absolute(p)
  if p:sub(1, 1) == "/" then return p end
  local f = io.popen("pwd")
  local pwd = f:read("*l")
  f:close()
  return pwd .. "/" .. p
end
here = absolute(here)
local root = here:gsub("/tests/lua$", "")
package.path = here .. "/?.lua;" .. package.path
local snippets = require "docs_snippets"

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local files = { "README.md" }
do
  local p = io.popen("cd " .. quote(root) .. " && ls docs/*.md 2>/dev/null")
  for f in p:lines() do files[#files + 1] = f end
  p:close()
end

-- the file's blocks, without running them: markers and fences must be sound
spec.describe("docs snippets", function()
  spec.it("are found, and every no-test marker sits right before a ```lua fence", function()
    local total = 0
    for _, name in ipairs(files) do
      local blocks, problems = snippets.parse(assert(snippets.read(root .. "/" .. name)))
      spec.assert(#problems == 0, name .. ": " .. table.concat(problems, "; "))
      total = total + #blocks
    end
    spec.assert(total > 0, "no ```lua blocks found under " .. root)
  end)

  spec.it("parse fences, markers and line numbers", function()
    local text = table.concat({
      "# t", "```lua", "local a = 1", "```", "<!-- no-test: needs runs/tiny -->", "```lua",
      "error('skipped')", "```", "```sh", "```lua", "```", "````lua", "print(a)", "```", "````", "",
    }, "\n")
    local blocks, problems, n = snippets.parse(text)
    spec.eq(#problems, 0, "problems")
    spec.eq(#blocks, 3, "blocks")
    spec.eq(blocks[1].fence, 2, "first fence")
    spec.eq(blocks[2].skip, "needs runs/tiny", "skip reason")
    spec.eq(blocks[3].fence, 12, "four-backtick fence")
    spec.eq(#blocks[3].code, 2, "a shorter fence inside a longer one is code")
    local chunk = snippets.chunk(blocks, n)
    local lines = {}
    for l in chunk:gmatch("(.-)\n") do lines[#lines + 1] = l end
    spec.eq(lines[3], "local a = 1", "code stays on its line")
    spec.eq(lines[7], "", "skipped code is blank")
    spec.eq(lines[12], "__docs_block(12)", "the fence line marks the block")
    local _, bad = snippets.parse("<!-- no-test: x -->\n\n```lua\nx()\n```\n")
    spec.eq(#bad, 1, "a marker away from its fence is a problem")
  end)
end)

spec.describe("docs snippets run", function()
  for _, name in ipairs(files) do
    local blocks = snippets.parse(assert(snippets.read(root .. "/" .. name)))
    local runnable = 0
    for _, b in ipairs(blocks) do
      if b.skip then spec.skip(string.format("%s:%d: %s", name, b.fence, b.skip))
      else runnable = runnable + 1 end
    end
    if runnable > 0 then
      spec.it(name .. " (" .. runnable .. " blocks)", function()
        spec.assert(exe, "needs the grove executable (arg[-1])")
        local dir = spec.tmpdir()
        local out, status = spec.run(string.format("cd %s && timeout 300 %s %s %s %s", quote(dir), quote(exe:find("/", 1, true) and absolute(exe) or exe),
          quote(here .. "/docs_run.lua"), quote(root .. "/" .. name), quote(name)))
        os.execute("rm -rf " .. quote(dir))
        local fence = tonumber(out:match("docs%-run: fail (%d+)"))
        if status ~= 0 or not out:find("docs-run: ok", 1, true) then
          local where = fence and fence > 0 and string.format("%s: the block at line %d", name, fence) or name
          local tail = out:sub(-3000)
          error(string.format("%s failed (exit status %s):\n%s", where, tostring(status), tail), 0)
        end
        spec.eq(tonumber(out:match("docs%-run: ok (%d+)")), runnable, name .. ": blocks run")
      end)
    end
  end
end)
