-- `grove <command> …`: each command is a module lua/grove/cli/<command>.lua
-- returning function(argv) (argv without the command name).
local cli = {}

cli.commands = { "sample", "eval", "info", "grow", "prune", "search", "cache" }

-- A user-facing message from an error: the Lua positions ("…/tensor.lua:123: ")
-- that error() puts before messages raised inside grove are internal detail
-- for someone running a command, so they go; GROVE_DEBUG=1 keeps them and
-- adds the traceback.
function cli.message(err)
  local msg = tostring(err)
  msg = msg:gsub("%[string \"[^\"]*\"%]:%d+: ", "")
  msg = msg:gsub("[^%s:]*%.lua:%d+: ", "")
  return msg
end

local function debugging()
  local v = os.getenv("GROVE_DEBUG")
  return v ~= nil and v ~= "" and v ~= "0"
end

function cli.run(name, argv)
  local ok, cmd = pcall(require, "grove.cli." .. name)
  if not ok then
    if tostring(cmd):find("module 'grove.cli." .. name .. "' not found", 1, true) then
      error("unknown command '" .. name .. "' (commands: " .. table.concat(cli.commands, ", ") ..
            "; or give a script.lua)", 0)
    end
    error(debugging() and cmd or cli.message(cmd), 0)
  end
  local handler = debugging() and function(e) return debug.traceback(tostring(e), 2) end or cli.message
  local ok2, err = xpcall(cmd, handler, argv)
  if not ok2 then error(err, 0) end
end

return cli
