-- Search on a diffusers pipeline folder (`grove search --model DIR`): the
-- candidates come from the pipeline, one image per seed, each made exactly
-- as `grove sample --model DIR --seed S` makes it (the same pipe:generate
-- call: one prompt, one image, the same options), so a pick is
-- regenerated bit for bit by that command alone.
--
--   local pipe = grove.diffusers.pipeline("Sana_1600M")
--   local picked, cands = grove.search.run_pipeline(pipe, "a red apple", {
--     n = 16, pick = 1, policy = "tournament", judge = "examples/judge_colour.lua", seed = 0, steps = 20 })
--   -- candidate i: seed (opts.seed + i); picked[1].seed is the seed to give grove sample
--
-- A judge is any function (image, prompt) -> probability in [0, 1] (image
-- (H, W, 3) f32 in [-1, 1]), a name (search.judges), or a .lua file
-- returning one (search.load_judge); examples/judge_colour.lua and
-- examples/judge_shapes.lua are two. Policies are those of grove.search
-- that rank made candidates (tournament, best_of_n, topk, random, or
-- yours); halving searches inside grove's own sampler and is refused here.
return function(grove, search)
  -- the options of pipe:generate a candidate is made with (grove sample --model's)
  search.PIPELINE_OPTIONS = { "steps", "cfg", "height", "width", "negative_prompt", "sampler", "binning" }

  local function is_integer(v) return type(v) == "number" and v % 1 == 0 and v >= 0 and v < 2 ^ 53 end

  -- A judge from a .lua file (the command line's --judge): the file returns
  -- a function (image, prompt) -> probability, or anything search.judge
  -- takes. Other values pass through search.judge as they are.
  function search.load_judge(v)
    if type(v) == "string" and v:match("%.lua$") then
      local chunk, err = loadfile(v)
      if not chunk then error("search: cannot load the judge file: " .. tostring(err), 0) end
      local ok, value = pcall(chunk)
      if not ok then error("search: the judge file " .. v .. " failed: " .. tostring(value), 0) end
      if type(value) ~= "function" and type(value) ~= "table" then
        error("search: the judge file " .. v .. " must return a function (image, prompt) -> probability, got " ..
              type(value), 0)
      end
      return search.judge(value)
    end
    return search.judge(v)
  end

  -- One candidate's image: (H, W, 3) f32 in [-1, 1], and the generate
  -- output (steps, sampler, sizes).
  function search.pipeline_image(pipe, prompt, seed, opts)
    local g = { prompt = prompt, seed = seed, num_images = 1, callback = opts.callback }
    for _, k in ipairs(search.PIPELINE_OPTIONS) do g[k] = opts[k] end
    local out = pipe:generate(g)
    local image = out.images:select(1, 1):contiguous()
    out.images = nil
    return image, out
  end

  -- The n candidates: candidate i from seed (opts.seed + i).
  function search.pipeline_candidates(pipe, prompt, opts)
    local n, seed = opts.n or 8, opts.seed or 0
    if not is_integer(n) or n < 1 then error("search: n must be a positive integer, got " .. tostring(n), 0) end
    if not is_integer(seed) then error("search: seed must be an integer >= 0, got " .. tostring(seed), 0) end
    local cands = {}
    for i = 1, n do
      local image, out = search.pipeline_image(pipe, prompt, seed + i, opts)
      cands[i] = { index = i, seed = seed + i, image = image, steps = out.steps, sampler = out.sampler,
                   width = out.width, height = out.height }
      if opts.progress then opts.progress(i, n, cands[i]) end
    end
    return cands
  end

  -- picked, candidates. opts: n (8), pick (1), policy ("tournament"),
  -- judge (required), seed (0), progress(i, n, candidate) after each
  -- candidate, and pipe:generate's steps, cfg, height, width,
  -- negative_prompt, sampler, binning.
  function search.run_pipeline(pipe, prompt, opts)
    if type(pipe) ~= "table" or type(pipe.generate) ~= "function" then
      error("search: expected a pipeline (grove.diffusers.pipeline), got " .. type(pipe), 0)
    end
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    if o.judge ~= nil then o.judge = search.load_judge(o.judge) end
    local judge, policy, name, batched = search.prepare(prompt, o)
    if policy.sampling then
      error("search: policy " .. name .. " searches inside grove's own sampler; a pipeline folder's candidates are " ..
            "ranked by tournament, best_of_n, topk, random or a policy of yours", 0)
    end
    local cands = search.pipeline_candidates(pipe, prompt, o)
    return search.choose(prompt, cands, o, judge, policy, name, batched), cands
  end
end
