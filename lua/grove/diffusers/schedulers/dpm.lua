-- diffusers' DPMSolverMultistepScheduler on flow sigmas (SanaPipeline's
-- Flow-DPM-Solver): DPM-Solver++ in data prediction x̂0 = x − σ·v with
-- α = 1 − σ, λ = log α − log σ. set_timesteps: σ = 1 − linspace(1, 1/N,
-- n + 1), shifted (flow_shift), reversed, the final 0 dropped and appended
-- again; the transformer gets σ·N truncated to an integer (999, 899, 749,
-- 499 for 4 steps at shift 3), the update uses the float32 σ. The first step
-- and the last (σ = 0 with final_sigmas_type "zero") are first order.
-- Registered as "dpm" (grove.diffusers.register_scheduler).
local function shift_sigma(s, shift) return shift * s / (1 + (shift - 1) * s) end
local function lam(z) return math.log(1 - z) - math.log(z) end

return {
  class = "DPMSolverMultistepScheduler",
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
  shift_key = "flow_shift",
  -- SanaPipeline's official scheduler_config.json (flow_shift 3)
  default = { _class_name = "DPMSolverMultistepScheduler", algorithm_type = "dpmsolver++", flow_shift = 3.0,
              use_flow_sigmas = true, prediction_type = "flow_prediction", solver_order = 2,
              final_sigmas_type = "zero", lower_order_final = true, num_train_timesteps = 1000 },

  check = function(s, need)
    need(type(s.num_train_timesteps) == "number" and s.num_train_timesteps >= 1 and s.num_train_timesteps % 1 == 0,
         "num_train_timesteps", "a positive integer")
    need(type(s.flow_shift) == "number" and s.flow_shift > 0, "flow_shift", "a positive number")
    need(s.solver_order == 1 or s.solver_order == 2, "solver_order", "1 or 2 (third order is not implemented)")
    need(s.solver_type == "midpoint" or s.solver_type == "heun", "solver_type", "\"midpoint\" or \"heun\"")
    need(s.final_sigmas_type == "zero", "final_sigmas_type", "\"zero\" (the flow schedule ends at sigma 0)")
    need(type(s.lower_order_final) == "boolean", "lower_order_final", "true or false")
    need(type(s.euler_at_final) == "boolean", "euler_at_final", "true or false")
  end,

  schedule = function(s, n, f32)
    local N = s.num_train_timesteps
    local sig = {}
    local step = (1 / N - 1) / n
    for i = 0, n do
      local alpha = i == n and 1 / N or 1 + i * step   -- numpy's linspace
      sig[n - i + 1] = shift_sigma(1 - alpha, s.flow_shift)
    end
    local sigmas, timesteps = {}, {}
    for i = 1, n do
      timesteps[i] = math.floor(sig[i] * N)
      sigmas[i] = f32(sig[i])
    end
    sigmas[n + 1] = 0
    return timesteps, sigmas
  end,

  -- x after step i of n from the guided velocity v.
  step = function(ctx, i, x, v)
    local s, st, n = ctx.settings, ctx.state, ctx.steps
    local sg, sn = ctx.sigmas[i], ctx.sigmas[i + 1]
    local x0 = ctx.lincomb({ x, v }, { 1, -sg })
    local lower_final = i == n and (s.euler_at_final or (s.lower_order_final and n < 15) or s.final_sigmas_type == "zero")
    local a_t = 1 - sn
    local eh = sn == 0 and 0 or (sn / a_t) * ((1 - sg) / sg)   -- e^{−h}
    local k = -a_t * (eh - 1)
    local lower = st.lower_nums or 0
    local nx
    if s.solver_order == 1 or lower < 1 or lower_final then
      nx = ctx.lincomb({ x, x0 }, { sn / sg, k })
    else
      local h, h0 = lam(sn) - lam(sg), lam(sg) - lam(ctx.sigmas[i - 1])
      local r0 = h0 / h
      -- the coefficient of D1 = (x̂0 − x̂0_prev) / r0: midpoint −½α_t(e^{−h} − 1), heun α_t((e^{−h} − 1)/h + 1)
      local c1 = s.solver_type == "midpoint" and 0.5 * k or a_t * ((eh - 1) / h + 1)
      nx = ctx.lincomb({ x, x0, st.prev_x0 }, { sn / sg, k + c1 / r0, -c1 / r0 })
    end
    if lower < s.solver_order then st.lower_nums = lower + 1 end
    st.prev_x0 = x0
    return nx, x0
  end,
}
