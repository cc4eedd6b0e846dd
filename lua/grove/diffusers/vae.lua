-- DC-AE, the autoencoder of every SANA release: diffusers' AutoencoderDC
-- (encoder and decoder) from a diffusers folder's vae/config.json and its
-- weights, on NHWC grids (docs/diffusers.md, "DC-AE").
--
--   local vae = grove.diffusers.vae(dir)                 -- dir/vae or the vae folder
--   local img = vae:decode(latents / vae.scaling_factor) -- (B, h, w, 32) -> (B, 32h, 32w, 3)
--   local z   = vae:encode(img)                          -- unscaled, as diffusers
--   vae:decode(z, { tile = 512 })                        -- overlapping tiles, blended seams
--
-- Stages, as diffusers builds them: the encoder runs conv_in, stages
-- 0..n-1 (each a list of ResBlocks or EfficientViT blocks, then a 2×
-- down-sampling block but in the last), conv_out (+ the channel-averaging
-- shortcut); the decoder runs conv_in (+ the channel-repeating shortcut),
-- stages n-1..0 (the deepest first; each a 2× up-sampling block but in the
-- deepest, then its blocks), a per-pixel RMSNorm, an activation and
-- conv_out. Compute is f32, or bf16 (opts.compute, vae:set_compute_dtype:
-- convolutions and projections on bf16-rounded operands with f32 sums,
-- norms and the attention's sums f32); weights stay in their stored dtype
-- and each is converted exactly where it is used. vae_config.lua reads the config,
-- vae_blocks.lua holds the blocks, tiles.lua the tiling.
--
-- The autoencoder is a grove.nn module: vae.encoder and vae.decoder hold
-- the parameters under diffusers' names, and their :forward records on the
-- tape (fine-tuning); vae:decode and vae:encode are the inference entry
-- points (no tape, tiling, freed intermediates).
local Module = require "grove.nn.module"

return function(grove, diffusers)
  local nn = grove.nn
  local CLASS = "AutoencoderDC"
  local read_config = require "grove.diffusers.vae_config"(grove, diffusers)
  local blocks = require "grove.diffusers.vae_blocks"(grove)
  local tiles = require "grove.diffusers.tiles"(grove)
  local Encoder, Decoder = blocks.Encoder, blocks.Decoder

  local VAE = Module.class(CLASS)
  diffusers.AutoencoderDC = VAE

  function VAE:init(s, config, opts)
    local make = nn.param_factory { meta = true }
    -- config: config.json as read (also diffusers_config, as the transformer names it)
    self.settings, self.config, self.diffusers_config = s, config, config
    self.scaling_factor = s.scaling_factor
    self.factor = s.factor
    self.latent_channels, self.in_channels = s.lat_ch, s.img_ch
    self:add_module("encoder", Encoder(make, s))
    self:add_module("decoder", Decoder(make, s))
    self.meta = true
    self:set_tiling(opts)
  end

  function VAE:describe()
    local s = self.settings
    return string.format("AutoencoderDC: %d stages (%s), latent %d channels, ×%d, %d parameters%s%s%s", s.encoder.n,
                         table.concat(s.encoder.ch, ", "), s.lat_ch, s.factor, self:num_parameters(),
                         self.meta and ", shapes only" or "", self.tile and (", tiles " .. self.tile .. "/" .. self.tile_stride) or "",
                         self.compute_dtype == "bf16" and ", bf16 compute" or "")
  end

  -- Tile settings (in image pixels): tile (a multiple of the factor, false
  -- or nil: no tiling), tile_stride (default 7/8 of the tile, rounded down to
  -- a multiple of the factor: diffusers' 448 for 512).
  local function tiling(self, o, who)
    local f = self.factor
    local tile, stride = o.tile, o.tile_stride
    if tile == nil or tile == false then
      if stride ~= nil then error(who .. ": tile_stride without tile", 3) end
      return nil
    end
    if type(tile) ~= "number" or tile % 1 ~= 0 or tile < f or tile % f ~= 0 then
      error(who .. ": tile must be a multiple of the down-sampling factor " .. f .. ", got " .. tostring(tile), 3)
    end
    if stride == nil then stride = math.max(f, math.floor(tile * 7 / 8 / f) * f) end
    if type(stride) ~= "number" or stride % 1 ~= 0 or stride < f or stride % f ~= 0 or stride > tile then
      error(who .. ": tile_stride must be a multiple of " .. f .. " between " .. f .. " and the tile " .. tile
            .. ", got " .. tostring(stride), 3)
    end
    return tile, stride
  end

  -- Sets the default tiling of decode and encode (opts.tile, opts.tile_stride;
  -- tile = false turns it off). Returns the autoencoder.
  function VAE:set_tiling(opts)
    opts = opts or {}
    self.tile, self.tile_stride = tiling(self, opts, "vae")
    return self
  end

  local function check_input(self, x, who, ch, what)
    if self.meta then error(who .. ": the autoencoder was built with meta = true (shapes only); it cannot run", 3) end
    if not grove.is_tensor(x) or x:dim() ~= 4 or x:size(4) ~= ch then
      error(string.format("%s: expected %s (batch, height, width, %d) NHWC, got %s", who, what, ch,
                          grove.is_tensor(x) and x:shape_str() or type(x)), 3)
    end
    if x:dtype() ~= "f32" then error(who .. ": expected f32 " .. what .. ", got " .. x:dtype() .. " " .. x:shape_str(), 3) end
  end

  local function device_of(self) return self.decoder.conv_in.weight:device() end

  -- latents (B, h, w, latent_channels) NHWC, unscaled (divide a sampler's
  -- latents by vae.scaling_factor first) -> images (B, h·f, w·f,
  -- in_channels), about [-1, 1]. opts.tile / opts.tile_stride override the
  -- default tiling (vae:set_tiling); a latent grid no larger than a tile is
  -- decoded whole. No tape is recorded (fine-tune through vae.decoder:forward).
  function VAE:decode(z, opts)
    check_input(self, z, "vae:decode", self.latent_channels, "latents")
    local tile, stride = self.tile, self.tile_stride
    if opts ~= nil then
      if type(opts) ~= "table" then error("vae:decode: options must be a table", 2) end
      if opts.tile ~= nil then tile, stride = tiling(self, opts, "vae:decode") end
    end
    local f = self.factor
    return grove.no_grad(function()
      z = z:to(device_of(self))
      local h, w = z:size(2), z:size(3)
      if not tile or (h <= tile / f and w <= tile / f) then return self.decoder:forward(z) end
      return tiles.run(z, function(t) return self.decoder:forward(t) end, tile / f, stride / f, stride, tile - stride,
                   { z:size(1), h * f, w * f, self.in_channels })
    end)
  end

  -- images (B, H, W, in_channels) NHWC, about [-1, 1], H and W multiples of
  -- the down-sampling factor -> latents (B, H/f, W/f, latent_channels),
  -- unscaled (multiply by vae.scaling_factor for a sampler). opts as decode's.
  function VAE:encode(x, opts)
    check_input(self, x, "vae:encode", self.in_channels, "images")
    local f = self.factor
    if x:size(2) % f ~= 0 or x:size(3) % f ~= 0 then
      error(string.format("vae:encode: image size %d×%d (height × width) is not a multiple of the down-sampling factor %d",
                          x:size(2), x:size(3), f), 2)
    end
    local tile, stride = self.tile, self.tile_stride
    if opts ~= nil then
      if type(opts) ~= "table" then error("vae:encode: options must be a table", 2) end
      if opts.tile ~= nil then tile, stride = tiling(self, opts, "vae:encode") end
    end
    return grove.no_grad(function()
      x = x:to(device_of(self))
      local H, W = x:size(2), x:size(3)
      if not tile or (H <= tile and W <= tile) then return self.encoder:forward(x) end
      return tiles.run(x, function(t) return self.encoder:forward(t) end, tile, stride, stride / f, tile / f - stride / f,
                   { x:size(1), H / f, W / f, self.latent_channels })
    end)
  end

  -- grove.diffusers.save(dir, vae): a vae folder, config.json as read and
  -- the weights in their stored dtype under diffusers' names.
  function VAE:diffusers_save(dir, opts)
    if self.meta then error("diffusers.save: the autoencoder was built with meta = true (shapes only)", 3) end
    local tensors = {}
    for _, np in ipairs(self:named_parameters()) do tensors[np[1]] = np[2]:detach() end
    return diffusers.write_component(dir, self.diffusers_config, tensors, opts)
  end

  local OPTS = { meta = true, variant = true, dtype = true, tile = true, tile_stride = true, compute = true }

  -- grove.diffusers.vae(dir, opts): dir is a pipeline folder (its vae/ is
  -- read) or the vae folder itself. opts.meta: shapes only (config.json
  -- alone is read); opts.variant: variant weight files ("bf16", "fp16");
  -- opts.dtype: the dtype weights are held in ("f32", "bf16", "f16"; default
  -- as stored: grove.diffusers.component converts them as they load);
  -- opts.tile, opts.tile_stride: default tiling (VAE:set_tiling);
  -- opts.compute: "f32" (default) or "bf16" (bf16 convolutions and GEMMs).
  function diffusers.vae(dir, opts)
    opts = opts or {}
    if type(opts) ~= "table" then error("diffusers.vae: options must be a table", 2) end
    for k in pairs(opts) do
      if not OPTS[k] then error("diffusers.vae: unknown option '" .. tostring(k) .. "' (meta, variant, dtype, tile, tile_stride, compute)", 2) end
    end
    if opts.compute ~= nil and opts.compute ~= "f32" and opts.compute ~= "bf16" then
      error("diffusers.vae: compute must be \"f32\" or \"bf16\", got " .. tostring(opts.compute), 2)
    end
    if opts.meta then
      local c, where = diffusers.component_config(dir, "vae")
      local v = VAE(read_config(c, where), c, opts)
      if opts.compute == "bf16" then v:set_compute_dtype("bf16") end
      return v
    end
    local comp = diffusers.component(dir, "vae", { variant = opts.variant, dtype = opts.dtype })
    local ok, vae = pcall(function()
      local v = VAE(read_config(comp.config, comp.config_path), comp.config, opts)
      -- BatchNorm's step counter is not used in inference
      local ignore = {}
      for _, n in ipairs(comp:names()) do
        if n:find("%.num_batches_tracked$") then ignore[n] = true end
      end
      diffusers.load_parameters(v, comp, { where = comp.dir, class = CLASS, ignore = ignore })
      -- running statistics are inputs of the norm, never trained
      for _, np in ipairs(v:named_parameters()) do
        if np[1]:find("%.running_mean$") or np[1]:find("%.running_var$") then np[2]:requires_grad_(false) end
      end
      v.meta = false
      if opts.compute == "bf16" then v:set_compute_dtype("bf16") end
      return v
    end)
    comp:close()
    if not ok then error(vae, 0) end
    return vae
  end
end
