-- diffusers' FlowMatchEulerDiscreteScheduler (SanaPipeline with flow
-- Euler): the training sigmas are shifted once, so σ_min = shift(1/N); the
-- inference sigmas are linspace(1, σ_min, n) shifted again (the minimum is
-- shifted twice: 0.008929 at shift 3), then a final 0; the transformer gets
-- σ·N, not an integer; x ← x + (σ_next − σ)·v. Registered as "euler".
local function shift_sigma(s, shift) return shift * s / (1 + (shift - 1) * s) end

return {
  class = "FlowMatchEulerDiscreteScheduler",
  used = { num_train_timesteps = 1000, shift = 1.0 },
  fixed = { use_dynamic_shifting = false, invert_sigmas = false, shift_terminal = "null",
            use_karras_sigmas = false, use_exponential_sigmas = false, use_beta_sigmas = false,
            stochastic_sampling = false },
  -- only read with use_dynamic_shifting
  inert = { base_shift = true, max_shift = true, base_image_seq_len = true, max_image_seq_len = true,
            time_shift_type = true },
  shift_key = "shift",
  default = { _class_name = "FlowMatchEulerDiscreteScheduler", shift = 3.0, num_train_timesteps = 1000 },

  check = function(s, need)
    need(type(s.num_train_timesteps) == "number" and s.num_train_timesteps >= 1 and s.num_train_timesteps % 1 == 0,
         "num_train_timesteps", "a positive integer")
    need(type(s.shift) == "number" and s.shift > 0, "shift", "a positive number")
  end,

  schedule = function(s, n, f32)
    local N = s.num_train_timesteps
    local tmax = f32(shift_sigma(1, s.shift)) * N
    local tmin = f32(shift_sigma(f32(1 / N), s.shift)) * N
    local sigmas, timesteps = {}, {}
    for i = 0, n - 1 do
      local t = (n == 1 or i == 0) and tmax or (i == n - 1 and tmin or tmax + i * ((tmin - tmax) / (n - 1)))
      sigmas[i + 1] = f32(shift_sigma(t / N, s.shift))
      timesteps[i + 1] = f32(sigmas[i + 1] * N)
    end
    sigmas[n + 1] = 0
    return timesteps, sigmas
  end,

  step = function(ctx, i, x, v)
    return ctx.lincomb({ x, v }, { 1, ctx.sigmas[i + 1] - ctx.sigmas[i] })
  end,
}
