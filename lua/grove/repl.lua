-- The interactive prompt of the grove executable: evaluates expressions and
-- statements, prints results, continues incomplete input on the next line,
-- and survives errors with a traceback. Line editing and history come from
-- libedit when it is installed; otherwise plain stdin is read.
local ffi = require "ffi"

local repl = {}

local function load_editline(soname)
  if not soname then return nil end
  local ok, lib = pcall(ffi.load, soname)
  if not ok then return nil end
  pcall(ffi.cdef, [[
    char *readline(const char *prompt);
    int add_history(const char *line);
    int read_history(const char *filename);
    int write_history(const char *filename);
    void free(void *ptr);
  ]])
  return lib
end

pcall(ffi.cdef, "int isatty(int fd);")

-- Line editing only at a terminal; piped input is read as it comes.
local function reader(soname)
  local el = ffi.C.isatty(0) == 1 and load_editline(soname) or nil
  local home = os.getenv("HOME")
  local history = home and (home .. "/.grove_history")
  if el then
    if history then el.read_history(history) end
    return function(prompt)
      local p = el.readline(prompt)
      if p == nil then return nil end
      local line = ffi.string(p)
      ffi.C.free(p)
      if line:match("%S") then
        el.add_history(line)
        if history then el.write_history(history) end
      end
      return line
    end
  end
  return function(prompt)
    io.write(prompt)
    io.flush()
    return io.read("*l")
  end
end

-- A chunk is complete (a function), incomplete (nil, nil: more lines
-- wanted), or a syntax error (nil, message). Lua reports input that ends too
-- early as an error "near <eof>".
local function incomplete(err) return err and (err:match("near '<eof>'$") or err:match("near <eof>$")) end

local function compile(src)
  local f, e1 = loadstring("return " .. src, "=stdin")
  if f then return f end
  local g, e2 = loadstring(src, "=stdin")
  if g then return g end
  if incomplete(e1) or incomplete(e2) then return nil, nil end
  return nil, e2
end

local function show(...)
  local n = select("#", ...)
  if n == 0 then return end
  local parts = {}
  for i = 1, n do parts[i] = repl.format((select(i, ...))) end
  print(table.concat(parts, "\t"))
end

-- Tables one level deep, everything else through tostring.
function repl.format(v)
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  for i = 1, #v do parts[#parts + 1] = tostring(v[i]) end
  for k, x in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > #v or k % 1 ~= 0 then
      parts[#parts + 1] = tostring(k) .. " = " .. tostring(x)
    end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- The error and the user's frames: the REPL's own and the error-raising
-- helpers' frames are noise at a prompt.
local function report(err)
  local tb = debug.traceback(tostring(err), 2)
  local keep = {}
  for line in tb:gmatch("[^\n]+") do
    if not (line:find("grove/repl.lua", 1, true) or line:find("in function 'fail'", 1, true)
            or line:find("[C]: in function 'error'", 1, true) or line:find("[C]: in function 'xpcall'", 1, true)
            or line:find("grove/tensor.lua:%d+: in function <")) then
      keep[#keep + 1] = line
    end
  end
  if #keep > 0 and keep[#keep] == "stack traceback:" then keep[#keep] = nil end
  return table.concat(keep, "\n")
end

function repl.run(soname)
  local read = reader(soname)
  print("grove " .. grove._VERSION .. " (LuaJIT) — " .. grove.num_threads() .. " threads. Ctrl-D exits.")
  local buffer = nil
  while true do
    local line = read(buffer and ">> " or "grove> ")
    if line == nil then io.write("\n"); break end
    buffer = buffer and (buffer .. "\n" .. line) or line
    local f, err = compile(buffer)
    if f then
      buffer = nil
      if repl.arm_interrupt then repl.arm_interrupt() end
      local res = { xpcall(f, report) }
      if res[1] then show(unpack(res, 2, table.maxn(res)))
      else print(res[2]) end
    elseif err then
      buffer = nil
      print(err)
    end
  end
end

return repl
