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

  -- ---- scheduler configs ----------------------------------------------------------
  -- For each scheduler: the value each key must have when grove only
  -- implements that one (`fixed`), the keys whose value is used (`used`,
  -- with diffusers' default), and the keys that change nothing on this path
  -- (`inert`).
  local SPECS = {
    DPMSolverMultistepScheduler = {
      kind = "dpm",
      used = { num_train_timesteps = 1000, flow_shift = 1.0, solver_order = 2, solver_type = "midpoint",
               lower_order_final = true, euler_at_final = false, final_sigmas_type = "zero" },
      fixed = { algorithm_type = "dpmsolver++", prediction_type = "flow_prediction", use_flow_sigmas = true,
                thresholding = false, use_karras_sigmas = false, use_exponential_sigmas = false,
                use_beta_sigmas = false, use_lu_lambdas = false, variance_type = "null" },
      -- with flow sigmas the betas, the clipping of λ and the spacing of the
      -- discrete timesteps are never consulted
      inert = { beta_start = true, beta_end = true, beta_schedule = true, trained_betas = true,
                dynamic_thresholding_ratio = true, sample_max_value = true, lambda_min_clipped = true,
                rescale_betas_zero_snr = true, steps_offset = true, timestep_spacing = true },
    },
    FlowMatchEulerDiscreteScheduler = {
      kind = "euler",
      used = { num_train_timesteps = 1000, shift = 1.0 },
      fixed = { use_dynamic_shifting = false, invert_sigmas = false, shift_terminal = "null",
                use_karras_sigmas = false, use_exponential_sigmas = false, use_beta_sigmas = false,
                stochastic_sampling = false },
      inert = { base_shift = true, max_shift = true, base_image_seq_len = true, max_image_seq_len = true,
                time_shift_type = true },
    },
    SCMScheduler = {
      kind = "scm",
      used = { sigma_data = 0.5 },
      fixed = { prediction_type = "trigflow" },
      inert = { num_train_timesteps = true },
    },
  }
  local KIND_CLASS = { dpm = "DPMSolverMultistepScheduler", euler = "FlowMatchEulerDiscreteScheduler", scm = "SCMScheduler" }

  -- The official scheduler configs: SanaPipeline's (flow_shift 3) and
  -- SanaSprintPipeline's.
  local function default_config(kind)
    if kind == "dpm" then
      return { _class_name = "DPMSolverMultistepScheduler", algorithm_type = "dpmsolver++", flow_shift = 3.0,
               use_flow_sigmas = true, prediction_type = "flow_prediction", solver_order = 2,
               final_sigmas_type = "zero", lower_order_final = true, num_train_timesteps = 1000 }
    elseif kind == "euler" then
      return { _class_name = "FlowMatchEulerDiscreteScheduler", shift = 3.0, num_train_timesteps = 1000 }
    elseif kind == "scm" then
      return { _class_name = "SCMScheduler", prediction_type = "trigflow", sigma_data = 0.5, num_train_timesteps = 1000 }
    end
    error("diffusers.sample: unknown sampler '" .. tostring(kind) .. "' (dpm, euler or scm)", 3)
  end

  local function read_scheduler(dir)
    for _, p in ipairs { dir .. "/scheduler/scheduler_config.json", dir .. "/scheduler_config.json" } do
      local f = io.open(p, "r")
      if f then f:close(); return grove.json.read(p), p end
    end
    error("diffusers.sample: " .. dir .. " has no scheduler/scheduler_config.json nor scheduler_config.json", 3)
  end

  -- {kind =, where =, <used keys> =} from a scheduler config table.
  function diffusers.scheduler_settings(config, where)
    where = where or "scheduler config"
    if type(config) ~= "table" then error(where .. ": expected a config table, got " .. type(config), 2) end
    local cls = config._class_name
    local spec = SPECS[cls]
    if not spec then
      error(where .. ": _class_name '" .. tostring(cls) .. "' is not a scheduler grove implements " ..
            "(DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, SCMScheduler)", 0)
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
    local s = { kind = spec.kind, where = where }
    for k, d in pairs(spec.used) do
      local v = config[k]
      if v == nil then v = d end
      s[k] = v
    end
    local function need(cond, k, what)
      if not cond then error(string.format("%s: key '%s' is %s; grove needs %s", where, k, tostring(s[k]), what), 0) end
    end
    if spec.kind == "dpm" then
      need(type(s.num_train_timesteps) == "number" and s.num_train_timesteps >= 1 and s.num_train_timesteps % 1 == 0,
           "num_train_timesteps", "a positive integer")
      need(type(s.flow_shift) == "number" and s.flow_shift > 0, "flow_shift", "a positive number")
      need(s.solver_order == 1 or s.solver_order == 2, "solver_order", "1 or 2 (third order is not implemented)")
      need(s.solver_type == "midpoint" or s.solver_type == "heun", "solver_type", "\"midpoint\" or \"heun\"")
      need(s.final_sigmas_type == "zero", "final_sigmas_type", "\"zero\" (the flow schedule ends at sigma 0)")
      need(type(s.lower_order_final) == "boolean", "lower_order_final", "true or false")
      need(type(s.euler_at_final) == "boolean", "euler_at_final", "true or false")
    elseif spec.kind == "euler" then
      need(type(s.num_train_timesteps) == "number" and s.num_train_timesteps >= 1 and s.num_train_timesteps % 1 == 0,
           "num_train_timesteps", "a positive integer")
      need(type(s.shift) == "number" and s.shift > 0, "shift", "a positive number")
    else
      need(type(s.sigma_data) == "number" and s.sigma_data > 0, "sigma_data", "a positive number")
    end
    return s
  end

  -- ---- schedules --------------------------------------------------------------------
  local function shift_sigma(s, shift) return shift * s / (1 + (shift - 1) * s) end

  -- DPMSolverMultistepScheduler.set_timesteps with use_flow_sigmas: σ from
  -- 1 − linspace(1, 1/N, n+1), shifted, reversed, the last (0) dropped,
  -- then a final 0; timesteps are σ·N truncated to integers; the σ are
  -- float32.
  local function dpm_schedule(s, n)
    local N = s.num_train_timesteps
    local sig = {}
    local step = (1 / N - 1) / n
    for i = 0, n do
      local alpha = i == n and 1 / N or 1 + i * step
      sig[n - i + 1] = shift_sigma(1 - alpha, s.flow_shift)   -- reversed
    end
    local sigmas, timesteps = {}, {}
    for i = 1, n do
      timesteps[i] = math.floor(sig[i] * N)   -- σ ≥ 0: truncation
      sigmas[i] = f32(sig[i])
    end
    sigmas[n + 1] = 0
    return timesteps, sigmas
  end

  -- FlowMatchEulerDiscreteScheduler: the training sigmas are shifted
  -- once (σ_min = shift(1/N)), the inference ones linspace(1, σ_min, n)
  -- shifted again; then a final 0. timesteps = σ·N (not integers).
  local function euler_schedule(s, n)
    local N = s.num_train_timesteps
    local smax = f32(shift_sigma(f32(N / N), s.shift))
    local smin = f32(shift_sigma(f32(f32(1) / N), s.shift))
    local sigmas, timesteps = {}, {}
    for i = 0, n - 1 do
      local t = n == 1 and smax * N or smax * N + i * ((smin * N - smax * N) / (n - 1))
      if i == n - 1 and n > 1 then t = smin * N end
      sigmas[i + 1] = f32(shift_sigma(t / N, s.shift))
      timesteps[i + 1] = f32(sigmas[i + 1] * N)
    end
    sigmas[n + 1] = 0
    return timesteps, sigmas
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
    elseif sc == nil then
      config = default_config(o.sampler or (T.config.guidance_embeds and "scm" or "dpm"))
      where = "default " .. config._class_name .. " config"
    else error("diffusers.sample: opts.scheduler must be a folder or a config table, got " .. type(sc), 3) end
    local s = diffusers.scheduler_settings(config, where)
    if o.sampler and o.sampler ~= s.kind then
      error("diffusers.sample: opts.sampler is '" .. tostring(o.sampler) .. "' but " .. where .. " is a " ..
            tostring(config._class_name) .. " (" .. s.kind .. ")", 3)
    end
    if o.flow_shift then
      if s.kind == "dpm" then s.flow_shift = o.flow_shift elseif s.kind == "euler" then s.shift = o.flow_shift
      else error("diffusers.sample: opts.flow_shift has no meaning for SCM", 3) end
    end
    return s
  end

  -- ---- the loops --------------------------------------------------------------------
  local lincomb = grove.lincomb

  -- SanaPipeline's loop (DPM-Solver++ or flow Euler, CFG as a batch
  -- [negative, positive]).
  local function flow_loop(T, s, o, x, text, mask)
    local c = T.config
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
    local timesteps, sigmas
    if s.kind == "dpm" then timesteps, sigmas = dpm_schedule(s, n) else timesteps, sigmas = euler_schedule(s, n) end
    local C_lat = x:size(4)
    local learned_sigma = c.out_channels == 2 * C_lat
    local guidance
    if c.guidance_embeds then guidance = f32(f32(o.guidance_scale or 4.5) * f32(c.guidance_embeds_scale)) end
    local prev_x0, lower_nums = nil, 0
    for i = 1, n do
      local t = timesteps[i]
      local xin = guided and grove.cat({ x, x }, 1) or x
      local tin = grove.full({ xin:size(1) }, f32(t), { device = dev }) * c.timestep_scale
      local out = T:forward(xin, tin, text, mask, { guidance = guidance })
      local v = guided and lincomb({ out:narrow(1, 1, B), out:narrow(1, B + 1, B) }, { 1 - cfg, cfg }) or out
      if learned_sigma then v = v:narrow(4, 1, C_lat):contiguous() end
      local sg, sn = sigmas[i], sigmas[i + 1]
      local nx, x0
      if s.kind == "euler" then
        nx = lincomb({ x, v }, { 1, sn - sg })
      else
        -- DPM-Solver++ in data prediction, α = 1 − σ, λ = log α − log σ
        x0 = lincomb({ x, v }, { 1, -sg })
        local last = i == n
        local lower_final = last and (s.euler_at_final or (s.lower_order_final and n < 15) or s.final_sigmas_type == "zero")
        local a_t = 1 - sn
        local eh = sn == 0 and 0 or (sn / a_t) * ((1 - sg) / sg)   -- e^{−h}
        local k = -a_t * (eh - 1)
        if s.solver_order == 1 or lower_nums < 1 or lower_final then
          nx = lincomb({ x, x0 }, { sn / sg, k })
        else
          local sp = sigmas[i - 1]
          local lam = function(z) return math.log(1 - z) - math.log(z) end
          local h, h0 = lam(sn) - lam(sg), lam(sg) - lam(sp)
          local r0 = h0 / h
          local c1 = s.solver_type == "midpoint" and 0.5 * k or -a_t * ((eh - 1) / h + 1)
          nx = lincomb({ x, x0, prev_x0 }, { sn / sg, k + c1 / r0, -c1 / r0 })
        end
        if lower_nums < s.solver_order then lower_nums = lower_nums + 1 end
        prev_x0 = x0
      end
      x = nx
      if o.callback then
        local r = o.callback(i, { t = t, sigma = sg, latents = x, model_in = xin, timestep_in = tin, model_out = out,
                                  encoder_hidden_states_in = text, encoder_attention_mask_in = mask })
        if r == false then return x, { steps = i, stopped = true, timesteps = timesteps, sigmas = sigmas } end
      end
    end
    return x, { steps = n, stopped = false, timesteps = timesteps, sigmas = sigmas }
  end

  -- SanaSprintPipeline's loop with SCMScheduler (TrigFlow): the latents
  -- are scaled by sigma_data in and out, the transformer sees
  -- s = sin t / (sin t + cos t) and the guidance × guidance_embeds_scale,
  -- every step draws fresh noise, and the result is the last predicted
  -- clean latent.
  local function scm_loop(T, s, o, x, text, mask)
    local c = T.config
    if not c.guidance_embeds then
      error("diffusers.sample: SCM sampling (Sprint) needs a transformer with guidance_embeds", 3)
    end
    if o.cfg and o.cfg ~= 1 then
      error("diffusers.sample: SCM sampling does no classifier-free guidance (Sprint embeds it): give opts.guidance_scale, not cfg", 3)
    end
    if o.negative_embeds then error("diffusers.sample: SCM sampling takes no negative prompt", 3) end
    local B, dev = x:size(1), x:device()
    local n = o.steps
    mask = mask_or_ones(mask, B, text:size(2), dev, "mask")
    local sd = s.sigma_data
    local ts
    if o.timesteps then
      if #o.timesteps ~= n + 1 then error("diffusers.sample: opts.timesteps must hold steps + 1 values", 3) end
      ts = {}
      for i, v in ipairs(o.timesteps) do ts[i] = f32(v) end
    else
      local tmax = f32(o.max_timesteps or 1.57080)
      local inter = o.intermediate_timesteps
      if inter == nil and n == 2 then inter = 1.3 end
      if inter and n ~= 2 then error("diffusers.sample: intermediate_timesteps needs steps = 2", 3) end
      if inter then ts = { tmax, f32(inter), 0 }
      else
        ts = {}
        for i = 0, n do ts[i + 1] = f32(tmax + i * (0 - tmax) / n) end
        ts[n + 1] = 0
      end
    end
    local guidance = f32(f32(o.guidance_scale or 4.5) * f32(c.guidance_embeds_scale))
    local gen = o.generator or grove.Generator(o.seed or 0)
    x = x * sd
    local x0
    for i = 1, n do
      local t, tn = ts[i], ts[i + 1]
      local st, ct = math.sin(t), math.cos(t)
      local scm = st / (ct + st)
      local kk = math.sqrt(scm * scm + (1 - scm) * (1 - scm))
      local xin = x * (kk / sd)
      local tin = grove.full({ B }, scm, { device = dev })
      local out = T:forward(xin, tin, text, mask, { guidance = guidance })
      -- the flow velocity in TrigFlow's terms, × sigma_data
      local v = lincomb({ xin, out }, { (1 - 2 * scm) / kk * sd, (1 - 2 * scm + 2 * scm * scm) / kk * sd })
      x0 = lincomb({ x, v }, { ct, -st })
      local noise
      if type(o.noise) == "table" then noise = o.noise[i]
      elseif type(o.noise) == "function" then noise = o.noise(i, x:shape())
      else noise = grove.randn(x:shape(), { generator = gen }) end
      if not grove.is_tensor(noise) or noise:shape_str() ~= x:shape_str() then
        error("diffusers.sample: the noise of step " .. i .. " must be a tensor of the latents' shape " .. x:shape_str(), 3)
      end
      x = lincomb({ x0, noise:to(dev) }, { math.cos(tn), math.sin(tn) * sd })
      if o.callback then
        local r = o.callback(i, { t = t, latents = x, denoised = x0, model_in = xin, timestep_in = tin, model_out = out,
                                  guidance_in = guidance, encoder_hidden_states_in = text, encoder_attention_mask_in = mask })
        if r == false then return x0 * (1 / sd), { steps = i, stopped = true, timesteps = ts } end
      end
    end
    return x0 * (1 / sd), { steps = n, stopped = false, timesteps = ts }
  end

  -- grove.diffusers.sample(T, opts) -> latents (B, H, W, C), info.
  -- opts: prompt_embeds (B, L, caption_channels) and mask (B, L) (any
  -- dtype, nonzero = token); negative_embeds and negative_mask (the
  -- encoded negative prompt; needed for cfg > 1 unless the model has
  -- grove's learned null caption); latents (B, H, W, C) or shape with
  -- seed / generator; steps (20; SCM 2); cfg (4.5; 1 = off); scheduler: a
  -- pipeline folder, a scheduler folder or a scheduler config table
  -- (default: SanaPipeline's DPM-Solver++, or SCM for a Sprint
  -- transformer); sampler "dpm" | "euler" | "scm" (checked against the
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
    o.steps = o.steps or (s.kind == "scm" and 2 or 20)
    if type(o.steps) ~= "number" or o.steps < 1 or o.steps % 1 ~= 0 then
      error("diffusers.sample: steps must be a positive integer, got " .. tostring(o.steps), 2)
    end
    if s.kind ~= "scm" then
      if o.cfg == nil then o.cfg = 4.5 end
      if type(o.cfg) ~= "number" then error("diffusers.sample: cfg must be a number", 2) end
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
      if s.kind == "scm" then return scm_loop(T, s, o, x, text, o.mask) end
      return flow_loop(T, s, o, x, text, o.mask)
    end)
    T:train(was_training)
    if not ok then error(r1, 0) end
    return r1, r2
  end

  return diffusers
end
