-- grove.stats — the statistics every study and report uses, in one place, so
-- that a sentence saying "X beats Y" follows one rule everywhere: the 95%
-- confidence interval of the paired difference excludes 0. Otherwise the
-- sentence says "no difference detected".
--
--   local s = grove.stats
--   s.bootstrap(scores)                   -- {estimate, lo, hi, n, level, resamples}
--   s.paired(a, b)                        -- CI of mean(a[i] - b[i]) over units i
--   s.compare(a, b, { names = { "grown", "scratch" } }).sentence
--
-- Units are prompts. A unit's score may be a list (one value per seed): it
-- counts as the mean of its seeds, and the bootstrap resamples whole units
-- (a cluster bootstrap), which keeps the seeds of one prompt together — the
-- prompts, not the seeds, are what a reader generalises over.
--
-- Intervals are percentile bootstrap intervals with quantiles by linear
-- interpolation between order statistics (Hyndman and Fan's type 7, the
-- default of R and NumPy). The resampling stream is a seeded SplitMix64, so a
-- study's table is the same on every machine.
local ffi = require "ffi"

local stats = {}

local function fail(what, msg) error("stats." .. what .. ": " .. msg, 3) end

-- A list of finite numbers (or of lists of them: one unit's seeds) as the
-- per-unit values.
local function units(xs, what, name)
  if type(xs) ~= "table" then fail(what, (name or "scores") .. " must be a list of numbers") end
  local out = {}
  for i = 1, #xs do
    local v = xs[i]
    if type(v) == "table" then
      if #v == 0 then fail(what, string.format("%s[%d] is an empty list of seeds", name or "scores", i)) end
      local sum = 0
      for j = 1, #v do
        local x = v[j]
        if type(x) ~= "number" or x ~= x or x == math.huge or x == -math.huge then
          fail(what, string.format("%s[%d][%d] is not a finite number", name or "scores", i, j))
        end
        sum = sum + x
      end
      v = sum / #v
    elseif type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
      fail(what, string.format("%s[%d] is not a finite number", name or "scores", i))
    end
    out[i] = v
  end
  if #out == 0 then fail(what, (name or "scores") .. " is empty") end
  return out
end

function stats.mean(xs)
  local v = units(xs, "mean")
  local s = 0
  for i = 1, #v do s = s + v[i] end
  return s / #v
end

-- Sample standard deviation (n - 1 in the denominator); 0 for one value.
function stats.sd(xs)
  local v = units(xs, "sd")
  if #v < 2 then return 0 end
  local m = stats.mean(v)
  local ss = 0
  for i = 1, #v do ss = ss + (v[i] - m) ^ 2 end
  return math.sqrt(ss / (#v - 1))
end

-- Quantile p of an ascending list, type 7: h = (n - 1) p + 1, interpolated.
function stats.quantile(sorted, p)
  if type(p) ~= "number" or p < 0 or p > 1 then fail("quantile", "p must be in [0, 1]") end
  local n = #sorted
  if n == 0 then fail("quantile", "empty list") end
  local h = (n - 1) * p + 1
  local lo = math.floor(h)
  if lo >= n then return sorted[n] end
  return sorted[lo] + (h - lo) * (sorted[lo + 1] - sorted[lo])
end

-- SplitMix64: a uniform integer in [1, n] per call.
local function splitmix(seed)
  local state = ffi.new("uint64_t[1]", seed)
  local z = ffi.new("uint64_t[1]")
  return function(n)
    state[0] = state[0] + 0x9E3779B97F4A7C15ULL
    z[0] = state[0]
    z[0] = (bit.bxor(z[0], bit.rshift(z[0], 30))) * 0xBF58476D1CE4E5B9ULL
    z[0] = (bit.bxor(z[0], bit.rshift(z[0], 27))) * 0x94D049BB133111EBULL
    z[0] = bit.bxor(z[0], bit.rshift(z[0], 31))
    -- the top 53 bits as a double in [0, 1)
    local u = tonumber(bit.rshift(z[0], 11)) / 9007199254740992
    return math.floor(u * n) + 1
  end
end

local function statistic(opt, what)
  local s = opt.stat or "mean"
  if s == "mean" then
    return function(v, idx, n)
      local sum = 0
      for i = 1, n do sum = sum + v[idx[i]] end
      return sum / n
    end
  elseif type(s) == "function" then
    return function(v, idx, n)
      local pick = {}
      for i = 1, n do pick[i] = v[idx[i]] end
      local r = s(pick)
      if type(r) ~= "number" then fail(what, "stat must return a number") end
      return r
    end
  end
  fail(what, "stat must be \"mean\" or a function of a list")
end

local function options(opt, what)
  opt = opt or {}
  if type(opt) ~= "table" then fail(what, "options must be a table") end
  local level = opt.level or 0.95
  if type(level) ~= "number" or not (level > 0 and level < 1) then fail(what, "level must be in (0, 1)") end
  local resamples = opt.resamples or 10000
  if type(resamples) ~= "number" or resamples < 1 or resamples % 1 ~= 0 then
    fail(what, "resamples must be a positive integer")
  end
  local seed = opt.seed or 0
  if type(seed) ~= "number" or seed < 0 or seed % 1 ~= 0 then fail(what, "seed must be a non-negative integer") end
  return opt, level, resamples, seed
end

-- Percentile bootstrap of a statistic (the mean unless opt.stat is given) over
-- units. opt.exact = true enumerates all n^n resamples instead (small n
-- only: it is how the tests check the interval by hand).
function stats.bootstrap(xs, opt)
  local level, resamples, seed
  opt, level, resamples, seed = options(opt, "bootstrap")
  local v = units(xs, "bootstrap", opt.name)
  local n = #v
  local stat = statistic(opt, "bootstrap")
  local idx, draws = {}, {}
  for i = 1, n do idx[i] = i end
  local estimate = stat(v, idx, n)
  if opt.exact then
    if n ^ n > 1e6 then fail("bootstrap", "exact enumeration needs n^n <= 1e6 (n = " .. n .. ")") end
    for i = 1, n do idx[i] = 1 end
    while true do
      draws[#draws + 1] = stat(v, idx, n)
      local k = n
      while k >= 1 and idx[k] == n do idx[k] = 1; k = k - 1 end
      if k < 1 then break end
      idx[k] = idx[k] + 1
    end
  else
    local draw = splitmix(seed)
    for r = 1, resamples do
      for i = 1, n do idx[i] = draw(n) end
      draws[r] = stat(v, idx, n)
    end
  end
  table.sort(draws)
  local a = (1 - level) / 2
  return { estimate = estimate, lo = stats.quantile(draws, a), hi = stats.quantile(draws, 1 - a), n = n,
           level = level, resamples = #draws }
end

-- The paired difference a[i] - b[i] over units (each a number or a list of
-- seeds), with its bootstrap CI, the two means, and the verdict:
-- 1 when the interval lies above 0, -1 below, 0 when it contains 0.
function stats.paired(a, b, opt)
  opt = opt or {}
  local va, vb = units(a, "paired", "a"), units(b, "paired", "b")
  if #va ~= #vb then
    fail("paired", string.format("a has %d units and b has %d: a paired comparison needs the same units", #va, #vb))
  end
  local d = {}
  for i = 1, #va do d[i] = va[i] - vb[i] end
  local r = stats.bootstrap(d, opt)
  r.diff = r.estimate
  r.mean_a, r.mean_b = stats.mean(va), stats.mean(vb)
  r.verdict = r.lo > 0 and 1 or r.hi < 0 and -1 or 0
  return r
end

local function num(x, digits) return string.format("%." .. (digits or 3) .. "f", x) end

-- "0.312 (95% CI 0.270 to 0.351, n = 120)"
function stats.format(r, digits)
  return string.format("%s (%d%% CI %s to %s, n = %d)", num(r.estimate, digits), math.floor(r.level * 100 + 0.5),
                       num(r.lo, digits), num(r.hi, digits), r.n)
end

-- stats.paired plus the sentence the rule allows and its short form for a
-- table cell (r.verdict_text: "X better", "Y better" or "no difference
-- detected"). opt.names = {"X", "Y"}; opt.lower_is_better for losses and
-- errors.
function stats.compare(a, b, opt)
  opt = opt or {}
  local names = opt.names or { "A", "B" }
  local r = stats.paired(a, b, opt)
  local better = opt.lower_is_better and -r.verdict or r.verdict
  local ci = string.format("difference %s, %d%% CI %s to %s, n = %d", num(r.diff, opt.digits),
                           math.floor(r.level * 100 + 0.5), num(r.lo, opt.digits), num(r.hi, opt.digits), r.n)
  if better > 0 then
    r.sentence = string.format("%s beats %s (%s)", names[1], names[2], ci)
    r.verdict_text = names[1] .. " better"
  elseif better < 0 then
    r.sentence = string.format("%s beats %s (%s)", names[2], names[1], ci)
    r.verdict_text = names[2] .. " better"
  else
    r.sentence = string.format("no difference detected between %s and %s (%s)", names[1], names[2], ci)
    r.verdict_text = "no difference detected"
  end
  r.better = better
  return r
end

return stats
