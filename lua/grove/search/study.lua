-- The candidates-vs-steps study of inference-time search (docs/search.md),
-- as grove.search.study(opts); recipes/search_study.lua and
-- recipes/pipeline.lua are its command lines.
--
-- For every prompt (the first `prompts` of each category of the evaluation
-- set) it samples max_n candidates once (each from its own seed), scores
-- each with the judge and with the evaluator, and then, for N = 1, 2, 4, …,
-- max_n, lets each policy pick among the first N: the judge's tournament and
-- best-of-N, the evaluator itself (the oracle: the ceiling), and a random
-- pick (the floor), scored by its expectation: the fraction of the first N
-- candidates that pass, so the floor carries no noise of its own draw. Against them, the same model evaluations spent on one
-- candidate: steps·N denoising steps instead of steps (up to steps_max_n).
--
--   local r = grove.search.study { parts = parts, judge = judge_or_path_or_"evaluator", out = "runs/search_study" }
--   -- r.results[line][N] = {per_category =, overall =}, r.Ns, r.table (markdown), r.rows (line, N, evals, scores),
--   -- r.comparisons (search.study_comparisons), r.comparisons_table (markdown)
-- Writes OUT/table.md, OUT/comparisons.md, OUT/results.csv, OUT/scaling.png and OUT/example.png.
return function(grove, search)
  search.study_defaults = {
    prompts = 20, max_n = 64, steps = 20, steps_max_n = 16, cfg = 4.5, batch = 64, size = 32, seed = 0,
    out = "runs/search_study",
  }
  search.study_lines = { "tournament", "best_of_n", "oracle", "random", "steps" }

  -- The study's comparisons as paired differences over its prompts
  -- (grove.stats.compare: a winner only when the 95% CI excludes 0), from
  -- rows as search.study returns them ({line =, n =, evals =, per_prompt =}):
  -- for every N > 1 the tournament at N against N = 1, against a random pick
  -- among the same N and against the oracle, and, where the steps line
  -- reaches N·steps, N candidates against one candidate with N× the steps
  -- (equal model evaluations). Each: {kind =, N =, what =, names =, a =, b =
  -- (the per-prompt values), result =}.
  function search.study_comparisons(rows, steps)
    local per = {}
    for _, r in ipairs(rows) do per[r.line .. "@" .. r.evals] = r.per_prompt end
    local function pp(line, k) return per[line .. "@" .. k * steps] end
    local out = {}
    local function add(kind, N, what, a, na, b, nb)
      if not a or not b or #a == 0 or #a ~= #b then return end
      out[#out + 1] = { kind = kind, N = N, what = what, names = { na, nb }, a = a, b = b,
                        result = grove.stats.compare(a, b, { names = { na, nb } }) }
    end
    local Ns = {}
    for _, r in ipairs(rows) do if r.line == "tournament" and r.n > 1 then Ns[#Ns + 1] = r.n end end
    table.sort(Ns)
    for _, k in ipairs(Ns) do
      add("gain", k, string.format("tournament N = %d − N = 1", k), pp("tournament", k), "N = " .. k, pp("tournament", 1), "N = 1")
      add("chance", k, string.format("tournament − random pick, N = %d", k), pp("tournament", k), "tournament",
          pp("random", k), "random pick")
      add("oracle", k, string.format("oracle − tournament, N = %d", k), pp("oracle", k), "oracle", pp("tournament", k),
          "tournament")
      add("steps", k, string.format("%d candidates − %d× steps (equal model evaluations)", k, k), pp("tournament", k),
          k .. " candidates", pp("steps ×" .. k, k), k .. "× steps")
    end
    return out
  end

  local function power_of_two(n) return n >= 1 and n % 1 == 0 and 2 ^ math.floor(math.log(n) / math.log(2) + 0.5) == n end

  -- opts: search.study_defaults' fields; parts (from grove.train) or
  -- checkpoint (a path, loaded on opts.device); judge: a grove.judge model,
  -- a path to one (loaded on opts.device), or "evaluator"; log (default print).
  function search.study(opts)
    local o = {}
    for k, v in pairs(search.study_defaults) do o[k] = v end
    for k, v in pairs(opts or {}) do o[k] = v end
    local say = o.log or print
    if not power_of_two(o.max_n) then error("search_study: max_n must be a power of two, got " .. tostring(o.max_n), 0) end
    os.execute("mkdir -p '" .. o.out .. "'")
    local parts = o.parts or grove.train.load_for_inference(o.checkpoint, { device = o.device })
    local judge_model = o.judge
    if type(judge_model) == "string" then
      judge_model = judge_model ~= "evaluator" and grove.judge.load(judge_model):to(o.device or "cpu") or nil
    end
    local E = grove.eval.shapes
    local categories = grove.data.captions.categories

    local prompts, category = {}, {}
    for _, cat in ipairs(categories) do
      local set = grove.data.shapes.prompts(cat)
      for i = 1, math.min(o.prompts, #set) do
        prompts[#prompts + 1] = set[i]
        category[#prompts] = cat
      end
    end
    local Ns = {}
    do
      local n = 1
      while n <= o.max_n do Ns[#Ns + 1] = n; n = n * 2 end
    end
    say(string.format("%d prompts, N = 1..%d, %d steps per candidate", #prompts, o.max_n, o.steps))

    local function passes(image, prompt) return E.check(image:unsqueeze(1), prompt, 1) and true or false end

    -- Candidates: per prompt, the judge's score and the evaluator's verdict of each.
    local t0 = grove.now()
    local rows = {}            -- rows[i] = {cands = {...}, pass = {bool...}, score = {...}}
    local example              -- the first prompt's candidates, for a grid
    for i, prompt in ipairs(prompts) do
      local cands = search.candidates(parts, prompt, { n = o.max_n, seed = o.seed + (i - 1) * o.max_n, steps = o.steps,
                                                       cfg = o.cfg, batch = o.batch, size = o.size })
      local images = {}
      for k, c in ipairs(cands) do images[k] = c.image end
      local scores
      if judge_model then
        local ps = {}
        for k = 1, #images do ps[k] = prompt end
        scores = judge_model:score(images, ps)
      else
        scores = {}
        for k, img in ipairs(images) do scores[k] = passes(img, prompt) and 1 or 0 end
      end
      local pass = {}
      for k, img in ipairs(images) do pass[k] = passes(img, prompt) end
      -- keep the images of the first prompt only: the rest are summarised by
      -- their scores and verdicts
      if i == 1 then example = cands end
      for _, c in ipairs(cands) do if i ~= 1 then c.image = nil end end
      rows[i] = { cands = cands, pass = pass, score = scores }
      if i % 10 == 0 or i == #prompts then
        say(string.format("candidates: %d/%d prompts  %.0f s", i, #prompts, grove.now() - t0))
      end
    end

    -- A policy run on the first N candidates with precomputed scores: the
    -- policies themselves (lua/grove/search/) pick, from a judge that looks the
    -- score up instead of running the model again.
    local function pick_with(policy, row, N, which, seed)
      local subset, where = {}, {}
      for k = 1, N do
        local c = { index = k, seed = row.cands[k].seed, image = {} } -- a stand-in image: the lookup key
        subset[k], where[c.image] = c, k
      end
      local lookup = function(image) return which[where[image]] end
      local picked = policy(nil, subset, lookup, { pick = 1, seed = seed })
      return where[picked[1].image]
    end

    local policies = {
      { name = "tournament", fn = search.policies.tournament.fn, by = "judge" },
      { name = "best_of_n", fn = search.policies.best_of_n.fn, by = "judge" },
      { name = "oracle", fn = search.policies.best_of_n.fn, by = "evaluator" },
      { name = "random", by = "expectation" },
    }

    -- results[line][N] = {per_category =, overall =}
    local function summarise(pass_of)
      local per, sum, n = {}, 0, 0
      local hit, total, per_prompt = {}, {}, {}
      for i = 1, #prompts do
        local cat = category[i]
        local v = pass_of(i) -- a verdict, or the chance of a pass
        per_prompt[i] = v == true and 1 or tonumber(v) or 0
        hit[cat] = (hit[cat] or 0) + per_prompt[i]
        total[cat] = (total[cat] or 0) + 1
      end
      for _, cat in ipairs(categories) do
        if total[cat] then
          per[cat] = hit[cat] / total[cat]
          sum, n = sum + per[cat], n + 1
        end
      end
      -- per_prompt (in prompt order, the same for every line) pairs the lines
      -- for grove.stats
      return { per_category = per, overall = sum / n, per_prompt = per_prompt }
    end

    local results = {}
    for _, p in ipairs(policies) do
      results[p.name] = {}
      for _, N in ipairs(Ns) do
        results[p.name][N] = summarise(function(i)
          local row = rows[i]
          if p.by == "expectation" then
            local n_pass = 0
            for k = 1, N do if row.pass[k] then n_pass = n_pass + 1 end end
            return n_pass / N
          end
          local which = row.score
          if p.by == "evaluator" then
            which = {}
            for k = 1, N do which[k] = row.pass[k] and 1 or 0 end
          end
          return row.pass[pick_with(p.fn, row, N, which, o.seed + i)]
        end)
      end
    end

    -- The steps line: one candidate per prompt (each prompt's first seed), with
    -- steps·N denoising steps, all prompts in batches.
    local function sample_prompts_at(steps)
      local pass = {}
      for start = 1, #prompts, o.batch do
        local chunk, noises = {}, {}
        for i = start, math.min(#prompts, start + o.batch - 1) do
          chunk[#chunk + 1] = prompts[i]
          noises[#noises + 1] = search.noise(o.seed + (i - 1) * o.max_n + 1,
            { size = o.size, channels = parts.model.config.in_channels })
        end
        local feats, mask = grove.no_grad(function() return grove.train.encode(parts, chunk) end)
        local x = grove.no_grad(function()
          return parts.model:sample { noise = grove.cat(noises, 1), text = feats, mask = mask, steps = steps, cfg = o.cfg,
                                      sampler = "dpm" }
        end):clamp(-1, 1)
        for k = 1, #chunk do pass[start + k - 1] = passes(x:select(1, k):contiguous(), chunk[k]) end
      end
      return pass
    end
    results.steps = {}
    for _, N in ipairs(Ns) do
      if N <= o.steps_max_n then
        local t1 = grove.now()
        local pass = sample_prompts_at(o.steps * N)
        results.steps[N] = summarise(function(i) return pass[i] end)
        say(string.format("steps line: %d steps  overall %.3f  %.0f s", o.steps * N, results.steps[N].overall,
          grove.now() - t1))
      end
    end

    -- Table, CSV, plot.
    local short = { single_object = "single", two_object = "two", counting = "count", colors = "colors",
                    position = "position", color_attr = "c_attr" }
    local md = { "| line | N | model evals | " .. (function()
      local t = {}
      for _, cat in ipairs(categories) do t[#t + 1] = short[cat] or cat end
      return table.concat(t, " | ")
    end)() .. " | overall |", "|" .. string.rep("---|", 4 + #categories) }
    local csv = { "line,n,model_evals," .. table.concat(categories, ",") .. ",overall" }
    local table_rows = {}
    for _, line in ipairs(search.study_lines) do
      for _, N in ipairs(Ns) do
        local r = results[line][N]
        if r then
          local cells, cc, vals = {}, {}, {}
          for _, cat in ipairs(categories) do
            cells[#cells + 1] = string.format("%.3f", r.per_category[cat] or 0)
            cc[#cc + 1] = string.format("%.4f", r.per_category[cat] or 0)
            vals[#vals + 1] = r.per_category[cat] or 0
          end
          local label = line == "steps" and string.format("steps ×%d", N) or line
          md[#md + 1] = string.format("| %s | %d | %d | %s | **%.3f** |", label, line == "steps" and 1 or N, N * o.steps,
            table.concat(cells, " | "), r.overall)
          csv[#csv + 1] = string.format("%s,%d,%d,%s,%.4f", line, N, N * o.steps, table.concat(cc, ","), r.overall)
          table_rows[#table_rows + 1] = { line = label, n = line == "steps" and 1 or N, evals = N * o.steps,
                                          per_category = vals, overall = r.overall, per_prompt = r.per_prompt }
        end
      end
    end
    local function write(path, text)
      local f = assert(io.open(path, "w"))
      f:write(text, "\n")
      f:close()
    end
    local md_text = table.concat(md, "\n")
    write(o.out .. "/table.md", md_text)
    local comparisons = search.study_comparisons(table_rows, o.steps)
    local cmp = { string.format("| comparison | difference | 95%% CI | n | verdict |"), "|---|---|---|---|---|" }
    for _, c in ipairs(comparisons) do
      local r = c.result
      cmp[#cmp + 1] = string.format("| %s | %+.3f | %+.3f to %+.3f | %d | %s |", c.what, r.diff, r.lo, r.hi, r.n,
        r.verdict_text)
    end
    local cmp_text = table.concat(cmp, "\n")
    write(o.out .. "/comparisons.md", cmp_text)
    write(o.out .. "/results.csv", table.concat(csv, "\n"))

    local series = {}
    for _, line in ipairs(search.study_lines) do
      local x, y = {}, {}
      for _, N in ipairs(Ns) do
        if results[line][N] then
          x[#x + 1] = math.log(N * o.steps) / math.log(2)
          y[#y + 1] = results[line][N].overall
        end
      end
      series[#series + 1] = { name = line == "steps" and "more steps" or line, x = x, y = y }
    end
    require("grove.plot").lines { path = o.out .. "/scaling.png", title = "score against compute",
      xlabel = "log2 model evaluations per prompt", ylabel = "overall score", series = series, y_min = 0 }

    -- the first prompt's candidates, with judge scores, the tournament's pick starred
    local r1 = rows[1]
    for k, c in ipairs(example) do c.score = r1.score[k] end
    local pk = pick_with(search.policies.tournament.fn, r1, #example, r1.score, o.seed + 1)
    grove.image.save(o.out .. "/example.png", search.grid(example, { example[pk] }))
    return { results = results, Ns = Ns, table = md_text, rows = table_rows, prompts = prompts,
             comparisons = comparisons, comparisons_table = cmp_text,
             example_prompt = prompts[1], time = grove.now() - t0 }
  end
end
