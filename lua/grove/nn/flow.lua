-- Flow matching (DESIGN.md §4): the training loss on a model, and the
-- samplers that integrate its velocity from noise (σ = 1) to data (σ = 0).
local ffi = require "ffi"
local checks = require "grove.cli.args"
local function check_arg(v, check, what) return checks.validate(v, check, what, 3) end

return function(grove)
  local nn, C = grove.nn, grove.C
  local Sana = nn.SanaModel
  local sample = {}
  grove.sample = sample

  local arr, co = ffi.new("grove_tensor *[4]"), ffi.new("double[4]")
  local function terms(ts, cs)
    local n = #ts
    if n > 4 then error("lincomb: " .. n .. " tensors given (1 to 4)", 3) end
    for i = 1, n do arr[i - 1] = ts[i].p; co[i - 1] = cs[i] end
    return n
  end
  local function lincomb(ts, cs)
    return grove._wrap(C.grove_lincomb(terms(ts, cs), arr, co))
  end
  grove.lincomb = lincomb
  --- Σ cs[i]·ts[i] written into dst (contiguous, not requiring grad; a term
  -- may be dst itself): one kernel, no new tensor. Returns dst.
  function grove.lincomb_into(dst, ts, cs)
    grove.check(C.grove_lincomb_into(dst.p, terms(ts, cs), arr, co))
    return dst
  end

  -- σ' = s·σ / (1 + (s − 1)·σ): more time at high noise for larger images.
  local function shift_sigma(sigma, s) return s * sigma / (1 + (s - 1) * sigma) end
  sample.shift_sigma = shift_sigma

  -- The device ("cpu" or "cuda") the model's weights are on.
  function Sana:device() return self.proj_out.weight:device() end

  -- The null caption (the learned y_embedding) for a batch of B, mask all
  -- ones, on the model's device.
  function Sana:null_text(B)
    if not self.y_embedding then error("Sana: this model has no null caption (config.caption_dropout = 0)", 2) end
    local y = self.y_embedding
    if y:dtype() ~= "f32" then y = y:to("f32") end   -- stored as bf16/f16 in a folder
    local L, Cc = y:size(1), y:size(2)
    return y:unsqueeze(1):expand { B, L, Cc }, grove.ones({ B, L }, { device = y:device() })
  end

  -- loss = mean ‖v(x_σ, σ) − (ε − x0)‖² with σ from a shifted logit-normal.
  -- opts: generator, shift (config.flow_shift), logit_mean 0, logit_std 1,
  -- caption_dropout (config.caption_dropout, only in training mode).
  -- The noise, timesteps and dropout draws are made on the CPU with the
  -- generator and moved to x0's device: a GPU run then reproduces the CPU
  -- run's randomness draw for draw, so their losses can be compared step by step.
  function Sana:flow_loss(x0, text, mask, opts)
    opts = opts or {}
    local c = self.config
    local gen = opts.generator or grove.default_generator()
    local B = x0:size(1)
    local dev = x0:device()
    local u = grove.randn({ B }, { generator = gen }):to(dev) * (opts.logit_std or 1) + (opts.logit_mean or 0)
    local sigma = u:sigmoid()
    local s = opts.shift or c.flow_shift
    sigma = (sigma * s) / (sigma * (s - 1) + 1)
    local eps = grove.randn(x0:shape(), { generator = gen }):to(dev)
    local sig4 = sigma:view { B, 1, 1, 1 }
    local xs = x0 * (1 - sig4) + eps * sig4
    local p = opts.caption_dropout or c.caption_dropout or 0
    if self.training and p > 0 and self.y_embedding then
      local r, flags = grove.rand({ B }, { generator = gen }):tolist(), {}
      for i = 1, B do flags[i] = r[i] < p and 1 or 0 end
      local drop = grove.tensor(flags, { dtype = "u8", device = dev })
      local null, ones = self:null_text(B)
      text = grove.where(drop:view { B, 1, 1 }, null, text)
      if mask then mask = grove.where(drop:view { B, 1 }, ones, mask) end
    end
    local v = self:forward(xs, sigma * 1000, text, mask)
    return grove.mse_loss(v, eps - x0)
  end

  -- σ schedule from 1 to 0 in `steps` steps, shifted.
  function sample.sigmas(steps, shift)
    local out = {}
    for i = 0, steps do out[i + 1] = shift_sigma(1 - i / steps, shift or 3) end
    return out
  end

  -- Velocity with classifier-free guidance: one batched forward of
  -- [uncond; cond] when guidance is on.
  local function velocity(model, x, sigma, o)
    local B = x:size(1)
    local t = grove.full({ B }, sigma * 1000, { device = x:device() })
    if not o.cfg or o.cfg == 1 then
      return model:forward(x, t, o.text, o.mask)
    end
    local both = model:forward(grove.cat({ x, x }, 1), grove.cat({ t, t }, 1), o.both_text, o.both_mask)
    local uncond, cond = both:narrow(1, 1, B), both:narrow(1, B + 1, B)
    return lincomb({ uncond, cond }, { 1 - o.cfg, o.cfg })
  end

  -- ---- samplers: a Lua file + register, like a search policy -----------------
  -- A sampler is {step = fn(ctx, i, x, s, t) -> x_next, x0} (a function is
  -- taken as the step), optionally with sigmas = fn(steps, shift, opts) -> the
  -- schedule σ_1 = 1 … σ_{steps+1} = 0 (default sample.sigmas). step moves x
  -- from σ = s to σ = t (step i of ctx.sigmas) and returns the new x and its
  -- data prediction (what the callback sees). ctx: velocity(x, σ) (the model
  -- with classifier-free guidance), lincomb(tensors, coefficients), sigmas,
  -- model, opts, and state, a table the sampler keeps between its steps.
  local samplers = grove.registry.new { owner = "sample", kind = "sampler", register_name = "grove.sample.register",
    entry = function(v, name, _, where)
      if type(v) == "function" then return { step = v, name = name } end
      if type(v) ~= "table" or type(v.step) ~= "function" or (v.sigmas ~= nil and type(v.sigmas) ~= "function") then
        error((where or "sample") .. ": sampler " .. (where and ("'" .. name .. "' ") or "") ..
              "must be a step function (ctx, i, x, s, t) -> x_next, x0 or a table {step =, sigmas =}, got " .. type(v), 0)
      end
      return { step = v.step, sigmas = v.sigmas, name = name }
    end }
  sample.samplers = samplers.entries
  sample.registry = samplers
  sample.register = samplers.register
  sample.sampler = samplers.get
  sample.load = samplers.load
  for _, name in ipairs { "dpm", "euler" } do sample.register(name, require("grove.sample." .. name)) end

  -- Samples latents on the model's device (noise given or drawn on the CPU
  -- is moved there; the result stays there). opts: noise (B,H,W,C) or shape + seed; text, mask;
  -- cfg (4.5; 1 = off); negative_text, negative_mask (the unconditional
  -- side of guidance; default the learned null caption, and without one
  -- cfg ≠ 1 is an error, never a silently unguided run); steps (20);
  -- sampler "dpm" (default), "euler", a registered name or a sampler;
  -- shift (model's flow_shift); callback(i, sigma, x, x0) → nil to go on,
  -- false to stop, or a tensor to replace x. Returns x and {steps = n, stopped = bool}.
  -- A transformer read from a diffusers folder samples as its pipeline
  -- does instead (grove.diffusers.sample; text, mask, noise, negative_text
  -- and negative_mask are its prompt_embeds, mask, latents, negative_embeds
  -- and negative_mask).
  function Sana:sample(opts)
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    if self.diffusers_config and grove.diffusers and grove.diffusers.sample then
      o.prompt_embeds = o.prompt_embeds or o.text
      o.latents = o.latents or o.noise
      o.negative_embeds = o.negative_embeds or o.negative_text
      o.text, o.noise, o.negative_text = nil, nil, nil
      return grove.diffusers.sample(self, o)
    end
    local c = self.config
    o.steps = o.steps or 20
    if o.cfg == nil then o.cfg = 4.5 end
    -- 0 or negative steps would return the noise itself as a "sample"
    check_arg(o.steps, checks.count, "sample: steps")
    check_arg(o.cfg, checks.finite, "sample: cfg")
    if o.seed ~= nil then check_arg(o.seed, checks.seed, "sample: seed") end
    local ok, sampler = pcall(samplers.get, o.sampler or "dpm")
    if not ok then error(sampler, 2) end
    local x = o.noise
    if not x then
      if not o.shape then error("sample: give noise or shape", 2) end
      x = grove.randn(o.shape, { generator = grove.Generator(o.seed or 0) })
    end
    local dev = self:device()
    x = x:to(dev)
    local B = x:size(1)
    if o.cfg ~= 1 then
      local neg, nmask = o.negative_text, o.negative_mask
      if neg == nil then
        if not self.y_embedding then
          error("sample: cfg " .. o.cfg .. " needs opts.negative_text (this model has no learned null caption); " ..
                "give cfg = 1 for an unguided run", 2)
        end
        neg, nmask = self:null_text(B)
      end
      local L = o.text:size(2)
      local function m32(m, n) return m and (m:dtype() == "f32" and m or m:to("f32")):to(dev) or grove.ones({ B, n }, { device = dev }) end
      if neg:size(2) ~= L then
        error(string.format("sample: negative_text has %d tokens, text %d (they run as one batch)", neg:size(2), L), 2)
      end
      o.both_text = grove.cat({ neg:to(dev), o.text:to(dev) }, 1)
      o.both_mask = grove.cat({ m32(nmask, L), m32(o.mask, L) }, 1)
    end
    local shift = o.shift or c.flow_shift
    local sig = sampler.sigmas and sampler.sigmas(o.steps, shift, o) or sample.sigmas(o.steps, shift)
    local ctx = { model = self, opts = o, sigmas = sig, state = {}, lincomb = lincomb,
                  velocity = function(xx, sigma) return velocity(self, xx, sigma, o) end }
    local stopped, done = false, 0
    local was_training = self.training
    self:eval()
    grove.no_grad(function()
      for i = 1, o.steps do
        local s, t = sig[i], sig[i + 1]
        local x0
        x, x0 = sampler.step(ctx, i, x, s, t)
        done = i
        if o.callback then
          local r = o.callback(i, t, x, x0)
          if r == false then stopped = true; break end
          if grove.is_tensor(r) then x = r end
        end
      end
    end)
    self:train(was_training)
    return x, { steps = done, stopped = stopped }
  end
end
