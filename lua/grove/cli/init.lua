-- `grove <command> …`: each command is a module lua/grove/cli/<command>.lua
-- returning function(argv) (argv without the command name).
local cli = {}

cli.commands = { "sample", "eval", "info", "grow", "prune", "search" }

function cli.run(name, argv)
  local ok, cmd = pcall(require, "grove.cli." .. name)
  if not ok then
    if tostring(cmd):find("module 'grove.cli." .. name .. "' not found", 1, true) then
      error("unknown command '" .. name .. "' (commands: " .. table.concat(cli.commands, ", ") ..
            "; or give a script.lua)", 0)
    end
    error(cmd, 0)
  end
  return cmd(argv)
end

return cli
