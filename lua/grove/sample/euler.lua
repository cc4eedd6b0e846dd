-- The flow-matching Euler sampler: x_t = x_s + (t − s)·v(x_s, s), the data
-- prediction x0 = x_s − s·v at each step; the last step (t = 0) lands on x0.
-- Registered as "euler" (grove.sample.register, nn/flow.lua).
return {
  step = function(ctx, i, x, s, t)
    local v = ctx.velocity(x, s)
    local x0 = ctx.lincomb({ x, v }, { 1, -s })
    if t == 0 then return x0, x0 end
    return ctx.lincomb({ x, v }, { 1, t - s }), x0
  end,
}
