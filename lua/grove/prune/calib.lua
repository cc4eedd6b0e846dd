-- The calibration set that importance is measured on: prompts, their
-- caption features, clean images x0, noise levels σ and the noise ε, all
-- fixed by one seed.
--
--   local calib = grove.prune.calibration(model, parts, {prompts = 64, timesteps = 8, seed = 0})
--   for item in calib:batches() do
--     -- item.x = (1 − σ)·x0 + σ·ε (B, H, W, C), item.t = σ·1000 (B), item.text, item.mask,
--     -- item.target = ε − x0 (the flow-matching velocity), item.sigma, item.n, item.first
--   end
--
-- prompts: a list of strings, the path of a file with one prompt per line,
-- or a count n (default 64): n captions of the shapes training split, taken
-- in turn from each category's stream of the seed (prune.default_prompts).
-- timesteps: a list of σ in (0, 1], or a count n (default 8): the midpoints
-- of n equal steps of u in (0, 1) through the model's shift,
-- σ = s·u / (1 + (s − 1)·u), so they spread as the sampler's schedule does.
-- x0: "render" (the shapes renderer draws each caption; the default when
-- every prompt is a shapes caption and the model sees RGB images), "sample"
-- (the model's own samples for the prompts, sample_steps (20) steps at
-- cfg (4.5); the default otherwise) or a tensor (n, H, W, C) of clean
-- latents, one per prompt. size (32) is the side of rendered and sampled
-- images, batch (32) the prompts per forward.
--
-- ε for prompt p at σ index j comes from Generator(seed) at counter offset
-- (j·P + p − 1)·2^24 (P prompts; j = 0 is the noise that "sample" starts
-- from), so every number depends on (seed, p, j) only, not on the batching.
return function(grove, prune)
  local Calib = {}
  Calib.__index = Calib
  prune.Calibration = Calib
  local NOISE_STRIDE = 2 ^ 24

  local function is_integer(v) return type(v) == "number" and v % 1 == 0 and v >= 0 and v < 2 ^ 53 end

  -- Non-blank lines of a prompt file.
  function prune.read_prompts(path)
    local f, err = io.open(path, "r")
    if not f then error("prune: cannot read the calibration prompts: " .. tostring(err), 0) end
    local out = {}
    for line in f:lines() do
      local s = line:match("^%s*(.-)%s*$")
      if s ~= "" then out[#out + 1] = s end
    end
    f:close()
    return out
  end

  -- n captions of the shapes training split (grove.data.shapes, split
  -- "train"): the categories in turn, each from its own stream of the seed.
  -- Calibration never reads the evaluation prompt files; in four of the six
  -- categories the caption grammar has at most 60 sentences and those files
  -- list them all, so a sentence may recur there, but the scenes and noise
  -- are the training split's, not the evaluation's.
  function prune.default_prompts(n, seed)
    local cats = grove.data.captions.categories
    local per = math.ceil(n / #cats)
    local lists = {}
    for c, name in ipairs(cats) do
      local b = grove.data.shapes { batch = per, seed = seed, split = "train", categories = { name }, size = 16 }:next()
      b.images:free()
      lists[c] = b.captions
    end
    local out, round = {}, 1
    while #out < n do
      for _, l in ipairs(lists) do
        if #out < n then out[#out + 1] = l[round] end
      end
      round = round + 1
    end
    return out
  end

  -- σ at the midpoints of n equal steps of u, shifted.
  function prune.sigmas(n, shift)
    local out = {}
    for j = 1, n do out[j] = grove.sample.shift_sigma((j - 0.5) / n, shift or 3) end
    return out
  end

  local function encoder_of(model, source)
    if type(source) == "function" then return source end
    if type(source) == "table" and source.tokenizer and source.text then
      return function(captions)
        -- the tokenizer makes CPU tensors; the encoder may be on the GPU
        local ids, mask = source.tokenizer:encode(captions, { max_len = model.config.text_len })
        local dev = source.text:parameters()[1]:device()
        ids, mask = ids:to(dev), mask:to(dev)
        return source.text:forward(ids, mask), mask
      end
    end
    error("prune: captions need the text encoder: pass the parts from grove.train (with tokenizer and text), " ..
          "a function(captions) -> features, mask, or a calibration from grove.prune.calibration; got " ..
          (type(source) == "table" and "a table without tokenizer and text" or type(source)), 0)
  end

  local function resolve_prompts(p, seed)
    if p == nil then p = 64 end
    if type(p) == "string" then
      local list = prune.read_prompts(p)
      if #list == 0 then error("prune: the calibration set is empty: " .. p .. " has no prompts", 0) end
      return list, p
    end
    if type(p) == "number" then
      if not is_integer(p) then error("prune: prompts must be a count, a list or a file, got " .. p, 0) end
      if p == 0 then error("prune: the calibration set is empty (prompts = 0)", 0) end
      return prune.default_prompts(p, seed), "shapes training split"
    end
    if type(p) ~= "table" then error("prune: prompts must be a count, a list or a file, got " .. type(p), 0) end
    if #p == 0 then error("prune: the calibration set is empty (no prompts)", 0) end
    for i, s in ipairs(p) do
      if type(s) ~= "string" then error("prune: calibration prompt " .. i .. " is a " .. type(s) .. ", not a string", 0) end
    end
    return p, "given prompts"
  end

  local function resolve_sigmas(ts, shift)
    if ts == nil then ts = 8 end
    if type(ts) == "number" then
      if not is_integer(ts) or ts < 1 then error("prune: timesteps must be a positive count or a list of σ, got " .. ts, 0) end
      return prune.sigmas(ts, shift)
    end
    if type(ts) ~= "table" or #ts == 0 then
      error("prune: timesteps must be a positive count or a non-empty list of σ in (0, 1]", 0)
    end
    for i, s in ipairs(ts) do
      if type(s) ~= "number" or not (s > 0 and s <= 1) then
        error("prune: timestep " .. i .. " must be a noise level σ in (0, 1], got " .. tostring(s), 0)
      end
    end
    return ts
  end

  -- ε for prompts first..first + n − 1 at σ index j, shape (n, H, W, C).
  function Calib:noise(first, n, j)
    local list = {}
    for p = first, first + n - 1 do
      local g = grove.Generator(self.seed)
      g.offset = (j * #self.prompts + p - 1) * NOISE_STRIDE
      list[#list + 1] = grove.randn(self.latent, { generator = g })
    end
    if n == 1 then return list[1] end
    local out = grove.cat(list, 1)
    for _, t in ipairs(list) do t:free() end
    return out
  end

  -- model, source (parts, an encoder function), opts as above.
  -- FLOPs of the calibration's forwards (grove.nn.forward_flops): every
  -- one of `prompts` prompts at each of `timesteps` noise levels through the
  -- model of `config` once, at size² images (default 32): the compute block
  -- importance adds to the path of a pruned model.
  function prune.calibration_flops(config, prompts, timesteps, size)
    size = size or 32
    return grove.nn.forward_flops(config, prompts * timesteps, size, size)
  end

  function prune.calibration(model, source, opts)
    opts = opts or {}
    if type(model) ~= "table" or type(model.config) ~= "table" or type(model.forward) ~= "function" then
      error("prune: expected a Sana model, got " .. type(model), 0)
    end
    local c = model.config
    local seed = opts.seed or 0
    if not is_integer(seed) then error("prune: seed must be a non-negative integer, got " .. tostring(seed), 0) end
    local batch = opts.batch or 32
    if not is_integer(batch) or batch < 1 then error("prune: batch must be a positive integer, got " .. tostring(batch), 0) end
    local encode = encoder_of(model, source)
    local prompts, origin = resolve_prompts(opts.prompts, seed)
    local sigmas = resolve_sigmas(opts.timesteps, opts.shift or c.flow_shift)
    if (#sigmas + 1) * #prompts * NOISE_STRIDE >= 2 ^ 53 then
      error("prune: too many prompts × timesteps for the noise counters (" .. #prompts .. " × " .. #sigmas .. ")", 0)
    end
    -- noise is drawn on the CPU (the same numbers on every device) and, as
    -- the clean latents and the captions' features, moved to the model
    local dev = model:device()
    local self = setmetatable({ prompts = prompts, origin = origin, sigmas = sigmas, seed = seed, batch = batch,
                                size = opts.size or 32, chunks = {}, device = dev }, Calib)

    local x0 = opts.x0
    if x0 == nil then
      x0 = "render"
      if c.in_channels ~= 3 then x0 = "sample" end
      for _, p in ipairs(prompts) do
        if x0 == "render" and not grove.data.captions.parse(p) then x0 = "sample" end
      end
    end
    local all_x0
    if x0 == "render" then
      if c.in_channels ~= 3 then
        error("prune: x0 = \"render\" draws RGB images, but the model takes " .. c.in_channels .. " channels", 0)
      end
      for i, p in ipairs(prompts) do
        local _, err = grove.data.captions.parse(p)
        if err then error("prune: x0 = \"render\" needs shapes captions, but prompt " .. i .. " is not one: " .. err, 0) end
      end
      all_x0 = grove.data.shapes.render(prompts, { size = self.size, seed = seed })
    elseif grove.is_tensor(x0) then
      if x0:dim() ~= 4 or x0:size(1) ~= #prompts or x0:size(4) ~= c.in_channels then
        error(string.format("prune: x0 must be (%d, H, W, %d): one clean latent per prompt, got %s", #prompts,
                            c.in_channels, x0:shape_str()), 0)
      end
      all_x0 = x0
      self.size = x0:size(2)
    elseif x0 ~= "sample" then
      error("prune: x0 must be \"render\", \"sample\" or a tensor, got " .. tostring(x0), 0)
    end
    self.x0_kind = grove.is_tensor(x0) and "given" or x0
    self.latent = { 1, all_x0 and all_x0:size(2) or self.size, all_x0 and all_x0:size(3) or self.size, c.in_channels }

    grove.no_grad(function()
      for first = 1, #prompts, batch do
        local n = math.min(batch, #prompts - first + 1)
        local chunk = {}
        for i = first, first + n - 1 do chunk[#chunk + 1] = prompts[i] end
        local feats, mask = encode(chunk)
        feats, mask = feats:to(dev), mask:to(dev)
        local x
        if all_x0 then
          x = all_x0:narrow(1, first, n):contiguous():to(dev)
        else
          x = model:sample { noise = self:noise(first, n, 0), text = feats, mask = mask,
                             steps = opts.sample_steps or 20, cfg = opts.cfg or 4.5 }
        end
        self.chunks[#self.chunks + 1] = { first = first, n = n, text = feats, mask = mask, x0 = x }
      end
    end)
    return self
  end

  -- Number of (prompt, σ) pairs.
  function Calib:count() return #self.prompts * #self.sigmas end

  -- Every (σ, batch of prompts) as an item; an item's x, t and target are
  -- freed when the next item comes (clone them to keep them).
  function Calib:batches()
    local j, k, prev = 1, 0, nil
    return function()
      if prev then prev.x:free(); prev.t:free(); prev.target:free(); prev = nil end
      k = k + 1
      if k > #self.chunks then j, k = j + 1, 1 end
      if j > #self.sigmas then return nil end
      local ch, s = self.chunks[k], self.sigmas[j]
      local drawn = self:noise(ch.first, ch.n, j)
      local eps = drawn:to(self.device)
      if eps ~= drawn then drawn:free() end
      prev = { x = grove.lincomb({ ch.x0, eps }, { 1 - s, s }), t = grove.full({ ch.n }, s * 1000, { device = self.device }),
               target = grove.lincomb({ eps, ch.x0 }, { 1, -1 }), text = ch.text, mask = ch.mask, sigma = s,
               n = ch.n, first = ch.first, index = j }
      eps:free()
      return prev
    end
  end

  -- The mean flow-matching loss ‖v(x_σ, σ) − (ε − x0)‖² over the calibration set.
  function prune.calib_loss(model, calib)
    return grove.no_grad(function()
      local sum, count = 0, 0
      for item in calib:batches() do
        local v = model:forward(item.x, item.t, item.text, item.mask)
        local l = grove.mse_loss(v, item.target)
        sum, count = sum + l:item() * item.n, count + item.n
        v:free(); l:free()
      end
      return sum / count
    end)
  end
end
