-- Search inside sampling: all N candidates are denoised together; at the
-- step opts.at (half the steps by default) the judge scores each one's
-- predicted clean image x0, the worse half is dropped, and each dropped
-- slot is refilled from a survivor: the survivor's x0 noised back to the
-- current σ with fresh noise from the dropped candidate's seed,
-- x = (1 − σ)·x0 + σ·ε. The rest of the steps run on the refilled batch and
-- the final images are picked best-of-N.
--
-- A sampling policy (grove.search.register(name, fn, {sampling = true})) is
-- fn(parts, prompt, judge, opts) -> picked, candidates. The N candidates
-- share one batch; one that was never dropped regenerates bit for bit
-- (grove.search.regenerate with the candidate: its seed, batch N, slot); a refilled one
-- records .parent (the survivor's seed) and is reproduced only by the whole
-- search. With the "dpm" sampler a refilled slot's first step after the
-- refill still uses the slot's previous x0 in its second-order correction;
-- "euler" has no such memory.
local grove = require "grove"

return function(parts, prompt, judge, o)
  local search = grove.search
  local n, steps = o.n, o.steps
  local at = o.at or math.max(1, math.floor(steps / 2))
  local noises = {}
  for i = 1, n do noises[i] = search.noise(o.seed + i, o) end
  local parent = {}
  local function callback(i, sigma, x, x0)
    if i ~= at or n < 2 or sigma == 0 then return nil end
    local x0c = x0:clamp(-1, 1)
    local scores, order = {}, {}
    for k = 1, n do
      scores[k] = judge(x0c:select(1, k):contiguous(), prompt)
      order[k] = k
    end
    table.sort(order, function(a, b) if scores[a] ~= scores[b] then return scores[a] > scores[b] end return a < b end)
    local keep = math.ceil(n / 2)
    local rows = {}
    for k = 1, n do rows[k] = x:narrow(1, k, 1) end
    for r = keep + 1, n do
      local slot, src = order[r], order[(r - keep - 1) % keep + 1]
      local eps = grove.randn({ 1, o.size, o.size, o.channels }, { generator = grove.Generator(o.seed + slot + 2 ^ 31) })
      rows[slot] = grove.lincomb({ x0:narrow(1, src, 1), eps }, { 1 - sigma, sigma })
      parent[slot] = o.seed + src
    end
    return grove.cat(rows, 1)
  end
  local so = {}
  for k, v in pairs(o) do so[k] = v end
  so.batch, so.callback = n, callback
  local images = search.sample_noises(parts, prompt, noises, so)
  local cands = {}
  for i = 1, n do cands[i] = { index = i, seed = o.seed + i, parent = parent[i], image = images[i], batch = n, slot = i } end
  local picked = require("grove.search.best_of_n")(prompt, cands, judge, o)
  return picked, cands
end
