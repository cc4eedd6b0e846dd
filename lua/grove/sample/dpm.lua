-- Flow-DPM-Solver: DPM-Solver++(2M) in data prediction on the flow path
-- x_σ = (1 − σ)·x0 + σ·ε, with α = 1 − σ and λ = log(α/σ). The first step
-- and the last (t = 0) are first order; the others use the previous step's
-- data prediction. Registered as "dpm" (grove.sample.register, nn/flow.lua).
local function lam(z) return math.log((1 - z) / z) end

return {
  step = function(ctx, i, x, s, t)
    local v = ctx.velocity(x, s)
    local x0 = ctx.lincomb({ x, v }, { 1, -s })
    local prev_x0, prev_s = ctx.state.prev_x0, ctx.sigmas[i - 1]
    ctx.state.prev_x0 = x0
    if t == 0 then return x0, x0 end
    local a_t, a_s = 1 - t, 1 - s
    local eh = (t / a_t) * (a_s / s)           -- e^{-h}
    local k = -a_t * (eh - 1)
    if prev_x0 and prev_s < 1 then
      local r0 = (lam(s) - lam(prev_s)) / (lam(t) - lam(s))
      -- x_t = (σt/σs)x + k·D0 + k/2·(D0 − D_prev)/r0
      return ctx.lincomb({ x, x0, prev_x0 }, { t / s, k + 0.5 * k / r0, -0.5 * k / r0 }), x0
    end
    return ctx.lincomb({ x, x0 }, { t / s, k }), x0
  end,
}
