-- A stand-in for grove.diffusers.cache_dataset in the specs: the same
-- methods (next, state, set_state, size) over random latents and caption
-- features held in memory, shuffled per epoch from the seed.
--
--   local ds = require("fake_cache").dataset { n = 4, batch_size = 2, seed = 1, h = 4, w = 4, channels = 8,
--                                               L = 6, D = 32 }
local fake = {}

local Dataset = {}
Dataset.__index = Dataset

local function order(self)
  local n = self.size
  local idx = {}
  for i = 1, n do idx[i] = i end
  if self.shuffle then
    local r = grove.rand({ n }, { generator = grove.Generator(self.seed * 1000003 + self.epoch) }):tolist()
    table.sort(idx, function(a, b) return r[a] < r[b] or (r[a] == r[b] and a < b) end)
  end
  return idx
end

function fake.dataset(o)
  local n, h, w, C, L, D = o.n or 4, o.h or 4, o.w or 4, o.channels or 8, o.L or 6, o.D or 32
  local gen = grove.Generator((o.data_seed or 7) + 5)
  local mask = {}
  for i = 1, n do
    local len = 1 + (i * 3) % L
    for j = 1, L do mask[(i - 1) * L + j] = j <= len and 1 or 0 end
  end
  local self = setmetatable({
    size = n, batch_size = o.batch_size or 2, seed = o.seed or 0, shuffle = o.shuffle ~= false, epoch = 1, pos = 0,
    latents = grove.randn({ n, h, w, C }, { generator = gen }),
    features = grove.randn({ n, L, D }, { generator = gen }),
    mask = grove.tensor(mask):view { n, L },
    poison = o.poison,   -- {batch number = true}: that batch's latents are NaN
    served = 0,
  }, Dataset)
  self.order = order(self)
  return self
end

function Dataset:next()
  local ids, lat, feat, mask = {}, {}, {}, {}
  for _ = 1, self.batch_size do
    if self.pos == self.size then
      self.epoch, self.pos = self.epoch + 1, 0
      self.order = order(self)
    end
    self.pos = self.pos + 1
    local i = self.order[self.pos]
    ids[#ids + 1] = i
    lat[#lat + 1] = self.latents:narrow(1, i, 1)
    feat[#feat + 1] = self.features:narrow(1, i, 1)
    mask[#mask + 1] = self.mask:narrow(1, i, 1)
  end
  self.served = self.served + 1
  local latents = grove.cat(lat, 1)
  if self.poison and self.poison[self.served] then latents = latents * (0 / 0) end
  local captions = {}
  for k, i in ipairs(ids) do captions[k] = "item " .. i end
  return { latents = latents, features = grove.cat(feat, 1), mask = grove.cat(mask, 1), captions = captions, ids = ids,
           bucket = self.latents:size(2) .. "x" .. self.latents:size(3) }
end

function Dataset:state() return { epoch = self.epoch, pos = self.pos, served = self.served } end

function Dataset:set_state(s)
  self.epoch, self.pos, self.served = s.epoch, s.pos, s.served
  self.order = order(self)
end

return fake
