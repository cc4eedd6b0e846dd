-- Images from Lua: PNG round trips, JPEG decoding, errors for bad files,
-- resize and crop, grids with captions, and the folder data set (bad files
-- skipped with one warning, deterministic order, captions, errors).
local spec = require "spec"

if not grove.image then require "grove.image"(grove) end
if not (grove.data and grove.data.folder) then require "grove.data.folder"(grove) end

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local data_dir = here .. "/../data"

-- A scratch directory, removed at the end of this file.
local scratch = os.tmpname()
os.remove(scratch)
os.execute("mkdir -p '" .. scratch .. "'")
local function at(name) return scratch .. "/" .. name end
local function mkdir(name) os.execute("mkdir -p '" .. at(name) .. "'") end

local read_all, write_all = spec.read_all, spec.write_all

-- Largest absolute difference of two tensors (as floats).
local function maxdiff(a, b)
  return (a:float() - b:float()):abs():max():item()
end

-- A (H, W, 3) u8 image filled with one colour.
local function solid(h, w, rgb)
  local t = grove.zeros({ h, w, 3 }, { dtype = "u8" })
  for c = 1, 3 do t:select(3, c):fill_(rgb[c]) end
  return t
end

-- Runs fn with stderr captured; returns what was written.
local function capture_stderr(fn)
  local real, got = io.stderr, {}
  io.stderr = { write = function(_, ...) for _, s in ipairs{ ... } do got[#got + 1] = s end end }
  local ok, err = pcall(fn)
  io.stderr = real
  if not ok then error(err, 0) end
  return table.concat(got)
end

local function count(s, needle)
  local n, i = 0, 1
  while true do
    local j = s:find(needle, i, true)
    if not j then return n end
    n, i = n + 1, j + 1
  end
end

spec.describe("image files", function()
  spec.it("PNG write then read is exact", function()
    local img = (grove.rand{ 9, 7, 3 } * 255.99):to("u8")
    grove.image.save(at("a.png"), img)
    spec.assert(not io.open(at("a.png.tmp")), "the temporary file is renamed away")
    local back = grove.image.load(at("a.png"))
    spec.eq(back:dtype(), "u8")
    spec.eq(back:shape_str(), "[9,7,3]")
    spec.eq(maxdiff(back, img), 0, "round trip")
    -- from a string too
    spec.eq(maxdiff(grove.image.decode(read_all(at("a.png"))), img), 0, "decode")
  end)

  spec.it("PNG text chunks are written and read back (tEXt; iTXt for UTF-8)", function()
    local img = (grove.rand{ 5, 4, 3 } * 255.99):to("u8")
    local text = { prompt = "a cyberpunk cat, \"neon\"\nsecond line", seed = 42, negative_prompt = "",
                   caption = "chat cyberpunk \u{00e9}t\u{00e9} \u{732b}", binning = true }
    grove.image.save(at("t.png"), img, { text = text })
    local back = grove.image.read_text(at("t.png"))
    spec.eq(back.prompt, text.prompt)
    spec.eq(back.seed, "42")
    spec.eq(back.negative_prompt, "")
    spec.eq(back.caption, text.caption, "UTF-8 through iTXt")
    spec.eq(back.binning, "true")
    local n = 0
    for _ in pairs(back) do n = n + 1 end
    spec.eq(n, 5, "nothing else")
    local bytes = read_all(at("t.png"))
    spec.eq(count(bytes, "tEXt"), 4, "four ASCII values as tEXt")
    spec.eq(count(bytes, "iTXt"), 1, "one UTF-8 value as iTXt")
    spec.assert(bytes:find("tEXtseed\0" .. "42", 1, true), "a plain tEXt chunk: keyword, NUL, text")
    -- the pixels are the same as without text
    spec.eq(maxdiff(grove.image.load(at("t.png")), img), 0, "pixels")
    grove.image.save(at("u.png"), img)
    local plain = grove.image.read_text(at("u.png"))
    spec.eq(next(plain), nil, "no text chunks")
    -- bad keys and files
    spec.raises(function() grove.image.save(at("v.png"), img, { text = { [""] = "x" } }) end, "1 to 79 bytes")
    spec.raises(function() grove.image.save(at("v.png"), img, { text = { [string.rep("k", 80)] = "x" } }) end, "1 to 79")
    spec.raises(function() grove.image.save(at("v.png"), img, { text = { k = "a\0b" } }) end, "NUL")
    spec.raises(function() grove.image.save(at("v.png"), img, { text = { k = {} } }) end, "string, number or boolean")
    spec.write_all(at("junk.png"), "not a png at all")
    spec.raises(function() grove.image.read_text(at("junk.png")) end, "not a PNG")
    spec.write_all(at("cut.png"), bytes:sub(1, #bytes - 30))
    spec.raises(function() grove.image.read_text(at("cut.png")) end, "corrupt or truncated PNG")
    spec.raises(function() grove.image.read_text(at("missing.png")) end, "missing.png")
  end)

  spec.it("f32 in [-1, 1] is saved as u8 and converts both ways", function()
    local x = grove.tensor{ { { -1, 0, 1 }, { 0.5, -0.5, 2 } } }
    grove.image.save(at("f.png"), x)
    local back = grove.image.load(at("f.png"))
    spec.eq(maxdiff(back, grove.tensor({ { { 0, 128, 255 }, { 191, 64, 255 } } }, { dtype = "u8" })), 0)
    local all = grove.arange(0, 256):to("u8")
    local f = grove.image.to_float(all)
    spec.eq(f:dtype(), "f32")
    spec.near(f:min():item(), -1, 0, "min")
    spec.near(f:max():item(), 1, 0, "max")
    spec.eq(maxdiff(grove.image.to_u8(f), all), 0, "u8 -> f32 -> u8")
    -- a batch of one is saved as its image; a larger batch asks for a grid
    grove.image.save(at("b.png"), back:unsqueeze(1))
    spec.raises(function() grove.image.save(at("c.png"), grove.zeros({ 2, 4, 4, 3 }, { dtype = "u8" })) end, "grid")
  end)

  spec.it("decodes JPEG (baseline, progressive, grey, CMYK)", function()
    local want = { { 255, 0, 0 }, { 0, 255, 0 }, { 0, 0, 255 }, { 255, 255, 255 } }
    for _, name in ipairs{ "quadrants.jpg", "quadrants_progressive.jpg", "cmyk.jpg" } do
      local t = grove.image.load(data_dir .. "/" .. name)
      spec.eq(t:shape_str(), "[16,16,3]", name)
      for q = 1, 4 do
        local y, x = (q > 2) and 12 or 4, (q % 2 == 0) and 12 or 4
        local block = t:narrow(1, y - 3, 8):narrow(2, x - 3, 8)
        spec.assert(maxdiff(block, solid(8, 8, want[q])) <= 4, name .. " quadrant " .. q)
      end
    end
    local g = grove.image.load(data_dir .. "/grey.jpg")
    spec.eq(maxdiff(g:select(3, 1), g:select(3, 3)), 0, "grey channels equal")
    spec.assert(math.abs(g[16][16][1] - 240) <= 2, "grey value")
    -- a JPEG named .png is still a JPEG: the bytes decide
    write_all(at("really_a_jpeg.png"), read_all(data_dir .. "/quadrants.jpg"))
    spec.eq(grove.image.load(at("really_a_jpeg.png")):shape_str(), "[16,16,3]")
    -- min_side lets the decoder shrink it
    spec.eq(grove.image.load(data_dir .. "/quadrants.jpg", { min_side = 8 }):shape_str(), "[8,8,3]")
  end)

  spec.it("missing, empty, truncated and non-image files are errors naming them", function()
    spec.raises(function() grove.image.load(at("missing.png")) end, "missing.png: no such file")
    write_all(at("empty.png"), "")
    spec.raises(function() grove.image.load(at("empty.png")) end, "empty file")
    write_all(at("notes.png"), "just some text\n")
    spec.raises(function() grove.image.load(at("notes.png")) end, "notes.png: not a PNG or JPEG file")
    local png = read_all(at("a.png"))
    write_all(at("cut.png"), png:sub(1, math.floor(#png / 2)))
    spec.raises(function() grove.image.load(at("cut.png")) end, "truncated PNG")
    local jpg = read_all(data_dir .. "/quadrants.jpg")
    write_all(at("cut.jpg"), jpg:sub(1, math.floor(#jpg / 2)))
    spec.raises(function() grove.image.load(at("cut.jpg")) end, "cut.jpg: corrupt or truncated JPEG")
    spec.raises(function() grove.image.decode(jpg:sub(1, 100), "head") end, "head: corrupt or truncated JPEG")
    spec.raises(function() grove.image.load(scratch) end, "is a directory")
    spec.raises(function() grove.image.load(42) end, "expected a file path")
    spec.raises(function() grove.image.save(at("nodir/x.png"), solid(2, 2, { 1, 2, 3 })) end, "does not exist")
  end)

  -- A header's width and height are a claim: a small file declaring a huge
  -- image (a decompression bomb, or a damaged header) is refused before
  -- anything is allocated for it.
  spec.it("a size the file's bytes cannot hold is refused before decoding", function()
    local function be16(n) return string.char(math.floor(n / 256) % 256, n % 256) end
    local function be32(n) return be16(math.floor(n / 65536)) .. be16(n % 65536) end
    -- PNG: width and height are bytes 17..24, inside IHDR
    grove.image.save(at("small.png"), solid(4, 4, { 9, 9, 9 }))
    local png = read_all(at("small.png"))
    local function png_sized(w, h) return png:sub(1, 16) .. be32(w) .. be32(h) .. png:sub(25) end
    spec.raises(function() grove.image.decode(png_sized(20000, 20000), "huge.png") end,
                "huge.png: PNG of 20000 x 20000 pixels is larger than the 268435456-pixel limit")
    spec.raises(function() grove.image.decode(png_sized(8000, 8000), "bomb.png") end,
                "bomb.png: PNG declares 8000 x 8000 pixels, more than " .. #png .. " bytes of deflate data can hold")
    write_all(at("bomb.png"), png_sized(8000, 8000))
    spec.raises(function() grove.image.read_text(at("bomb.png")) end, "PNG declares 8000 x 8000 pixels, more than " .. #png .. " bytes")
    -- JPEG: the frame header (SOF0 baseline, SOF2 progressive) holds
    -- FF Cn, length, precision, height, width
    for _, f in ipairs { data_dir .. "/quadrants.jpg", here .. "/../fuzz/corpus/jpeg/progressive.jpg" } do
      local jpg = read_all(f)
      local at_sof = jpg:find("\255[\192\194]")
      spec.assert(at_sof, f .. ": a SOF0 or SOF2 marker")
      local sized = jpg:sub(1, at_sof + 4) .. be16(8000) .. be16(8000) .. jpg:sub(at_sof + 9)
      spec.raises(function() grove.image.decode(sized, "bomb.jpg") end,
                  "bomb.jpg: JPEG declares 8000 x 8000 pixels, more than " .. #jpg .. " bytes of Huffman-coded data can hold")
      -- the untouched file still decodes
      spec.eq(grove.image.decode(jpg, "ok.jpg"):dim(), 3)
    end
    -- a flat image is as compressible as images get, and still decodes
    local white = solid(1024, 1024, { 255, 255, 255 })
    grove.image.save(at("white.png"), white)
    spec.eq(maxdiff(grove.image.load(at("white.png")), white), 0, "a flat 1024² PNG")
  end)
end)

spec.describe("image resize_crop", function()
  spec.it("gives (size, size, 3) from any shape", function()
    for _, hw in ipairs{ { 30, 20 }, { 20, 30 }, { 5, 5 }, { 3, 11 } } do
      local r = grove.image.resize_crop(solid(hw[1], hw[2], { 1, 2, 3 }), 8)
      spec.eq(r:shape_str(), "[8,8,3]")
    end
  end)

  spec.it("keeps a constant image constant, up or down", function()
    for _, case in ipairs{ { 37, 23, 7 }, { 4, 6, 15 }, { 9, 9, 9 } } do
      local r = grove.image.resize_crop(solid(case[1], case[2], { 10, 128, 250 }), case[3])
      spec.eq(maxdiff(r, solid(case[3], case[3], { 10, 128, 250 })), 0, table.concat(case, "x"))
    end
  end)

  spec.it("averages 2x2 blocks when halving", function()
    -- 4x4 of 2x2 blocks: 0, 100 / 200, 60
    local v = { { 0, 0, 100, 100 }, { 0, 0, 100, 100 }, { 200, 200, 60, 60 }, { 200, 200, 60, 60 } }
    local img = grove.tensor(v, { dtype = "u8" }):unsqueeze(3):expand{ 4, 4, 3 }:contiguous()
    local r = grove.image.resize_crop(img, 2)
    spec.eq(maxdiff(r:select(3, 2), grove.tensor({ { 0, 100 }, { 200, 60 } }, { dtype = "u8" })), 0)
    spec.eq(grove.image.resize_crop(img, 1)[1][1][1], 90, "mean of the four blocks")
  end)

  spec.it("crops the centre square", function()
    -- columns 1..6 hold 10·(column - 1): the centre square of 2x6 is columns 3 and 4
    local img = grove.arange(0, 60, 10):view{ 1, 6, 1 }:expand{ 2, 6, 3 }:to("u8")
    local r = grove.image.resize_crop(img, 2)
    spec.eq(r[1][1][1], 20)
    spec.eq(r[2][2][1], 30)
  end)

  spec.it("rejects bad arguments", function()
    spec.raises(function() grove.image.resize_crop(grove.zeros{ 4, 4, 3 }, 2) end, "u8 image")
    spec.raises(function() grove.image.resize_crop(solid(4, 4, { 0, 0, 0 }), 0) end, "size")
  end)
end)

spec.describe("image grid", function()
  -- B images of 6 rows × 8 columns, image i filled with grey level 10·i.
  local function batch(B)
    local t = grove.zeros({ B, 6, 8, 3 }, { dtype = "u8" })
    for i = 1, B do t:select(1, i):fill_(10 * i) end
    return t
  end

  spec.it("lays tiles out in rows and columns", function()
    local g = grove.image.grid(batch(5), { cols = 3, scale = 2, pad = 2 })
    -- 2 rows of 12-pixel tiles, 3 columns of 16-pixel tiles, 2-pixel gaps
    spec.eq(g:shape_str(), "[30,56,3]")
    spec.eq(g:dtype(), "u8")
    -- tile 5 (row 2, column 2) starts at row 17, column 21 (1-based)
    local tile5 = g:narrow(1, 17, 12):narrow(2, 21, 16)
    spec.eq(maxdiff(tile5, solid(12, 16, { 50, 50, 50 })), 0, "tile 5")
    spec.eq(g[16][21][1], 255, "padding above tile 5 is background")
    -- the sixth cell is empty
    spec.eq(maxdiff(g:narrow(1, 17, 12):narrow(2, 39, 16), solid(12, 16, { 255, 255, 255 })), 0, "empty cell")
  end)

  spec.it("takes f32 in [-1, 1], lists, and greyscale batches", function()
    local u = batch(4)
    local f = grove.image.to_float(u)
    spec.eq(maxdiff(grove.image.grid(f), grove.image.grid(u)), 0, "f32")
    local list = { u:select(1, 1), u:select(1, 2), u:select(1, 3), u:select(1, 4) }
    spec.eq(maxdiff(grove.image.grid(list), grove.image.grid(u)), 0, "list")
    spec.eq(maxdiff(grove.image.grid(u:select(4, 1)), grove.image.grid(u)), 0, "greyscale")
    local g = grove.image.grid(u, { cols = 4, pad = 0, background = { 1, 2, 3 } })
    spec.eq(g:shape_str(), "[6,32,3]")
  end)

  spec.it("draws captions under their tiles", function()
    local u = batch(3)
    local g = grove.image.grid(u, { cols = 3, scale = 4, pad = 2, captions = { "red", nil, "a very long caption indeed, far too long" },
                                    caption_lines = 2 })
    -- tiles 24x32; captions: 5 characters a line, at most 2 lines of 8 pixels
    spec.eq(g:shape_str(), "[" .. (2 + 24 + 16 + 2) .. "," .. (2 + 3 * 34) .. ",3]")
    local function ink(col)
      local strip = g:narrow(1, 2 + 24 + 1, 16):narrow(2, 2 + (col - 1) * 34 + 1, 32)
      return (255 - strip:float()):sum():item() -- ink: how far below white
    end
    spec.assert(ink(1) > 0, "caption 1 drawn")
    spec.eq(ink(2), 0, "no caption under tile 2")
    spec.assert(ink(3) > ink(1), "the long caption fills two lines")
    -- without captions there is no caption strip
    spec.eq(grove.image.grid(u, { cols = 3, scale = 4 }):size(1), 2 + 24 + 2)
    spec.raises(function() grove.image.grid(u, { cols = 0 }) end, "cols")
    spec.raises(function() grove.image.grid(grove.zeros{ 2, 3 }) end, "expected images")
  end)

  spec.it("draws text and measures it", function()
    local img = solid(10, 30, { 255, 255, 255 })
    grove.image.draw_text(img, 2, 2, "ok", { color = 0xFF0000 })
    spec.eq(img[2][2]:tolist()[1], 255)
    spec.assert((255 - img:select(3, 2):float()):sum():item() > 0, "text drawn")
    spec.eq((255 - img:select(3, 1):float()):sum():item(), 0, "in red, so the red channel stays full")
    spec.eq(grove.image.text_width("abc"), 18)
    spec.eq(grove.image.font.width, 6)
  end)
end)

spec.describe("data.folder", function()
  local colours = { { 255, 0, 0 }, { 0, 255, 0 }, { 0, 0, 255 }, { 255, 255, 0 }, { 0, 255, 255 } }
  local names = { "red", "green", "blue", "yellow", "cyan" }
  mkdir("ds")
  for i = 1, 5 do
    grove.image.save(at("ds/" .. i .. "_" .. names[i] .. ".png"), solid(20 + i, 30, colours[i]))
    if i ~= 5 then write_all(at("ds/" .. i .. "_" .. names[i] .. ".txt"), "  a " .. names[i] .. "\nsquare \n") end
  end
  -- the JPEG quadrants, a truncated PNG, text named .jpg, a caption without an image
  write_all(at("ds/6_quadrants.jpg"), read_all(data_dir .. "/quadrants.jpg"))
  write_all(at("ds/6_quadrants.txt"), "four colours")
  local png = read_all(at("ds/1_red.png"))
  write_all(at("ds/7_truncated.png"), png:sub(1, 40))
  write_all(at("ds/8_notes.jpg"), "these are notes, not a picture")
  write_all(at("ds/9_orphan.txt"), "no image")
  mkdir("ds/sub")
  grove.image.save(at("ds/sub/deep.png"), solid(8, 8, { 9, 9, 9 }))
  mkdir("empty")

  local function paths_of(ds, nbatches)
    local seq = {}
    for _, b in ds:take(nbatches) do
      for _, p in ipairs(b.paths) do seq[#seq + 1] = p:match("[^/]*$") end
    end
    return table.concat(seq, " ")
  end

  spec.it("yields batches of resized images and captions, skipping bad files with one warning", function()
    local ds = grove.data.folder{ dir = at("ds"), size = 8, batch = 6, seed = 3 }
    spec.eq(ds.n, 8, "listed images (the .txt-only file is not one)")
    local batches = {}
    local err = capture_stderr(function()
      for step, b in ds:take(4) do batches[step] = b end
    end)
    spec.eq(#batches, 4)
    spec.eq(count(err, "7_truncated.png"), 1, "one warning for the truncated file: " .. err)
    spec.eq(count(err, "8_notes.jpg"), 1, "one warning for the text file: " .. err)
    spec.eq(count(err, "skipping"), 2, err)
    local b = batches[1]
    spec.eq(b.images:shape_str(), "[6,8,8,3]")
    spec.eq(b.images:dtype(), "f32")
    spec.assert(b.images:min():item() >= -1 and b.images:max():item() <= 1, "in [-1, 1]")
    -- the first batch is exactly the six readable images, once each
    local seen = {}
    for i, p in ipairs(b.paths) do
      local name = p:match("[^/]*$")
      spec.assert(not seen[name], "each image once per epoch")
      seen[name] = true
      local k = tonumber(name:sub(1, 1))
      if k <= 5 then
        local want = grove.image.to_float(solid(8, 8, colours[k]))
        spec.eq(maxdiff(b.images:select(1, i), want), 0, name .. " pixels")
        spec.eq(b.captions[i], k == 5 and "" or "a " .. names[k] .. " square", name .. " caption")
      else
        spec.eq(b.captions[i], "four colours")
      end
    end
    spec.eq(seen["7_truncated.png"] or seen["8_notes.jpg"] or false, false, "bad files never in a batch")
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    spec.eq(n, 6)
  end)

  spec.it("has an order fixed by the seed", function()
    local function run(seed, shuffle)
      local ds = grove.data.folder{ dir = at("ds"), size = 4, batch = 4, seed = seed, shuffle = shuffle }
      local s
      capture_stderr(function() s = paths_of(ds, 6) end)
      return s
    end
    local a, b = run(1), run(1)
    spec.eq(a, b, "same seed, same batches")
    spec.assert(run(2) ~= a, "another seed, another order")
    local sorted = run(1, false)
    spec.eq(sorted:match("^(%S+ %S+ %S+ %S+ %S+ %S+ %S+)"),
            "1_red.png 2_green.png 3_blue.png 4_yellow.png 5_cyan.png 6_quadrants.jpg 1_red.png", "sorted order, epoch after epoch")
    -- state() / set_state() continue the same stream in a fresh object
    local ds = grove.data.folder{ dir = at("ds"), size = 4, batch = 4, seed = 5 }
    local rest
    capture_stderr(function()
      paths_of(ds, 2)
      local st = ds:state()
      local want = paths_of(ds, 3)
      local again = grove.data.folder{ dir = at("ds"), size = 4, batch = 4, seed = 5 }
      again:set_state(st)
      rest = { want, paths_of(again, 3) }
    end)
    spec.eq(rest[2], rest[1], "resumed stream")
  end)

  spec.it("handles missing captions, subfolders, and the cache limit", function()
    local ds = grove.data.folder{ dir = at("ds"), size = 4, batch = 2, missing_caption = "skip" }
    spec.eq(ds.n, 5, "5_cyan.png and the two bad files have no caption")
    for _, p in ipairs(ds.paths) do spec.assert(not p:find("5_cyan", 1, true), "skipped") end
    local deep = grove.data.folder{ dir = at("ds"), size = 4, batch = 2, recursive = true }
    spec.eq(deep.n, 9)
    spec.eq(deep.paths[9]:match("[^/]*/[^/]*$"), "sub/deep.png")
    local nocache = grove.data.folder{ dir = at("ds"), size = 4, batch = 6, cache_mb = 0, shuffle = false }
    capture_stderr(function()
      local a, b = nocache:next(), nocache:next()
      spec.eq(b.images:shape_str(), "[6,4,4,3]")
      spec.eq(maxdiff(a.images:select(1, 1), grove.image.to_float(solid(4, 4, colours[1]))), 0)
    end)
    spec.eq(nocache.cache_bytes, 0)
  end)

  spec.it("errors on an empty folder, a missing one, and one with nothing readable", function()
    spec.raises(function() grove.data.folder{ dir = at("empty") } end, "no PNG or JPEG images")
    spec.raises(function() grove.data.folder{ dir = at("empty") } end, at("empty"))
    spec.raises(function() grove.data.folder{ dir = at("nowhere") } end, "no such directory")
    mkdir("bad")
    write_all(at("bad/x.png"), "garbage")
    write_all(at("bad/y.jpg"), "\255\216\255garbage")
    local ds = grove.data.folder{ dir = at("bad"), batch = 2 }
    local err = capture_stderr(function()
      spec.raises(function() ds:next() end, "could be read")
    end)
    spec.eq(count(err, "skipping"), 2, err)
    spec.raises(function() grove.data.folder{ dir = at("ds"), size = 0 } end, "size")
    spec.raises(function() grove.data.folder{ dir = at("ds"), missing_caption = "maybe" } end, "missing_caption")
    spec.raises(function() grove.data.folder("photos") end, "options table")
  end)
end)

os.execute("rm -rf '" .. scratch .. "'")
