-- Pruning a diffusers pipeline folder on real features (`grove prune
-- --model DIR`): block importance measured where the model works.
--
--   local res = grove.prune.pipeline_folder("Sana_1600M", "Sana_pruned", { depth = 16, prompts = 32, steps = 20 })
--   -- Sana_pruned/ is a complete folder; Sana_pruned-importance.json, .csv and .png lie beside it
--
-- The calibration prompts (opts.calib: a file, one prompt a line, or a
-- list; default grove's own, lua/grove/prune/calib_prompts.lua, kept apart
-- from every evaluation prompt set) go through the folder's Gemma-2 as
-- SanaPipeline encodes them. Each prompt is then sampled from noise with
-- the folder's scheduler (steps, cfg: the pipeline's own run), and every
-- step's transformer input — the conditional rows of the guidance batch,
-- with the timestep the transformer received — is a calibration item: the
-- blocks are scored on the latents of the model's own denoising
-- trajectory. The metric is averaged over the prompts at each step, then
-- over the steps with equal weight, as SANA 1.5 averages block importance
-- over the sampling timesteps; the table keeps the per-step values.
--
-- Prompt p's starting noise is drawn alone, from Generator(seed) at
-- counter offset (p − 1)·2^24, so a prompt's trajectory does not depend on
-- the batch it runs in.
return function(grove, prune)
  prune.calib_prompts = require "grove.prune.calib_prompts"
  local NOISE_STRIDE = 2 ^ 24
  local DEFAULT_ORIGIN = "grove's default calibration prompts (lua/grove/prune/calib_prompts.lua)"

  local function is_integer(v) return type(v) == "number" and v % 1 == 0 and v >= 0 and v < 2 ^ 53 end

  -- The calibration prompts: calib (a file or a list; nil: grove's
  -- defaults), the first count of them when count is given. Returns the
  -- list and where it came from.
  function prune.folder_prompts(calib, count)
    local list, origin
    if calib == nil then
      list, origin = prune.calib_prompts, DEFAULT_ORIGIN
    elseif type(calib) == "string" then
      list, origin = prune.read_prompts(calib), calib
      if #list == 0 then error("prune: the calibration set is empty: " .. calib .. " has no prompts", 0) end
    elseif type(calib) == "table" then
      if #calib == 0 then error("prune: the calibration set is empty (no prompts)", 0) end
      for i, s in ipairs(calib) do
        if type(s) ~= "string" then error("prune: calibration prompt " .. i .. " is a " .. type(s) .. ", not a string", 0) end
      end
      list, origin = calib, "given prompts"
    else
      error("prune: calib must be a prompt file or a list of prompts, got " .. type(calib), 0)
    end
    if count ~= nil then
      if not is_integer(count) or count < 1 then error("prune: prompts must be a positive count, got " .. tostring(count), 0) end
      if count > #list then
        error(string.format("prune: %d calibration prompts asked, but %s has %d", count, origin, #list), 0)
      end
    end
    local out = {}
    for i = 1, count or #list do out[i] = list[i] end
    return out, origin
  end

  -- ---- the trajectory calibration set ------------------------------------------------
  local Trajectory = { is_calibration = true }
  Trajectory.__index = Trajectory
  prune.Trajectory = Trajectory

  function Trajectory:count() return #self.prompts * #self.sigmas end

  -- Every (step, batch of prompts) as an item: x (B, h, w, C) the
  -- transformer's conditional input at that step, t (B) the timestep it
  -- received, text and mask, target = ε − x0 (the starting noise minus
  -- the finished sample: the straight flow's velocity, for the loss
  -- metric), sigma, n, first, index (the step). Items are kept (the set
  -- is scored more than once), not freed.
  function Trajectory:batches()
    local steps = self.step_ids
    local j, k = 1, 0
    return function()
      k = k + 1
      if k > #self.chunks then j, k = j + 1, 1 end
      if j > #steps then return nil end
      local ch, s = self.chunks[k], steps[j]
      local at = ch.steps[s]
      return { x = at.x, t = at.t, text = ch.text, mask = ch.mask, target = ch.target, sigma = self.all_sigmas[s],
               n = ch.n, first = ch.first, index = s }
    end
  end

  -- The same set at step j only.
  function Trajectory:at_step(j)
    if not self.all_sigmas[j] then error("prune: the trajectory has steps 1.." .. #self.all_sigmas .. ", not " .. tostring(j), 2) end
    local sub = setmetatable({ step_ids = { j }, sigmas = { self.all_sigmas[j] } }, { __index = self })
    return sub
  end

  -- The calibration set of pipe's own denoising for prompts. opts: steps
  -- (the scheduler's default), cfg (4.5), height, width (the model's
  -- native size; multiples of the VAE's scale: no binning), seed (0),
  -- batch (prompts per sampling run, 4), negative_prompt ("").
  function prune.trajectory_calibration(pipe, prompts, opts)
    opts = opts or {}
    if pipe.kind == "sprint" then
      error("prune: " .. pipe.dir .. " is a Sprint pipeline; its SCM sampling is not the flow trajectory this " ..
            "calibration scores", 0)
    end
    local T = pipe.transformer
    if T.config.guidance_embeds then
      error("prune: " .. pipe.dir .. " has a guidance-embedding transformer (Sprint), which this calibration does not score", 0)
    end
    local seed, batch = opts.seed or 0, opts.batch or 4
    if not is_integer(seed) then error("prune: seed must be an integer >= 0, got " .. tostring(seed), 0) end
    if not is_integer(batch) or batch < 1 then error("prune: batch must be a positive integer, got " .. tostring(batch), 0) end
    if (#prompts + 1) * NOISE_STRIDE >= 2 ^ 53 then error("prune: too many calibration prompts (" .. #prompts .. ")", 0) end
    local vs = pipe:vae_scale_factor()
    local native = (T.config.sample_size or 32) * vs
    local H, W = opts.height or native, opts.width or native
    if not is_integer(H) or not is_integer(W) or H < vs or W < vs or H % vs ~= 0 or W % vs ~= 0 then
      error(string.format("prune: the calibration size must be a multiple of %d (the VAE's scale), got %s x %s", vs,
                          tostring(H), tostring(W)), 0)
    end
    local latent = { 1, H / vs, W / vs, T.config.in_channels }
    local self = setmetatable({ prompts = prompts, chunks = {}, seed = seed, batch = batch, height = H, width = W,
                                cfg = opts.cfg == nil and 4.5 or opts.cfg, x0_kind = "trajectory", all_sigmas = {},
                                timesteps = {} }, Trajectory)
    for first = 1, #prompts, batch do
      local n = math.min(batch, #prompts - first + 1)
      local noises, sub = {}, {}
      for p = first, first + n - 1 do
        local g = grove.Generator(seed)
        g.offset = (p - 1) * NOISE_STRIDE
        noises[#noises + 1] = grove.randn(latent, { generator = g })
        sub[#sub + 1] = prompts[p]
      end
      local eps = n == 1 and noises[1] or grove.cat(noises, 1)
      local chunk = { first = first, n = n, steps = {} }
      local out = pipe:generate { prompt = sub, latents = eps, steps = opts.steps, cfg = self.cfg, output = "latent",
        negative_prompt = opts.negative_prompt, warn = opts.warn,
        callback = function(i, sigma, _, info)
          local xin, tin = info.model_in, info.timestep_in
          -- the guidance batch is [negative, positive]: score the prompts' rows
          local from = xin:size(1) == 2 * n and n + 1 or 1
          chunk.steps[i] = { x = xin:narrow(1, from, n):contiguous(), t = tin:narrow(1, from, n):contiguous() }
          if i == 1 then
            chunk.text = info.encoder_hidden_states_in:narrow(1, from, n):contiguous()
            chunk.mask = info.encoder_attention_mask_in:narrow(1, from, n):contiguous()
          end
          self.all_sigmas[i] = sigma
          self.timesteps[i] = tin:narrow(1, from, 1):item()
        end }
      chunk.target = grove.lincomb({ eps:to(out.latents:device()), out.latents }, { 1, -1 })
      self.chunks[#self.chunks + 1] = chunk
      self.steps = out.steps
    end
    self.step_ids = {}
    for j = 1, #self.all_sigmas do self.step_ids[j] = j end
    self.sigmas = self.all_sigmas
    return self
  end

  local f32buf = require("ffi").new("float[1]")
  local function f32(v) f32buf[0] = v; return tonumber(f32buf[0]) end

  -- The calibration set of a feature cache (`grove cache`, read by
  -- grove.diffusers.cache_dataset in its order, unshuffled): each sample's
  -- clean latents x0 and caption features, noised at every σ that the
  -- folder's scheduler visits in opts.steps steps, x = (1 − σ)·x0 + σ·ε,
  -- with the timestep the pipeline would give the transformer there; ε of
  -- sample p from Generator(seed) at (p − 1)·2^24. opts: steps, seed,
  -- batch (4), prompts (the first N samples; default all).
  function prune.cache_calibration(pipe, cache, opts)
    opts = opts or {}
    local T = pipe.transformer
    if pipe.kind == "sprint" or T.config.guidance_embeds then
      error("prune: " .. pipe.dir .. " is a Sprint pipeline; its SCM time is not the flow σ this calibration draws", 0)
    end
    local seed, batch = opts.seed or 0, opts.batch or 4
    if not is_integer(seed) then error("prune: seed must be an integer >= 0, got " .. tostring(seed), 0) end
    if not is_integer(batch) or batch < 1 then error("prune: batch must be a positive integer, got " .. tostring(batch), 0) end
    local s = pipe:scheduler_settings()
    if not s.scheduler.schedule then error("prune: " .. pipe.dir .. "'s scheduler has no flow schedule to noise at", 0) end
    local steps = opts.steps or s.scheduler.default_steps or 20
    if not is_integer(steps) or steps < 1 then error("prune: steps must be a positive integer, got " .. tostring(steps), 0) end
    local timesteps, sigmas = s.scheduler.schedule(s, steps, f32)
    local ds = grove.diffusers.cache_dataset(cache, { batch_size = batch, shuffle = false, model = pipe })
    local want = opts.prompts or ds.size
    if not is_integer(want) or want < 1 then error("prune: prompts must be a positive count, got " .. tostring(want), 0) end
    if want > ds.size then
      error(string.format("prune: %d calibration samples asked, but the cache %s holds %d", want, cache, ds.size), 0)
    end
    local scale = T.config.timestep_scale or 1
    local self = setmetatable({ prompts = {}, chunks = {}, seed = seed, batch = batch, x0_kind = "cache",
                                all_sigmas = {}, timesteps = {}, steps = steps }, Trajectory)
    for j = 1, steps do self.all_sigmas[j], self.timesteps[j] = sigmas[j], f32(timesteps[j]) * scale end
    local dev = T:device()
    while #self.prompts < want do
      local b = ds:next()
      local n = math.min(b.latents:size(1), want - #self.prompts)
      local first = #self.prompts + 1
      local x0 = b.latents:narrow(1, 1, n):contiguous():to(dev)
      local noises = {}
      for p = first, first + n - 1 do
        local g = grove.Generator(seed)
        g.offset = (p - 1) * NOISE_STRIDE
        noises[#noises + 1] = grove.randn({ 1, x0:size(2), x0:size(3), x0:size(4) }, { generator = g })
        self.prompts[p] = b.captions[p - first + 1]
      end
      local eps = (n == 1 and noises[1] or grove.cat(noises, 1)):to(dev)
      local chunk = { first = first, n = n, steps = {}, text = b.features:narrow(1, 1, n):contiguous():to(dev),
                      mask = b.mask:narrow(1, 1, n):contiguous():to(dev), target = grove.lincomb({ eps, x0 }, { 1, -1 }) }
      for j = 1, steps do
        local sg = sigmas[j]
        chunk.steps[j] = { x = grove.lincomb({ x0, eps }, { 1 - sg, sg }),
                           t = grove.full({ n }, f32(timesteps[j]), { device = dev }) * scale }
      end
      self.chunks[#self.chunks + 1] = chunk
    end
    self.height, self.width = nil, nil
    self.step_ids = {}
    for j = 1, steps do self.step_ids[j] = j end
    self.sigmas = self.all_sigmas
    return self
  end

  -- Importance per step and averaged over the steps (equal weight):
  -- mean[i], by_step[j][i]. opts.metric as grove.prune.importance's.
  function prune.step_importance(model, calib, opts)
    opts = opts or {}
    local N = grove.nn.check_blocks(model, "prune")
    local by_step, mean = {}, {}
    for i = 1, N do mean[i] = 0 end
    local S = #calib.all_sigmas
    for j = 1, S do
      by_step[j] = prune.importance(model, calib:at_step(j), { metric = opts.metric })
      for i = 1, N do mean[i] = mean[i] + by_step[j][i] / S end
    end
    return mean, by_step
  end

  local function block_list(v, N, where)
    if v == nil then return nil end
    return (grove.grow.block_list(v, "keep", N, where, "prune"))
  end

  -- Scores a pipeline folder's blocks on its own trajectories and picks
  -- the blocks to keep. opts: depth (required), keep (protected blocks),
  -- metric, schedule, seed, calib, prompts (a count), steps, cfg, height,
  -- width, batch, dtype, device; calib_images (a feature cache: its
  -- latents and captions instead of the trajectories,
  -- prune.cache_calibration). Returns prune.select's info with by_step,
  -- sigmas, timesteps, prompts, prompts_origin, latents ("trajectory"),
  -- steps, cfg, height, width, seed, seconds.
  function prune.score_pipeline(dir, opts)
    opts = opts or {}
    local t0 = grove.now()
    if opts.depth == nil then error("prune: scoring a pipeline folder needs depth (the number of blocks to keep)", 0) end
    if opts.calib_images and opts.calib then
      error("prune: give calib (prompts sampled from noise) or calib_images (a cache: its captions are the prompts), " ..
            "not both", 0)
    end
    local prompts, origin
    if not opts.calib_images then prompts, origin = prune.folder_prompts(opts.calib, opts.prompts) end
    local pipe = grove.diffusers.pipeline(dir, { dtype = opts.dtype, device = opts.device })
    local T = pipe.transformer
    local N = #T.blocks
    -- depth, keep, metric and schedule checked before the sampling
    local keep = block_list(opts.keep, N, dir)
    prune.options({ depth = opts.depth, keep = keep, metric = opts.metric, schedule = opts.schedule, seed = opts.seed }, N)
    local calib
    if opts.calib_images then
      calib = prune.cache_calibration(pipe, opts.calib_images, opts)
      prompts, origin = calib.prompts, opts.calib_images
    else
      calib = prune.trajectory_calibration(pipe, prompts, opts)
      pipe:offload("text_encoder")
    end
    local mean, by_step = prune.step_importance(T, calib, opts)
    local metric_fn, metric_name = prune.metric(opts.metric or "cosine")
    -- the schedule's scoring of the whole model is the average just made;
    -- any other view (iterative rounds) is scored on the whole set
    local averaged = function(model, c, o)
      if c == calib and #model.blocks == N then return { unpack(mean) } end
      return metric_fn(model, c, o)
    end
    local info = prune.select(T, { depth = opts.depth, metric = averaged, schedule = opts.schedule,
                                   keep = keep, seed = opts.seed, calib = calib })
    info.metric, info.scores = metric_name, mean
    info.by_step, info.sigmas, info.timesteps = by_step, calib.all_sigmas, calib.timesteps
    info.prompts, info.prompts_origin, info.latents = prompts, origin, calib.x0_kind
    info.steps, info.cfg, info.height, info.width, info.seed = calib.steps, calib.cfg, calib.height, calib.width,
                                                              opts.seed or 0
    info.calib, info.rounds = nil, nil
    info.score_seconds = grove.now() - t0
    return info
  end

  -- ---- the importance table -------------------------------------------------------------
  local function csv_field(s)
    s = tostring(s)
    if s:find('[,"\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
    return s
  end

  -- Writes base-importance.json, base-importance.csv and base-importance.png
  -- (the bar chart: kept blue, pruned red) for a scored info; returns the
  -- three paths. extra: fields added to the JSON (model, out).
  function prune.write_importance(base, info, extra)
    local files = require "grove.files"
    local removed = {}
    for _, j in ipairs(info.removed) do removed[j] = true end
    local blocks = {}
    for i, s in ipairs(info.scores) do
      local steps = {}
      for j, row in ipairs(info.by_step or {}) do steps[j] = row[i] end
      blocks[i] = { block = i, name = "transformer_blocks." .. (i - 1), importance = s, removed = removed[i] or false,
                    by_step = grove.json.array(steps) }
    end
    local doc = { metric = info.metric, schedule = info.schedule, source_depth = info.source_depth, depth = info.depth,
                  kept = grove.json.array(info.kept), removed = grove.json.array(info.removed),
                  latents = info.latents or "calibration features", steps = info.steps, cfg = info.cfg, height = info.height, width = info.width,
                  seed = info.seed, sigmas = grove.json.array(info.sigmas or {}),
                  timesteps = grove.json.array(info.timesteps or {}), prompts = grove.json.array(info.prompts or {}),
                  prompts_origin = info.prompts_origin, blocks = grove.json.array(blocks),
                  importance = "1 - mean cos(x_in, x_out) over tokens and prompts at each step, then the mean over steps" }
    for k, v in pairs(extra or {}) do doc[k] = v end
    local json_path, csv_path, png_path = base .. "-importance.json", base .. "-importance.csv", base .. "-importance.png"
    files.write_atomic(json_path, grove.json.encode(doc) .. "\n")
    local head = { "block", "name", "importance", "removed" }
    for j, s in ipairs(info.sigmas or {}) do head[#head + 1] = string.format("step_%d_sigma_%.4f", j, s) end
    local lines = { table.concat(head, ",") }
    for _, b in ipairs(blocks) do
      local row = { b.block, b.name, string.format("%.9g", b.importance), b.removed and "yes" or "no" }
      for j = 1, #(info.by_step or {}) do row[#row + 1] = string.format("%.9g", info.by_step[j][b.block]) end
      for k, v in ipairs(row) do row[k] = csv_field(v) end
      lines[#lines + 1] = table.concat(row, ",")
    end
    files.write_atomic(csv_path, table.concat(lines, "\n") .. "\n")
    prune.chart(png_path, info.scores, info.removed, { metric = info.metric })
    return { json = json_path, csv = csv_path, png = png_path }
  end

  -- Prunes a pipeline folder into a complete one (grove.grow.complete_folder:
  -- the other components linked or copied). Blocks given (keep / remove)
  -- or, with depth, scored on the folder's own trajectories
  -- (prune.score_pipeline; opts as there), or on calib_features
  -- (prune.folder). opts also: components ("link", "copy"),
  -- max_shard_bytes, variant, report (false: no importance files).
  -- Returns prune.folder's summary with out, components, and report (the
  -- importance files) when scored.
  function prune.pipeline_folder(in_dir, out_dir, opts)
    opts = opts or {}
    local t0 = grove.now()
    local mode = opts.components or "link"
    out_dir = grove.grow.check_complete(in_dir, out_dir, mode, "prune")
    local scored
    local trajectory = opts.depth ~= nil and opts.calib_features == nil and opts.remove == nil
    if trajectory then
      scored = prune.score_pipeline(in_dir, opts)
      -- the pipeline is garbage now: give its memory back before writing
      grove.collect()
      grove.empty_cache()
    end
    local res = grove.grow.complete_folder(in_dir, out_dir, { components = mode }, function(tmp)
      local fopts = { max_shard_bytes = opts.max_shard_bytes, variant = opts.variant }
      if scored then fopts.scored = scored
      else
        for _, k in ipairs { "keep", "remove", "depth", "calib_features", "metric", "schedule", "seed", "batch", "timesteps" } do
          fopts[k] = opts[k]
        end
      end
      return prune.folder(in_dir, tmp, fopts)
    end, "prune")
    res.seconds = grove.now() - t0
    if res.scores and opts.report ~= false then
      res.report = prune.write_importance(out_dir, res, { model = in_dir, out = out_dir })
    end
    return res
  end
end
