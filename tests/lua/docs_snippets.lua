-- The ```lua blocks of a markdown file, for tests/lua/test_docs.lua.
--
-- A block is skipped when the line right before its opening fence is an
-- HTML comment `<!-- no-test: reason -->`. The runnable blocks of one file
-- become one Lua chunk in which every other line of the file is blank, so
-- line numbers in error messages are the markdown's own, and a `local` of
-- one block is seen by the blocks after it. The (blank) line of each
-- opening fence holds a call `__docs_block(line)` that tells the runner
-- which block is running.
local M = {}

local function split_lines(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  if lines[#lines] == "" then lines[#lines] = nil end
  return lines
end

-- Blocks of a markdown text: a list of {fence = line of the opening fence,
-- first = its first code line, code = {lines}, skip = reason or nil}, and a
-- list of problems (a no-test marker not followed by a ```lua fence, a
-- fence left open).
function M.parse(text)
  local lines = split_lines(text)
  local blocks, problems = {}, {}
  local open, block
  for i, line in ipairs(lines) do
    -- a marker counts outside code blocks only (a page may show one as an example)
    if not open and line:match("^%s*<!%-%-%s*no%-test") and
       not (lines[i + 1] and lines[i + 1]:match("^%s*```+%s*lua%s*$")) then
      problems[#problems + 1] = string.format("line %d: a no-test marker must be the line right before a ```lua fence", i)
    end
    if open then
      -- a closing fence: the opening one's character, at least as many times
      local close = line:match("^%s*(" .. open:sub(1, 1) .. "+)%s*$")
      if close and #close >= #open then
        if block then blocks[#blocks + 1] = block end
        open, block = nil, nil
      elseif block then
        block.code[#block.code + 1] = line
      end
    else
      local ticks, lang = line:match("^%s*(```+)%s*([%w_+%-]*)")
      if not ticks then ticks, lang = line:match("^%s*(~~~+)%s*([%w_+%-]*)") end
      if ticks then
        open = ticks
        if lang == "lua" then
          local skip = i > 1 and lines[i - 1]:match("^%s*<!%-%-%s*no%-test:%s*(.-)%s*%-%->%s*$") or nil
          block = { fence = i, first = i + 1, code = {}, skip = skip }
        end
      end
    end
  end
  if open then
    problems[#problems + 1] = "a code fence is left open at the end of the file" ..
      (block and (" (the ```lua block at line " .. block.fence .. ")") or "")
  end
  return blocks, problems, #lines
end

-- The chunk of the runnable blocks, line for line with the file.
function M.chunk(blocks, nlines)
  local out = {}
  for i = 1, nlines do out[i] = "" end
  for _, b in ipairs(blocks) do
    if not b.skip then
      out[b.fence] = "__docs_block(" .. b.fence .. ")"
      for k, line in ipairs(b.code) do out[b.first + k - 1] = line end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("*a")
  f:close()
  return text
end

return M
