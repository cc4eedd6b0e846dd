-- The blocks of DC-AE (diffusers' AutoencoderDC) as grove.nn modules on
-- NHWC grids, named as diffusers names them, and its encoder and decoder
-- built from the settings of vae_config.lua. Norms are per pixel over the
-- channels: NHWC's last dimension, so the ops need no transposes. Weights
-- stay in their stored dtype and are converted exactly where used. With
-- compute dtype "bf16" (Module:set_compute_dtype) the convolutions and the
-- attention's projections round their operands to bf16 and sum in f32
-- (grove.conv2d_bf16, grove.linear_bf16); depthwise convolutions, norms
-- and the linear attention's sums stay f32.
local Module = require "grove.nn.module"

return function(grove)
  local nn = grove.nn
  local f32, drop = nn.f32, nn.drop_f32
  local Conv2d, Linear, Container = nn.Conv2d, nn.Linear, nn.Container

  local NORM_EPS = 1e-5   -- every norm of the autoencoder
  local ATTN_EPS = 1e-15  -- the linear attention's denominator

  -- Frees intermediates at once when nothing is recorded (inference):
  -- without a tape nothing else refers to them, and a 4096² decode's
  -- activations should not wait for the collector. With a tape they are
  -- the backward's, and stay.
  local function spent(a, b, c)
    if grove.is_grad_enabled() then return end
    if a then a:free() end
    if b then b:free() end
    if c then c:free() end
  end

  local function act(x, name)
    if name == "silu" then return x:silu() end
    return x:relu()
  end

  local function conv3(make, cin, cout, o)
    o = o or {}
    return Conv2d(make, cin, cout, 3, { padding = 1, stride = o.stride, bias = o.bias })
  end

  -- A norm per pixel over the channels (NHWC's last dimension): RMSNorm
  -- with weight and bias, or BatchNorm with its running statistics (the
  -- inference form; grove does not update them).
  local Norm = Module.class("DCAENorm")
  function Norm:init(make, kind, c)
    self.kind = kind
    self:add_parameter("weight", make({ c }, "ones"))
    self:add_parameter("bias", make({ c }, "zeros"))
    if kind == "batch_norm" then
      self:add_parameter("running_mean", make({ c }, "zeros"))
      self:add_parameter("running_var", make({ c }, "ones"))
    end
  end
  function Norm:forward(x)
    local w, cw = f32(self.weight)
    local b, cb = f32(self.bias)
    local y
    if self.kind == "rms_norm" then
      local r = x:rms_norm(w, NORM_EPS)
      y = r + b
      spent(r)
    else
      local m, cm = f32(self.running_mean)
      local v, cv = f32(self.running_var)
      local scale = w / (v + NORM_EPS):sqrt()
      local centred = x - m
      local scaled = centred * scale
      y = scaled + b
      spent(centred, scaled)
      drop(m, cm, y); drop(v, cv, y)
    end
    drop(w, cw, y); drop(b, cb, y)
    return y
  end

  -- conv 3×3 (bias), activation, conv 3×3 (no bias), norm, + input.
  local ResBlock = Module.class("DCAEResBlock")
  function ResBlock:init(make, c, norm, act_name)
    self.act = act_name
    self:add_module("conv1", conv3(make, c, c))
    self:add_module("conv2", conv3(make, c, c, { bias = false }))
    self:add_module("norm", Norm(make, norm, c))
  end
  function ResBlock:forward(x)
    local a = self.conv1:forward(x)
    local h = act(a, self.act)
    spent(a)
    local c = self.conv2:forward(h)
    spent(h)
    local n = self.norm:forward(c)
    spent(c)
    local y = n + x
    spent(n)
    return y
  end

  -- SanaMultiscaleLinearAttention: one fused q|k|v projection (to_q, to_k,
  -- to_v are its thirds), per kernel size k a depthwise k×k aggregation of
  -- that projection and a 1×1 mix within each (head, q|k|v) group; the
  -- projection and its aggregates side by side, read as heads of 3 × head_dim
  -- consecutive channels (q, k, v); ReLU linear attention per head
  -- (Σ v (k·q) / (Σ k·q + 1e-15), no softmax, no 1/√d; the N×N form diffusers
  -- takes for tiny grids is the same sum); to_out, norm, + input.
  local Attention = Module.class("DCAEAttention")
  function Attention:init(make, c, head_dim, scales, norm)
    local heads = math.floor(c / head_dim)
    local inner = heads * head_dim
    self.head_dim, self.inner, self.heads = head_dim, inner, heads
    self:add_module("to_q", Linear(make, c, inner, { bias = false }))
    self:add_module("to_k", Linear(make, c, inner, { bias = false }))
    self:add_module("to_v", Linear(make, c, inner, { bias = false }))
    local ms = self:add_module("to_qkv_multiscale", Container())
    for i, k in ipairs(scales) do
      ms:add_module(tostring(i - 1), Container {
        { "proj_in", Conv2d(make, 3 * inner, 3 * inner, k, { padding = (k - 1) / 2, groups = 3 * inner, bias = false }) },
        { "proj_out", Conv2d(make, 3 * inner, 3 * inner, 1, { groups = 3 * heads, bias = false }) },
      })
    end
    self.n_scales = #scales
    self:add_module("to_out", Linear(make, inner * (1 + #scales), c, { bias = false }))
    self:add_module("norm_out", Norm(make, norm, c))
  end
  function Attention:forward(x)
    local B, H, W = x:size(1), x:size(2), x:size(3)
    local d = self.head_dim
    local wq, cq = f32(self.to_q.weight)
    local wk, ck = f32(self.to_k.weight)
    local wv, cv = f32(self.to_v.weight)
    local wqkv = grove.cat({ wq, wk, wv }, 1)
    drop(wq, cq, wqkv); drop(wk, ck, wqkv); drop(wv, cv, wqkv)
    local qkv
    if self.compute_dtype == "bf16" then qkv = grove.linear_bf16(x, wqkv) else qkv = x:linear(wqkv) end
    local parts = { qkv }
    for i = 0, self.n_scales - 1 do
      local m = self.to_qkv_multiscale[tostring(i)]
      parts[#parts + 1] = m.proj_out:forward(m.proj_in:forward(qkv))
    end
    local all = qkv
    if #parts > 1 then
      all = grove.cat(parts, 4)
      for _, p in ipairs(parts) do spent(p) end
    end
    drop(wqkv, true, qkv)
    local heads = all:size(4) / (3 * d)
    local t = all:view { B, H * W, heads, 3, d }
    local function part(i) return t:select(4, i):reshape { B, H * W, heads * d } end
    local q, k, v = part(1), part(2), part(3)
    spent(all)
    local a = grove.linear_attention(q, k, v, d, ATTN_EPS)
    spent(q, k, v)
    local o = self.to_out:forward(a)
    spent(a)
    local n = self.norm_out:forward(o:view { B, H, W, -1 })
    spent(o)
    local y = n + x
    spent(n)
    return y
  end

  -- GLUMBConv: 1×1 to 2 × 4C (bias), SiLU, depthwise 3×3 (bias), value ·
  -- SiLU(gate) (the value is the first half), 1×1 to C, RMSNorm, + input.
  local GLUMBConv = Module.class("DCAEGLUMBConv")
  function GLUMBConv:init(make, c)
    local hid = 4 * c
    self:add_module("conv_inverted", Conv2d(make, c, 2 * hid, 1))
    self:add_module("conv_depth", Conv2d(make, 2 * hid, 2 * hid, 3, { padding = 1, groups = 2 * hid }))
    self:add_module("conv_point", Conv2d(make, hid, c, 1, { bias = false }))
    self:add_module("norm", Norm(make, "rms_norm", c))
  end
  function GLUMBConv:forward(x)
    local a = self.conv_inverted:forward(x)
    local b = a:silu()
    spent(a)
    a = self.conv_depth:forward(b)
    spent(b)
    b = a:glu_silu()
    spent(a)
    a = self.conv_point:forward(b)
    spent(b)
    b = self.norm:forward(a)
    spent(a)
    local y = b + x
    spent(b)
    return y
  end

  local EfficientViTBlock = Module.class("DCAEEfficientViTBlock")
  function EfficientViTBlock:init(make, c, head_dim, scales, norm)
    self:add_module("attn", Attention(make, c, head_dim, scales, norm))
    self:add_module("conv_out", GLUMBConv(make, c))
  end
  function EfficientViTBlock:forward(x)
    local a = self.attn:forward(x)
    local y = self.conv_out:forward(a)
    spent(a)
    return y
  end

  -- 2× down: a stride-2 3×3 convolution (padding 1), or a 3×3 convolution to
  -- C/4 then pixel-unshuffle; the shortcut pixel-unshuffles the input and
  -- averages consecutive channel groups down to the output width.
  local Down = Module.class("DCAEDownBlock")
  function Down:init(make, cin, cout, unshuffle, shortcut)
    self.unshuffle, self.shortcut, self.cout = unshuffle, shortcut, cout
    self:add_module("conv", conv3(make, cin, unshuffle and cout / 4 or cout, { stride = unshuffle and 1 or 2 }))
  end
  function Down:forward(x)
    local y = self.conv:forward(x)
    if self.unshuffle then
      local c = y
      y = c:pixel_unshuffle(2)
      spent(c)
    end
    if not self.shortcut then return y end
    local s = x:pixel_unshuffle(2)
    local B, H, W, C = s:size(1), s:size(2), s:size(3), s:size(4)
    local m = s:view { B, H, W, self.cout, C / self.cout }:mean(5)
    spent(s)
    local out = y + m
    spent(y, m)
    return out
  end

  -- Each channel of x (B, H, W, C) r times in place: (B, H, W, C·r).
  local function repeat_channels(x, r)
    if r == 1 then return x end
    local B, H, W, C = x:size(1), x:size(2), x:size(3), x:size(4)
    return x:unsqueeze(5):expand { B, H, W, C, r }:reshape { B, H, W, C * r }
  end

  -- 2× up: nearest ×2 then a 3×3 convolution, or a 3×3 convolution to 4C
  -- then pixel-shuffle; the shortcut repeats each input channel in place up
  -- to 4 × the output width and pixel-shuffles.
  local Up = Module.class("DCAEUpBlock")
  function Up:init(make, cin, cout, interpolate, shortcut)
    self.interpolate, self.shortcut, self.repeats = interpolate, shortcut, 4 * cout / cin
    self:add_module("conv", conv3(make, cin, interpolate and cout or 4 * cout))
  end
  function Up:forward(x)
    local y
    if self.interpolate then
      local u = x:upsample_nearest(2)
      y = self.conv:forward(u)
      spent(u)
    else
      local c = self.conv:forward(x)
      y = c:pixel_shuffle(2)
      spent(c)
    end
    if not self.shortcut then return y end
    local r = repeat_channels(x, self.repeats)
    local s = r:pixel_shuffle(2)
    if r ~= x then spent(r) end
    local out = y + s
    spent(y, s)
    return out
  end

  -- Runs the children of a stage container in order. x is an
  -- intermediate of the caller's: in inference it is freed once consumed.
  local function run_stage(stage, x)
    for _, c in ipairs(stage:children()) do
      local y = c[2]:forward(x)
      spent(x)
      x = y
      grove.collect_if_grown() -- handles of what was freed or dropped
    end
    return x
  end

  local function make_block(make, kind, c, s, scales, norm, act_name)
    if kind == "ResBlock" then return ResBlock(make, c, norm, act_name) end
    return EfficientViTBlock(make, c, s.head_dim, scales, norm)
  end

  local Encoder = Module.class("DCAEEncoder")
  function Encoder:init(make, s)
    local e = s.encoder
    self.s = s
    if e.layers[1] > 0 then self:add_module("conv_in", conv3(make, s.img_ch, e.ch[1]))
    else self:add_module("conv_in", Down(make, s.img_ch, e.ch[2], s.unshuffle, false)) end
    local stages = self:add_module("down_blocks", Container())
    for i = 1, e.n do
      local st = stages:add_module(tostring(i - 1), Container())
      for l = 1, e.layers[i] do
        st:add_module(tostring(l - 1), make_block(make, e.types[i], e.ch[i], s, e.scales[i], "rms_norm", "silu"))
      end
      if i < e.n and e.layers[i] > 0 then
        st:add_module(tostring(e.layers[i]), Down(make, e.ch[i], e.ch[i + 1], s.unshuffle, true))
      end
    end
    self:add_module("conv_out", conv3(make, e.ch[e.n], s.lat_ch))
  end
  -- images (B, H, W, in_channels) -> latents (B, H/f, W/f, latent_channels)
  function Encoder:forward(x)
    local s = self.s
    local h = self.conv_in:forward(x)
    for i = 0, s.encoder.n - 1 do h = run_stage(self.down_blocks[tostring(i)], h) end
    local out = self.conv_out:forward(h)
    if s.out_shortcut then
      local B, H, W, C = h:size(1), h:size(2), h:size(3), h:size(4)
      local m = h:view { B, H, W, s.lat_ch, C / s.lat_ch }:mean(5)
      local sum = out + m
      spent(out, m)
      out = sum
    end
    spent(h)
    return out
  end

  local Decoder = Module.class("DCAEDecoder")
  function Decoder:init(make, s)
    local d = s.decoder
    self.s = s
    self:add_module("conv_in", conv3(make, s.lat_ch, d.ch[d.n]))
    local stages = self:add_module("up_blocks", Container())
    for i = 1, d.n do
      local st = stages:add_module(tostring(i - 1), Container())
      local first = 0
      if i < d.n and d.layers[i] > 0 then
        st:add_module("0", Up(make, d.ch[i + 1], d.ch[i], s.interpolate, true))
        first = 1
      end
      for l = 1, d.layers[i] do
        st:add_module(tostring(first + l - 1),
                      make_block(make, d.types[i], d.ch[i], s, d.scales[i], d.norms[i], d.acts[i]))
      end
    end
    local c0 = d.layers[1] > 0 and d.ch[1] or d.ch[2]
    self:add_module("norm_out", Norm(make, "rms_norm", c0))
    if d.layers[1] > 0 then self:add_module("conv_out", conv3(make, c0, s.img_ch))
    else self:add_module("conv_out", Up(make, c0, s.img_ch, s.interpolate, false)) end
  end
  -- latents (B, h, w, latent_channels) -> images (B, h·f, w·f, in_channels)
  function Decoder:forward(z)
    local s = self.s
    local h = self.conv_in:forward(z)
    if s.in_shortcut then
      local r = repeat_channels(z, s.decoder.ch[s.decoder.n] / s.lat_ch)
      local sum = h + r
      spent(h)
      if r ~= z then spent(r) end
      h = sum
    end
    for i = s.decoder.n - 1, 0, -1 do h = run_stage(self.up_blocks[tostring(i)], h) end
    local n = self.norm_out:forward(h)
    spent(h)
    local a = act(n, s.conv_act)
    spent(n)
    local y = self.conv_out:forward(a)
    spent(a)
    return y
  end


  return { Encoder = Encoder, Decoder = Decoder }
end
