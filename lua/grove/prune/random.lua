-- Baseline: remove N − K blocks drawn at random (seeded by opts.seed),
-- scoring nothing. What importance ranking has to beat.
return function(ctx)
  local pool = ctx.removable(ctx.all())
  local keys = ctx.random(#pool)
  local order = {}
  for k = 1, #pool do order[k] = k end
  table.sort(order, function(a, b) if keys[a] ~= keys[b] then return keys[a] < keys[b] end return a < b end)
  local drop = {}
  for k = 1, ctx.n - ctx.depth do drop[k] = pool[order[k]] end
  return ctx.without(ctx.all(), drop)
end
