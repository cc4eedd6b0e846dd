-- grove.prune: a shallower model from a trained one (SANA 1.5 depth
-- pruning, DESIGN.md §4).
--
--   local small, info = grove.prune(model, {depth = 20, metric = "cosine", schedule = "oneshot", calib = parts})
--
-- A metric (prune/cosine.lua, loss.lua, or your own) scores each block's
-- importance on a calibration set (prune/calib.lua); a schedule
-- (prune/oneshot.lua, iterative.lua, and the baselines random.lua and
-- last.lua) decides which blocks stay, scoring as often as it likes. The
-- result keeps the blocks in their order, with weights bit-identical to the
-- source's; the source is untouched.
return function(grove)
  local prune = {}
  local metrics = grove.registry.new { owner = "prune", kind = "metric", register_name = "prune.register_metric",
                                       signature = "(model, calib, opts) -> scores" }
  local schedules = grove.registry.new { owner = "prune", kind = "schedule", register_name = "prune.register_schedule",
                                         signature = "(ctx) -> kept block indices" }
  prune.metrics, prune.schedules = metrics.entries, schedules.entries
  prune.metric_registry, prune.schedule_registry = metrics, schedules
  prune.register_metric, prune.register_schedule = metrics.register, schedules.register

  for _, name in ipairs { "cosine", "loss" } do prune.register_metric(name, require("grove.prune." .. name)) end
  for _, name in ipairs { "oneshot", "iterative", "random", "last" } do
    prune.register_schedule(name, require("grove.prune." .. name))
  end

  -- fn, name from a registered name or a function.
  prune.metric, prune.schedule = metrics.get, schedules.get
  -- ... or a .lua file returning one (the command line's --metric, --schedule).
  prune.load_metric, prune.load_schedule = metrics.load, schedules.load

  require "grove.prune.calib"(grove, prune)
  require "grove.prune.folder"(grove, prune)
  require "grove.prune.features"(grove, prune)
  require "grove.prune.pipeline"(grove, prune)

  local function is_integer(v) return type(v) == "number" and v % 1 == 0 and v >= 0 and v < 2 ^ 53 end

  local function check_model(model) return grove.nn.check_blocks(model, "prune") end
  prune.check_model = check_model

  -- The model as if it had only the blocks at the given source indices, in
  -- that order: a view that shares everything with the model, for scoring.
  function prune.view(model, indices)
    local blocks = {}
    for k, j in ipairs(indices) do blocks[k] = model.blocks[j] end
    return setmetatable({ blocks = blocks }, { __index = model })
  end

  -- The calibration set: source itself when it is one, else one built
  -- from it (parts or an encoder function) with the options.
  local function calibration_of(model, source, opts)
    if getmetatable(source) == prune.Calibration or (type(source) == "table" and source.is_calibration) then return source end
    return prune.calibration(model, source, opts)
  end

  local function check_scores(scores, n, name)
    if type(scores) ~= "table" then error("prune: metric " .. name .. " returned a " .. type(scores) .. ", not a list of scores", 0) end
    if #scores ~= n then error(string.format("prune: metric %s returned %d scores for %d blocks", name, #scores, n), 0) end
    for i = 1, n do
      local s = scores[i]
      if type(s) ~= "number" or s ~= s then
        error(string.format("prune: metric %s gave block %d the score %s", name, i, tostring(s)), 0)
      end
    end
    return scores
  end

  -- scores (a list, one per block), calib. source: parts from grove.train,
  -- a function(captions) -> features, mask, or a calibration; opts: metric
  -- ("cosine") and the calibration's options.
  function prune.importance(model, source, opts)
    opts = opts or {}
    local N = check_model(model)
    local metric, name = prune.metric(opts.metric or "cosine")
    local calib = calibration_of(model, source, opts)
    local scores = grove.no_grad(function() return metric(model, calib, opts) end)
    return check_scores(scores, N, name), calib
  end

  -- Checks and completes grove.prune's options for a source of N blocks.
  function prune.options(opts, N)
    if type(opts) ~= "table" then error("prune: expected an options table {depth =, metric =, schedule =}, got " .. type(opts), 0) end
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    if not is_integer(o.depth) or o.depth < 1 or o.depth > N then
      error(string.format("prune: depth must be an integer from 1 to %d (the model has %d blocks), got %s", N, N,
                          tostring(o.depth)), 0)
    end
    o.metric_fn, o.metric_name = prune.metric(o.metric or "cosine")
    o.schedule_fn, o.schedule_name = prune.schedule(o.schedule or "oneshot")
    o.seed = o.seed or 0
    if not is_integer(o.seed) then error("prune: seed must be a non-negative integer, got " .. tostring(o.seed), 0) end
    local keep, protected = o.keep or {}, {}
    if type(keep) ~= "table" then error("prune: keep must be a list of block indices, got " .. type(keep), 0) end
    local count = 0
    for _, j in ipairs(keep) do
      if not is_integer(j) or j < 1 or j > N then
        error(string.format("prune: keep names block %s, but the model has blocks 1..%d", tostring(j), N), 0)
      end
      if not protected[j] then count = count + 1 end
      protected[j] = true
    end
    if count > o.depth then
      error(string.format("prune: keep protects %d blocks, more than the depth %d", count, o.depth), 0)
    end
    o.protected = protected
    return o
  end

  -- What a schedule works with (see prune/oneshot.lua).
  local function context(model, N, o, info)
    local ctx = { n = N, depth = o.depth, keep = o.protected, seed = o.seed, opts = o, model = model }
    function ctx.all()
      local out = {}
      for j = 1, N do out[j] = j end
      return out
    end
    function ctx.without(list, drop)
      local gone, out = {}, {}
      for _, j in ipairs(drop) do gone[j] = true end
      for _, j in ipairs(list) do if not gone[j] then out[#out + 1] = j end end
      return out
    end
    function ctx.removable(list)
      local out = {}
      for _, j in ipairs(list) do if not o.protected[j] then out[#out + 1] = j end end
      return out
    end
    function ctx.score(alive)
      alive = alive or ctx.all()
      if not info.calib then
        info.calib = calibration_of(model, o.calib, o)
      end
      local view = prune.view(model, alive)
      local raw = grove.no_grad(function() return o.metric_fn(view, info.calib, o) end)
      check_scores(raw, #alive, o.metric_name)
      local by_index = {}
      for k, j in ipairs(alive) do by_index[j] = raw[k] end
      info.rounds[#info.rounds + 1] = { alive = { unpack(alive) }, scores = by_index }
      if #alive == N and not info.scores then info.scores = { unpack(raw) } end
      return by_index
    end
    function ctx.lowest(scores, count, alive)
      local pool = ctx.removable(alive or ctx.all())
      for _, j in ipairs(pool) do
        if type(scores[j]) ~= "number" then error("prune: ctx.lowest: no score for block " .. j, 0) end
      end
      table.sort(pool, function(a, b)
        if scores[a] ~= scores[b] then return scores[a] < scores[b] end
        return a < b
      end)
      local out = {}
      for k = 1, math.min(count, #pool) do out[k] = pool[k] end
      return out
    end
    function ctx.random(n)
      return n > 0 and grove.rand({ n }, { generator = grove.Generator(o.seed) }):tolist() or {}
    end
    return ctx
  end

  -- A new model made of copies of the source blocks at kept (ascending).
  function prune.build(model, kept)
    local N = grove.nn.check_blocks(model, "prune.build")
    if type(kept) ~= "table" or #kept == 0 then
      error("prune.build: kept must list at least one block of 1.." .. N .. " (a model needs blocks), got " ..
            (type(kept) == "table" and "an empty list" or tostring(kept)), 2)
    end
    local seen = {}
    for k, j in ipairs(kept) do
      if not is_integer(j) or j < 1 or j > N then
        error(string.format("prune.build: kept[%d] is %s, but the model has blocks 1..%d", k, tostring(j), N), 2)
      end
      if seen[j] then error(string.format("prune.build: block %d is listed twice in kept", j), 2) end
      seen[j] = true
    end
    local clone = grove.grow.clone_module
    local out = clone(model, { blocks = true })
    if type(model.config) == "table" then
      out.config = {}
      for k, v in pairs(model.config) do out.config[k] = v end
      out.config.depth = #kept
    end
    out.blocks = {}
    for k, j in ipairs(kept) do
      local b = clone(model.blocks[j])
      if model.blocks[j].config == model.config and out.config then b.config = out.config end
      out.blocks[k] = b
    end
    return out
  end

  -- Which blocks stay: runs the schedule (scoring as it likes) and returns
  -- info {kept (ascending), removed, scores, rounds, calib, ...} without
  -- building anything (folder pruning streams the kept blocks instead).
  function prune.select(model, opts)
    local N = check_model(model)
    local o = prune.options(opts, N)
    local info = { source_depth = N, depth = o.depth, metric = o.metric_name, schedule = o.schedule_name, rounds = {} }
    local kept = o.schedule_fn(context(model, N, o, info))
    local name = o.schedule_name
    if type(kept) ~= "table" then error("prune: schedule " .. name .. " returned a " .. type(kept) .. ", not a list of blocks to keep", 0) end
    local seen = {}
    for k, j in ipairs(kept) do
      if not is_integer(j) or j < 1 or j > N then
        error(string.format("prune: schedule %s keeps block %s, but the model has blocks 1..%d", name, tostring(j), N), 0)
      end
      if seen[j] then error(string.format("prune: schedule %s keeps block %d twice", name, j), 0) end
      seen[j] = k
    end
    if #kept ~= o.depth then
      error(string.format("prune: schedule %s kept %d blocks for depth %d", name, #kept, o.depth), 0)
    end
    for j in pairs(o.protected) do
      if not seen[j] then error(string.format("prune: schedule %s removed block %d, which keep protects", name, j), 0) end
    end
    local sorted = { unpack(kept) }
    table.sort(sorted)
    info.kept, info.removed = sorted, {}
    for j = 1, N do if not seen[j] then info.removed[#info.removed + 1] = j end end
    return info
  end

  local function prune_model(model, opts)
    local info = prune.select(model, opts)
    return prune.build(model, info.kept), info
  end

  -- The pruned model with the source's text encoder and tokenizer, as
  -- grove.train.build gives them: parts to save (grove.train.save_weights)
  -- or sample from. The calibration encodes with parts unless opts.calib says otherwise.
  function prune.parts(parts, opts)
    if type(parts) ~= "table" or not parts.model or not parts.text then
      error("prune.parts: expected the parts from grove.train (model, text, tokenizer), got " .. type(parts), 2)
    end
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    if o.calib == nil then o.calib = parts end
    local model, info = prune_model(parts.model, o)
    local out = {}
    for k, v in pairs(parts) do out[k] = v end
    out.model, out.model_config = model, model.config
    out.both = grove.nn.Container { { "model", model }, { "text", parts.text } }
    return out, info
  end

  -- One line for a file's metadata: what was pruned, and how.
  function prune.describe(info)
    return string.format("metric=%s schedule=%s source_depth=%d depth=%d removed=%s", info.metric, info.schedule,
                         info.source_depth, info.depth, table.concat(info.removed, ","))
  end

  -- The per-block importance bar chart: kept blocks in blue, pruned in red.
  local ylabels = { cosine = "1 - cos(x_in, x_out)", loss = "flow loss increase without the block" }
  function prune.chart(path, scores, removed, o)
    o = o or {}
    local plot = require "grove.plot"
    local gone = {}
    for _, j in ipairs(removed or {}) do gone[j] = true end
    local kept_color, pruned_color = plot.palette[1], plot.palette[4]
    local colors = {}
    for i = 1, #scores do colors[i] = gone[i] and pruned_color or kept_color end
    return plot.bars { path = path, values = scores, colors = colors,
      title = o.title or ("block importance (" .. (o.metric or "cosine") .. ")"), xlabel = "block",
      ylabel = o.ylabel or ylabels[o.metric or "cosine"] or "importance",
      legend = { { name = "kept", color = kept_color }, { name = "pruned", color = pruned_color } } }
  end

  grove.prune = setmetatable(prune, { __call = function(_, model, opts) return prune_model(model, opts) end })
end
