-- The interactive prompt of the grove executable: evaluates expressions and
-- statements, pretty-prints every result (grove/repl/pretty.lua), continues
-- incomplete input on the next line, answers `?name` with help
-- (grove/repl/help.lua), shows the time of commands that take over a
-- second, and survives errors with a traceback. Line editing, history and
-- Tab completion (grove/repl/complete.lua) come from libedit when it is
-- installed and stdin is a terminal; otherwise stdin is read line by line,
-- so the REPL also runs from a pipe.
--
-- Ctrl-C at the prompt abandons the line; during a command it raises
-- "interrupted!" at the next Lua call, return or instruction count of the
-- interpreter (grove_main.c installs the handlers). The line's own code runs
-- without the JIT so that its loops stay interruptible; the functions it
-- calls are compiled as usual.
local ffi = require "ffi"
local complete = require "grove.repl.complete"
local help = require "grove.repl.help"
local pretty = require "grove.repl.pretty"

local repl = {
  complete = complete.complete, -- (line, cursor?, env?) -> candidates, start
  format = pretty.format,       -- value -> text as printed
  help = help.text,             -- (value, name) -> help text
  slow = 1.0,                   -- commands slower than this (seconds) print their time
  interruptible = true,         -- run typed code without the JIT so that Ctrl-C stops its loops
}

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
    void *malloc(size_t size);
    char *strdup(const char *s);
    typedef char **(*grove_rl_completion_fn)(const char *text, int start, int end);
    grove_rl_completion_fn rl_attempted_completion_function;
    int rl_attempted_completion_over;
    int rl_completion_append_character;
    const char *rl_basic_word_break_characters;
    char *rl_line_buffer;
    int rl_point;
  ]])
  return lib
end

pcall(ffi.cdef, "int isatty(int fd);")

-- Hooks libedit's completion to complete.complete. libedit hands over the
-- word it will replace (line[start, end)); complete.complete finds its own
-- word, and each candidate is shifted to replace libedit's.
local completion_refs = {} -- what C holds pointers to must stay alive
local function install_completion(el)
  local ok = pcall(function()
    local breaks = ffi.new("char[?]", 64, " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[]}?!")
    completion_refs.breaks = breaks
    el.rl_basic_word_break_characters = breaks
    local cb = ffi.cast("grove_rl_completion_fn", function(_, start, stop)
      local ok2, res = pcall(function()
        el.rl_attempted_completion_over = 1
        el.rl_completion_append_character = 0
        local line = ffi.string(el.rl_line_buffer)
        local cands, mine = complete.complete(line, stop)
        if #cands == 0 then return nil end
        local list = {}
        for i, c in ipairs(cands) do
          if mine < start then list[i] = c:sub(start - mine + 1)
          else list[i] = line:sub(start + 1, mine) .. c end
        end
        local n = #list
        local arr = ffi.cast("char **", ffi.C.malloc((n + 3) * ffi.sizeof("char *")))
        arr[0] = ffi.C.strdup(n == 1 and list[1] or complete.common_prefix(list))
        local k = 1
        if n > 1 then for i = 1, n do arr[i] = ffi.C.strdup(list[i]) end; k = n + 1 end
        arr[k], arr[k + 1] = nil, nil
        return arr
      end)
      if ok2 and res ~= nil then return res end
      return nil
    end)
    completion_refs.cb = cb
    el.rl_attempted_completion_function = cb
  end)
  return ok
end

-- Line editing only at a terminal; piped input is read as it comes. The
-- reader returns the line, or nil and "eof" / "interrupt".
local function reader(soname)
  local el = ffi.C.isatty(0) == 1 and load_editline(soname) or nil
  local home = os.getenv("HOME")
  local history = home and (home .. "/.grove_history")
  local function interrupted() return repl.prompt_interrupted and repl.prompt_interrupted() end
  if el then
    if history then el.read_history(history) end
    install_completion(el)
    local read = function(prompt)
      local p = el.readline(prompt)
      if p == nil then return nil, interrupted() and "interrupt" or "eof" end
      local line = ffi.string(p)
      ffi.C.free(p)
      if line:match("%S") then
        el.add_history(line)
        if history then el.write_history(history) end
      end
      return line
    end
    -- libedit calls back into Lua for completion: never from a compiled trace
    jit.off(read)
    return read
  end
  return function(prompt)
    io.write(prompt)
    io.flush()
    local line = io.read("*l")
    if line == nil then return nil, interrupted() and "interrupt" or "eof" end
    return line
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

-- Every result on its own line(s).
local function show(...)
  for i = 1, select("#", ...) do print(pretty.format((select(i, ...)))) end
end

-- The error and the user's frames: the REPL's own and the error-raising
-- helpers' frames are noise at a prompt.
local function report(err)
  local tb = debug.traceback(tostring(err), 2)
  local keep = {}
  for line in tb:gmatch("[^\n]+") do
    if not (line:find("grove/repl.lua", 1, true) or line:find("in function 'fail'", 1, true)
            or line:find("[C]: in function 'error'", 1, true) or line:find("[C]: in function 'xpcall'", 1, true)
            or line:find("[C]: in function 'pcall'", 1, true) or line:find("^%s*%[builtin#%d+%]:")
            or line:find("grove/tensor.lua:%d+: in function <")) then
      keep[#keep + 1] = line
    end
  end
  if #keep > 0 and keep[#keep] == "stack traceback:" then keep[#keep] = nil end
  return table.concat(keep, "\n")
end

local function pack(...) return { n = select("#", ...), ... } end

local function now()
  local g = package.loaded.grove
  return (type(g) == "table" and g.now) and g.now() or os.clock()
end

-- `?name`: help on the value the expression names; `?` alone: the keys.
local function run_help(expr)
  if expr == "" then print(help.usage); return end
  -- `?t:reshape` names the method that t:reshape(...) would call
  local obj, method = expr:match("^(.-):([%a_][%w_]*)$")
  local f, err = loadstring("return " .. (obj and ("(" .. obj .. ")." .. method) or expr), "=stdin")
  if not f then print(err); return end
  local ok, v = pcall(f)
  if not ok then print(v); return end
  print(help.text(v, expr))
end

-- Runs one complete chunk (or a help request) and prints what it returns,
-- its error, and its time when slow.
local function execute(f)
  if repl.arm_interrupt then repl.arm_interrupt() end
  local t0 = now()
  if repl.interruptible then jit.off(f, true) end
  local res = pack(xpcall(f, report))
  if res[1] then
    local ok, err = xpcall(show, report, unpack(res, 2, res.n))
    if not ok then print(err) end
  else
    print(res[2])
  end
  local dt = now() - t0
  if dt > repl.slow then print(string.format("(%.2f s)", dt)) end
end

-- Feeds one input line; returns the prompt for the next one (the
-- continuation prompt while a chunk is incomplete).
function repl.feed(state, line)
  if not state.buffer then
    local expr = line:match("^%s*%?(.*)$")
    if expr then
      run_help(expr:match("^%s*(.-)%s*$"))
      return "grove> "
    end
  end
  state.buffer = state.buffer and (state.buffer .. "\n" .. line) or line
  local f, err = compile(state.buffer)
  if f then
    state.buffer = nil
    execute(f)
  elseif err then
    state.buffer = nil
    print(err)
  end
  return state.buffer and ">> " or "grove> "
end

function repl.run(soname)
  local read = reader(soname)
  local g = package.loaded.grove
  print("grove " .. g._VERSION .. " (LuaJIT) — " .. g.num_threads() .. " threads. ? for help, Ctrl-D exits.")
  local state = {}
  local prompt = "grove> "
  while true do
    if repl.arm_prompt then repl.arm_prompt() end
    local line, why = read(prompt)
    if line == nil and why == "eof" then io.write("\n"); break end
    if line == nil then
      -- Ctrl-C at the prompt: drop the partial input
      io.write("\n")
      state.buffer, prompt = nil, "grove> "
    else
      -- a Ctrl-C that lands between a command and the prompt ends up here
      local ok, res = pcall(repl.feed, state, line)
      if ok then prompt = res
      else print(tostring(res)); state.buffer, prompt = nil, "grove> " end
    end
  end
end
jit.off(repl.run, true)

local g = package.loaded.grove
if type(g) == "table" then g.repl = repl end

return repl
