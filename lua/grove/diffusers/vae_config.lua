-- The settings of a DC-AE (diffusers' AutoencoderDC) from its config.json:
-- every key checked, diffusers' defaults for the keys left out, and every
-- option grove does not compute refused with its key and value
-- (docs/diffusers.md, "DC-AE").
return function(grove, diffusers)
  local CLASS = "AutoencoderDC"
  local MAX_SIZE, MAX_LAYERS, MAX_STAGES, MAX_KERNEL = 2 ^ 17, 4096, 16, 31

  -- of AutoencoderDC.__init__).
  local DEFAULTS = {
    in_channels = 3, latent_channels = 32, attention_head_dim = 32,
    encoder_block_types = "ResBlock", decoder_block_types = "ResBlock",
    encoder_block_out_channels = { 128, 256, 512, 512, 1024, 1024 },
    decoder_block_out_channels = { 128, 256, 512, 512, 1024, 1024 },
    encoder_layers_per_block = { 2, 2, 2, 3, 3, 3 }, decoder_layers_per_block = { 3, 3, 3, 3, 3, 3 },
    encoder_qkv_multiscales = { {}, {}, {}, { 5 }, { 5 }, { 5 } },
    decoder_qkv_multiscales = { {}, {}, {}, { 5 }, { 5 }, { 5 } },
    upsample_block_type = "pixel_shuffle", downsample_block_type = "pixel_unshuffle",
    decoder_norm_types = "rms_norm", decoder_act_fns = "silu",
    encoder_out_shortcut = true, decoder_in_shortcut = true, decoder_conv_act_fn = "relu",
    scaling_factor = 1.0,
  }
  local INERT = { _class_name = true, _diffusers_version = true, _name_or_path = true }

  local ACTS = { silu = "silu", swish = "silu", relu = "relu" }
  local BLOCKS = { ResBlock = true, EfficientViTBlock = true }
  local NORMS = { rms_norm = true, batch_norm = true }

  local show = diffusers.show_value

  -- The autoencoder's settings from a parsed config.json; where names the
  -- file. Every key is checked; an option grove does not compute is refused
  -- with its key and value.
  local function read_config(config, where)
    where = where or "vae config"
    if type(config) ~= "table" then error(where .. ": expected a config table, got " .. type(config), 0) end
    local get, bad = diffusers.config_reader(config, CLASS, DEFAULTS, INERT, where)
    -- Sizes are bounded before anything is built from them: a config from a
    -- stranger must not make grove loop for ever or size a tensor past
    -- memory (the released autoencoder: 6 stages, widths up to 1024).
    local function int(k, min)
      local v = get(k)
      if type(v) ~= "number" or v % 1 ~= 0 or v < (min or 1) or v > MAX_SIZE then
        bad(k, "an integer from " .. (min or 1) .. " to " .. MAX_SIZE)
      end
      return v
    end
    local function bool(k)
      local v = get(k)
      if type(v) ~= "boolean" then bad(k, "true or false") end
      return v
    end
    local function int_list(k, min, max)
      local v = get(k)
      if type(v) ~= "table" or #v == 0 or #v > MAX_STAGES then bad(k, "a list of 1 to " .. MAX_STAGES .. " integers") end
      for _, x in ipairs(v) do
        if type(x) ~= "number" or x % 1 ~= 0 or x < min or x > max then
          bad(k, "a list of integers from " .. min .. " to " .. max)
        end
      end
      return v
    end
    -- A string for every stage or one list entry per stage.
    local function per_stage(k, n, allowed, what)
      local v = get(k)
      local out = {}
      if type(v) == "string" then for i = 1, n do out[i] = v end
      elseif type(v) == "table" and #v == n then for i = 1, n do out[i] = v[i] end
      else bad(k, "a string or a list of " .. n .. " strings (one per stage)") end
      for i = 1, n do
        if not allowed[out[i]] then
          local names = {}
          for a in pairs(allowed) do names[#names + 1] = '"' .. a .. '"' end
          table.sort(names)
          bad(k, what .. " " .. table.concat(names, ", ") .. " (" .. show(out[i]) .. " is not implemented)")
        end
      end
      return out
    end

    local s = { img_ch = int("in_channels"), lat_ch = int("latent_channels"), head_dim = int("attention_head_dim") }
    local sf = get("scaling_factor")
    if type(sf) ~= "number" or sf ~= sf or sf == 0 or sf == math.huge or sf == -math.huge then
      bad("scaling_factor", "a nonzero finite number")
    end
    s.scaling_factor = sf

    for _, side in ipairs { "encoder", "decoder" } do
      local ch = int_list(side .. "_block_out_channels", 1, MAX_SIZE)
      local n = #ch
      local layers = int_list(side .. "_layers_per_block", 0, MAX_LAYERS)
      if #layers ~= n then
        bad(side .. "_layers_per_block", n .. " entries (one per stage of " .. side .. "_block_out_channels)")
      end
      for i = 2, n do
        if layers[i] == 0 then
          -- a stage without layers drops its sampling block: the size
          -- factor would no longer be 2^(stages - 1)
          bad(side .. "_layers_per_block", "at least 1 layer in every stage but the first (stage " .. (i - 1) .. " has 0)")
        end
      end
      if layers[1] == 0 and n < 2 then bad(side .. "_layers_per_block", "a layer in the first stage when there is only one") end
      local types = per_stage(side .. "_block_types", n, BLOCKS, "block types among")
      local sc = get(side .. "_qkv_multiscales")
      if type(sc) ~= "table" or #sc ~= n then bad(side .. "_qkv_multiscales", "a list of " .. n .. " lists of kernel sizes") end
      local scales = {}
      for i = 1, n do
        if type(sc[i]) ~= "table" then bad(side .. "_qkv_multiscales", "a list of " .. n .. " lists of kernel sizes") end
        scales[i] = {}
        for j, k in ipairs(sc[i]) do
          if type(k) ~= "number" or k % 1 ~= 0 or k < 1 or k % 2 == 0 or k > MAX_KERNEL then
            bad(side .. "_qkv_multiscales", "odd kernel sizes from 1 to " .. MAX_KERNEL .. " (a kernel of size k pads "
                .. "k // 2, so an even one changes the grid)")
          end
          scales[i][j] = k
        end
      end
      for i = 1, n do
        if types[i] == "EfficientViTBlock" and layers[i] > 0 and ch[i] < s.head_dim then
          bad(side .. "_block_out_channels", "at least attention_head_dim = " .. s.head_dim
              .. " channels in stage " .. (i - 1) .. " (an EfficientViT stage needs a head)")
        end
      end
      s[side] = { ch = ch, n = n, layers = layers, types = types, scales = scales }
    end
    local enc, dec = s.encoder, s.decoder
    if enc.n ~= dec.n then
      bad("decoder_block_out_channels", enc.n .. " stages like encoder_block_out_channels (one size factor for both halves)")
    end
    s.factor = 2 ^ (enc.n - 1)

    local down = get("downsample_block_type")
    if down ~= "Conv" and down ~= "pixel_unshuffle" then
      bad("downsample_block_type", '"Conv" (stride-2 convolution) or "pixel_unshuffle"')
    end
    s.unshuffle = down == "pixel_unshuffle"
    local up = get("upsample_block_type")
    if up ~= "interpolate" and up ~= "pixel_shuffle" then
      bad("upsample_block_type", '"interpolate" (nearest, then a convolution) or "pixel_shuffle"')
    end
    s.interpolate = up == "interpolate"
    dec.norms = per_stage("decoder_norm_types", dec.n, NORMS, "norm types among")
    dec.acts = per_stage("decoder_act_fns", dec.n, ACTS, "activations among")
    local ca = get("decoder_conv_act_fn")
    if not ACTS[ca] then bad("decoder_conv_act_fn", '"relu", "silu" or "swish"') end
    s.conv_act = ACTS[ca]
    for i = 1, dec.n do dec.acts[i] = ACTS[dec.acts[i]] end
    s.out_shortcut = bool("encoder_out_shortcut")
    s.in_shortcut = bool("decoder_in_shortcut")

    -- The shortcuts average or repeat whole channel groups.
    local function divides(k, a, b, what)
      if b % a ~= 0 then bad(k, what) end
    end
    for i = 1, enc.n - 1 do
      local cin, cout = enc.ch[i], enc.ch[i + 1]
      if enc.layers[i] > 0 then
        divides("encoder_block_out_channels", cout, 4 * cin, string.format(
          "stage %d's down-sampling shortcut to average groups of 4 × %d / %d channels (not an integer)", i - 1, cin, cout))
      end
      if s.unshuffle then
        divides("encoder_block_out_channels", 4, cout, "channel counts divisible by 4 after the first stage (pixel_unshuffle)")
      end
    end
    for i = 1, dec.n - 1 do
      local cin, cout = dec.ch[i + 1], dec.ch[i]
      divides("decoder_block_out_channels", cin, 4 * cout, string.format(
        "stage %d's up-sampling shortcut to repeat each of %d channels 4 × %d / %d times (not an integer)", i - 1, cin, cout, cin))
    end
    if s.out_shortcut then
      divides("encoder_block_out_channels", s.lat_ch, enc.ch[enc.n], "a last stage width divisible by latent_channels = "
              .. s.lat_ch .. " (encoder_out_shortcut averages channel groups)")
    end
    if s.in_shortcut then
      divides("decoder_block_out_channels", s.lat_ch, dec.ch[dec.n], "a last stage width divisible by latent_channels = "
              .. s.lat_ch .. " (decoder_in_shortcut repeats each latent channel)")
    end
    return s
  end
  diffusers.vae_config = read_config
  return read_config
end
