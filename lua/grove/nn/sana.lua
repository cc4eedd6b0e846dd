-- The SANA linear diffusion transformer (DESIGN.md §4), with parameter
-- names exactly those of diffusers' SanaTransformer2DModel.
--
-- Latents are NHWC grids (B, H, W, C); tokens are (B, N, D) with N = H·W
-- row-major. `model.blocks` is a plain Lua list: growth inserts into it,
-- pruning removes from it, and parameter names follow its current order.
local Module = require "grove.nn.module"

return function(grove)
  local nn = grove.nn
  local Linear, RMSNorm, LayerNorm, Conv2d, Container = nn.Linear, nn.RMSNorm, nn.LayerNorm, nn.Conv2d, nn.Container
  local f32, drop_f32 = nn.f32, nn.drop_f32

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

  -- The options below the first line are those of diffusers'
  -- SanaTransformer2DModel configs (docs/model.md, "Config fields"); their
  -- defaults keep grove's own models as they were.
  local defaults = { head_dim = 32, mlp_ratio = 2.5, patch_size = 1, qk_norm = true, cross_norm = true,
                     caption_dropout = 0.1, text_len = 300, flow_shift = 3.0,
                     attention_bias = false, norm_elementwise_affine = false, norm_eps = 1e-6,
                     guidance_embeds = false, guidance_embeds_scale = 0.1, timestep_scale = 1.0 }

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
    if c.cross_head_dim == nil then
      if c.width % c.cross_heads ~= 0 then error("Sana: width " .. c.width .. " is not a multiple of cross_heads " .. c.cross_heads, 3) end
      c.cross_head_dim = c.width / c.cross_heads
    end
    if c.interpolation_scale ~= nil then
      if type(c.interpolation_scale) ~= "number" or c.interpolation_scale <= 0 then
        error("Sana: config.interpolation_scale must be a positive number, got " .. tostring(c.interpolation_scale), 3)
      end
      if type(c.sample_size) ~= "number" or c.sample_size < c.patch_size then
        error("Sana: config.interpolation_scale needs config.sample_size (the latent size the positions are scaled to)", 3)
      end
      if c.width % 4 ~= 0 then error("Sana: the 2-D sincos positional embedding needs a width divisible by 4, got " .. c.width, 3) end
    end
    c.hidden = math.floor(c.width * c.mlp_ratio)
    return c
  end
  nn.resolve_config = resolve_config

  -- FLOPs of one forward's matrix work (2 per multiply-add; norms,
  -- activations and softmax left out) at batch B, an h×w latent and L caption
  -- tokens: per block the four self-attention projections and the linear
  -- attention's sums, cross-attention (query and output projections over the
  -- tokens, key and value over the caption, scores and weighted sums), and
  -- Mix-FFN (1×1 up, depthwise 3×3, 1×1 down); plus the patch embedding and
  -- the final projection. A training step is about 3× a forward (backward:
  -- two products per forward product).
  function nn.forward_flops(config, B, h, w, L)
    local c = resolve_config(config)
    L = L or c.text_len
    local T = B * (h / c.patch_size) * (w / c.patch_size)
    local D, Hd, d = c.width, c.hidden, c.head_dim
    local block = 2 * T * D * D * 4 + 4 * T * D * d
      + 2 * T * D * D * 2 + 2 * 2 * B * L * D * D + 4 * T * L * D
      + 2 * T * D * 2 * Hd + 2 * T * 2 * Hd * 9 + 2 * T * Hd * D
    local p2 = c.patch_size ^ 2
    return c.depth * block + 2 * T * c.in_channels * p2 * D + 2 * T * D * p2 * c.out_channels
  end

  -- ---- one block -------------------------------------------------------------
  local SanaBlock = Module.class("SanaBlock")
  nn.SanaBlock = SanaBlock

  function SanaBlock:init(make, c)
    local D, Hd = c.width, c.hidden
    local Dc = c.cross_heads * c.cross_head_dim
    self.config = c
    self:add_parameter("scale_shift_table", make({ 6, D }, "randn_scaled"))
    local attn1 = Container()
    local qkv_bias = c.attention_bias and true or false
    attn1:add_module("to_q", Linear(make, D, D, { bias = qkv_bias }))
    attn1:add_module("to_k", Linear(make, D, D, { bias = qkv_bias }))
    attn1:add_module("to_v", Linear(make, D, D, { bias = qkv_bias }))
    if c.qk_norm then
      attn1:add_module("norm_q", RMSNorm(make, D, 1e-5))
      attn1:add_module("norm_k", RMSNorm(make, D, 1e-5))
    end
    attn1:add_module("to_out", Container { { "0", Linear(make, D, D) } })
    self:add_module("attn1", attn1)
    -- cross attention: cross_heads × cross_head_dim wide inside, always with biases
    local attn2 = Container()
    attn2:add_module("to_q", Linear(make, D, Dc))
    attn2:add_module("to_k", Linear(make, D, Dc))
    attn2:add_module("to_v", Linear(make, D, Dc))
    if c.cross_norm then
      attn2:add_module("norm_q", RMSNorm(make, Dc, 1e-5))
      attn2:add_module("norm_k", RMSNorm(make, Dc, 1e-5))
    end
    attn2:add_module("to_out", Container { { "0", Linear(make, Dc, D) } })
    self:add_module("attn2", attn2)
    -- the norm before the feed-forward is the only one that may be affine
    if c.norm_elementwise_affine then self:add_module("norm2", LayerNorm(make, D, c.norm_eps)) end
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
    local sst, conv = f32(self.scale_shift_table)
    local m = drop_f32(sst, conv, t0:view { B, 6, D } + sst)
    local shift1, scale1, gate1 = m:select(2, 1), m:select(2, 2), m:select(2, 3)
    local shift2, scale2, gate2 = m:select(2, 4), m:select(2, 5), m:select(2, 6)
    local eps = c.norm_eps
    x = x:gated_residual(gate1, self_attention(self.attn1, x:norm_modulate(shift1, scale1, eps), c))
    x = x + cross_attention(self.attn2, x, text, mask, c)
    local n2
    if self.norm2 then
      n2 = self.norm2:forward(x) * (scale2:unsqueeze(2) + 1) + shift2:unsqueeze(2)
    else
      n2 = x:norm_modulate(shift2, scale2, eps)
    end
    x = x:gated_residual(gate2, mix_ffn(self.ff, n2, h, w))
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
    local function embedder()
      return Container { { "linear_1", Linear(make, 256, D, { init = "normal:0.02" }) },
                         { "linear_2", Linear(make, D, D, { init = "normal:0.02" }) } }
    end
    if c.guidance_embeds then
      -- diffusers' SanaCombinedTimestepGuidanceEmbeddings (Sprint): no `.emb.` level
      te:add_module("timestep_embedder", embedder())
      te:add_module("guidance_embedder", embedder())
    else
      te:add_module("emb", Container { { "timestep_embedder", embedder() } })
    end
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

  local function embed_scalar(m, t)
    local emb = grove.timestep_embedding(t, 256, 10000)
    return m.linear_2:forward(m.linear_1:forward(emb):silu())
  end

  -- The conditioning shared by all blocks: temb (B, D), t0 (B, 6D), text
  -- (B, L, D). With config.guidance_embeds, temb is the timestep's
  -- embedding plus the guidance's (Sprint); guidance is what the
  -- transformer receives (the pipeline has already scaled it).
  function Sana:condition(timestep, text, guidance, inter)
    local te = self.time_embed
    local temb
    if self.config.guidance_embeds then
      if guidance == nil then error("Sana: this model embeds the guidance scale (config.guidance_embeds): give opts.guidance", 3) end
      temb = embed_scalar(te.timestep_embedder, timestep) + embed_scalar(te.guidance_embedder, guidance)
    else
      if guidance ~= nil then error("Sana: opts.guidance given, but this model has no guidance embedding (config.guidance_embeds is off)", 3) end
      temb = embed_scalar(te.emb.timestep_embedder, timestep)
    end
    local t0 = te.linear:forward(temb:silu())
    local cp = self.caption_projection
    local y = cp.linear_2:forward(cp.linear_1:forward(text):gelu())
    local yn = self.caption_norm:forward(y)
    if inter then
      inter["time_embed.0"], inter["time_embed.1"] = t0, temb
      inter["caption_projection"], inter["caption_norm"] = y, yn
    end
    return temb, t0, yn
  end

  -- diffusers' 2-D sincos positional embedding (PatchEmbed with
  -- interpolation_scale) of an h×w token grid, (h·w, D): for each token the
  -- sin and cos of its column position, then of its row position, over D/4
  -- frequencies 10000^(−i/(D/4)); a position is index · base / size /
  -- interpolation_scale with base = sample_size / patch, so every resolution
  -- spans the same range. Computed in double, rounded once to f32.
  local function sincos_table(n, base, scale, D4)
    local out, k = {}, 0
    for i = 0, n - 1 do
      local pos = i / (n / base) / scale
      for j = 0, D4 - 1 do out[k + j + 1] = math.sin(pos / 10000 ^ (j / D4)) end
      for j = 0, D4 - 1 do out[k + D4 + j + 1] = math.cos(pos / 10000 ^ (j / D4)) end
      k = k + 2 * D4
    end
    return grove.tensor(out):view { n, 2 * D4 }
  end
  function Sana:pos_embed(h, w, device)
    local c = self.config
    self._pos_cache = self._pos_cache or {}
    local key = h .. "x" .. w .. "@" .. device
    local pe = self._pos_cache[key]
    if pe then return pe end
    local base, s, D = math.floor(c.sample_size / c.patch_size), c.interpolation_scale, c.width
    local cols = sincos_table(w, base, s, D / 4):view { 1, w, D / 2 }:expand { h, w, D / 2 }
    local rows = sincos_table(h, base, s, D / 4):view { h, 1, D / 2 }:expand { h, w, D / 2 }
    pe = grove.cat({ cols, rows }, 3):reshape { 1, h * w, D }:to(device)
    self._pos_cache = { [key] = pe }   -- one grid at a time: a sampler reuses it every step
    return pe
  end

  function Sana:embed(x)
    local c = self.config
    local pe = self.patch_embed.proj
    -- a GEMM like the others: bf16 under compute dtype "bf16" (a bf16-stored weight read as stored)
    local bf16 = self.compute_dtype == "bf16"
    local w, cw = (bf16 and nn.bf16_operand or f32)(pe.weight)
    local b, cb = f32(pe.bias)
    local xp, wp = patchify(x, c.patch_size), w:view { w:size(1), -1 }
    local y = bf16 and grove.linear_bf16(xp, wp, b) or xp:linear(wp, b)
    drop_f32(w, cw, y); drop_f32(b, cb, y)
    if c.interpolation_scale then
      y = y + self:pos_embed(x:size(2) / c.patch_size, x:size(3) / c.patch_size, x:device())
    end
    return y
  end

  function Sana:final(x, temb, h, w, inter)
    local c = self.config
    local B, D = x:size(1), c.width
    local sst, conv = f32(self.scale_shift_table)
    local m = drop_f32(sst, conv, temb:view { B, 1, D } + sst)
    x = x:norm_modulate(m:select(2, 1), m:select(2, 2), 1e-6)
    local y = self.proj_out:forward(x)
    if inter then inter["norm_out"], inter["proj_out"] = x, y end
    return unpatchify(y, h, w, c.patch_size, c.out_channels)
  end

  -- A mask of any integer or float dtype as the attention takes it
  -- (u8 or f32, nonzero = a real token): a nonzero integer stays nonzero in f32.
  local function attention_mask(mask, B, L)
    if mask == nil then return nil end
    if not grove.is_tensor(mask) then error("Sana: the text mask must be a tensor (B, L) or nil, got " .. type(mask), 3) end
    if mask:dim() ~= 2 or mask:size(1) ~= B or mask:size(2) ~= L then
      error(string.format("Sana: the text mask must be (%d, %d) like the text features, got %s", B, L, mask:shape_str()), 3)
    end
    local dt = mask:dtype()
    if dt == "u8" or dt == "f32" then return mask end
    return mask:to("f32")
  end

  -- A timestep or guidance as a (B) f32 tensor on the latents' device.
  local function per_sample(v, B, device, what)
    if type(v) == "number" then return grove.full({ B }, v, { device = device }) end
    if not grove.is_tensor(v) then error("Sana: " .. what .. " must be a number or a tensor (B), got " .. type(v), 3) end
    if v:dim() == 0 then v = v:view { 1 } end
    if v:dim() ~= 1 or (v:size(1) ~= B and v:size(1) ~= 1) then
      error("Sana: " .. what .. " must be (" .. B .. "), got " .. v:shape_str(), 3)
    end
    if v:size(1) ~= B then v = v:expand { B } end
    if v:dtype() ~= "f32" then v = v:to("f32") end
    return v
  end

  -- x (B, H, W, C) latents; timestep (B) exactly what the transformer
  -- receives (σ·1000 for grove's models; the pipeline's scaling is the
  -- sampler's business); text (B, L, caption_channels); mask (B, L) of any
  -- integer or float dtype (nonzero = token, 0 = padding) or nil.
  -- opts.guidance (B) or a number: the guidance a Sprint model embeds.
  -- opts.hook(i, x_in, x_out) sees every block's input and output tokens;
  -- opts.inter, a table, receives the intermediates under diffusers' module
  -- names (patch_embed, time_embed.0, time_embed.1, caption_projection,
  -- caption_norm, transformer_blocks.0 …, norm_out, proj_out).
  function Sana:forward(x, timestep, text, mask, opts)
    local c = self.config
    if not grove.is_tensor(x) or x:dim() ~= 4 or x:size(4) ~= c.in_channels then
      error("Sana: latents must be (B, H, W, " .. c.in_channels .. "), got " .. (grove.is_tensor(x) and x:shape_str() or type(x)), 2)
    end
    if not grove.is_tensor(text) or text:dim() ~= 3 or text:size(1) ~= x:size(1) or text:size(3) ~= c.caption_channels then
      error("Sana: text features must be (" .. x:size(1) .. ", L, " .. c.caption_channels .. "), got " ..
            (grove.is_tensor(text) and text:shape_str() or type(text)), 2)
    end
    -- latents and features of another float dtype (a bf16 text encoder's) compute in f32
    if x:dtype() ~= "f32" then x = x:to("f32") end
    if text:dtype() ~= "f32" then text = text:to("f32") end
    local B = x:size(1)
    local h, w = x:size(2) / c.patch_size, x:size(3) / c.patch_size
    local guidance = opts and opts.guidance
    timestep = per_sample(timestep, B, x:device(), "the timestep")
    if guidance ~= nil then guidance = per_sample(guidance, B, x:device(), "opts.guidance") end
    mask = attention_mask(mask, B, text:size(2))
    local inter = opts and opts.inter
    local temb, t0, y = self:condition(timestep, text, guidance, inter)
    local tokens = self:embed(x)
    if inter then inter["patch_embed"] = tokens end
    local hook = opts and opts.hook
    for i, block in ipairs(self.blocks) do
      local out = block:forward(tokens, t0, y, mask, h, w)
      if hook then hook(i, tokens, out) end
      if inter then inter["transformer_blocks." .. (i - 1)] = out end
      tokens = out
    end
    return self:final(tokens, temb, h, w, inter)
  end

  function Sana:describe()
    local c = self.config
    return string.format("Sana depth %d, width %d, %d parameters", #self.blocks, c.width, self:num_parameters())
  end

  nn.Sana = Sana
  require "grove.nn.flow"(grove)
end
