-- A data set from a folder of your own pictures: every PNG and JPEG file
-- (by extension; decoded by content) with an optional caption in a
-- same-named .txt file beside it ("cat.jpg" + "cat.txt"), resized and
-- centre-cropped to the model's resolution.
--
--   local ds = grove.data.folder{dir = "photos", size = 32, batch = 16, seed = 1}
--   for step, batch in ds:take(100) do
--     -- batch.images: f32 (B, size, size, 3) in [-1, 1]
--     -- batch.captions: {strings}; batch.paths: {the files they came from}
--   end
--
-- Options: dir (required), size = 32, batch = 16, seed = 1, shuffle = true,
-- recursive = false (also search subfolders), missing_caption = "empty"
-- (an image without a .txt gets the caption "") or "skip" (it is left
-- out), cache_mb = 512 (decoded, resized images are kept in memory up to
-- this much, so later epochs skip decoding), follow_links = false (an image
-- or caption that is a symbolic link leading outside dir is an error unless
-- this is true). A caption file larger than 1 MiB is an error.
--
-- The stream is endless: epoch after epoch, each in an order drawn from the
-- seed (or in sorted path order when shuffle is false), and a batch may span
-- two epochs. A file that cannot be decoded (truncated, not an image) is
-- skipped with one warning on stderr naming it; an empty folder, or one in
-- which no image can be read, is an error naming the folder.
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  if not grove.image then require "grove.image"(grove) end
  grove.data = grove.data or {}
  if not grove.data.permutation then require "grove.data.permutation"(grove) end

  local warned = {}  -- paths already reported, once per process

  local Folder = {}
  Folder.__index = Folder

  -- A caption is a line of text; a larger file is not read into memory.
  local MAX_CAPTION_BYTES = 2 ^ 20

  local function real_path(path)
    local buf = ffi.new("char[?]", 4096)
    if C.grove_path_real(path, buf, 4096) ~= 0 then return nil end
    return ffi.string(buf)
  end

  -- Errors when path resolves outside the folder whose real path is real_dir
  -- (a symbolic link in a downloaded data set must not make grove read
  -- other files of the machine; opts.follow_links allows it).
  local function check_inside(path, real_dir, what)
    local real = real_path(path)
    if real and real:sub(1, #real_dir + 1) ~= real_dir .. "/" then
      error("data.folder: " .. what .. " " .. path .. " is a link leading outside the folder (to " .. real ..
            "); pass follow_links = true to read it", 3)
    end
  end

  local function read_caption(path, real_dir)
    local f = io.open(path, "rb")
    if not f then return nil end
    if real_dir then check_inside(path, real_dir, "caption") end
    local s = f:read(MAX_CAPTION_BYTES + 1) or ""
    f:close()
    if #s > MAX_CAPTION_BYTES then
      error("data.folder: caption file " .. path .. " is larger than " .. MAX_CAPTION_BYTES .. " bytes", 3)
    end
    -- One line of text: newlines and runs of blanks become single spaces.
    return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
  end

  local function check_int(v, name, lo, hi)
    if type(v) ~= "number" or v % 1 ~= 0 or v < lo or (hi and v > hi) then
      error("data.folder: " .. name .. " must be an integer " .. (hi and ("from " .. lo .. " to " .. hi) or (">= " .. lo))
            .. ", got " .. tostring(v), 3)
    end
  end

  function grove.data.folder(opts)
    if type(opts) ~= "table" then error("data.folder: expected an options table like {dir = \"photos\"}, got " .. type(opts), 2) end
    local dir = opts.dir
    if type(dir) ~= "string" then error("data.folder: dir must be the path of a folder, got " .. type(dir), 2) end
    local self = setmetatable({
      dir = dir, size = opts.size or 32, batch = opts.batch or 16, seed = opts.seed or 1,
      shuffle = opts.shuffle ~= false, recursive = opts.recursive and true or false,
      missing_caption = opts.missing_caption or "empty", cache_mb = opts.cache_mb or 512,
    }, Folder)
    check_int(self.size, "size", 1, 4096)
    check_int(self.batch, "batch", 1)
    check_int(self.seed, "seed", 0, 2^53)
    if type(self.cache_mb) ~= "number" or self.cache_mb < 0 then
      error("data.folder: cache_mb must be a number >= 0, got " .. tostring(self.cache_mb), 2)
    end
    if self.missing_caption ~= "empty" and self.missing_caption ~= "skip" then
      error("data.folder: missing_caption must be \"empty\" or \"skip\", got " .. tostring(self.missing_caption), 2)
    end

    local list = C.grove_list_images(dir, self.recursive)
    if list == nil then error("data.folder: " .. grove.c_error(), 2) end
    local found = {}
    for i = 0, tonumber(C.grove_file_list_count(list)) - 1 do found[#found + 1] = ffi.string(C.grove_file_list_get(list, i)) end
    C.grove_file_list_free(list)
    if #found == 0 then
      error("data.folder: no PNG or JPEG images (.png, .jpg, .jpeg) in " .. dir
            .. (self.recursive and " or its subfolders" or " (subfolders are searched only with recursive = true)"), 2)
    end

    local real_dir = not opts.follow_links and real_path(dir) or nil
    self.paths, self.captions = {}, {}
    for _, path in ipairs(found) do
      if real_dir then check_inside(path, real_dir, "image") end
      local caption = read_caption((path:gsub("%.[^./]*$", "")) .. ".txt", real_dir)
      if caption or self.missing_caption == "empty" then
        self.paths[#self.paths + 1] = path
        self.captions[#self.captions + 1] = caption or ""
      end
    end
    if #self.paths == 0 then
      error("data.folder: none of the " .. #found .. " images in " .. dir .. " has a .txt caption (missing_caption = \"skip\")", 2)
    end
    self.n = #self.paths
    self.bad, self.n_bad = {}, 0
    self.cache, self.cache_bytes = {}, 0
    self.epoch, self.pos, self.order = 0, 0, nil
    return self
  end

  -- The visiting order of one epoch: a Fisher–Yates shuffle driven by
  -- Philox4x32 (the engine's generator) keyed by the seed, so it is the same
  -- on every machine and for every thread count (grove.data.permutation).
  local FOLD = 0x464F4C44 -- "FOLD"
  function Folder:_order(epoch)
    if not self.shuffle then
      local order = {}
      for i = 1, self.n do order[i] = i end
      return order
    end
    return grove.data.permutation(self.n, self.seed, epoch % 2^32, math.floor(epoch / 2^32), FOLD)
  end

  -- Image i as (size, size, 3) u8, or nil when its file cannot be decoded.
  function Folder:_image(i)
    local img = self.cache[i]
    if img then return img end
    local path = self.paths[i]
    local ok, res = pcall(function()
      return grove.image.resize_crop(grove.image.load(path, { min_side = self.size }), self.size)
    end)
    if not ok then
      self.bad[i] = true
      self.n_bad = self.n_bad + 1
      if not warned[path] then
        warned[path] = true
        -- The C message reads "op: path: problem"; keep "path: problem".
        local msg = tostring(res):gsub("^[%w_]+: ", "")
        io.stderr:write("grove.data.folder: skipping " .. msg .. "\n")
      end
      if self.n_bad == self.n then
        error("data.folder: none of the " .. self.n .. " images in " .. self.dir .. " could be read", 0)
      end
      return nil
    end
    local bytes = self.size * self.size * 3
    if self.cache_bytes + bytes <= self.cache_mb * 2^20 then
      self.cache[i] = res
      self.cache_bytes = self.cache_bytes + bytes
    end
    return res
  end

  -- The next readable image's index, advancing through the epochs.
  function Folder:_advance()
    while true do
      if not self.order or self.pos >= self.n then
        if self.order then self.epoch = self.epoch + 1 end
        self.order, self.pos = self:_order(self.epoch), 0
      end
      self.pos = self.pos + 1
      local i = self.order[self.pos]
      if not self.bad[i] then
        local img = self:_image(i)
        if img then return i, img end
      end
    end
  end

  -- The next batch: {images = f32 (B, size, size, 3) in [-1, 1], captions = {...}, paths = {...}}.
  function Folder:next()
    local imgs, captions, paths = {}, {}, {}
    for b = 1, self.batch do
      local i, img = self:_advance()
      imgs[b], captions[b], paths[b] = img, self.captions[i], self.paths[i]
    end
    local images = grove.image.to_float(grove.stack(imgs, 1))
    return { images = images, captions = captions, paths = paths }
  end

  -- for step, batch in ds:take(n) do ... end, step = 1 .. n.
  Folder.take = require "grove.data.take"

  -- Where the stream stands, for checkpoints: set_state(state()) in a new
  -- process continues with the same batches.
  function Folder:state() return { epoch = self.epoch, pos = self.pos, started = self.order ~= nil } end
  function Folder:set_state(s)
    if type(s) ~= "table" or type(s.epoch) ~= "number" or type(s.pos) ~= "number" then
      error("data.folder: set_state expects a table from state()", 2)
    end
    self.epoch, self.pos = s.epoch, s.pos
    self.order = s.started and self:_order(s.epoch) or nil
  end


  return grove.data.folder
end
