-- Partial preservation (SANA 1.5, the paper's choice): the N source blocks
-- stay in place as target blocks 1..N, and M − N new blocks follow them.
-- With identity init the new blocks compute nothing at first, so the grown
-- model starts exactly where the source was.
--
-- A strategy is two functions. map says where each target block comes from
-- (the command-line surgery on files uses only this); grow builds the blocks
-- from a model's list with tensor ops (grove.grow uses this). Copy this file
-- to write your own, and pass it as grove.grow(model, {strategy = mine}) or
-- register it with grove.grow.register("mine", mine).
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

-- (source_blocks, M, opts) → target_blocks. opts.copy(block) deep-copies a
-- block; opts.new_block(i) makes target block i with the model's default init.
function partial.grow(source_blocks, M, opts)
  local out = {}
  for i, j in ipairs(partial.map(#source_blocks, M)) do
    out[i] = j and opts.copy(source_blocks[j]) or opts.new_block(i)
  end
  return out
end

return partial
