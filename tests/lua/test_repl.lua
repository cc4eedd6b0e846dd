-- The REPL: completion, help, the value printer, and whole sessions fed
-- through a pipe (the REPL reads stdin line by line when it is not a
-- terminal).
local spec = require "spec"

local repl = grove.repl
local exe = arg and arg[-1]

local function has(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

spec.describe("repl completion", function()
  local env = setmetatable({
    t = grove.ones{2, 3},
    cfg = { model = { depth = 4, width = 64, build = function() end }, name = "tiny" },
    grove = grove,
  }, { __index = _G })

  spec.it("completes globals and keywords", function()
    local c, start = repl.complete("pri", nil, env)
    spec.eq(c[1], "print(")
    spec.eq(start, 0)
    spec.assert(has(repl.complete("x = pair", nil, env), "pairs("), "pairs")
    spec.assert(has(repl.complete("whil", nil, env), "while"), "keyword")
    spec.eq(#repl.complete("cf", nil, env), 1)
    spec.eq(repl.complete("cf", nil, env)[1], "cfg.")
  end)

  spec.it("completes grove fields, tables with a dot", function()
    local c, start = repl.complete("x = grove.opt", nil, env)
    spec.eq(#c, 1)
    spec.eq(c[1], "grove.optim.")
    spec.eq(start, 4)
    spec.assert(has(repl.complete("grove.optim.ada", nil, env), "grove.optim.adamw("), "grove.optim.adamw")
    spec.assert(has(repl.complete("grove.soft", nil, env), "grove.softmax("), "grove.softmax")
    -- underscore names only when asked for
    spec.assert(not has(repl.complete("grove.", nil, env), "grove._VERSION"), "hidden")
    spec.assert(has(repl.complete("grove._V", nil, env), "grove._VERSION"), "_VERSION")
  end)

  spec.it("completes methods of a tensor after ':' and properties after '.'", function()
    local c = repl.complete("t:res", nil, env)
    spec.assert(has(c, "t:reshape("), table.concat(c, " "))
    spec.assert(has(c, "t:reshape("), "reshape")
    for _, s in ipairs(c) do spec.assert(s:sub(1, 5) == "t:res", s) end
    spec.assert(has(repl.complete("t:sof", nil, env), "t:softmax("), "softmax")
    spec.assert(has(repl.complete("t.gra", nil, env), "t.grad"), "grad property")
  end)

  spec.it("walks nested tables and respects the cursor", function()
    local c = repl.complete("cfg.model.", nil, env)
    spec.eq(table.concat(c, " "), "cfg.model.build( cfg.model.depth cfg.model.width")
    spec.eq(table.concat(repl.complete("cfg.model:b", nil, env), " "), "cfg.model:build(")
    spec.eq(table.concat(repl.complete("cfg.name:up", nil, env), " "), "cfg.name:upper(")
    -- cursor in the middle of the line: only the text before it counts
    local c2, start = repl.complete("print(cfg.mo) + 1", 12, env)
    spec.eq(table.concat(c2, " "), "cfg.model.")
    spec.eq(start, 6)
    -- after `?` a function gets no "("
    spec.eq(table.concat(repl.complete("?grove.softma", nil, env), " "), "grove.softmax")
  end)

  spec.it("returns nothing when nothing matches", function()
    spec.eq(#repl.complete("grove.no_such_thing", nil, env), 0)
    spec.eq(#repl.complete("nosuchvar.x", nil, env), 0)
    spec.eq(#repl.complete("cfg.name.x", nil, env), 0)
    spec.eq(#repl.complete("1.5", nil, env), 0)
    spec.eq(#repl.complete("t:zzz", nil, env), 0)
  end)
end)

spec.describe("repl help", function()
  local dir = spec.tmpdir()
  local path = dir .. "/documented.lua"
  local f = assert(io.open(path, "w"))
  f:write("local M = {}\n\n-- Scales x by two.\n-- Returns a new tensor.\nfunction M.double(x, opts)\n  return x * 2\nend\n\nreturn M\n")
  f:close()
  local m = dofile(path)

  spec.it("shows the comment above a Lua function and its signature", function()
    local text = repl.help(m.double, "m.double")
    spec.eq(text, "m.double(x, opts)  [" .. path .. ":5]\n\n  Scales x by two.\n  Returns a new tensor.\n\n  function M.double(x, opts)")
    local sm = repl.help(grove.softmax, "grove.softmax")
    spec.assert(sm:find("^grove.softmax%(x, d%)"), sm)
    spec.assert(sm:find("tensor.lua:", 1, true), sm)
  end)

  spec.it("says when a function is C-backed, and lists a table's fields", function()
    spec.assert(repl.help(print, "print"):find("built-in C function", 1, true), "print")
    local c = repl.help(grove.C.grove_softmax, "grove.C.grove_softmax")
    spec.assert(c:find("grove_softmax(grove_tensor *x", 1, true), c)
    local tbl = repl.help({ alpha = 1, beta = print }, "cfg")
    spec.eq(tbl, "cfg: table\n  alpha  1\n  beta   function")
    spec.eq(repl.help(nil, "nothing"), "nothing is nil")
  end)
  os.execute("rm -rf '" .. dir .. "'")
end)

spec.describe("repl printing", function()
  local fmt = repl.format
  spec.it("prints small tensors with one format, aligned, and a footer", function()
    spec.eq(fmt(grove.tensor{{1, 2, 3}, {4, 5, 6}}), " 1  2  3\n 4  5  6\n[ f32 tensor of size 2x3, cpu ]")
    spec.eq(fmt(grove.tensor{{1.5, 2, -3.25}, {10, 0, 1}}),
      "  1.5000   2.0000  -3.2500\n 10.0000   0.0000   1.0000\n[ f32 tensor of size 2x3, cpu ]")
    spec.eq(fmt(grove.tensor{1e-6, 2}), " 1.0000e-06  2.0000e+00\n[ f32 tensor of size 2, cpu ]")
    spec.eq(fmt(grove.tensor(3.5)), "3.5000\n[ f32 scalar, cpu ]")
    spec.eq(fmt(grove.tensor({7, -8}, { dtype = "i64" })), "  7  -8\n[ i64 tensor of size 2, cpu ]")
    spec.eq(fmt(grove.arange(0, 8):view{2, 2, 2}),
      "(1,.,.) = \n 0  1\n 2  3\n\n(2,.,.) = \n 4  5\n 6  7\n[ f32 tensor of size 2x2x2, cpu ]")
    spec.eq(fmt(grove.zeros{0, 3}), "[ f32 tensor of size 0x3, cpu ]")
    local g = grove.ones{2}:requires_grad_(true)
    spec.eq(fmt(g), " 1  1\n[ f32 tensor of size 2, cpu, requires_grad ]")
    spec.assert(fmt(g * 2):find("grad_fn=", 1, true), fmt(g * 2))
  end)

  spec.it("summarises large tensors with ...", function()
    spec.eq(fmt(grove.arange(0, 2000)), "    0     1     2   ...  1997  1998  1999\n[ f32 tensor of size 2000, cpu ]")
    local m = fmt(grove.arange(0, 10000):view{100, 100})
    local lines = {}
    for l in m:gmatch("[^\n]+") do lines[#lines + 1] = l end
    spec.eq(#lines, 8)
    spec.eq(lines[1], "    0     1     2   ...    97    98    99")
    spec.eq(lines[4], "  ...")
    spec.eq(lines[7], " 9900  9901  9902   ...  9997  9998  9999")
    spec.eq(lines[8], "[ f32 tensor of size 100x100, cpu ]")
    -- 3-d: skipped slices are a "..." line
    local c = fmt(grove.zeros{10, 20, 30})
    spec.assert(c:find("(1,.,.) = ", 1, true) and c:find("(10,.,.) = ", 1, true), c)
    spec.assert(not c:find("(4,.,.)", 1, true) and c:find("\n ...\n", 1, true), c)
  end)

  spec.it("prints tables nested, sorted, with cycles and a depth limit", function()
    spec.eq(fmt({ 1, 2, { 3, 4 } }), "{1, 2, {3, 4}}")
    spec.eq(fmt({ b = 2, a = "x", [10] = true }), '{[10] = true, a = "x", b = 2}')
    spec.eq(fmt({}), "{}")
    local t = { name = "a fairly long name to force several lines", sizes = { 1, 2, 3 }, t = grove.ones{2, 3} }
    t.self = t
    spec.eq(fmt(t), '{\n  name = "a fairly long name to force several lines",\n  self = <cycle>,\n' ..
      '  sizes = {1, 2, 3},\n  t = <tensor f32 2x3 cpu>,\n}')
    spec.eq(fmt({ a = { b = { c = { d = { e = 1 } } } } }), "{a = {b = {c = {d = {...}}}}}")
    spec.eq(fmt("plain"), "plain")
    spec.eq(fmt({ "s\n" }), '{"s\\n"}')
  end)
end)

spec.describe("repl sessions", function()
  local function session(input, script, args)
    local dir = spec.tmpdir()
    local inp = dir .. "/input"
    local f = assert(io.open(inp, "w")); f:write(input); f:close()
    local cmd = exe
    if script then
      local s = assert(io.open(dir .. "/script.lua", "w")); s:write(script); s:close()
      cmd = cmd .. " -i " .. dir .. "/script.lua " .. (args or "")
    end
    local out, status = spec.run(cmd .. " < " .. inp)
    os.execute("rm -rf '" .. dir .. "'")
    return out, status
  end

  spec.it("runs a script with -i, keeps its globals, prints and helps", function()
    local script = "-- Adds one.\nfunction add_one(v)\n  return v + 1\nend\nbase = grove.tensor{{1, 2}, {3, 4}}\nfirst_arg = arg[1]\n"
    local out, status = session("x = grove.ones{2}\nx\n?grove.softmax\n?add_one\nadd_one(base)\nfirst_arg, #arg\n?base:reshape\n", script, "hello")
    spec.eq(status, 0, out)
    spec.assert(out:find(" 1  1\n[ f32 tensor of size 2, cpu ]", 1, true), out)
    spec.assert(out:find("grove.softmax(x, d)", 1, true), out)
    spec.assert(out:find("add_one(v)", 1, true) and out:find("  Adds one.", 1, true), out)
    spec.assert(out:find(" 2  3\n 4  5\n[ f32 tensor of size 2x2, cpu ]", 1, true), out)
    spec.assert(out:find("hello\n1\n", 1, true), out)
    spec.assert(out:find("base:reshape(", 1, true), out)
  end)

  spec.it("survives errors, continues incomplete lines, shows multiple values", function()
    local out, status = session("error('boom')\nx = nil + 1\na = {\n  1, 2 }\na\nnil\n" ..
      "1, {k = 'v'}\nprint('alive')\n")
    spec.eq(status, 0, out)
    spec.assert(out:find("boom", 1, true), out)
    spec.assert(out:find("attempt to perform arithmetic", 1, true), out)
    spec.assert(out:find("{1, 2}\n", 1, true), out)
    spec.assert(out:find("> nil\n", 1, true), out)
    spec.assert(out:find("1\n{k = \"v\"}\n", 1, true), out)
    spec.assert(out:find("alive", 1, true), out)
  end)

  spec.it("prints the time of a command that takes over a second", function()
    local out = session("local t0 = grove.now() while grove.now() - t0 < 1.1 do end\n1 + 1\n")
    spec.assert(out:match("%(1%.%d%d s%)\n"), out)
    spec.eq(select(2, out:gsub("%(%d+%.%d%d s%)", "")), 1, out)
  end)
end)
