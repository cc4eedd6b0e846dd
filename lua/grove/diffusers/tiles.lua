-- Tiled runs of a grid model, as diffusers' autoencoders tile (AutoencoderDC:
-- tiled_decode / tiled_encode): overlapping tiles, each run alone, blended
-- linearly over the overlap with the tile above and the one on the left.
return function(grove)
  local tiles = {}

  -- Overwrites the first `extent` rows (dim 2) or columns (dim 3) of b with
  -- a linear blend from the last ones of a (a strip: the neighbour's last
  -- rows or columns) to b's own: weight y/extent on b at offset y.
  local function blend(a, b, extent, dim)
    local e = math.min(a:size(dim), b:size(dim), extent)
    if e <= 0 then return end
    local w = {}
    for y = 0, e - 1 do w[#w + 1] = y / e end
    local shape = { 1, 1, 1, 1 }
    shape[dim] = e
    local wt = grove.tensor(w):view(shape):to(b:device())
    local top = b:narrow(dim, 1, e)
    local mixed = a:narrow(dim, a:size(dim) - e + 1, e) * (1 - wt) + top * wt
    top:copy_(mixed)
  end

  -- x (B, H, W, C) NHWC; run maps a tile (B, h, w, C) to its output grid.
  -- Tiles of `tin` × `tin` input positions start every `sin` (smaller at the
  -- right and bottom edges); in row order, each output tile blends its
  -- first `extent` rows from the tile above and then its first `extent`
  -- columns from the tile on its left (both already blended), and its first
  -- `sout` × `sout` positions go to the output (B, ·, ·, ·) of out_shape.
  -- Only the strips the next tiles blend from are held, so memory is one
  -- tile's run plus the output, whatever the size.
  function tiles.run(x, run, tin, sin, sout, extent, out_shape)
    local H, W = x:size(2), x:size(3)
    local out = grove.empty(out_shape, { device = x:device() })
    local above = {}
    local oi = 1
    for i = 0, H - 1, sin do
      local left, row, oj, rows_kept = nil, {}, 1, 0
      for j = 0, W - 1, sin do
        local tile = x:narrow(2, i + 1, math.min(tin, H - i)):narrow(3, j + 1, math.min(tin, W - j))
        local t = run(tile:contiguous())
        local th, tw = t:size(2), t:size(3)
        if above[j] then blend(above[j], t, extent, 2) end
        if left then blend(left, t, extent, 3) end
        local eh, ew = math.min(extent, th), math.min(extent, tw)
        row[j] = eh > 0 and t:narrow(2, th - eh + 1, eh):clone() or nil
        left = ew > 0 and t:narrow(3, tw - ew + 1, ew):clone() or nil
        local kh, kw = math.min(sout, th), math.min(sout, tw)
        out:narrow(2, oi, kh):narrow(3, oj, kw):copy_(t:narrow(2, 1, kh):narrow(3, 1, kw))
        oj = oj + kw
        rows_kept = kh
        t:free()
        grove.collect() -- one tile's handles: the next tile starts from what the output and strips hold
      end
      above = row
      oi = oi + rows_kept
    end
    return out
  end


  return tiles
end
