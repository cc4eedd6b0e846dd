-- Images from Lua: files, resizing, conversions, captioned grids.
-- The pixels are handled by core/io/image_*.c (PNG through lodepng, JPEG
-- through libjpeg-turbo) and core/io/font.c (the built-in 5×7 font).
--
-- An image is a (H, W, 3) u8 tensor, rows top to bottom; models see images as
-- f32 in [-1, 1] (u8 v ↔ v / 127.5 − 1).
--
--   grove.image.load(path, {min_side = n}?) -> (H, W, 3) u8. The format comes
--     from the file's first bytes (PNG or JPEG); PNG alpha is composited over
--     white. min_side lets the JPEG decoder shrink a large photo by 2, 4 or 8
--     while both sides stay >= min_side.
--   grove.image.decode(bytes, name?) -> the same, from a Lua string.
--   grove.image.save(path, image, {text = {key = value}}?) writes a PNG
--     (atomically: path .. ".tmp", then renamed). image: u8 or f32 in
--     [-1, 1]; (H, W, 3), (H, W, 4), (H, W) or (H, W, 1), or (1, H, W, C).
--     text: PNG text chunks (tEXt; iTXt for UTF-8 beyond ASCII).
--   grove.image.read_text(path) -> {key = value} of a PNG's text chunks.
--   grove.image.resize_crop(image, size) -> (size, size, 3) u8: the centre
--     square, area-averaged down or bilinear up.
--   grove.image.to_float(u8) -> f32 in [-1, 1];  grove.image.to_u8(f32) -> u8.
--   grove.image.grid(images, opts) -> (H, W, 3) u8 tiles with captions.
--   grove.image.draw_text(image, x, y, text, {scale = 1, color = 0x000000})
--     draws into a u8 image in place; x, y: 1-based column and row of the
--     text's top-left pixel.
--   grove.image.text_width(text, scale) -> pixels;  grove.image.font = {width = 6, height = 8}
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  local wrap = grove._wrap
  local image = {}
  grove.image = image

  local fail = grove.fail

  local function check_tensor(x, op, what)
    if not grove.is_tensor(x) then
      error(op .. ": expected " .. (what or "an image tensor") .. ", got " .. type(x), 3)
    end
  end

  -- Images are host data (pixels for PNG files, the font, the detector):
  -- a CUDA tensor given to these functions is copied to the CPU first, and
  -- what they return is on the CPU.
  local function host(x)
    if x.p.device ~= C.GROVE_CPU then return x:cpu() end
    return x
  end

  local function check_int(v, op, name, lo, hi)
    if type(v) ~= "number" or v % 1 ~= 0 or v < lo or (hi and v > hi) then
      error(op .. ": " .. name .. " must be an integer " .. (hi and ("from " .. lo .. " to " .. hi) or (">= " .. lo))
            .. ", got " .. tostring(v), 3)
    end
  end

  image.font = { width = C.GROVE_FONT_WIDTH, height = C.GROVE_FONT_HEIGHT }

  function image.load(path, opts)
    if type(path) ~= "string" then error("image.load: expected a file path, got " .. type(path), 2) end
    local min_side = opts and opts.min_side
    if min_side ~= nil then
      check_int(min_side, "image.load", "min_side", 1)
      local p = C.grove_image_read_reduced(path, min_side)
      if p == nil then fail(2) end
      return wrap(p)
    end
    local p = C.grove_image_read(path)
    if p == nil then fail(2) end
    return wrap(p)
  end

  function image.decode(bytes, name)
    if type(bytes) ~= "string" then error("image.decode: expected the file's bytes as a string, got " .. type(bytes), 2) end
    local p = C.grove_image_decode(bytes, #bytes, name)
    if p == nil then fail(2) end
    return wrap(p)
  end

  function image.to_u8(x)
    check_tensor(x, "image.to_u8", "an f32 tensor")
    x = host(x)
    local p = C.grove_image_to_u8(x.p)
    if p == nil then fail(2) end
    return wrap(p)
  end

  function image.to_float(x)
    check_tensor(x, "image.to_float", "a u8 tensor")
    x = host(x)
    local p = C.grove_image_to_f32(x.p)
    if p == nil then fail(2) end
    return wrap(p)
  end

  -- opts.text: {key = value} written as PNG text chunks (keys sorted).
  function image.save(path, x, opts)
    if type(path) ~= "string" then error("image.save: expected a file path, got " .. type(path), 2) end
    check_tensor(x, "image.save")
    local text = opts and opts.text
    local keys, vals, n = nil, nil, 0
    if text ~= nil then
      if type(text) ~= "table" then error("image.save: opts.text must be a table {key = value}, got " .. type(text), 2) end
      local names = {}
      for k, v in pairs(text) do
        if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean") then
          error("image.save: opts.text holds string keys and string, number or boolean values; got " .. type(k) ..
                " = " .. type(v), 2)
        end
        if #k < 1 or #k > 79 or k:find("%z") then
          error("image.save: a PNG text keyword is 1 to 79 bytes without NUL, got '" .. k .. "'", 2)
        end
        if tostring(v):find("%z") then error("image.save: text '" .. k .. "' holds a NUL byte", 2) end
        names[#names + 1] = k
      end
      table.sort(names)
      n = #names
      keys, vals = ffi.new("const char *[?]", math.max(n, 1)), ffi.new("const char *[?]", math.max(n, 1))
      local keep = {}
      for i, k in ipairs(names) do
        local v = tostring(text[k])
        keep[#keep + 1] = v
        keys[i - 1], vals[i - 1] = k, v
      end
      text = keep -- the Lua strings stay alive through the call
    end
    if x:dim() == 4 then
      if x:size(1) ~= 1 then
        error("image.save: got a batch of " .. x:size(1) .. " images " .. x:shape_str()
              .. "; combine them with grove.image.grid first", 2)
      end
      x = x:select(1, 1)
    end
    if C.grove_image_write_png_text(path, x.p, keys, vals, n) ~= 0 then fail(2) end
    return path
  end

  -- The text chunks of a PNG file (tEXt, zTXt, iTXt) as {key = value}.
  function image.read_text(path)
    if type(path) ~= "string" then error("image.read_text: expected a file path, got " .. type(path), 2) end
    local f, err = io.open(path, "rb")
    if not f then error("image.read_text: " .. tostring(err), 2) end
    local bytes = f:read("*a")
    f:close()
    local need = C.grove_png_text(bytes, #bytes, nil, 0)
    if need < 0 then error("image.read_text: " .. path .. ": " .. ffi.string(C.grove_last_error()), 2) end
    local buf = ffi.new("char[?]", math.max(1, tonumber(need)))
    C.grove_png_text(bytes, #bytes, buf, need)
    local s = ffi.string(buf, need)
    local out, i = {}, 1
    while i <= #s do
      local k_end = s:find("%z", i)
      local v_end = s:find("%z", k_end + 1)
      out[s:sub(i, k_end - 1)] = s:sub(k_end + 1, v_end - 1)
      i = v_end + 1
    end
    return out
  end

  function image.resize_crop(x, size)
    check_tensor(x, "image.resize_crop")
    x = host(x)
    check_int(size, "image.resize_crop", "size", 1)
    local p = C.grove_image_resize_crop(x.p, size)
    if p == nil then fail(2) end
    return wrap(p)
  end

  -- A colour option: 0xRRGGBB, or {r, g, b} with entries 0 to 255.
  local function rgb_of(c, op, name)
    if type(c) == "number" and c % 1 == 0 and c >= 0 and c <= 0xFFFFFF then return c end
    if type(c) == "table" and #c == 3 then
      local v = 0
      for i = 1, 3 do
        local ch = c[i]
        if type(ch) ~= "number" or ch % 1 ~= 0 or ch < 0 or ch > 255 then break end
        v = v * 256 + ch
        if i == 3 then return v end
      end
    end
    error(op .. ": " .. name .. " must be 0xRRGGBB or {r, g, b} (0 to 255), got " .. tostring(c), 3)
  end

  function image.text_width(text, scale)
    return tonumber(C.grove_text_width(tostring(text), scale or 1))
  end

  function image.draw_text(img, x, y, text, opts)
    check_tensor(img, "image.draw_text")
    if img.p.device ~= C.GROVE_CPU then
      error("image.draw_text: the image is on " .. img:device() .. "; text is drawn on the host (move it with :cpu())", 2)
    end
    opts = opts or {}
    check_int(x, "image.draw_text", "x", -2^31, 2^31)
    check_int(y, "image.draw_text", "y", -2^31, 2^31)
    local color = rgb_of(opts.color or 0, "image.draw_text", "color")
    if C.grove_image_draw_text(img.p, x - 1, y - 1, tostring(text), opts.scale or 1, color) ~= 0 then fail(2) end
    return img
  end

  -- ---- grids ---------------------------------------------------------------------

  -- The caption as printable ASCII on one line: other characters become '?'
  -- (as the font draws them) so that lengths count what is drawn.
  local function clean_caption(s)
    s = tostring(s):gsub("[\192-\255][\128-\191]*", "?"):gsub("[\128-\255]", "?")
    s = s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
    return (s:gsub("[%c]", "?"))
  end

  -- Word-wraps s to lines of at most width characters, splitting words that
  -- are longer than a line; more than max_lines lines are cut, the last
  -- ending in "..".
  local function wrap_caption(s, width, max_lines)
    local lines, line = {}, ""
    for word in s:gmatch("%S+") do
      while #word > width do
        if line ~= "" then lines[#lines + 1] = line; line = "" end
        lines[#lines + 1] = word:sub(1, width)
        word = word:sub(width + 1)
      end
      if line == "" then line = word
      elseif #line + 1 + #word <= width then line = line .. " " .. word
      else lines[#lines + 1] = line; line = word end
    end
    if line ~= "" then lines[#lines + 1] = line end
    if #lines > max_lines then
      local last = lines[max_lines]
      if width >= 3 then
        last = last:sub(1, width - 2) .. ".."
      end
      for i = #lines, max_lines + 1, -1 do lines[i] = nil end
      lines[max_lines] = last
    end
    return lines
  end

  -- images: (B, H, W, 3) or (B, H, W) u8 or f32 in [-1, 1], or a list of
  -- (H, W, 3) tensors of one shape. Options:
  --   cols = ceil(sqrt(B)), scale = 1 (each pixel drawn as scale×scale),
  --   pad = 2 (pixels between and around tiles), background = 0xFFFFFF,
  --   captions = {strings} (one per tile; nil or "" for none),
  --   caption_lines = 3 (longer captions are cut, ending in ".."),
  --   text_scale = 1, text_color = 0x000000.
  -- Returns a (H, W, 3) u8 tensor; save it with grove.image.save.
  function image.grid(images, opts)
    local op = "image.grid"
    opts = opts or {}
    if type(opts) ~= "table" then error(op .. ": options must be a table, got " .. type(opts), 2) end
    if type(images) == "table" and not grove.is_tensor(images) then
      if #images == 0 then error(op .. ": expected a batch of images, got an empty list", 2) end
      local list = {}
      for i, t in ipairs(images) do
        if not grove.is_tensor(t) then error(op .. ": list entry " .. i .. " is a " .. type(t) .. ", not a tensor", 2) end
        list[i] = t:dtype() == "f32" and image.to_u8(t) or host(t)
      end
      images = grove.stack(list, 1)
    end
    check_tensor(images, op, "a (B, H, W, 3) tensor or a list of (H, W, 3) tensors")
    images = host(images)
    if images:dim() == 3 and images:dtype() ~= "f32" and images:dtype() ~= "u8" then
      error(op .. ": expected u8 or f32 images, got " .. images:dtype(), 2)
    end
    if images:dim() == 3 then images = images:unsqueeze(-1) end -- greyscale (B, H, W)
    local shape = images:shape()
    if #shape ~= 4 or (shape[4] ~= 3 and shape[4] ~= 1) then
      error(op .. ": expected images of shape (B, H, W, 3) or (B, H, W), got " .. images:shape_str(), 2)
    end
    if images:dtype() == "f32" then images = image.to_u8(images)
    elseif images:dtype() ~= "u8" then error(op .. ": expected u8 or f32 images, got " .. images:dtype(), 2) end
    local B, H, W = shape[1], shape[2], shape[3]
    if shape[4] == 1 then images = images:expand{ B, H, W, 3 } end
    if B == 0 then error(op .. ": expected at least one image, got " .. images:shape_str(), 2) end

    local cols = opts.cols or math.ceil(math.sqrt(B))
    check_int(cols, op, "cols", 1)
    cols = math.min(cols, B)
    local rows = math.ceil(B / cols)
    local scale, pad = opts.scale or 1, opts.pad or 2
    check_int(scale, op, "scale", 1, 64)
    check_int(pad, op, "pad", 0)
    local text_scale = opts.text_scale or 1
    check_int(text_scale, op, "text_scale", 1, 64)
    local max_lines = opts.caption_lines or 3
    check_int(max_lines, op, "caption_lines", 1)
    local bg = rgb_of(opts.background or 0xFFFFFF, op, "background")
    local fg = rgb_of(opts.text_color or 0x000000, op, "text_color")

    local tile_w, tile_h = W * scale, H * scale
    local captions = opts.captions
    if captions ~= nil and type(captions) ~= "table" then
      error(op .. ": captions must be a list of strings, got " .. type(captions), 2)
    end
    local wrapped, lines = {}, 0
    local chars = math.floor(tile_w / (C.GROVE_FONT_WIDTH * text_scale))
    if captions and chars >= 1 then
      for i = 1, B do
        local c = captions[i]
        if c ~= nil and c ~= "" then
          wrapped[i] = wrap_caption(clean_caption(c), chars, max_lines)
          lines = math.max(lines, #wrapped[i])
        end
      end
    end
    local line_h = C.GROVE_FONT_HEIGHT * text_scale
    local cap_h = lines * line_h
    local cell_w, cell_h = tile_w + pad, tile_h + cap_h + pad

    local canvas = grove.zeros({ pad + rows * cell_h, pad + cols * cell_w, 3 }, { dtype = "u8" })
    for ch = 1, 3 do
      local v = math.floor(bg / 256 ^ (3 - ch)) % 256
      if v ~= 0 then canvas:select(3, ch):fill_(v) end
    end
    local tiles = images
    if scale > 1 then -- nearest neighbour: each pixel repeated scale×scale
      tiles = images:view{ B, H, 1, W, 1, 3 }:expand{ B, H, scale, W, scale, 3 }:reshape{ B, tile_h, tile_w, 3 }
    end
    for i = 1, B do
      local r, c = math.floor((i - 1) / cols), (i - 1) % cols
      local x, y = pad + c * cell_w, pad + r * cell_h -- 0-based
      canvas:narrow(1, y + 1, tile_h):narrow(2, x + 1, tile_w):copy_(tiles:select(1, i))
      for l, text in ipairs(wrapped[i] or {}) do
        local tx = x + math.floor((tile_w - #text * C.GROVE_FONT_WIDTH * text_scale + text_scale) / 2)
        local ty = y + tile_h + (l - 1) * line_h
        if C.grove_image_draw_text(canvas.p, tx, ty, text, text_scale, fg) ~= 0 then fail(2) end
      end
    end
    return canvas
  end

  return image
end
