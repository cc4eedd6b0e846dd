-- grove.search: inference-time scaling (SANA 1.5, DESIGN.md §4). Sample N
-- candidates for a prompt, each from its own seed, let a judge score how
-- well each matches the prompt, and keep the best by a policy.
--
--   local picked, cands = grove.search.run(parts, "two red circles",
--     {n = 32, pick = 4, policy = "tournament", judge = judge, seed = 0})
--   -- picked[k] = {image = (H, W, C) f32, seed = n, score = yes probability, index = i, batch =, slot =}
--   local again = grove.search.regenerate(parts, "two red circles", picked[1])  -- bit for bit
--
-- A judge is any function (image, prompt) -> yes probability in [0, 1]
-- (grove.judge's model gives one with judge:fn(); grove.search.judges.evaluator
-- is the analytic evaluator as an oracle). A policy is any function
-- (prompt, candidates, judge, opts) -> picked list (search/best_of_n.lua,
-- topk.lua, tournament.lua, random.lua); search/halving.lua searches inside
-- the sampler instead and is run by name like the others.
return function(grove)
  local search = {}
  grove.search = search
  -- {fn =, sampling =} by name: register(name, fn): fn(prompt, candidates,
  -- judge, opts) -> picked. register(name, fn, {sampling = true}): fn(parts,
  -- prompt, judge, opts) -> picked, candidates, a policy that runs the
  -- sampler itself.
  local policies = grove.registry.new { owner = "search", kind = "policy", register_name = "search.register",
    entry = function(fn, name, how, where)
      if type(fn) ~= "function" then
        if where then
          error(where .. ": policy '" .. name .. "' must be a function (prompt, candidates, judge, opts) -> picked, got "
                .. type(fn), 0)
        end
        error("search: policy must be a name or a function, got " .. type(fn), 0)
      end
      return { fn = fn, sampling = how and how.sampling or false }
    end }
  search.policies = policies.entries
  search.policy_registry = policies

  local function sorted_names(t)
    local out = {}
    for k in pairs(t) do out[#out + 1] = k end
    table.sort(out)
    return table.concat(out, ", ")
  end

  function search.register(name, fn, how)
    policies.register(name, fn, how)
    return fn
  end
  for _, name in ipairs { "best_of_n", "topk", "tournament", "random" } do
    search.register(name, require("grove.search." .. name))
  end

  -- {fn =, sampling =}, name from a registered name or a function.
  search.policy = policies.get
  -- A policy from a name, a function, or a .lua file returning a function
  -- (the command lines' --policy).
  search.load_policy = policies.load

  local judges = {}
  search.judges = judges
  -- The analytic evaluator as an oracle judge: 1 when the image passes, else 0.
  -- The study's ceiling; the evaluator stays the referee, so a real search
  -- uses a trained judge (grove.judge).
  function judges.evaluator(image, prompt)
    local x = image:dim() == 3 and image:unsqueeze(1) or image
    return grove.eval.shapes.check(x, prompt, 1) and 1 or 0
  end

  -- A judge from a name ("evaluator"), a function, or a grove.judge model.
  function search.judge(j)
    if type(j) == "function" then return j end
    if type(j) == "string" then
      if judges[j] then return judges[j] end
      error("search: unknown judge '" .. j .. "' (known: " .. sorted_names(judges) .. "; or a grove.judge model)", 0)
    end
    if type(j) == "table" and type(j.fn) == "function" then return j:fn() end
    if type(j) == "table" and type(j.score) == "function" then
      return function(image, prompt) return j:score({ image }, { prompt })[1] end
    end
    error("search: judge must be a function (image, prompt) -> yes probability, or a table with "
          .. ":score(images, prompts), got " .. type(j), 0)
  end

  -- The judge checked and asked at most once per image.
  local function checked(judge)
    local seen = setmetatable({}, { __mode = "k" })
    return function(image, prompt)
      local key = image
      if seen[key] and seen[key][1] == prompt then return seen[key][2] end
      local s = judge(image, prompt)
      if type(s) ~= "number" or s ~= s or s < 0 or s > 1 then
        error("search: the judge must return a probability in [0, 1], got " .. tostring(s), 0)
      end
      seen[key] = { prompt, s }
      return s
    end
  end
  search.checked_judge = checked

  local function is_integer(v) return type(v) == "number" and v % 1 == 0 and v >= 0 and v < 2 ^ 53 end

  local function options(parts, o)
    o = o or {}
    local c = parts.model.config
    local r = {}
    for k, v in pairs(o) do r[k] = v end
    r.size = r.size or 32
    r.steps = r.steps or 20
    if r.cfg == nil then r.cfg = 4.5 end
    r.sampler = r.sampler or "dpm"
    r.batch = r.batch or 1
    r.seed = r.seed or 0
    r.channels = c.in_channels
    if not is_integer(r.seed) then error("search: seed must be an integer >= 0, got " .. tostring(r.seed), 0) end
    if not is_integer(r.batch) or r.batch < 1 then error("search: batch must be a positive integer, got " .. tostring(r.batch), 0) end
    return r
  end

  -- The starting noise of one seed: (1, size, size, C), drawn from its own
  -- generator, so a candidate does not depend on its batch.
  function search.noise(seed, o)
    return grove.randn({ 1, o.size, o.size, o.channels }, { generator = grove.Generator(seed) })
  end

  -- Samples from a list of (1, H, W, C) noises for one prompt, `batch` at a
  -- time; returns a list of (H, W, C) images in [-1, 1] and where each was
  -- made, {batch = size of its batch, slot = its place in it}. opts.callback
  -- as Sana:sample's (it sees one batch at a time).
  --
  -- An image depends on its noise and on its batch's size and its slot in
  -- it, never on the other noises of the batch: the matrix products give a
  -- row the same bits for the same row count and position, but may round
  -- differently at another (OpenBLAS picks kernels by shape). So a batch of
  -- copies of one noise reproduces the slot's image exactly.
  function search.sample_noises(parts, prompt, noises, o)
    local out, where = {}, {}
    for start = 1, #noises, o.batch do
      local chunk, caps = {}, {}
      for i = start, math.min(#noises, start + o.batch - 1) do
        chunk[#chunk + 1] = noises[i]
        caps[#caps + 1] = prompt
      end
      local feats, mask = grove.no_grad(function() return grove.train.encode(parts, caps) end)
      local x = parts.model:sample { noise = grove.cat(chunk, 1), text = feats, mask = mask, steps = o.steps, cfg = o.cfg,
                                     sampler = o.sampler, callback = o.callback }
      x = x:clamp(-1, 1)
      for k = 1, #chunk do
        out[#out + 1] = x:select(1, k):contiguous()
        where[#out] = { batch = #chunk, slot = k }
      end
    end
    return out, where
  end

  -- The N candidates for a prompt: candidate i starts from seed (opts.seed + i).
  function search.candidates(parts, prompt, opts)
    local o = options(parts, opts)
    local n = o.n or 1
    if not is_integer(n) or n < 1 then error("search: n must be a positive integer, got " .. tostring(n), 0) end
    local noises, out = {}, {}
    for i = 1, n do noises[i] = search.noise(o.seed + i, o) end
    local images, where = search.sample_noises(parts, prompt, noises, o)
    for i = 1, n do
      out[i] = { index = i, seed = o.seed + i, image = images[i], batch = where[i].batch, slot = where[i].slot }
    end
    return out
  end

  -- One candidate's image again, bit for bit, without the others: pass the
  -- candidate, or its seed with {batch =, slot =} (1, 1: what search.run's
  -- default batch of 1 gives), and the steps, cfg, size and sampler it was
  -- made with. A batch of copies of the seed's noise stands in for its batch.
  function search.regenerate(parts, prompt, pick, opts)
    local seed, batch, slot
    opts = opts or {}
    if type(pick) == "table" then seed, batch, slot = pick.seed, pick.batch or 1, pick.slot or 1
    else seed, batch, slot = pick, opts.batch or 1, opts.slot or 1 end
    if not is_integer(seed) then error("search.regenerate: expected a seed or a candidate, got " .. tostring(pick), 2) end
    if not is_integer(slot) or slot < 1 or slot > batch then
      error("search.regenerate: slot " .. tostring(slot) .. " is not in a batch of " .. tostring(batch), 2)
    end
    local o = options(parts, opts)
    o.batch = batch
    local noise = search.noise(seed, o)
    local copies = {}
    for k = 1, batch do copies[k] = noise end
    return search.sample_noises(parts, prompt, copies, o)[slot]
  end

  -- A batched judge (a table with :score(images, prompts) -> list of yes
  -- probabilities, as grove.judge models have) scores all candidates in one
  -- call; the returned judge answers from those scores and asks `judge` for
  -- any other image.
  function search.prescored(judge, batched, prompt, cands)
    local images, prompts, known = {}, {}, {}
    for i, c in ipairs(cands) do images[i], prompts[i] = c.image, prompt end
    local scores = batched:score(images, prompts)
    for i, c in ipairs(cands) do known[c.image] = scores[i] end
    return checked(function(image, p)
      if p == prompt and known[image] then return known[image] end
      return judge(image, p)
    end)
  end

  -- picked, candidates. opts: n (8), pick (1), policy ("tournament": n and
  -- pick powers of two; a name or a function), judge (required), seed
  -- (0; candidate i uses seed + i), steps (20), cfg (4.5), sampler, size
  -- (32), batch (1 candidate per sampling batch: a larger batch is faster,
  -- and then a pick regenerates from its seed, batch and slot). Every
  -- candidate gets .score (judged once each, all in one batch when the
  -- judge has :score) so the caller can show them all; picked entries are
  -- candidates.
  -- The checks every search makes before sampling: the prompt, the
  -- judge (checked), the policy, n and pick. Returns judge, policy entry,
  -- its name, and the batched judge (a table with :score) or nil.
  function search.prepare(prompt, o)
    if type(prompt) ~= "string" then error("search: expected a prompt string, got " .. type(prompt), 0) end
    if o.judge == nil then error("search: give a judge (a function (image, prompt) -> yes probability)", 0) end
    local judge = checked(search.judge(o.judge))
    local batched = type(o.judge) == "table" and type(o.judge.score) == "function" and o.judge or nil
    local policy, name = search.policy(o.policy or "tournament")
    o.n, o.pick = o.n or 8, o.pick or 1
    if not is_integer(o.n) or o.n < 1 then error("search: n must be a positive integer, got " .. tostring(o.n), 0) end
    if not is_integer(o.pick) or o.pick < 1 or o.pick > o.n then
      error("search: pick must be an integer from 1 to n (" .. tostring(o.n) .. "), got " .. tostring(o.pick), 0)
    end
    return judge, policy, name, batched
  end

  -- The policy's picks among candidates made already; every candidate
  -- gets .score. judge, policy, name, batched as search.prepare gives them.
  function search.choose(prompt, cands, o, judge, policy, name, batched)
    if batched then judge = search.prescored(judge, batched, prompt, cands) end
    local picked = policy.fn(prompt, cands, judge, o)
    if type(picked) ~= "table" or #picked < 1 then error("search: policy " .. name .. " picked nothing", 0) end
    for _, c in ipairs(cands) do c.score = judge(c.image, prompt) end
    for _, c in ipairs(picked) do c.score = c.score or judge(c.image, prompt) end
    return picked
  end

  function search.run(parts, prompt, opts)
    opts = opts or {}
    local o = options(parts, opts)
    local judge, policy, name, batched = search.prepare(prompt, o)
    if policy.sampling then
      local picked, cands = policy.fn(parts, prompt, judge, o)
      if type(picked) ~= "table" or #picked < 1 then error("search: policy " .. name .. " picked nothing", 0) end
      for _, c in ipairs(cands) do c.score = judge(c.image, prompt) end
      for _, c in ipairs(picked) do c.score = c.score or judge(c.image, prompt) end
      return picked, cands
    end
    local cands = search.candidates(parts, prompt, o)
    return search.choose(prompt, cands, o, judge, policy, name, batched), cands
  end

  -- The candidates as one grid (u8), each captioned with its seed and score,
  -- picked ones marked with "*".
  function search.grid(cands, picked, opts)
    opts = opts or {}
    local mark, images, caps = {}, {}, {}
    for _, p in ipairs(picked or {}) do mark[p] = true end
    for i, c in ipairs(cands) do
      images[i] = c.image
      caps[i] = string.format("%s%d %.2f", mark[c] and "*" or "", c.seed, c.score or 0)
    end
    return grove.image.grid(images, { cols = opts.cols or math.min(#cands, 8), captions = caps, scale = opts.scale or 2 })
  end

  search.register("halving", require("grove.search.halving"), { sampling = true })
  require "grove.search.pipeline"(grove, search)
  require "grove.search.study"(grove, search)
  return search
end
