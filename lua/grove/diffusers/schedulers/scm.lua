-- diffusers' SCMScheduler with SanaSprintPipeline's loop (TrigFlow): the
-- latents are scaled by sigma_data in and out; at t the transformer gets
-- x/σ_d·√(s² + (1 − s)²) with s = sin t / (sin t + cos t) as its timestep
-- (no × 1000) and the guidance × guidance_embeds_scale; its output turns
-- into the TrigFlow velocity, x̂0 = cos t·x − sin t·F, and every step draws
-- fresh noise: x ← cos t'·x̂0 + sin t'·σ_d·ε. The result is the last x̂0.
-- Timesteps: [1.5708, 1.3, 0] for 2 steps, linspace(1.5708, 0, n + 1)
-- otherwise. Registered as "scm"; Sprint embeds its guidance, so there is
-- no classifier-free guidance and no negative prompt.
return {
  class = "SCMScheduler",
  used = { sigma_data = 0.5 },
  fixed = { prediction_type = "trigflow" },
  inert = { num_train_timesteps = true },
  default = { _class_name = "SCMScheduler", prediction_type = "trigflow", sigma_data = 0.5, num_train_timesteps = 1000 },
  default_steps = 2,

  check = function(s, need)
    need(type(s.sigma_data) == "number" and s.sigma_data > 0, "sigma_data", "a positive number")
  end,

  -- ctx: model, settings, opts, x, text, mask, steps, f32, lincomb, callback.
  run = function(ctx)
    local grove, T, o, f32, lincomb = ctx.grove, ctx.model, ctx.opts, ctx.f32, ctx.lincomb
    local c = T.config
    if not c.guidance_embeds then error("diffusers.sample: SCM sampling (Sprint) needs a transformer with guidance_embeds", 0) end
    if o.cfg and o.cfg ~= 1 then
      error("diffusers.sample: SCM sampling does no classifier-free guidance (Sprint embeds it): give opts.guidance_scale, not cfg", 0)
    end
    if o.negative_embeds then error("diffusers.sample: SCM sampling takes no negative prompt", 0) end
    local x, n, sd = ctx.x, ctx.steps, ctx.settings.sigma_data
    local B, dev = x:size(1), x:device()
    local ts
    if o.timesteps then
      if #o.timesteps ~= n + 1 then error("diffusers.sample: opts.timesteps must hold steps + 1 values", 0) end
      ts = {}
      for i, v in ipairs(o.timesteps) do ts[i] = f32(v) end
    else
      local tmax = f32(o.max_timesteps or 1.57080)
      local inter = o.intermediate_timesteps
      if inter == nil and n == 2 then inter = 1.3 end
      if inter and n ~= 2 then error("diffusers.sample: intermediate_timesteps needs steps = 2", 0) end
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
      local s = st / (ct + st)
      local k = math.sqrt(s * s + (1 - s) * (1 - s))
      local xin = x * (k / sd)
      local tin = grove.full({ B }, s, { device = dev })
      local out = T:forward(xin, tin, ctx.text, ctx.mask, { guidance = guidance })
      -- TrigFlow's velocity, × sigma_data
      local v = lincomb({ xin, out }, { (1 - 2 * s) / k * sd, (1 - 2 * s + 2 * s * s) / k * sd })
      x0 = lincomb({ x, v }, { ct, -st })
      local noise
      if type(o.noise) == "table" then noise = o.noise[i]
      elseif type(o.noise) == "function" then noise = o.noise(i, x:shape())
      else noise = grove.randn(x:shape(), { generator = gen }) end
      if not grove.is_tensor(noise) or noise:shape_str() ~= x:shape_str() then
        error("diffusers.sample: the noise of step " .. i .. " must be a tensor of the latents' shape " .. x:shape_str(), 0)
      end
      x = lincomb({ x0, noise:to(dev) }, { math.cos(tn), math.sin(tn) * sd })
      if ctx.callback then
        local r = ctx.callback(i, { t = t, latents = x, denoised = x0, model_in = xin, timestep_in = tin, model_out = out,
                                    guidance_in = guidance, encoder_hidden_states_in = ctx.text,
                                    encoder_attention_mask_in = ctx.mask })
        if r == false then return x0 * (1 / sd), { steps = i, stopped = true, timesteps = ts } end
      end
    end
    return x0 * (1 / sd), { steps = n, stopped = false, timesteps = ts }
  end,
}
