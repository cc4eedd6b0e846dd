-- Top-k: best-of-N under the name the study uses for pick > 1 (the k
-- candidates with the highest judge scores, best first, ties in the
-- candidates' order). Kept as its own file so that a changed top-k
-- (say, one that skips near-duplicates) does not change best-of-N.
local best_of_n = require "grove.search.best_of_n"

return function(prompt, candidates, judge, opts)
  return best_of_n(prompt, candidates, judge, opts)
end
