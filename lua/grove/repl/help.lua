-- `?name` at the prompt. A Lua function's help is its signature, the block
-- of `--` comment lines right above its definition in the source file (the
-- code's own comments are its documentation), and the definition line. A
-- libgrove function reached through the FFI shows its declaration from
-- grove.h; other C functions have no source to show. A table lists its
-- fields with their kinds; any other value is shown with its type.
local pretty = require "grove.repl.pretty"

local help = {}

local function read_lines(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local lines = {}
  for l in f:lines() do lines[#lines + 1] = l end
  f:close()
  return lines
end

-- Parameter names of a Lua function, "..." for a vararg one.
local function params(f)
  local names = {}
  for i = 1, 64 do
    local n = debug.getlocal(f, i)
    if not n then break end
    names[i] = n
  end
  local info = debug.getinfo(f, "u")
  if info and info.isvararg then names[#names + 1] = "..." end
  return table.concat(names, ", ")
end

-- The contiguous comment lines that end right above line n, without the
-- comment markers; a blank line or code ends the block.
function help.comment_above(lines, n)
  local block = {}
  local i = n - 1
  while i >= 1 do
    local text = lines[i]:match("^%s*%-%-(.*)$")
    if not text or lines[i]:match("^%s*%-%-%[%[") then break end
    table.insert(block, 1, (text:gsub("^ ", "")))
    i = i - 1
  end
  -- a separator rule such as "-- ---- printing ----" is not documentation
  while block[1] and block[1]:match("^[%-=%s]*$") do table.remove(block, 1) end
  return block
end

local function kind(v)
  if pretty.is_tensor(v) then return pretty.tensor_summary(v) end
  local t = type(v)
  if t == "table" then
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return "table (" .. n .. " fields)"
  end
  if t == "string" then return #v <= 40 and string.format("%q", v) or "string (" .. #v .. " bytes)" end
  if t == "number" or t == "boolean" then return tostring(v) end
  return t
end

-- The fields of a table (and its metatable's __index tables), one a line.
local function fields(t)
  local rows, seen = {}, {}
  local level = t
  for _ = 1, 16 do
    if type(level) ~= "table" then break end
    for k, v in pairs(level) do
      if type(k) == "string" and not seen[k] then
        seen[k] = true
        rows[#rows + 1] = { k, v }
      end
    end
    local mt = getmetatable(level)
    level = type(mt) == "table" and rawget(mt, "__index") or nil
  end
  table.sort(rows, function(a, b) return a[1] < b[1] end)
  local width = 0
  for _, r in ipairs(rows) do width = math.max(width, #r[1]) end
  local out = {}
  for _, r in ipairs(rows) do
    out[#out + 1] = "  " .. r[1] .. string.rep(" ", width - #r[1] + 2) .. kind(r[2])
  end
  return out
end

-- The declaration of a libgrove function in the FFI definitions.
local function c_declaration(name)
  local ok, defs = pcall(require, "grove.cdefs")
  if not ok or type(defs) ~= "table" or type(defs.cdef) ~= "string" then return nil end
  local short = name:match("([%w_]+)$")
  local text = defs.cdef:gsub("/%*.-%*/", " "):gsub("//[^\n]*", " ")
  for decl in text:gmatch("[^;{}]+;") do
    if decl:find("[%s%*]" .. short .. "%s*%(") then return (decl:gsub("%s+", " "):gsub("^ ", "")) end
  end
end

-- The help text for value v, which the user named `name`.
function help.text(v, name)
  local out = {}
  local function add(s) out[#out + 1] = s end
  if type(v) == "function" then
    local info = debug.getinfo(v, "S")
    if info.what == "C" then
      add(name .. ": a built-in C function (no Lua source to show)")
      return table.concat(out, "\n")
    end
    if not info.source:match("^@") then
      return name .. "(" .. params(v) .. ")  [" .. info.short_src .. ":" .. info.linedefined .. "] (not from a file)"
    end
    local path = info.source:sub(2)
    add(name .. "(" .. params(v) .. ")  [" .. path .. ":" .. info.linedefined .. "]")
    local lines = read_lines(path)
    if not lines or not lines[info.linedefined] then
      add("  (source file not readable)")
      return table.concat(out, "\n")
    end
    local comment = help.comment_above(lines, info.linedefined)
    if #comment > 0 then
      add("")
      for _, l in ipairs(comment) do add("  " .. l) end
    end
    add("")
    add("  " .. lines[info.linedefined]:match("^%s*(.-)%s*$"))
    return table.concat(out, "\n")
  end
  if type(v) == "cdata" and not pretty.is_tensor(v) and tostring(v):match("^cdata<.*%(") then
    add(name .. ": a C function of libgrove (FFI), no Lua source; its declaration in core/include/grove.h:")
    add("  " .. (c_declaration(name) or name))
    return table.concat(out, "\n")
  end
  if pretty.is_tensor(v) then
    add(name .. ": " .. pretty.tensor_summary(v) .. "; methods: ?grove.Tensor, or " .. name .. ":<Tab>")
    return table.concat(out, "\n")
  end
  if type(v) == "table" then
    local mt = getmetatable(v)
    add(name .. ": table" .. (type(mt) == "table" and rawget(mt, "__index") and " (an object: fields and methods)" or ""))
    for _, l in ipairs(fields(v)) do add(l) end
    return table.concat(out, "\n")
  end
  if v == nil then return name .. " is nil" end
  return name .. ": " .. type(v) .. " " .. kind(v)
end

-- What `?` alone prints.
help.usage = [[
grove REPL
  expression       evaluates and prints the value(s); `x = ...` runs a statement
  ?name            help: the comment above a function's definition, a table's fields
  Tab              completes globals, grove.<field>, t:<method> (with libedit)
  Up/Down          history (~/.grove_history, with libedit)
  Ctrl-C           abandons the line, or interrupts the running command
  Ctrl-D           exits
Commands that take over a second print their time. See docs/repl.md.]]

return help
