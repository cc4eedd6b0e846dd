-- The SANA linear diffusion transformer (DESIGN.md §4), with parameter
-- names exactly those of diffusers' SanaTransformer2DModel.
--
-- Latents are NHWC grids (B, H, W, C); tokens are (B, N, D) with N = H·W
-- row-major. `model.blocks` is a plain Lua list: growth inserts into it,
-- pruning removes from it, and parameter names follow its current order.
local Module = require "grove.nn.module"

return function(grove)
  local nn = grove.nn
  local Linear, RMSNorm, Conv2d, Container = nn.Linear, nn.RMSNorm, nn.Conv2d, nn.Container

  nn.presets = {
    -- CPU work: a few minutes of training on 2 cores
    -- 4×4 patches: 64 tokens of a 32×32 image, cheap enough to train to
    -- recognisable shapes in minutes (a 2×2 patch at width 64 was no better
    -- for the same time)
    tiny = { depth = 4, width = 96, head_dim = 32, cross_heads = 3, mlp_ratio = 2.5, patch_size = 4,
             in_channels = 3, out_channels = 3, caption_channels = 64, text_len = 16 },
    small = { depth = 8, width = 256, head_dim = 32, cross_heads = 8, mlp_ratio = 2.5, patch_size = 2,
              in_channels = 3, out_channels = 3, caption_channels = 128, text_len = 32 },
    -- published sizes (DC-AE latents of 32 channels, Gemma-2 2B text features of 2304)
    sana_600m = { depth = 28, width = 1152, head_dim = 32, cross_heads = 16, mlp_ratio = 2.5, patch_size = 1,
                  in_channels = 32, out_channels = 32, caption_channels = 2304, text_len = 300 },
    sana_1600m = { depth = 20, width = 2240, head_dim = 32, cross_heads = 20, mlp_ratio = 2.5, patch_size = 1,
                   in_channels = 32, out_channels = 32, caption_channels = 2304, text_len = 300 },
    sana_4800m = { depth = 60, width = 2240, head_dim = 32, cross_heads = 20, mlp_ratio = 2.5, patch_size = 1,
                   in_channels = 32, out_channels = 32, caption_channels = 2304, text_len = 300 },
  }

  local defaults = { head_dim = 32, mlp_ratio = 2.5, patch_size = 1, qk_norm = true, cross_norm = true,
                     caption_dropout = 0.1, text_len = 300, flow_shift = 3.0 }

  local function resolve_config(config)
    if type(config) == "string" then
      local p = nn.presets[config]
      if not p then error("Sana: unknown preset '" .. config .. "'", 3) end
      config = p
    end
    local c = {}
    for k, v in pairs(defaults) do c[k] = v end
    for k, v in pairs(config) do c[k] = v end
    for _, k in ipairs { "depth", "width", "cross_heads", "in_channels", "caption_channels" } do
      if type(c[k]) ~= "number" then error("Sana: config." .. k .. " is required", 3) end
    end
    c.out_channels = c.out_channels or c.in_channels
    if c.width % c.head_dim ~= 0 then error("Sana: width " .. c.width .. " is not a multiple of head_dim " .. c.head_dim, 3) end
    if c.width % c.cross_heads ~= 0 then error("Sana: width " .. c.width .. " is not a multiple of cross_heads " .. c.cross_heads, 3) end
    c.hidden = math.floor(c.width * c.mlp_ratio)
    return c
  end
  nn.resolve_config = resolve_config

  -- ---- one block -------------------------------------------------------------
  local SanaBlock = Module.class("SanaBlock")
  nn.SanaBlock = SanaBlock

  function SanaBlock:init(make, c)
    local D, Hd = c.width, c.hidden
    self.config = c
    self:add_parameter("scale_shift_table", make({ 6, D }, "randn_scaled"))
    local attn1 = Container()
    attn1:add_module("to_q", Linear(make, D, D, { bias = false }))
    attn1:add_module("to_k", Linear(make, D, D, { bias = false }))
    attn1:add_module("to_v", Linear(make, D, D, { bias = false }))
    if c.qk_norm then
      attn1:add_module("norm_q", RMSNorm(make, D, 1e-5))
      attn1:add_module("norm_k", RMSNorm(make, D, 1e-5))
    end
    attn1:add_module("to_out", Container { { "0", Linear(make, D, D) } })
    self:add_module("attn1", attn1)
    local attn2 = Container()
    attn2:add_module("to_q", Linear(make, D, D))
    attn2:add_module("to_k", Linear(make, D, D))
    attn2:add_module("to_v", Linear(make, D, D))
    if c.cross_norm then
      attn2:add_module("norm_q", RMSNorm(make, D, 1e-5))
      attn2:add_module("norm_k", RMSNorm(make, D, 1e-5))
    end
    attn2:add_module("to_out", Container { { "0", Linear(make, D, D) } })
    self:add_module("attn2", attn2)
    local ff = Container()
    ff:add_module("conv_inverted", Conv2d(make, D, 2 * Hd, 1))
    -- depthwise 3×3 keeps PyTorch's default init (uniform ±1/√fan_in, fan_in = 9)
    ff:add_module("conv_depth", Conv2d(make, 2 * Hd, 2 * Hd, 3,
                                       { groups = 2 * Hd, padding = 1, init = "uniform:" .. (1 / 3), bias_init = "uniform:" .. (1 / 3) }))
    ff:add_module("conv_point", Conv2d(make, Hd, D, 1, { bias = false }))
    self:add_module("ff", ff)
  end

  local function self_attention(a, x, c)
    local q, k, v = a.to_q:forward(x), a.to_k:forward(x), a.to_v:forward(x)
    if a.norm_q then q, k = a.norm_q:forward(q), a.norm_k:forward(k) end
    return a.to_out["0"]:forward(grove.linear_attention(q, k, v, c.head_dim, 1e-15))
  end

  local function cross_attention(a, x, text, mask, c)
    local q, k, v = a.to_q:forward(x), a.to_k:forward(text), a.to_v:forward(text)
    if a.norm_q then q, k = a.norm_q:forward(q), a.norm_k:forward(k) end
    return a.to_out["0"]:forward(grove.cross_attention(q, k, v, mask, c.cross_heads))
  end

  -- GLUMBConv on tokens (B, N, D) of an h×w grid.
  local function mix_ffn(f, x, h, w)
    local B, N = x:size(1), x:size(2)
    local y = f.conv_inverted:forward(x):silu():view { B, h, w, -1 }
    y = f.conv_depth:forward(y):glu_silu()
    return f.conv_point:forward(y):view { B, N, -1 }
  end

  -- x (B, N, D) tokens of an h×w grid; t0 (B, 6D); text (B, L, D) projected; mask (B, L).
  function SanaBlock:forward(x, t0, text, mask, h, w)
    local c = self.config
    local B, D = x:size(1), c.width
    local m = t0:view { B, 6, D } + self.scale_shift_table
    local shift1, scale1, gate1 = m:select(2, 1), m:select(2, 2), m:select(2, 3)
    local shift2, scale2, gate2 = m:select(2, 4), m:select(2, 5), m:select(2, 6)
    x = x:gated_residual(gate1, self_attention(self.attn1, x:norm_modulate(shift1, scale1, 1e-6), c))
    x = x + cross_attention(self.attn2, x, text, mask, c)
    x = x:gated_residual(gate2, mix_ffn(self.ff, x:norm_modulate(shift2, scale2, 1e-6), h, w))
    return x
  end

  -- ---- the model ----------------------------------------------------------------
  local Sana = Module.class("Sana")
  nn.SanaModel = Sana

  -- grove.nn.Sana(config_or_preset, {seed = n, generator = g, meta = bool})
  function Sana:init(config, opts)
    opts = opts or {}
    local c = resolve_config(config)
    self.config = c
    local gen = opts.generator or (opts.seed and grove.Generator(opts.seed)) or nil
    local make = nn.param_factory { meta = opts.meta, generator = gen }
    self.make = make
    local D, p = c.width, c.patch_size
    self:add_module("patch_embed", Container { { "proj", Conv2d(make, c.in_channels, D, p) } })
    local te = Container()
    te:add_module("emb", Container { { "timestep_embedder", Container {
      { "linear_1", Linear(make, 256, D, { init = "normal:0.02" }) },
      { "linear_2", Linear(make, D, D, { init = "normal:0.02" }) } } } })
    te:add_module("linear", Linear(make, D, 6 * D))
    self:add_module("time_embed", te)
    self:add_module("caption_projection", Container {
      { "linear_1", Linear(make, c.caption_channels, D, { init = "normal:0.02" }) },
      { "linear_2", Linear(make, D, D, { init = "normal:0.02" }) } })
    self:add_module("caption_norm", RMSNorm(make, D, 1e-5, "const:0.01"))
    self.blocks = {}
    for i = 1, c.depth do self.blocks[i] = SanaBlock(make, c) end
    self:add_parameter("scale_shift_table", make({ 2, D }, "randn_scaled"))
    self:add_module("proj_out", Linear(make, D, p * p * c.out_channels))
    if c.caption_dropout and c.caption_dropout > 0 then
      -- the learned null caption that classifier-free guidance samples with
      self:add_parameter("y_embedding", make({ c.text_len, c.caption_channels }, "normal:0.02"))
    end
  end

  function Sana:children()
    local out = {}
    for _, name in ipairs(self._child_names) do out[#out + 1] = { name, self[name] } end
    for i, b in ipairs(self.blocks) do out[#out + 1] = { "transformer_blocks." .. (i - 1), b } end
    return out
  end

  -- A new block of this model's shape, initialised as the model's own.
  function Sana:new_block() return SanaBlock(self.make, self.config) end

  -- (B, H, W, C) → (B, N, C·p·p) with each patch ordered (C, kh, kw) as the conv weight.
  local function patchify(x, p)
    local B, H, W, C = x:size(1), x:size(2), x:size(3), x:size(4)
    if H % p ~= 0 or W % p ~= 0 then
      error(string.format("Sana: latent %dx%d is not divisible by the patch size %d", H, W, p), 3)
    end
    return x:reshape { B, H / p, p, W / p, p, C }:permute { 1, 2, 4, 6, 3, 5 }:reshape { B, (H / p) * (W / p), C * p * p }
  end

  -- (B, N, p·p·C) ordered (p, p, C) → (B, H, W, C).
  local function unpatchify(x, h, w, p, C)
    local B = x:size(1)
    return x:reshape { B, h, w, p, p, C }:permute { 1, 2, 4, 3, 5, 6 }:reshape { B, h * p, w * p, C }
  end

  -- The conditioning shared by all blocks: temb (B, D), t0 (B, 6D), text (B, L, D).
  function Sana:condition(timestep, text)
    local te = self.time_embed
    local emb = grove.timestep_embedding(timestep, 256, 10000)
    local tmlp = te.emb.timestep_embedder
    local temb = tmlp.linear_2:forward(tmlp.linear_1:forward(emb):silu())
    local t0 = te.linear:forward(temb:silu())
    local cp = self.caption_projection
    local y = cp.linear_2:forward(cp.linear_1:forward(text):gelu())
    return temb, t0, self.caption_norm:forward(y)
  end

  function Sana:embed(x)
    local c = self.config
    local pe = self.patch_embed.proj
    local w = pe.weight
    return patchify(x, c.patch_size):linear(w:view { w:size(1), -1 }, pe.bias)
  end

  function Sana:final(x, temb, h, w)
    local c = self.config
    local B, D = x:size(1), c.width
    local m = temb:view { B, 1, D } + self.scale_shift_table
    x = x:norm_modulate(m:select(2, 1), m:select(2, 2), 1e-6)
    return unpatchify(self.proj_out:forward(x), h, w, c.patch_size, c.out_channels)
  end

  -- x (B, H, W, C) latents; timestep (B) (σ·1000); text (B, L, caption_channels);
  -- mask (B, L) (1 = token, 0 = padding) or nil. opts.hook(i, x_in, x_out)
  -- sees every block's input and output tokens.
  function Sana:forward(x, timestep, text, mask, opts)
    local c = self.config
    if x:dim() ~= 4 or x:size(4) ~= c.in_channels then
      error("Sana: latents must be (B, H, W, " .. c.in_channels .. "), got " .. x:shape_str(), 2)
    end
    local h, w = x:size(2) / c.patch_size, x:size(3) / c.patch_size
    local temb, t0, y = self:condition(timestep, text)
    local tokens = self:embed(x)
    local hook = opts and opts.hook
    for i, block in ipairs(self.blocks) do
      local out = block:forward(tokens, t0, y, mask, h, w)
      if hook then hook(i, tokens, out) end
      tokens = out
    end
    return self:final(tokens, temb, h, w)
  end

  function Sana:describe()
    local c = self.config
    return string.format("Sana depth %d, width %d, %d parameters", #self.blocks, c.width, self:num_parameters())
  end

  nn.Sana = Sana
  require "grove.nn.flow"(grove)
end
