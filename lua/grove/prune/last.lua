-- Baseline: remove the last N − K blocks (those not in opts.keep), scoring
-- nothing: the model truncated to its first blocks.
return function(ctx)
  local pool = ctx.removable(ctx.all())
  local drop = {}
  for k = #pool - (ctx.n - ctx.depth) + 1, #pool do drop[#drop + 1] = pool[k] end
  return ctx.without(ctx.all(), drop)
end
