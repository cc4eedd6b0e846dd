-- Partial preservation (SANA 1.5, the paper's choice): the N source blocks
-- stay in place as target blocks 1..N, and M − N new blocks follow them.
-- With identity init the new blocks compute nothing at first, so the grown
-- model starts exactly where the source was.
--
-- A strategy is map(N, M): where each target block comes from. Both paths
-- use it: grove.grow builds the blocks from it (a copy per source index, a
-- new block per false; a strategy may instead give its own
-- grow(source_blocks, M, opts)), and the file surgery of `grove grow` reads
-- the tensors it names. Copy this file to write your own, and pass it as
-- grove.grow(model, {strategy = mine}) or register it with
-- grove.grow.register("mine", mine).
local partial = {}

-- Target index → source index (1-based), or false for a new block.
function partial.map(N, M)
  if M < N then
    error(string.format("grow: partial keeps all %d source blocks, so depth must be at least %d, got %d", N, N, M), 0)
  end
  local map = {}
  for i = 1, M do map[i] = i <= N and i end
  return map
end

return partial
