-- The knockout tournament as SANA 1.5 runs it. Candidates meet in pairs in
-- their order (1 v 2, 3 v 4, ...); the winners meet again the same way,
-- round after round, until `pick` remain. In a match
--   a "yes" (yes probability ≥ 0.5) beats a "no";
--   between two "yes" the higher yes probability wins;
--   between two "no" the lower no probability (= the higher yes) wins;
--   a tie (equal probabilities) goes to the earlier candidate of the pair,
--   so the result depends on the scores and the order only.
-- N and pick must be powers of two with pick ≤ N. Each candidate is judged
-- once; the picked are returned in bracket order.
local function power_of_two(n)
  if type(n) ~= "number" or n < 1 or n % 1 ~= 0 then return false end
  local p = 1
  while p < n do p = p * 2 end
  return p == n
end

local function beats(a, b)
  local ya, yb = a.score >= 0.5, b.score >= 0.5
  if ya ~= yb then return ya end
  if ya then return a.score >= b.score end
  return (1 - a.score) <= (1 - b.score)
end

return function(prompt, candidates, judge, opts)
  local n, pick = #candidates, opts.pick or 1
  if not power_of_two(n) then
    error("search: tournament needs a power of two of candidates (1, 2, 4, 8, ...), got " .. n, 0)
  end
  if not power_of_two(pick) or pick > n then
    error("search: tournament needs pick a power of two no larger than the " .. n .. " candidates, got " .. tostring(pick), 0)
  end
  local round = {}
  for i, c in ipairs(candidates) do
    c.score = judge(c.image, prompt)
    round[i] = c
  end
  while #round > pick do
    local nxt = {}
    for k = 1, #round, 2 do
      local a, b = round[k], round[k + 1]
      nxt[#nxt + 1] = beats(a, b) and a or b
    end
    round = nxt
  end
  return round
end
