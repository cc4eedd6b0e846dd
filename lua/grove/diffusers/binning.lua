-- SANA's resolution binning: the pipelines generate at the trained
-- resolution closest in aspect ratio to the one asked for, then resize and
-- centre-crop the decoded images back to the asked size.
--
--   local h, w = grove.diffusers.bin_size(height, width, sample_size)
--   local img = grove.diffusers.resize_crop(images, height, width)   -- NHWC f32
--
-- The tables are diffusers' ASPECT_RATIO_{512,1024,2048,4096}_BIN (PixArt-α's
-- 512 and 1024, PixArt-Σ's 2048, SanaPipeline's 4096): aspect ratio
-- (height / width, as written in diffusers) → {height, width}, in diffusers'
-- order, which decides ties. The transformer's sample_size picks the table
-- as SanaPipeline does: 16 → 512, 32 → 1024, 64 → 2048, 128 → 4096.
return function(grove, diffusers)
  -- {ratio string, height, width}, ascending as in diffusers' dicts
  local function rows(list)
    local out = {}
    for i = 1, #list, 3 do out[#out + 1] = { list[i], list[i + 1], list[i + 2] } end
    return out
  end

  local BINS = {}
  BINS[512] = rows {
    "0.25", 256, 1024, "0.28", 256, 928, "0.32", 288, 896, "0.33", 288, 864, "0.35", 288, 832,
    "0.4", 320, 800, "0.42", 320, 768, "0.48", 352, 736, "0.5", 352, 704, "0.52", 352, 672,
    "0.57", 384, 672, "0.6", 384, 640, "0.68", 416, 608, "0.72", 416, 576, "0.78", 448, 576,
    "0.82", 448, 544, "0.88", 480, 544, "0.94", 480, 512, "1.0", 512, 512, "1.07", 512, 480,
    "1.13", 544, 480, "1.21", 544, 448, "1.29", 576, 448, "1.38", 576, 416, "1.46", 608, 416,
    "1.67", 640, 384, "1.75", 672, 384, "2.0", 704, 352, "2.09", 736, 352, "2.4", 768, 320,
    "2.5", 800, 320, "3.0", 864, 288, "4.0", 1024, 256,
  }
  BINS[1024] = rows {
    "0.25", 512, 2048, "0.28", 512, 1856, "0.32", 576, 1792, "0.33", 576, 1728, "0.35", 576, 1664,
    "0.4", 640, 1600, "0.42", 640, 1536, "0.48", 704, 1472, "0.5", 704, 1408, "0.52", 704, 1344,
    "0.57", 768, 1344, "0.6", 768, 1280, "0.68", 832, 1216, "0.72", 832, 1152, "0.78", 896, 1152,
    "0.82", 896, 1088, "0.88", 960, 1088, "0.94", 960, 1024, "1.0", 1024, 1024, "1.07", 1024, 960,
    "1.13", 1088, 960, "1.21", 1088, 896, "1.29", 1152, 896, "1.38", 1152, 832, "1.46", 1216, 832,
    "1.67", 1280, 768, "1.75", 1344, 768, "2.0", 1408, 704, "2.09", 1472, 704, "2.4", 1536, 640,
    "2.5", 1600, 640, "3.0", 1728, 576, "4.0", 2048, 512,
  }
  BINS[2048] = rows {
    "0.25", 1024, 4096, "0.26", 1024, 3968, "0.27", 1024, 3840, "0.28", 1024, 3712, "0.32", 1152, 3584,
    "0.33", 1152, 3456, "0.35", 1152, 3328, "0.4", 1280, 3200, "0.42", 1280, 3072, "0.48", 1408, 2944,
    "0.5", 1408, 2816, "0.52", 1408, 2688, "0.57", 1536, 2688, "0.6", 1536, 2560, "0.68", 1664, 2432,
    "0.72", 1664, 2304, "0.78", 1792, 2304, "0.82", 1792, 2176, "0.88", 1920, 2176, "0.94", 1920, 2048,
    "1.0", 2048, 2048, "1.07", 2048, 1920, "1.13", 2176, 1920, "1.21", 2176, 1792, "1.29", 2304, 1792,
    "1.38", 2304, 1664, "1.46", 2432, 1664, "1.67", 2560, 1536, "1.75", 2688, 1536, "2.0", 2816, 1408,
    "2.09", 2944, 1408, "2.4", 3072, 1280, "2.5", 3200, 1280, "2.89", 3328, 1152, "3.0", 3456, 1152,
    "3.11", 3584, 1152, "3.62", 3712, 1024, "3.75", 3840, 1024, "3.88", 3968, 1024, "4.0", 4096, 1024,
  }
  BINS[4096] = rows {
    "0.25", 2048, 8192, "0.26", 2048, 7936, "0.27", 2048, 7680, "0.28", 2048, 7424, "0.32", 2304, 7168,
    "0.33", 2304, 6912, "0.35", 2304, 6656, "0.4", 2560, 6400, "0.42", 2560, 6144, "0.48", 2816, 5888,
    "0.5", 2816, 5632, "0.52", 2816, 5376, "0.57", 3072, 5376, "0.6", 3072, 5120, "0.68", 3328, 4864,
    "0.72", 3328, 4608, "0.78", 3584, 4608, "0.82", 3584, 4352, "0.88", 3840, 4352, "0.94", 3840, 4096,
    "1.0", 4096, 4096, "1.07", 4096, 3840, "1.13", 4352, 3840, "1.21", 4352, 3584, "1.29", 4608, 3584,
    "1.38", 4608, 3328, "1.46", 4864, 3328, "1.67", 5120, 3072, "1.75", 5376, 3072, "2.0", 5632, 2816,
    "2.09", 5888, 2816, "2.4", 6144, 2560, "2.5", 6400, 2560, "2.89", 6656, 2304, "3.0", 6912, 2304,
    "3.11", 7168, 2304, "3.62", 7424, 2048, "3.75", 7680, 2048, "3.88", 7936, 2048, "4.0", 8192, 2048,
  }
  diffusers.aspect_ratio_bins = BINS

  -- SanaPipeline's choice of table by the transformer's sample_size.
  local BY_SAMPLE_SIZE = { [16] = 512, [32] = 1024, [64] = 2048, [128] = 4096 }

  -- The table (its resolution, 512 … 4096) binning uses for a transformer of
  -- sample_size; nil and a message when SanaPipeline has none for it.
  function diffusers.bin_resolution(sample_size)
    local r = BY_SAMPLE_SIZE[sample_size]
    if r then return r end
    return nil, "resolution binning has no table for a transformer of sample_size " .. tostring(sample_size) ..
                " (SanaPipeline bins sample_size 16, 32, 64 and 128: 512, 1024, 2048 and 4096 pixels)"
  end

  local function check_size(v, name, op)
    if type(v) ~= "number" or v ~= v or v % 1 ~= 0 or v < 1 then
      error(op .. ": " .. name .. " must be a positive integer, got " .. tostring(v), 3)
    end
  end

  -- The (height, width) SanaPipeline generates at for an asked size: the
  -- bin whose ratio is closest to height / width (the first of equals, as
  -- Python's min over the dict keys). sample_size picks the table; or give
  -- opts.resolution (512, 1024, 2048, 4096). Returns height, width and the
  -- ratio key.
  function diffusers.bin_size(height, width, sample_size, opts)
    check_size(height, "height", "diffusers.bin_size")
    check_size(width, "width", "diffusers.bin_size")
    local res = opts and opts.resolution
    if res == nil then
      local why
      res, why = diffusers.bin_resolution(sample_size)
      if not res then error("diffusers.bin_size: " .. why, 2) end
    end
    local bins = BINS[res]
    if not bins then error("diffusers.bin_size: no table for resolution " .. tostring(res) .. " (512, 1024, 2048, 4096)", 2) end
    local ar = height / width
    local best, best_d
    for _, b in ipairs(bins) do
      local d = math.abs(tonumber(b[1]) - ar)
      if best_d == nil or d < best_d then best, best_d = b, d end
    end
    return best[2], best[3], best[1]
  end

  -- The (n_out, n_in) f32 matrix of 1-D bilinear resampling with
  -- align_corners = False and no antialiasing (torch's F.interpolate on
  -- sizes): source = (i + ½)·n_in/n_out − ½, clamped at 0; the two nearest
  -- samples, the upper one clamped at the edge.
  local function bilinear_matrix(n_out, n_in)
    local rows_ = {}
    local scale = n_in / n_out
    for i = 0, n_out - 1 do
      local row = {}
      for j = 1, n_in do row[j] = 0 end
      local src = math.max((i + 0.5) * scale - 0.5, 0)
      local i0 = math.floor(src)
      local i1 = math.min(i0 + 1, n_in - 1)
      local l1 = src - i0
      row[i0 + 1] = row[i0 + 1] + (1 - l1)
      row[i1 + 1] = row[i1 + 1] + l1
      rows_[i + 1] = row
    end
    return grove.tensor(rows_)
  end

  -- diffusers' PixArtImageProcessor.resize_and_crop_tensor on NHWC images
  -- (B, H, W, C), f32: when the size differs, scale by max(height / H,
  -- width / W) to int(H·r) × int(W·r) with bilinear resampling, then cut the
  -- centre height × width (offsets rounded down).
  function diffusers.resize_crop(x, height, width)
    if not grove.is_tensor(x) or x:dim() ~= 4 then
      error("diffusers.resize_crop: expected images (B, H, W, C), got " .. (grove.is_tensor(x) and x:shape_str() or type(x)), 2)
    end
    check_size(height, "height", "diffusers.resize_crop")
    check_size(width, "width", "diffusers.resize_crop")
    local B, H, W, C = x:size(1), x:size(2), x:size(3), x:size(4)
    if H == height and W == width then return x end
    local r = math.max(height / H, width / W)
    -- int() of the products as diffusers; never below the asked size, where
    -- a product like (a / b) · b rounds to just under a
    local rh, rw = math.max(math.floor(H * r), height), math.max(math.floor(W * r), width)
    local dev = x:device()
    x = x:to("f32")
    local y = x
    if rh ~= H then
      y = grove.matmul(bilinear_matrix(rh, H):to(dev), y:reshape { B, H, W * C }):reshape { B, rh, W, C }
    end
    if rw ~= W then
      y = grove.matmul(bilinear_matrix(rw, W):to(dev), y:reshape { B * rh, W, C }):reshape { B, rh, rw, C }
    end
    local top, left = math.floor((rh - height) / 2), math.floor((rw - width) / 2)
    return y:narrow(2, top + 1, height):narrow(3, left + 1, width):contiguous()
  end

  return diffusers
end
