-- Block replication (SANA 1.5): source block j becomes r consecutive target
-- blocks, r = M / N, so each block is followed by its own repeats
-- (1,1,1, 2,2,2, ...). The first of each run keeps the source block; the
-- other r − 1 are the copies that the init applies to.
local block = {}

-- Target index → source index (1-based).
function block.map(N, M)
  if M < N or M % N ~= 0 then
    error(string.format("grow: block replication needs a depth that is a multiple of the source's %d blocks " ..
                        "(%d, %d, ...), got %d", N, N, 2 * N, M), 0)
  end
  local r, map = M / N, {}
  for i = 1, M do map[i] = math.floor((i - 1) / r) + 1 end
  return map
end

return block
