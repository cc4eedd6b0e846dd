-- The shapes evaluator's calibration table (docs/shapes.md): for each size
-- and category, how many of the data set's own renders pass their caption,
-- how many pass with two unnamed objects added (outside counting they
-- should), and how many hard negatives (one thing drawn wrong on purpose,
-- judged by the original caption) still pass.
--
--   build/grove scripts/evaluator-calibration.lua [--n 300] [--sizes 32,64] [--seed 91]
local o = { n = 300, sizes = "32,64", seed = 91 }
local i = 1
while arg[i] do
  local k = arg[i]:match("^%-%-(%w+)$")
  if not k or o[k] == nil or arg[i + 1] == nil then error("usage: evaluator-calibration.lua [--n N] [--sizes 32,64] [--seed S]", 0) end
  o[k] = arg[i + 1]
  i = i + 2
end
local sizes = {}
for s in tostring(o.sizes):gmatch("%d+") do sizes[#sizes + 1] = tonumber(s) end
local t0 = grove.now()
local r = grove.eval.shapes.calibrate { sizes = sizes, n = tonumber(o.n), seed = tonumber(o.seed) }
print(grove.eval.shapes.format_calibration(r))
print(string.format("\n%d scenes per category and size, seed %d, %.0f s", r.n, r.seed, grove.now() - t0))
