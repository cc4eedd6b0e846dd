-- Best-of-N: the `pick` candidates with the highest judge scores, best
-- first; equal scores keep the candidates' order (the lower seed first).
--
-- A policy is a function (prompt, candidates, judge, opts) -> picked list.
-- candidates: {{image = (H, W, C) tensor, seed = n, index = i}, ...};
-- judge(image, prompt) -> yes probability; opts.pick (1), opts.seed.
-- Copy this file to write your own and pass it as
-- grove.search.run(parts, prompt, {policy = mine}) or register it with
-- grove.search.register("mine", mine).
return function(prompt, candidates, judge, opts)
  local pick = opts.pick or 1
  local order = {}
  for i, c in ipairs(candidates) do
    c.score = judge(c.image, prompt)
    order[i] = i
  end
  table.sort(order, function(a, b)
    local sa, sb = candidates[a].score, candidates[b].score
    if sa ~= sb then return sa > sb end
    return a < b
  end)
  local out = {}
  for k = 1, math.min(pick, #candidates) do out[k] = candidates[order[k]] end
  return out
end
