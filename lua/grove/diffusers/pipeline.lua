-- grove.diffusers.pipeline: prompt → image from a diffusers SANA folder, as
-- SanaPipeline and SanaSprintPipeline do (docs/diffusers.md, "Pipeline").
--
--   local pipe = grove.diffusers.pipeline(dir, { dtype = "bf16", device = "cpu" })
--   local out = pipe:generate { prompt = "a cyberpunk cat", steps = 20, cfg = 4.5, seed = 0 }
--   grove.image.save("out.png", out.images:narrow(1, 1, 1))
--
-- The components (pipe.transformer, pipe.text_encoder, pipe.tokenizer,
-- pipe.vae, pipe.scheduler) load from the folder the first time they are
-- used; any may be replaced by assigning another, and pipe:offload(name)
-- drops one (it loads again when next needed).
return function(grove, diffusers)
  local C = grove.C

  local COMPONENTS = { "transformer", "text_encoder", "tokenizer", "vae", "scheduler" }
  local IS_COMPONENT = {}
  for _, n in ipairs(COMPONENTS) do IS_COMPONENT[n] = true end
  -- the file each component folder must hold
  local MARKER = { transformer = "transformer/config.json", text_encoder = "text_encoder/config.json",
                   tokenizer = "tokenizer/tokenizer.model", vae = "vae/config.json",
                   scheduler = "scheduler/scheduler_config.json" }
  local CLASSES = { SanaPipeline = "sana", SanaSprintPipeline = "sprint" }

  local function is_file(p) return C.grove_path_kind(p) == C.GROVE_PATH_FILE end
  local function fail(msg) error("diffusers.pipeline: " .. msg, 0) end

  local Pipeline = {}
  local loaders = {}

  -- Components load on first use: reading pipe.transformer (and the others)
  -- when the field is empty loads it from the folder.
  Pipeline.__index = function(self, k)
    local m = rawget(Pipeline, k)
    if m ~= nil then return m end
    if IS_COMPONENT[k] then
      local v = loaders[k](self)
      rawset(self, k, v)
      return v
    end
    return nil
  end

  local function component_path(self, name)
    local p = self.dir .. "/" .. MARKER[name]
    if not is_file(p) then
      fail(self.dir .. " has no " .. name .. " (" .. MARKER[name] .. " is missing); a SANA pipeline folder holds " ..
           "transformer/, text_encoder/, tokenizer/, vae/ and scheduler/ (or give pipe." .. name .. " from Lua)")
    end
    return p
  end

  function loaders.transformer(self)
    component_path(self, "transformer")
    local T = diffusers.transformer(self.dir, { dtype = self.dtype, variant = self.variant })
    if self.device ~= "cpu" then T:to(self.device) end
    if self.compute == "bf16" then T:set_compute_dtype("bf16"):store_gemm_weights("bf16") end
    return T
  end

  function loaders.text_encoder(self)
    component_path(self, "text_encoder")
    local enc = diffusers.text_encoder(self.dir, { dtype = self.dtype, variant = self.variant })
    if self.device ~= "cpu" then enc:to(self.device) end
    if self.compute == "bf16" then enc:set_compute_dtype("bf16"):store_gemm_weights("bf16") end
    return enc
  end

  function loaders.tokenizer(self)
    component_path(self, "tokenizer")
    return diffusers.tokenizer(self.dir)
  end

  function loaders.vae(self)
    component_path(self, "vae")
    if type(diffusers.vae) ~= "function" then
      fail("this build of grove has no DC-AE decoder (grove.diffusers.vae); ask for output = \"latent\"")
    end
    local vae = diffusers.vae(self.dir, { dtype = self.dtype })
    if self.device ~= "cpu" and vae.to then vae:to(self.device) end
    if self.compute == "bf16" and vae.set_compute_dtype then vae:set_compute_dtype("bf16") end
    return vae
  end

  -- The scheduler is its config table (scheduler_config.json as decoded);
  -- grove.diffusers.scheduler_settings reads it, and a replacement may be
  -- any config table it accepts.
  function loaders.scheduler(self)
    local p = component_path(self, "scheduler")
    local config = grove.json.read(p)
    diffusers.scheduler_settings(config, p)   -- refuse what grove does not implement, now
    return config
  end

  -- Drops a component (it is read again when next used): memory for the
  -- next stage, as diffusers' model offloading does between stages.
  function Pipeline:offload(name)
    if not IS_COMPONENT[name] then
      error("pipeline:offload: '" .. tostring(name) .. "' is not a component (" .. table.concat(COMPONENTS, ", ") .. ")", 2)
    end
    rawset(self, name, nil)
    grove.collect()
    return self
  end

  -- Whether a component is in memory (without loading it).
  function Pipeline:loaded(name) return rawget(self, name) ~= nil end

  -- The VAE's down-sampling factor, from vae/config.json alone (2 to the
  -- number of encoder stages − 1, as SanaPipeline computes it; 32 without
  -- a VAE config).
  function Pipeline:vae_scale_factor()
    local vae = rawget(self, "vae")
    local config = vae and vae.config
    if config == nil and is_file(self.dir .. "/" .. MARKER.vae) then config = grove.json.read(self.dir .. "/" .. MARKER.vae) end
    local ch = config and (config.encoder_block_out_channels or config.decoder_block_out_channels)
    if type(ch) == "table" and #ch > 0 then return 2 ^ (#ch - 1) end
    return 32
  end

  -- The scheduler's settings and its registered name ("dpm", "euler", "scm").
  function Pipeline:scheduler_settings()
    return diffusers.scheduler_settings(self.scheduler, "pipeline scheduler")
  end

  -- The sampler a run uses: its name and the scheduler config. A sampler
  -- other than the folder's takes its own official config, keeping the
  -- folder's flow shift where both have one.
  local function scheduler_for(self, sampler)
    local config = self.scheduler
    local s = diffusers.scheduler_settings(config, "pipeline scheduler")
    if sampler == nil or sampler == s.kind then return s.kind, config, nil end
    local entry = diffusers.schedulers[sampler]
    if not entry then
      local names = {}
      for n in pairs(diffusers.schedulers) do names[#names + 1] = n end
      table.sort(names)
      fail("sampler '" .. tostring(sampler) .. "' is not a registered scheduler (" .. table.concat(names, ", ") .. ")")
    end
    local shift
    if s.scheduler.shift_key and entry.shift_key then shift = s[s.scheduler.shift_key] end
    return sampler, entry.default, shift
  end

  -- The steps a run takes by default with a sampler (nil: the folder's).
  function Pipeline:steps_for(sampler)
    local name = scheduler_for(self, sampler)
    return diffusers.schedulers[name].default_steps or 20
  end

  -- ---- checks ------------------------------------------------------------------------
  local function check_int(v, name, min)
    if type(v) ~= "number" or v ~= v or v % 1 ~= 0 or v < min or v >= 2 ^ 53 then
      fail(name .. " must be an integer >= " .. min .. ", got " .. tostring(v))
    end
    return v
  end
  local function check_number(v, name)
    if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
      fail(name .. " must be a finite number, got " .. tostring(v))
    end
    return v
  end

  local KNOWN = {
    prompt = true, negative_prompt = true, steps = true, cfg = true, height = true, width = true, seed = true,
    generator = true, sampler = true, latents = true, callback = true, prompt_embeds = true, prompt_mask = true,
    negative_prompt_embeds = true, negative_prompt_mask = true, num_images = true, binning = true, output = true,
    max_sequence_length = true, instruction = true, warn = true, trim_text = true,
    -- passed to grove.diffusers.sample as they are
    flow_shift = true, guidance_scale = true, noise = true, max_timesteps = true, intermediate_timesteps = true,
    timesteps = true,
  }
  local PASS = { "flow_shift", "guidance_scale", "noise", "max_timesteps", "intermediate_timesteps", "timesteps" }

  -- Rows of x repeated n times each, in place order (diffusers'
  -- repeat + view: prompt 1 n times, then prompt 2 ...).
  local function repeat_rows(x, n)
    if n == 1 then return x end
    local parts = {}
    for b = 1, x:size(1) do
      local row = x:narrow(1, b, 1)
      for _ = 1, n do parts[#parts + 1] = row end
    end
    return grove.cat(parts, 1)
  end

  local function default_warn(msg) io.stderr:write("warning: " .. msg .. "\n") end

  -- The text features of the prompts (SanaPipeline.encode_prompt), with a
  -- warning for each prompt the tokenizer limit cut.
  local function encode(self, prompts, o, negative)
    local parts = { text_encoder = self.text_encoder, tokenizer = self.tokenizer }
    local eopts = { max_length = o.max_sequence_length, trim = o.trim_text ~= false }
    if negative then eopts.negative = true else eopts.instruction = o.instruction end
    local feats, mask, cut = grove.no_grad(diffusers.encode_prompt, parts, prompts, eopts)
    for i, c in ipairs(cut or {}) do
      if c then
        local text = c.text
        if #text > 80 then text = text:sub(1, 77) .. "..." end
        ;(o.warn or default_warn)(string.format("%s %d is longer than the text encoder takes (max_sequence_length %d): " ..
          "its last %d tokens are dropped, as diffusers does (\"%s\")", negative and "negative prompt" or "prompt", i,
          o.max_sequence_length or 300, c.tokens, text))
      end
    end
    return feats, mask
  end

  -- x (B, L, ...) with zero columns added up to length L along dimension 2.
  local function pad_columns(x, L)
    local have = x:size(2)
    if have >= L then return x end
    local shape = x:shape()
    shape[2] = L - have
    return grove.cat({ x, grove.zeros(shape, { dtype = x:dtype(), device = x:device() }) }, 2)
  end

  local function as_list(p, name)
    if type(p) == "string" then return { p } end
    if type(p) ~= "table" or #p == 0 then fail(name .. " must be a string or a non-empty list of strings, got " .. type(p)) end
    for i, s in ipairs(p) do
      if type(s) ~= "string" then fail(name .. " " .. i .. " must be a string, got " .. type(s)) end
    end
    return p
  end

  -- The decoder call, in one place: latents (NHWC) → images (B, H, W, 3),
  -- as SanaPipeline does (latents / scaling_factor, then decode).
  local function decode(self, latents)
    local vae = self.vae
    local sf = vae.scaling_factor or (vae.config and vae.config.scaling_factor)
    if type(sf) ~= "number" then fail("the VAE has no scaling_factor") end
    return grove.no_grad(function() return vae:decode(latents * (1 / sf)) end)
  end

  -- pipe:generate(opts) -> { images = (B, H, W, 3) f32 in [-1, 1], latents =
  -- (B, h, w, C) NHWC, height =, width = (the generated size, after
  -- binning), info = the sampler's }. See docs/diffusers.md for opts.
  function Pipeline:generate(opts)
    if type(opts) ~= "table" then fail("generate expects an options table, got " .. type(opts)) end
    for k in pairs(opts) do
      if not KNOWN[k] then fail("generate: unknown option '" .. tostring(k) .. "'") end
    end
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    local sprint = self.kind == "sprint"
    local sampler, sconfig, shift = scheduler_for(self, o.sampler)
    local scm = diffusers.schedulers[sampler].run ~= nil
    local entry = diffusers.schedulers[sampler]
    local steps = check_int(o.steps or entry.default_steps or 20, "steps", 1)
    local cfg = check_number(o.cfg == nil and 4.5 or o.cfg, "cfg")
    if cfg < 0 then fail("cfg must be >= 0, got " .. cfg) end
    local n = check_int(o.num_images or 1, "num_images", 1)
    local seed = o.seed
    if seed ~= nil then check_int(seed, "seed", 0) end
    if o.max_sequence_length ~= nil then check_int(o.max_sequence_length, "max_sequence_length", 2) end
    if o.output ~= nil and o.output ~= "image" and o.output ~= "latent" then
      fail("output must be \"image\" or \"latent\", got " .. tostring(o.output))
    end

    -- a run that ends in images needs a decoder: say so before the steps
    if o.output ~= "latent" and rawget(self, "vae") == nil then
      component_path(self, "vae")
      if type(diffusers.vae) ~= "function" then
        fail("this build of grove has no DC-AE decoder (grove.diffusers.vae); ask for output = \"latent\"")
      end
    end

    -- prompts or their features
    local feats, fmask, nfeats, nmask, text_len
    if o.prompt_embeds ~= nil then
      if o.prompt ~= nil then fail("give prompt or prompt_embeds, not both") end
      if not grove.is_tensor(o.prompt_embeds) or o.prompt_embeds:dim() ~= 3 then
        fail("prompt_embeds must be a (B, L, D) tensor")
      end
      feats, fmask = o.prompt_embeds, o.prompt_mask
      nfeats, nmask = o.negative_prompt_embeds, o.negative_prompt_mask
      text_len = feats:size(2)
    elseif o.prompt ~= nil then
      local prompts = as_list(o.prompt, "prompt")
      feats, fmask = encode(self, prompts, o, false)
      text_len = o.max_sequence_length or 300
    else
      fail("give prompt (a string or a list) or prompt_embeds")
    end
    local guided = not scm and cfg > 1
    if scm then
      if o.negative_prompt ~= nil and o.negative_prompt ~= "" or o.negative_prompt_embeds ~= nil then
        fail("SCM sampling (Sprint) takes no negative prompt: its guidance is embedded (cfg sets guidance_scale)")
      end
    elseif guided and nfeats == nil then
      local neg = o.negative_prompt or ""
      if type(neg) == "string" then neg = { neg } end
      neg = as_list(neg, "negative_prompt")
      if #neg == 1 and feats:size(1) > 1 then
        local one = neg[1]
        for i = 2, feats:size(1) do neg[i] = one end
      end
      if #neg ~= feats:size(1) then
        fail("negative_prompt has " .. #neg .. " entries for " .. feats:size(1) .. " prompts")
      end
      -- diffusers pads the negative prompt to the prompt features' length
      -- (the length before any trimming)
      nfeats, nmask = encode(self, neg, { max_sequence_length = text_len, warn = o.warn,
                                          trim_text = o.trim_text }, true)
      -- trimmed, the two may differ in length: padded to the longer
      -- (zero features, mask 0: positions the transformer never reads)
      local L = math.max(feats:size(2), nfeats:size(2))
      feats, fmask = pad_columns(feats, L), fmask and pad_columns(fmask, L)
      nfeats, nmask = pad_columns(nfeats, L), pad_columns(nmask, L)
    end
    if self.drop_after_use then self:offload("text_encoder") end

    feats, fmask = repeat_rows(feats, n), fmask and repeat_rows(fmask, n)
    if guided then nfeats, nmask = repeat_rows(nfeats, n), nmask and repeat_rows(nmask, n) end
    local B = feats:size(1)

    -- the size: asked, binned, checked
    local T = self.transformer
    local vs = self:vae_scale_factor()
    local latents = o.latents
    local height, width = o.height, o.width
    local binning = o.binning
    if binning == nil then binning = latents == nil end
    local gen_h, gen_w
    if latents ~= nil then
      if not grove.is_tensor(latents) or latents:dim() ~= 4 then fail("latents must be a (B, h, w, C) NHWC tensor") end
      if latents:size(1) ~= B then fail("latents have batch " .. latents:size(1) .. ", the prompts " .. B) end
      gen_h, gen_w = latents:size(2) * vs, latents:size(3) * vs
      height, width = height or gen_h, width or gen_w
    else
      local native = (T.config.sample_size or 32) * vs
      height = check_int(height or native, "height", 1)
      width = check_int(width or native, "width", 1)
      gen_h, gen_w = height, width
      if binning then
        local res, why = diffusers.bin_resolution(T.config.sample_size)
        if not res then fail(why .. "; turn binning off (binning = false, --no-binning)") end
        gen_h, gen_w = diffusers.bin_size(height, width, nil, { resolution = res })
      end
      if gen_h % vs ~= 0 or gen_w % vs ~= 0 then
        fail(string.format("height and width must be multiples of %d (the VAE's scale), got %d x %d%s", vs, gen_h, gen_w,
             binning and "" or "; resolution binning (on by default) picks a size that is"))
      end
      local gen = o.generator or grove.Generator(seed or 0)
      o.generator = gen
      latents = grove.randn({ B, gen_h / vs, gen_w / vs, T.config.in_channels }, { generator = gen })
    end

    local sopts = { prompt_embeds = feats, mask = fmask, latents = latents, steps = steps, scheduler = sconfig,
                    sampler = sampler, flow_shift = shift, generator = o.generator, seed = seed }
    for _, k in ipairs(PASS) do if o[k] ~= nil then sopts[k] = o[k] end end
    if scm then
      if sopts.guidance_scale == nil then sopts.guidance_scale = cfg end
    else
      sopts.cfg = cfg
      if guided then sopts.negative_embeds, sopts.negative_mask = nfeats, nmask end
    end
    if o.callback then
      local cb = o.callback
      sopts.callback = function(i, info) return cb(i, info.sigma or info.t, info.latents, info) end
    end
    local x, info = diffusers.sample(T, sopts)
    local out = { latents = x, info = info, height = height, width = width, generated_height = gen_h,
                  generated_width = gen_w, sampler = sampler, steps = steps, cfg = cfg, sprint = sprint }
    if o.output == "latent" then return out end
    if self.drop_after_use then self:offload("transformer") end
    local images = decode(self, x)
    if binning and (images:size(2) ~= height or images:size(3) ~= width) then
      images = diffusers.resize_crop(images, height, width)
    end
    out.images = images:clamp(-1, 1)
    return out
  end

  function Pipeline:__tostring()
    local have = {}
    for _, nm in ipairs(COMPONENTS) do have[#have + 1] = nm .. (rawget(self, nm) and " (loaded)" or "") end
    return string.format("diffusers %s pipeline '%s': %s", self.class, self.dir, table.concat(have, ", "))
  end

  local OPTS = { dtype = true, device = true, compute = true, variant = true, drop_after_use = true }

  -- grove.diffusers.pipeline(dir, opts): a SanaPipeline or SanaSprintPipeline
  -- folder (model_index.json). opts: dtype ("f32", "bf16"; default: as
  -- stored) how the transformer's and text encoder's weights are held;
  -- device ("cpu", "cuda"); compute ("f32", "bf16": bf16 GEMMs, whose
  -- weights in the transformer and text encoder are then stored bf16:
  -- half their memory, no rounding per call, the same images; in the DC-AE
  -- bf16 GEMMs and convolutions);
  -- variant (weight files of a variant); drop_after_use (offload the text
  -- encoder once prompts are encoded and the transformer before decoding).
  function diffusers.pipeline(dir, opts)
    opts = opts or {}
    if type(dir) ~= "string" then fail("expected a folder path, got " .. type(dir)) end
    if type(opts) ~= "table" then fail("options must be a table, got " .. type(opts)) end
    for k in pairs(opts) do
      if not OPTS[k] then fail("unknown option '" .. tostring(k) .. "' (dtype, device, compute, variant, drop_after_use)") end
    end
    if opts.dtype ~= nil and opts.dtype ~= "f32" and opts.dtype ~= "bf16" then
      fail("dtype must be \"f32\" or \"bf16\", got " .. tostring(opts.dtype))
    end
    if opts.compute ~= nil and opts.compute ~= "f32" and opts.compute ~= "bf16" then
      fail("compute must be \"f32\" or \"bf16\", got " .. tostring(opts.compute))
    end
    local device = opts.device or "cpu"
    if device ~= "cpu" and device ~= "cuda" then fail("device must be \"cpu\" or \"cuda\", got " .. tostring(device)) end
    if device == "cuda" and not grove.cuda.is_available() then
      fail("device \"cuda\": this build of grove has no CUDA device available")
    end
    dir = dir:gsub("/+$", "")
    if dir == "" then dir = "/" end
    if C.grove_path_kind(dir) ~= C.GROVE_PATH_DIR then fail(dir .. " is not a folder") end
    local index = diffusers.model_index(dir)
    if not index then
      fail(dir .. " has no model_index.json: not a diffusers pipeline folder (scripts/tiny-sana-folder writes a small one)")
    end
    local class = index._class_name
    local kind = CLASSES[class]
    if not kind then
      fail(dir .. "/model_index.json: _class_name '" .. tostring(class) .. "' is not a pipeline grove runs " ..
           "(SanaPipeline, SanaSprintPipeline)")
    end
    for _, name in ipairs(COMPONENTS) do
      local entry = index[name]
      if entry ~= nil and entry ~= grove.json.null and not is_file(dir .. "/" .. MARKER[name]) then
        fail(dir .. " is missing its " .. name .. ": model_index.json names one, but " .. MARKER[name] ..
             " is not there")
      end
    end
    local self = setmetatable({ dir = dir, index = index, class = class, kind = kind, dtype = opts.dtype,
                                device = device, compute = opts.compute, variant = opts.variant,
                                drop_after_use = opts.drop_after_use and true or false }, Pipeline)
    return self
  end
  diffusers.Pipeline = Pipeline

  return diffusers
end
