-- Sampling a diffusers transformer as SanaPipeline and SanaSprintPipeline
-- do, with their schedulers' arithmetic (docs/diffusers.md, "Sampling"):
-- DPMSolverMultistepScheduler on flow sigmas (Flow-DPM-Solver),
-- FlowMatchEulerDiscreteScheduler, and SCMScheduler (Sprint). The
-- scheduler's config.json settings are read key by key as the transformer's
-- are: a setting grove does not implement is an error naming it.
--
--   local x = grove.diffusers.sample(T, { prompt_embeds = feats, mask = fmask,
--     negative_embeds = nfeats, negative_mask = nmask, latents = noise, -- NHWC
--     steps = 20, cfg = 4.5, scheduler = dir_or_config })
local ffi = require "ffi"

return function(grove)
  local diffusers = grove.diffusers or {}
  grove.diffusers = diffusers

  local f32buf = ffi.new("float[1]")
  -- a double rounded to float32, as the schedulers' float32 tensors hold it
  local function f32(v) f32buf[0] = v; return tonumber(f32buf[0]) end

  local function is_null(v) return v == nil or (grove.json and v == grove.json.null) end

  -- ---- schedulers: a Lua file + register ---------------------------------------------
  -- A scheduler is a table (schedulers/dpm.lua, euler.lua, scm.lua):
  --   class    diffusers' _class_name it reads
  --   used     {key = diffusers' default} of the settings it uses
  --   fixed    {key = the only value implemented} ("null" for JSON null)
  --   inert    {key = true} keys that change nothing on its path
  --   default  the official config (when a run names no scheduler)
  --   check(settings, need)  raises through need(ok, key, what)
  -- and either a flow schedule for SanaPipeline's loop (CFG batch, the
  -- timestep × timestep_scale):
  --   schedule(settings, n, f32) -> timesteps (what the transformer gets
  --     before timestep_scale), sigmas (n + 1, ending at 0)
  --   step(ctx, i, x, v) -> x after step i, from the guided velocity v
  --     (ctx: settings, sigmas, timesteps, steps, state, lincomb)
  -- or a whole loop: run(ctx) -> latents, info.
  local function check_entry(v, name, _, where)
    local function bad(why)
      error((where or "diffusers") .. ": scheduler '" .. tostring(name) .. "' " .. why, 0)
    end
    if type(v) ~= "table" then bad("must be a table, got " .. type(v)) end
    if type(v.class) ~= "string" then bad("needs class (diffusers' _class_name)") end
    for _, k in ipairs { "used", "fixed", "inert", "default" } do
      if type(v[k]) ~= "table" then bad("needs a table " .. k) end
    end
    if type(v.check) ~= "function" then bad("needs check(settings, need)") end
    local flow = type(v.schedule) == "function" and type(v.step) == "function"
    if not flow and type(v.run) ~= "function" then bad("needs schedule and step, or run") end
    v.name = name
    return v
  end
  local schedulers = grove.registry.new { owner = "diffusers", kind = "scheduler",
    register_name = "grove.diffusers.register_scheduler", entry = check_entry }
  diffusers.schedulers = schedulers.entries
  diffusers.register_scheduler = schedulers.register
  for _, name in ipairs { "dpm", "euler", "scm" } do
    schedulers.register(name, require("grove.diffusers.schedulers." .. name))
  end
  local function by_class(cls)
    for _, name in ipairs(schedulers.names()) do
      if schedulers.entries[name].class == cls then return schedulers.entries[name] end
    end
  end

  local function exists(p)
    local f = io.open(p, "r")
    if f then f:close() end
    return f ~= nil
  end

  local function read_scheduler(dir)
    for _, p in ipairs { dir .. "/scheduler/scheduler_config.json", dir .. "/scheduler_config.json" } do
      local f = io.open(p, "r")
      if f then f:close(); return grove.json.read(p), p end
    end
    error("diffusers.sample: " .. dir .. " has no scheduler/scheduler_config.json nor scheduler_config.json", 3)
  end

  -- The settings of a scheduler config (a table as decoded from
  -- scheduler_config.json): {scheduler = entry, kind = name, where =,
  -- <used keys> =}. Unknown keys and values grove does not implement are
  -- errors naming where and the key.
  function diffusers.scheduler_settings(config, where)
    where = where or "scheduler config"
    if type(config) ~= "table" then error(where .. ": expected a config table, got " .. type(config), 2) end
    local cls = config._class_name
    local spec = by_class(cls)
    if not spec then
      local known = {}
      for _, n in ipairs(schedulers.names()) do known[#known + 1] = schedulers.entries[n].class end
      error(where .. ": _class_name '" .. tostring(cls) .. "' is not a scheduler grove implements (" ..
            table.concat(known, ", ") .. ")", 0)
    end
    local known = { _class_name = true, _diffusers_version = true }
    for k in pairs(spec.used) do known[k] = true end
    for k in pairs(spec.fixed) do known[k] = true end
    for k in pairs(spec.inert) do known[k] = true end
    for k in pairs(config) do
      if not known[k] then error(where .. ": key '" .. tostring(k) .. "' is not implemented by grove (" .. cls .. ")", 0) end
    end
    for k, want in pairs(spec.fixed) do
      local v = config[k]
      local ok = v == nil or v == want or (want == "null" and is_null(v))
      if not ok then
        error(string.format("%s: key '%s' is %s; grove implements only %s for %s", where, k, tostring(v), tostring(want), cls), 0)
      end
    end
    local s = { scheduler = spec, kind = spec.name, where = where }
    for k, d in pairs(spec.used) do
      local v = config[k]
      if v == nil then v = d end
      s[k] = v
    end
    spec.check(s, function(cond, k, what)
      if not cond then error(string.format("%s: key '%s' is %s; grove needs %s", where, k, tostring(s[k]), what), 0) end
    end)
    return s
  end

  -- ---- inputs -----------------------------------------------------------------------
  local function check_tensor(v, name, dims)
    if not grove.is_tensor(v) or v:dim() ~= dims then
      error("diffusers.sample: " .. name .. " must be a " .. dims .. "-d tensor, got " ..
            (grove.is_tensor(v) and v:shape_str() or type(v)), 3)
    end
    return v
  end

  local function mask_or_ones(m, B, L, dev, name)
    if m == nil then return grove.ones({ B, L }, { device = dev }) end
    check_tensor(m, name, 2)
    if m:size(1) ~= B or m:size(2) ~= L then
      error(string.format("diffusers.sample: %s must be (%d, %d), got %s", name, B, L, m:shape_str()), 3)
    end
    return (m:dtype() == "f32" and m or m:to("f32")):to(dev)
  end

  local function settings_for(T, o)
    local sc = o.scheduler
    local config, where
    if type(sc) == "string" then config, where = read_scheduler(sc)
    elseif type(sc) == "table" then config, where = sc, "scheduler config"
    elseif sc == nil and T.diffusers_pipeline and exists(T.diffusers_pipeline .. "/scheduler/scheduler_config.json") and
           (o.sampler == nil or o.sampler == diffusers.scheduler_settings(read_scheduler(T.diffusers_pipeline)).kind) then
      -- the transformer's own pipeline folder names its scheduler
      config, where = read_scheduler(T.diffusers_pipeline)
    elseif sc == nil then
      local name = o.sampler or (T.config.guidance_embeds and "scm" or "dpm")
      local ok, e = pcall(schedulers.get, name)
      if not ok then error("diffusers.sample: " .. e, 3) end
      config = e.default
      where = "default " .. config._class_name .. " config"
    else error("diffusers.sample: opts.scheduler must be a folder or a config table, got " .. type(sc), 3) end
    local s = diffusers.scheduler_settings(config, where)
    if o.sampler and o.sampler ~= s.kind then
      error("diffusers.sample: opts.sampler is '" .. tostring(o.sampler) .. "' but " .. where .. " is a " ..
            tostring(config._class_name) .. " (" .. s.kind .. ")", 3)
    end
    if o.flow_shift then
      local key = s.scheduler.shift_key
      if not key then error("diffusers.sample: opts.flow_shift has no meaning for " .. s.scheduler.class, 3) end
      s[key] = o.flow_shift
    end
    return s
  end

  -- ---- the loops --------------------------------------------------------------------
  local lincomb = grove.lincomb

  -- SanaPipeline's loop (DPM-Solver++ or flow Euler, CFG as a batch
  -- [negative, positive]).
  local function flow_loop(T, s, o, x, text, mask)
    local c, sched = T.config, s.scheduler
    local B = x:size(1)
    local dev = x:device()
    local n = o.steps
    local cfg = o.cfg
    local guided = cfg > 1
    local L = text:size(2)
    mask = mask_or_ones(mask, B, L, dev, "mask")
    if guided then
      local neg, nmask = o.negative_embeds, o.negative_mask
      if neg == nil then
        if not T.y_embedding then
          error("diffusers.sample: cfg " .. cfg .. " needs negative text features (opts.negative_embeds, e.g. the encoded " ..
                "negative prompt \"\"): this model has no learned null caption, and sampling is never silently unguided", 3)
        end
        if T.y_embedding:size(1) ~= L then
          error(string.format("diffusers.sample: the learned null caption has %d tokens, the prompt %d", T.y_embedding:size(1), L), 3)
        end
        neg, nmask = T:null_text(B)
      end
      check_tensor(neg, "negative_embeds", 3)
      if neg:size(1) ~= B or neg:size(2) ~= L or neg:size(3) ~= text:size(3) then
        error(string.format("diffusers.sample: negative_embeds must be (%d, %d, %d) like prompt_embeds, got %s", B, L,
                            text:size(3), neg:shape_str()), 3)
      end
      nmask = mask_or_ones(nmask, B, L, dev, "negative_mask")
      text = grove.cat({ neg:to(dev), text }, 1)
      mask = grove.cat({ nmask, mask }, 1)
    end
    local timesteps, sigmas = sched.schedule(s, n, f32)
    local C_lat = x:size(4)
    local learned_sigma = c.out_channels == 2 * C_lat   -- diffusers keeps the first half
    local guidance
    if c.guidance_embeds then guidance = f32(f32(o.guidance_scale or 4.5) * f32(c.guidance_embeds_scale)) end
    local ctx = { settings = s, sigmas = sigmas, timesteps = timesteps, steps = n, state = {}, lincomb = lincomb }
    for i = 1, n do
      local t = timesteps[i]
      local xin = guided and grove.cat({ x, x }, 1) or x
      local tin = grove.full({ xin:size(1) }, f32(t), { device = dev }) * c.timestep_scale
      local out = T:forward(xin, tin, text, mask, { guidance = guidance })
      local v = guided and lincomb({ out:narrow(1, 1, B), out:narrow(1, B + 1, B) }, { 1 - cfg, cfg }) or out
      if learned_sigma then v = v:narrow(4, 1, C_lat):contiguous() end
      local x0
      x, x0 = sched.step(ctx, i, x, v)
      if o.callback then
        local r = o.callback(i, { t = t, sigma = sigmas[i], latents = x, denoised = x0, model_in = xin, timestep_in = tin,
                                  model_out = out, encoder_hidden_states_in = text, encoder_attention_mask_in = mask })
        if r == false then return x, { steps = i, stopped = true, timesteps = timesteps, sigmas = sigmas } end
      end
    end
    return x, { steps = n, stopped = false, timesteps = timesteps, sigmas = sigmas }
  end

  local function run_loop(T, s, o, x, text, mask)
    local dev = x:device()
    return s.scheduler.run { grove = grove, model = T, settings = s, opts = o, x = x, text = text, steps = o.steps,
                             mask = mask_or_ones(mask, x:size(1), text:size(2), dev, "mask"), f32 = f32,
                             lincomb = lincomb, callback = o.callback }
  end

  -- grove.diffusers.sample(T, opts) -> latents (B, H, W, C), info.
  -- opts: prompt_embeds (B, L, caption_channels) and mask (B, L) (any
  -- dtype, nonzero = token); negative_embeds and negative_mask (the
  -- encoded negative prompt; needed for cfg > 1 unless the model has
  -- grove's learned null caption); latents (B, H, W, C) or shape with
  -- seed / generator; steps (20; SCM 2); cfg (4.5; 1 = off); scheduler: a
  -- pipeline folder, a scheduler folder or a scheduler config table
  -- (default: the scheduler of the pipeline folder T was read from, else
  -- SanaPipeline's DPM-Solver++, or SCM for a Sprint transformer); sampler:
  -- a registered scheduler ("dpm", "euler", "scm"; checked against the
  -- scheduler, or picks its official config); flow_shift overrides the
  -- config's shift. Sprint: guidance_scale (4.5), max_timesteps (1.5708),
  -- intermediate_timesteps (1.3 with 2 steps), timesteps, noise (a list
  -- of per-step tensors or a function (i, shape)). callback(i, info)
  -- after each step (info: t, latents, model_in, timestep_in, model_out,
  -- ...); false stops. info: steps, stopped, timesteps, sigmas.
  function diffusers.sample(T, opts)
    if type(T) ~= "table" or type(T.forward) ~= "function" or type(T.config) ~= "table" then
      error("diffusers.sample: expected a transformer (grove.nn.Sana), got " .. type(T), 2)
    end
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    local s = settings_for(T, o)
    o.steps = o.steps or s.scheduler.default_steps or 20
    if type(o.steps) ~= "number" or o.steps < 1 or o.steps % 1 ~= 0 then
      error("diffusers.sample: steps must be a positive integer, got " .. tostring(o.steps), 2)
    end
    if not s.scheduler.run then
      if o.cfg == nil then o.cfg = 4.5 end
      if type(o.cfg) ~= "number" or o.cfg ~= o.cfg or o.cfg == math.huge or o.cfg == -math.huge then
        error("diffusers.sample: cfg must be a finite number, got " .. tostring(o.cfg), 2)
      end
    end
    local dev = T:device()
    local x = o.latents
    if x == nil then
      if not o.shape then error("diffusers.sample: give latents or shape", 2) end
      x = grove.randn(o.shape, { generator = o.generator or grove.Generator(o.seed or 0) })
    end
    check_tensor(x, "latents", 4)
    if x:size(4) ~= T.config.in_channels then
      error("diffusers.sample: latents must be NHWC with " .. T.config.in_channels .. " channels, got " .. x:shape_str(), 2)
    end
    x = (x:dtype() == "f32" and x or x:to("f32")):to(dev)
    local text = check_tensor(o.prompt_embeds, "prompt_embeds", 3)
    if text:size(1) ~= x:size(1) then
      error("diffusers.sample: prompt_embeds has batch " .. text:size(1) .. ", the latents " .. x:size(1), 2)
    end
    text = text:to(dev)
    local was_training = T.training
    T:eval()
    local ok, r1, r2 = pcall(grove.no_grad, function()
      if s.scheduler.run then return run_loop(T, s, o, x, text, o.mask) end
      return flow_loop(T, s, o, x, text, o.mask)
    end)
    T:train(was_training)
    if not ok then error(r1, 0) end
    return r1, r2
  end

  return diffusers
end
