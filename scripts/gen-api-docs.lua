-- Writes docs/api.md, the Lua API reference, from the sources: every public
-- function of lua/grove/**/*.lua with the comment block right above it,
-- grouped by module (one module per file, named as `require` names it),
-- with a table of contents.
--
--   build/grove scripts/gen-api-docs.lua -o docs/api.md   (or > docs/api.md)
--
-- Public functions are those defined at a module's top level (column 0, or
-- inside the `return function(grove) ... end` that installs most modules) as
-- `function T.name(...)`, `function T:name(...)` or `T.name = function(...)`,
-- with no name part starting with `_`. A local table is shown under its
-- public name when the file says what it is (`grove.x = T`,
-- `local T = grove.x`, `return T`); class methods keep their class name.
-- The output depends only on the sources, so tests/lua/test_api_docs.lua
-- can compare it with the checked-in file.
local root = ((arg and arg[0] or "scripts/gen-api-docs.lua"):match("^(.*)/scripts/[^/]*$")) or "."

local out_path
do
  local i = 1
  while arg and arg[i] do
    if arg[i] == "-o" then out_path = arg[i + 1]; i = i + 2
    elseif arg[i] == "-h" or arg[i] == "--help" then
      io.write("usage: grove scripts/gen-api-docs.lua [-o FILE]   (default: standard output)\n")
      os.exit(0)
    else
      io.stderr:write("gen-api-docs: unknown argument '", arg[i], "'\n")
      os.exit(2)
    end
  end
end

local function read_lines(path)
  local f = assert(io.open(path, "rb"))
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = (line:gsub("\r$", "")) end
  f:close()
  return lines
end

-- lua/grove/**/*.lua, sorted, relative to the root
local files = {}
do
  local p = io.popen("cd '" .. root .. "' && find lua/grove -name '*.lua' -type f")
  for f in p:lines() do files[#files + 1] = f end
  p:close()
  table.sort(files)
end

local function module_name(file)
  local m = file:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  return m
end

-- Tensor methods are defined on the table M of tensor.lua as M.name(t, ...)
-- and called as t:name(...).
local methods_of = { ["lua/grove/tensor.lua"] = { M = "t" } }

-- Comment text of the `--` lines from..to, without the markers.
local function comment_text(lines, from, to, indent)
  local text = {}
  for i = from, to do
    local l = lines[i]:sub(#indent + 1)
    l = l:gsub("^%-%-%-? ?", "")
    text[#text + 1] = l
  end
  return text
end

local function header_of(lines)
  local last = 0
  while lines[last + 1] and lines[last + 1]:match("^%-%-") and not lines[last + 1]:match("^%-%-%[") do last = last + 1 end
  return last > 0 and comment_text(lines, 1, last, "") or {}
end

-- name -> public prefix, learned from every file (optim -> grove.optim)
local global_alias = {}

local parsed = {}
for _, file in ipairs(files) do
  local lines = read_lines(root .. "/" .. file)
  local wrapped = false
  for _, l in ipairs(lines) do
    if l:match("^return function%s*%(") then wrapped = true break end
  end
  local alias = {}
  for _, l in ipairs(lines) do
    local path, x = l:match("^%s*(grove%.[%w_%.]+)%s*=%s*([%a_][%w_]*)%s*$")
    if not path then path, x = l:match("^%s*(grove%.[%w_%.]+)%s*=%s*setmetatable%(%s*([%a_][%w_]*)%s*,") end
    if path and x ~= "nil" and x ~= "true" and x ~= "false" then
      alias[x] = alias[x] or path
      if path:match("[%.]([%w_]+)$") == x then global_alias[x] = path end
    end
    local y, p2 = l:match("^%s*local%s+([%a_][%w_]*)%s*=%s*(grove%.[%w_%.]+)%s*$")
    if y then alias[y] = alias[y] or p2 end
  end
  for i = #lines, 1, -1 do
    local r = lines[i]:match("^return%s+([%a_][%w_]*)%s*$")
    if r then alias[r] = alias[r] or module_name(file) break end
    if lines[i]:match("%S") then break end
  end
  parsed[#parsed + 1] = { file = file, lines = lines, wrapped = wrapped, alias = alias }
end

-- Modules installed as `require "grove.x.y"(grove, T)` name T by the
-- caller's name for it: a parameter of `return function(grove, T)` takes
-- the caller's alias of the argument in its place.
do
  local by_module = {}
  for _, f in ipairs(parsed) do by_module[module_name(f.file)] = f end
  for _, f in ipairs(parsed) do
    for _, l in ipairs(f.lines) do
      for mod, args in l:gmatch("require%s*%(?%s*[\"']([%w_%.]+)[\"']%s*%)?%s*%(([^()]*)%)") do
        local target = by_module[mod]
        if target then
          local params
          for _, tl in ipairs(target.lines) do
            params = tl:match("^return function%s*%(([^()]*)%)")
            if params then break end
          end
          if params then
            local names, values = {}, {}
            for n in params:gmatch("[%a_][%w_]*") do names[#names + 1] = n end
            for a in args:gmatch("[^,]+") do values[#values + 1] = a:match("^%s*(.-)%s*$") end
            for k = 2, #names do
              local v = values[k]
              if v and v:match("^[%a_][%w_]*$") then
                local a = f.alias[v] or global_alias[v]
                if a and not target.alias[names[k]] then target.alias[names[k]] = a end
              elseif v and v:match("^grove%.[%w_%.]+$") and not target.alias[names[k]] then
                target.alias[names[k]] = v
              end
            end
          end
        end
      end
    end
  end
end

local function resolve(head, alias)
  if head == "grove" or head:match("^grove%.") then return head end
  local first, rest = head:match("^([%a_][%w_]*)(.*)$")
  local a = alias[first] or global_alias[first]
  if a then return a .. rest end
  return head
end

-- the parameter list, joined over lines when it spans several
local function params_at(lines, i, s)
  local p = s:match("^%s*(%b())")
  local j = i
  while not p and lines[j + 1] and j < i + 10 do
    j = j + 1
    s = s .. " " .. lines[j]:gsub("^%s+", "")
    p = s:match("^%s*(%b())")
  end
  return p and p:gsub("%s+", " "):gsub("%( ", "("):gsub(" %)", ")") or "(...)"
end

local modules = {}
for _, f in ipairs(parsed) do
  local lines = f.lines
  local header = header_of(lines)
  local header_end = #header
  local indents = { [""] = true }
  if f.wrapped then indents["  "] = true end
  local methods = methods_of[f.file] or {}
  local fns = {}
  for i, l in ipairs(lines) do
    local indent, name, rest = l:match("^(%s*)function%s+([%a_][%w_%.:]*)(.*)$")
    if not indent then
      indent, name, rest = l:match("^(%s*)([%a_][%w_%.]*)%s*=%s*function%s*(%(.*)$")
      if name and not name:find(".", 1, true) then name = nil end
    end
    if name and indents[indent] and (name:find("[%.:]")) then
      local public = true
      for part in name:gmatch("[^%.:]+") do
        if part:sub(1, 1) == "_" then public = false end
      end
      if public then
        local params = params_at(lines, i, rest)
        local head, sep, fname = name:match("^(.-)([%.:])([%a_][%w_]*)$")
        local shown
        local self_name = methods[head]
        if self_name and sep == "." then
          -- M.name(t, a, b) is called as t:name(a, b)
          local rest_params = params:match("^%(%s*[%a_][%w_]*%s*,?%s*(.-)%)$")
          shown = self_name .. ":" .. fname .. (rest_params and "(" .. rest_params .. ")" or params)
        else
          shown = resolve(head, f.alias) .. sep .. fname .. params
        end
        -- the comment block right above, less the file's header when the
        -- two touch
        local from = i
        -- (a rule such as "-- ---- views ----" ends a block: it titles a
        -- section, not the function)
        while from > 1 and lines[from - 1]:match("^%s*%-%-") and not lines[from - 1]:match("^%s*%-%-%[%[")
              and not lines[from - 1]:match("^%s*%-%-%s*%-%-%-%-") and not lines[from - 1]:match("^%s*%-%-%-%-") do
          from = from - 1
        end
        if from == 1 then from = header_end + 1 end
        local doc = from < i and comment_text(lines, from, i - 1, indent) or {}
        fns[#fns + 1] = { shown = shown, doc = doc, line = i }
      end
    end
  end
  modules[#modules + 1] = { name = module_name(f.file), file = f.file, header = header, fns = fns }
end

table.sort(modules, function(a, b) return a.name < b.name end)

-- GitHub's heading anchors: lower case, punctuation dropped, spaces to
-- hyphens, -1, -2, ... on repeats
local used = {}
local function slug(text)
  local s = text:lower():gsub("[^%w%- _]", ""):gsub(" ", "-")
  local base, n = s, 0
  while used[s] do n = n + 1; s = base .. "-" .. n end
  used[s] = true
  return s
end

-- Comment lines as markdown: prose as it is; indented lines (examples,
-- tables of options) as a fence without a language, so that no ```lua
-- block here is taken for a runnable snippet.
local function render(text, out)
  local i = 1
  while i <= #text do
    local l = text[i]
    if l:match("^%s%s") then
      out[#out + 1] = "```"
      while i <= #text and (text[i]:match("^%s%s") or (text[i] == "" and text[i + 1] and text[i + 1]:match("^%s%s"))) do
        out[#out + 1] = text[i]:gsub("^  ", "")
        i = i + 1
      end
      out[#out + 1] = "```"
    else
      out[#out + 1] = (l:gsub("^#", "\\#"))
      i = i + 1
    end
  end
end

local out = {}
local function w(s) out[#out + 1] = s or "" end

w("# Lua API reference")
w()
w("Generated from the sources by `build/grove scripts/gen-api-docs.lua -o docs/api.md`:")
w("every public function of `lua/grove/` with the comment above it, one section")
w("per module file. Do not edit this file: edit the comments and run the script")
w("again (`tests/lua/test_api_docs.lua` fails when the file is out of date).")
w("The guides in this folder explain how the pieces fit together; conventions")
w("(1-based dimensions, options tables) are in [lua-api.md](lua-api.md).")
w()
used["lua-api-reference"] = true
used["contents"] = true
local anchors = {}
for _, m in ipairs(modules) do anchors[m] = slug(m.name) end
w("## Contents")
w()
w("| module | file | functions |")
w("| --- | --- | ---: |")
for _, m in ipairs(modules) do
  w(string.format("| [%s](#%s) | `%s` | %d |", m.name, anchors[m], m.file, #m.fns))
end
-- a heading, a line under it when given, then its doc comment's text
local function entry(heading, line, doc)
  w()
  w(heading)
  if line then
    w()
    w(line)
  end
  if #doc > 0 then
    w()
    render(doc, out)
  end
end
for _, m in ipairs(modules) do
  entry("## " .. m.name, "`" .. m.file .. "`", m.header)
  for _, fn in ipairs(m.fns) do
    slug(fn.shown)
    entry("### `" .. fn.shown .. "`", nil, fn.doc)
  end
end
local text = table.concat(out, "\n") .. "\n"

if out_path then
  local f = assert(io.open(out_path, "wb"))
  f:write(text)
  f:close()
else
  io.write(text)
end
