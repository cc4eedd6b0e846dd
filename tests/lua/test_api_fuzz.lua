-- The property-based fuzz of the tensor API (tests/lua/api_fuzz.lua): a few
-- thousand seeded random calls, every failure a Lua error about the
-- arguments, no leak. The long run is in docs/reliability.md.
local spec = require "spec"
local api_fuzz = require "api_fuzz"

spec.describe("tensor API fuzz", function()
  for _, seed in ipairs { 1, 2, 3 } do
    spec.it("seed " .. seed .. ": 1000 random calls, no internal error, no leak", function()
      local st = api_fuzz.run { calls = 1000, seed = seed }
      spec.eq(st.calls, 1000)
      spec.assert(st.ok > 100 and st.errors > 100, string.format("a mix of results (%d ok, %d errors)", st.ok, st.errors))
    end)
  end
end)
