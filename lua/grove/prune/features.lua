-- Calibration from given features: a safetensors file holding what the
-- transformer's calibration needs, computed elsewhere (the text encoder and
-- the VAE run once, by any means), so that scoring a large folder loads
-- only the transformer.
--
--   prompt_embeds          (P, L, caption_channels)  text features as the transformer takes them
--   prompt_attention_mask  (P, L)                    any integer or float dtype, nonzero = token
--   latents                (P, C, H, W)              clean latents x0, diffusers' NCHW layout
--                                                    (the VAE's latents times its scaling factor)
--   sigmas (optional)      (T)                       noise levels σ in (0, 1]
--
-- Floats may be F32, F16, BF16 or F64. Without sigmas, opts.timesteps (8)
-- levels spread over the model's shifted flow schedule, as grove.prune's
-- calibration does; the noise ε is drawn from opts.seed the same way. Every
-- other key is refused: nothing in the file is silently ignored.
--
--   local calib = grove.prune.feature_calibration(model, "calib.safetensors", {timesteps = 8, seed = 0})
--   grove.prune.folder(dir, out, {depth = 16, calib_features = "calib.safetensors"})
return function(grove, prune)
  local KEYS = { prompt_embeds = true, prompt_attention_mask = true, latents = true, sigmas = true }

  local function shape_str(t) return t:shape_str() end

  -- The features of path checked against model's config: text (P, L, Cc)
  -- f32, mask (P, L) as stored, x0 (P, H, W, C) f32 (grove's NHWC), sigmas
  -- (a list) or nil.
  function prune.read_features(path, model)
    if type(path) ~= "string" then error("prune: calib_features must be a file path, got " .. type(path), 0) end
    local ok, r = pcall(grove.safetensors_open, path)
    if not ok then error("prune: calibration features: " .. tostring(r), 0) end
    local c = model.config
    local ok2, val = pcall(function()
      for _, n in ipairs(r.names) do
        if not KEYS[n] then
          error(path .. ": tensor '" .. n .. "' is not a calibration feature (prompt_embeds, prompt_attention_mask, " ..
                "latents, sigmas)", 0)
        end
      end
      local function get(n, dims)
        local present = false
        for _, m in ipairs(r.names) do present = present or m == n end
        if not present then return nil end
        local t = r:get(n)
        if t:dim() ~= dims then error(string.format("%s: %s must have %d dimensions, got %s", path, n, dims, shape_str(t)), 0) end
        return t
      end
      local text, mask, latents = get("prompt_embeds", 3), get("prompt_attention_mask", 2), get("latents", 4)
      for _, nt in ipairs { { "prompt_embeds", text }, { "prompt_attention_mask", mask }, { "latents", latents } } do
        if not nt[2] then error(path .. ": no tensor '" .. nt[1] .. "' (see docs/pruning.md for the layout)", 0) end
      end
      local P, L = text:size(1), text:size(2)
      if text:size(3) ~= c.caption_channels then
        error(string.format("%s: prompt_embeds is %s, but the model takes %d caption channels", path, shape_str(text),
                            c.caption_channels), 0)
      end
      if mask:size(1) ~= P or mask:size(2) ~= L then
        error(string.format("%s: prompt_attention_mask is %s, but prompt_embeds is %s (expected (%d, %d))", path,
                            shape_str(mask), shape_str(text), P, L), 0)
      end
      if latents:size(1) ~= P or latents:size(2) ~= c.in_channels then
        error(string.format("%s: latents is %s; expected (%d, %d, H, W): one NCHW latent per prompt, %d channels", path,
                            shape_str(latents), P, c.in_channels, c.in_channels), 0)
      end
      local p = c.patch_size or 1
      if latents:size(3) % p ~= 0 or latents:size(4) % p ~= 0 then
        error(string.format("%s: latents is %s, whose H and W are not multiples of the patch size %d", path,
                            shape_str(latents), p), 0)
      end
      local sigmas
      local s = get("sigmas", 1)
      if s then
        sigmas = s:float():tolist()
        if #sigmas == 0 then error(path .. ": sigmas is empty", 0) end
        for i, v in ipairs(sigmas) do
          if not (v > 0 and v <= 1) then
            error(string.format("%s: sigmas[%d] is %s; noise levels are in (0, 1]", path, i, tostring(v)), 0)
          end
        end
      end
      local function f32(t) return t:dtype() == "f32" and t or t:float() end
      return { text = f32(text), mask = mask, x0 = f32(latents):permute { 1, 3, 4, 2 }:contiguous(), sigmas = sigmas,
               prompts = P }
    end)
    r:close()
    if not ok2 then error(val, 0) end
    return val
  end

  -- A grove.prune calibration over the file's prompts. opts: timesteps
  -- (a count, used when the file has no sigmas), seed, batch, shift.
  function prune.feature_calibration(model, path, opts)
    opts = opts or {}
    local f = prune.read_features(path, model)
    if f.sigmas and opts.timesteps ~= nil and type(opts.timesteps) ~= "number" then
      error("prune: " .. path .. " holds sigmas; do not pass timesteps too", 0)
    end
    local ids = {}
    for i = 1, f.prompts do ids[i] = tostring(i) end
    -- the "prompts" are row numbers; the encoder hands back their rows
    local function encode(chunk)
      local first, n = tonumber(chunk[1]), #chunk
      return f.text:narrow(1, first, n):contiguous(), f.mask:narrow(1, first, n):contiguous()
    end
    local calib = prune.calibration(model, encode, { prompts = ids, x0 = f.x0, timesteps = f.sigmas or opts.timesteps,
                                                     seed = opts.seed, batch = opts.batch, shift = opts.shift })
    calib.origin = path
    return calib
  end

  -- The model SanaPipeline runs: the transformer receives σ·1000 times
  -- config.timestep_scale (1 for the released models but SANA 1.5's
  -- teacher). A Sprint model (guidance_embeds) is calibrated in its own
  -- time variable, which this flow calibration does not produce.
  local function pipeline_view(model, where)
    local c = model.config
    if c.guidance_embeds then
      error("prune: " .. where .. " is a Sprint transformer (guidance_embeds); calibration features score flow " ..
            "models (σ·1000 timesteps), not its SCM time", 0)
    end
    local scale = c.timestep_scale or 1
    if scale == 1 then return model end
    return setmetatable({ forward = function(self, x, t, ...)
      local ts = t * scale
      local y = model.forward(self, x, ts, ...)
      ts:free()
      return y
    end }, { __index = model })
  end

  -- The blocks to keep in a folder, scored on calibration features: the
  -- transformer is loaded once (grove.diffusers.transformer, weights in
  -- their stored dtype), scored and released before the folder is written.
  -- opts: depth, calib_features, metric, schedule, keep (protected blocks),
  -- seed, batch, timesteps, variant. Returns prune.select's info.
  function prune.score_folder(dir, opts)
    if opts.depth == nil then
      error("prune: scoring with calibration features needs depth (the number of blocks to keep)", 0)
    end
    if opts.remove ~= nil then error("prune: remove names the blocks itself; scoring with calibration features does not take it", 0) end
    local model = grove.diffusers.transformer(dir, { variant = opts.variant })
    local view = pipeline_view(model, dir)
    local calib = prune.feature_calibration(view, opts.calib_features, opts)
    local keep = opts.keep
    if type(keep) == "string" then
      local list = {}
      for w in keep:gmatch("[^,%s]+") do list[#list + 1] = tonumber(w) or w end
      keep = list
    end
    local info = prune.select(view, { depth = opts.depth, metric = opts.metric, schedule = opts.schedule, keep = keep,
                                      seed = opts.seed, calib = calib })
    info.calib = nil
    return info
  end
end
