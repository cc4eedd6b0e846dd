-- grove.stats: bootstrap intervals checked by hand on an enumerable sample,
-- the random bootstrap against normal theory on a large one, and the rule
-- that turns a paired difference into a sentence.
local spec = require "spec"
local stats = grove.stats

local function near(a, b, tol, what) spec.assert(math.abs(a - b) <= tol, string.format("%s: %.6f vs %.6f", what, a, b)) end

spec.describe("stats", function()
  spec.it("quantiles interpolate between order statistics (type 7)", function()
    local v = { 1, 2, 4, 8 }
    near(stats.quantile(v, 0), 1, 0, "q0")
    near(stats.quantile(v, 1), 8, 0, "q1")
    near(stats.quantile(v, 0.5), 3, 1e-12, "median") -- h = 2.5: between 2 and 4
    near(stats.quantile(v, 0.25), 1.75, 1e-12, "q.25") -- h = 1.75
  end)

  spec.it("an exact bootstrap of {1, 2, 4} matches the hand computation", function()
    -- The 27 resamples' means, ascending, start 1 (1,1,1), then 4/3 three
    -- times (two 1s and a 2), and end 10/3 three times (two 4s and a 2), then
    -- 4 (4,4,4). Type 7 at 2.5%: h = 26 * 0.025 + 1 = 1.65, so
    -- lo = 1 + 0.65 * (4/3 - 1); at 97.5%: h = 26.35, hi = 10/3 + 0.35 * (4 - 10/3).
    local r = stats.bootstrap({ 1, 2, 4 }, { exact = true })
    spec.eq(r.resamples, 27)
    spec.eq(r.n, 3)
    near(r.estimate, 7 / 3, 1e-12, "estimate")
    near(r.lo, 1 + 0.65 / 3, 1e-12, "lo")
    near(r.hi, 10 / 3 + 0.35 * 2 / 3, 1e-12, "hi")
  end)

  spec.it("the random bootstrap of a mean agrees with normal theory on a large sample, and is seeded", function()
    local xs = {}
    for i = 1, 400 do xs[i] = ((i * 7919) % 101) / 100 end -- spread over [0, 1]
    local r = stats.bootstrap(xs, { resamples = 4000, seed = 3 })
    local half = 1.96 * stats.sd(xs) / math.sqrt(#xs)
    near(r.hi - r.lo, 2 * half, 0.1 * 2 * half, "width")
    near((r.lo + r.hi) / 2, stats.mean(xs), 0.1 * half, "centre")
    local again = stats.bootstrap(xs, { resamples = 4000, seed = 3 })
    spec.eq(again.lo, r.lo)
    spec.eq(again.hi, r.hi)
    spec.assert(stats.bootstrap(xs, { resamples = 4000, seed = 4 }).lo ~= r.lo, "another seed, another stream")
  end)

  spec.it("a paired comparison states a winner only when the interval excludes 0", function()
    local a, b, c = {}, {}, {}
    for i = 1, 60 do
      b[i] = (i % 5) / 5
      a[i] = b[i] + 0.1 + ((i % 3) - 1) * 0.02 -- a is b plus 0.08 to 0.12
      c[i] = b[i] + ((i % 2 == 0) and 0.05 or -0.05) -- c is b plus symmetric noise
    end
    local r = stats.compare(a, b, { names = { "grown", "scratch" } })
    spec.eq(r.verdict, 1)
    spec.assert(r.sentence:match("^grown beats scratch %(difference 0%.100, 95%% CI"), r.sentence)
    spec.assert(r.sentence:match("n = 60%)$"), r.sentence)
    spec.eq(r.verdict_text, "grown better")
    local flipped = stats.compare(b, a, { names = { "scratch", "grown" } })
    spec.eq(flipped.verdict, -1)
    spec.assert(flipped.sentence:match("^grown beats scratch"), flipped.sentence)
    spec.eq(flipped.verdict_text, "grown better")
    local none = stats.compare(c, b, { names = { "pruned", "scratch" } })
    spec.eq(none.verdict, 0)
    spec.assert(none.sentence:match("^no difference detected between pruned and scratch"), none.sentence)
    spec.assert(none.lo < 0 and none.hi > 0, "the interval holds 0")
    spec.eq(none.verdict_text, "no difference detected")
    -- losses: lower is better
    local loss = stats.compare(b, a, { names = { "scratch", "grown" }, lower_is_better = true })
    spec.assert(loss.sentence:match("^scratch beats grown"), loss.sentence)
  end)

  spec.it("seeds of one prompt count as one unit", function()
    local r = stats.paired({ { 1, 0 }, { 1, 1 }, { 0, 0 } }, { 0, 0.5, 0 }, { exact = true })
    spec.eq(r.n, 3)
    near(r.mean_a, 0.5, 1e-12, "mean of seed means")
    near(r.diff, 1 / 3, 1e-12, "diff") -- units (0.5, 1, 0) minus (0, 0.5, 0)
  end)

  spec.it("bad input is a clear error", function()
    spec.raises(function() stats.bootstrap({}) end, "scores is empty")
    spec.raises(function() stats.bootstrap({ 1, 0 / 0 }) end, "scores[2] is not a finite number")
    spec.raises(function() stats.paired({ 1, 2 }, { 1 }) end, "a has 2 units and b has 1")
    spec.raises(function() stats.bootstrap({ 1, 2 }, { level = 1.5 }) end, "level must be in")
    spec.raises(function() stats.bootstrap({ 1, 2 }, { resamples = 0 }) end, "resamples must be")
    spec.raises(function() stats.paired({ {} }, { 1 }) end, "empty list of seeds")
    local big = {}
    for i = 1, 12 do big[i] = i end
    spec.raises(function() stats.bootstrap(big, { exact = true }) end, "exact enumeration")
  end)
end)
