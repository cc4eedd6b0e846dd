-- Iterative pruning: remove the least important block (opts.step blocks at
-- a time, default 1), score the smaller model again, repeat until K remain.
-- Slower than one-shot by about N − K scorings, and it sees how the blocks
-- that stay take over from the ones removed.
return function(ctx)
  local step = ctx.opts.step or 1
  local alive = ctx.all()
  while #alive > ctx.depth do
    local scores = ctx.score(alive)
    alive = ctx.without(alive, ctx.lowest(scores, math.min(step, #alive - ctx.depth), alive))
  end
  return alive
end
