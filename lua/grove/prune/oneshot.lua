-- One-shot pruning (SANA 1.5): score every block once, in the full model,
-- and remove the N − K least important at once.
--
-- A schedule is a function (ctx) -> the source indices of the K blocks to
-- keep. ctx.n is the source depth N, ctx.depth the target K, ctx.opts the
-- options of grove.prune; ctx.score(alive) scores the model made of the
-- blocks alive (all by default) and returns importance by source index;
-- ctx.lowest(scores, count, alive) names the count least important blocks
-- that may go (not in opts.keep); ctx.all() is {1..N}; ctx.without(list,
-- drop) removes indices from a list. Copy this file to write your own.
return function(ctx)
  local scores = ctx.score()
  return ctx.without(ctx.all(), ctx.lowest(scores, ctx.n - ctx.depth))
end
