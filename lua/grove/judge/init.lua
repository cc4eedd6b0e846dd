-- grove.judge: a small image-text matching model that answers whether an
-- image shows what its prompt asks, as a yes probability; the verifier of
-- inference-time search (docs/search.md). It is built from grove's own ops
-- and learns from data, unlike the analytic evaluator, which stays the referee.
--
-- One joint transformer reads a [CLS] token, the image's p×p patches (a
-- 3×3 convolution, then a linear embedding plus learned positions) and the caption's tokens (own
-- embeddings plus positions), attending over all of them (padding masked);
-- the [CLS] token's final features give two logits, (no, yes). Joint
-- attention lets a caption word meet the patch it describes, which is what
-- colour binding, counting and relations need.
--
--   local j = grove.judge.Judge({vocab_size = tok:size()}, {seed = 0})
--   local p = j:score(images, prompts)      -- {yes probability per image}
--   local fn = j:fn()                        -- fn(image, prompt) -> yes probability
--   j:save("judge.safetensors"); j = grove.judge.load("judge.safetensors")
--
-- config: vocab_size (required), width 64, depth 3, heads 2, mlp_ratio 2,
-- patch 8, size 32, channels 3, text_len 16, stem 32 (channels of a 3×3
-- convolution with GELU before the patch embedding; 0: none), stem_depth 1
-- (how many such convolutions).
local Module = require "grove.nn.module"

return function(grove)
  local nn = grove.nn
  local J = {}
  grove.judge = J

  local defaults = { width = 64, depth = 3, heads = 2, mlp_ratio = 2, patch = 8, size = 32, channels = 3, text_len = 16,
                     stem = 32, stem_depth = 1, eps = 1e-5 }
  J.defaults = defaults

  local function resolve(config)
    if type(config) ~= "table" then error("judge: expected a config table with vocab_size", 3) end
    local c = {}
    for k, v in pairs(defaults) do c[k] = v end
    for k, v in pairs(config) do c[k] = v end
    c.kind = "judge"
    for _, k in ipairs { "vocab_size", "width", "depth", "heads", "patch", "size", "channels", "text_len", "stem", "stem_depth" } do
      local v = c[k]
      if type(v) ~= "number" or v % 1 ~= 0 or v < ((k == "depth" or k == "stem" or k == "stem_depth") and 0 or 1) then
        error("judge: config." .. k .. " must be a positive integer, got " .. tostring(v), 3)
      end
    end
    if c.size % c.patch ~= 0 then error("judge: size " .. c.size .. " is not a multiple of patch " .. c.patch, 3) end
    if c.width % c.heads ~= 0 then error("judge: width " .. c.width .. " is not a multiple of heads " .. c.heads, 3) end
    c.hidden = math.max(1, math.floor(c.width * c.mlp_ratio + 0.5))
    c.tokens = (c.size / c.patch) ^ 2
    return c
  end

  local Encoder = grove.text.Encoder
  local Judge = Module.class("Judge")
  J.Judge = Judge

  function Judge:init(config, opts)
    opts = opts or {}
    local c = resolve(config)
    self.config = c
    local gen = opts.generator or grove.Generator(opts.seed or 0)
    local make = nn.param_factory { generator = gen }
    local D = c.width
    if c.stem > 0 then
      -- a 3×3 convolution sees edges and corners inside a patch, which a
      -- linear patch embedding alone learns slowly (shape words went unlearned)
      self:add_module("stem", nn.Linear(make, 9 * c.channels, c.stem))
      -- further 3×3 convolutions widen what one patch feature sees (5×5, 7×7, …)
      for i = 2, c.stem_depth do self:add_module("stem" .. i, nn.Linear(make, 9 * c.stem, c.stem)) end
    end
    local feat = c.stem > 0 and c.stem or c.channels
    self:add_module("patch_embed", nn.Linear(make, feat * c.patch * c.patch, D))
    self:add_parameter("image_position", make({ c.tokens, D }, "normal:0.02"))
    self:add_module("token_embedding", Encoder.Embedding(make, c.vocab_size, D, "normal:0.02"))
    self:add_parameter("text_position", make({ c.text_len, D }, "normal:0.02"))
    self:add_parameter("cls", make({ 1, 1, D }, "normal:0.02"))
    self.layers = {}
    for i = 1, c.depth do self.layers[i] = Encoder.Layer(make, c) end
    self:add_module("final_norm", Encoder.LayerNorm(make, D, c.eps))
    self:add_module("head", nn.Linear(make, D, 2))
  end

  function Judge:children()
    local out = {}
    for _, name in ipairs(self._child_names) do out[#out + 1] = { name, self[name] } end
    for i, l in ipairs(self.layers) do out[#out + 1] = { "layers." .. (i - 1), l } end
    return out
  end

  -- images (B, size, size, channels) f32 in [-1, 1]; ids (B, L) i64; mask
  -- (B, L) f32 → logits (B, 2), (no, yes).
  function Judge:forward(images, ids, mask)
    local c = self.config
    if not grove.is_tensor(images) or images:dim() ~= 4 or images:size(2) ~= c.size or images:size(3) ~= c.size
       or images:size(4) ~= c.channels then
      error(string.format("judge: images must be (B, %d, %d, %d), got %s", c.size, c.size, c.channels,
        grove.is_tensor(images) and images:shape_str() or type(images)), 2)
    end
    local B, p, g = images:size(1), c.patch, c.size / c.patch
    local feat = images
    if self.stem then
      -- each 3×3 convolution as one product over each pixel's neighbourhood
      local H, W = c.size, c.size
      local function conv3x3(x, linear)
        local xp = grove.pad(x, { 0, 0, 1, 1, 1, 1 })
        local taps = {}
        for dy = 0, 2 do
          for dx = 0, 2 do taps[#taps + 1] = xp:narrow(2, 1 + dy, H):narrow(3, 1 + dx, W) end
        end
        return linear:forward(grove.cat(taps, 4)):gelu()
      end
      feat = conv3x3(images, self.stem)
      for i = 2, c.stem_depth do feat = conv3x3(feat, self["stem" .. i]) end
    end
    local F = feat:size(4)
    local patches = feat:reshape { B, g, p, g, p, F }:permute { 1, 2, 4, 3, 5, 6 }:reshape { B, g * g, p * p * F }
    local img = self.patch_embed:forward(patches) + self.image_position
    local L = ids:size(2)
    local txt = grove.embedding(self.token_embedding.weight, ids) + self.text_position:narrow(1, 1, L)
    local x = grove.cat({ self.cls:expand { B, 1, c.width }, img, txt }, 2)
    local m = grove.cat({ grove.ones({ B, 1 + g * g }, { device = mask:device() }), mask }, 2)
    for _, layer in ipairs(self.layers) do x = layer:forward(x, m) end
    return self.head:forward(self.final_norm:forward(x:select(2, 1)))
  end

  local tokenizer
  function Judge:tokenizer()
    tokenizer = tokenizer or grove.text.shapes_tokenizer()
    return tokenizer
  end

  -- Token ids and mask (f32) of a list of prompts at this judge's text length.
  function Judge:encode(prompts)
    local ids, mask = self:tokenizer():encode(prompts, { max_len = self.config.text_len })
    return ids, mask:float()
  end

  -- The device ("cpu" or "cuda") of the judge's weights.
  function Judge:device() return self.head.weight:device() end

  -- Logits (B, 2) for images and one prompt per image (training: on the
  -- tape). Images and token ids move to the judge's device.
  function Judge:logits(images, prompts)
    local ids, mask = self:encode(prompts)
    local dev = self:device()
    return self:forward(images:to(dev), ids:to(dev), mask:to(dev))
  end

  -- images: (B, H, W, C) or a list of (H, W, C) tensors, on any device;
  -- prompts: one per image. Returns the yes probabilities as a Lua list.
  function Judge:score(images, prompts, opts)
    if type(images) == "table" and not grove.is_tensor(images) then
      local list = {}
      local dev = self:device()
      for i, t in ipairs(images) do list[i] = (t:dim() == 3 and t:unsqueeze(1) or t):to(dev) end
      images = grove.cat(list, 1)
    end
    local B = images:size(1)
    if #prompts ~= B then error("judge.score: " .. B .. " images for " .. #prompts .. " prompts", 2) end
    local bs = opts and opts.batch or 64
    local out = {}
    local was = self.training
    self:eval()
    grove.no_grad(function()
      for s = 1, B, bs do
        local n = math.min(bs, B - s + 1)
        local ps = {}
        for k = 1, n do ps[k] = prompts[s + k - 1] end
        local p = grove.softmax(self:logits(images:narrow(1, s, n), ps), -1):select(2, 2):tolist()
        for k = 1, n do out[s + k - 1] = p[k] end
      end
    end)
    self:train(was)
    return out
  end

  -- The judge as a function (image, prompt) -> yes probability, for grove.search.
  function Judge:fn()
    return function(image, prompt) return self:score({ image }, { prompt })[1] end
  end

  function J.load(path)
    local ok, tensors, meta = pcall(grove.load_safetensors, path)
    if not ok then error("judge.load: cannot read " .. tostring(path) .. ": " .. tostring(tensors), 2) end
    local c = meta and meta["grove.config"] and nn._decode_config(meta["grove.config"])
    if not c or c.kind ~= "judge" then
      error("judge.load: " .. path .. " is not a judge (its grove.config kind is " .. tostring(c and c.kind) .. ")", 2)
    end
    local j = Judge(c)
    j:load_state_dict(tensors)
    j:eval()
    return j
  end

  require "grove.judge.pairs"(grove, J)
  require "grove.judge.train"(grove, J)
  return J
end
