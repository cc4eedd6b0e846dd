-- Crash safety in the suite: a few SIGKILLs at random moments of a
-- checkpoint save, a sharded diffusers folder save and a training run that
-- saves every step
-- (tests/crash/kill_trials.lua; the long runs are in docs/reliability.md).
local spec = require "spec"

local exe = arg and arg[-1]

spec.describe("kill -9 while saving", function()
  for _, kind in ipairs { "save", "folder", "train" } do
    spec.it(kind .. ": the last complete save loads, the next save leaves no temporary file", function()
      if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
      local out, status = spec.run("'" .. exe .. "' tests/crash/kill_trials.lua --trials 2 --kind " .. kind .. " --seed 3")
      spec.eq(status, 0, out)
      spec.assert(out:find(kind .. ": 2 kills, every time the last complete save loaded", 1, true), out)
    end)
  end
end)
