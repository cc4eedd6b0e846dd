-- Cyclic replication (SANA 1.5): target block i is a copy of source block
-- i mod N, so the whole source stack repeats (1..N, 1..N, ...). The first
-- pass keeps the source blocks; the repeats are the copies that the init
-- (identity, random, noise) applies to. M need not be a multiple of N.
local cyclic = {}

-- Target index → source index (1-based).
function cyclic.map(N, M)
  if M < N then
    error(string.format("grow: cyclic keeps all %d source blocks, so depth must be at least %d, got %d", N, N, M), 0)
  end
  local map = {}
  for i = 1, M do map[i] = (i - 1) % N + 1 end
  return map
end

return cyclic
