-- grove.diffusers.vae (DC-AE, diffusers' AutoencoderDC): the shared
-- fixture's float64 outputs of diffusers' own code; an independent PyTorch
-- reference (tests/reference/dcae_ref.py) on configs that use the options
-- the fixture does not (pixel (un)shuffle sampling, empty first stages,
-- several multiscale kernels, BatchNorm + ReLU decoder stages, no
-- shortcuts, heads narrower than the stage, BF16 weights); tiling; the
-- released SANA autoencoder built as shapes only; gradients; bad input.
local spec = require "spec"

local root = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$") or "."
local python = os.getenv("GROVE_TORCH_PYTHON") or "/usr/bin/python3"
local diffusers = grove.diffusers
local json = grove.json

-- The fixtures README's measure: max |a − b| / max |b|.
local function err(a, b) return (a - b):abs():max():item() / b:abs():max():item() end
-- NCHW (the files, as diffusers) to NHWC (grove).
local function nhwc(t) return t:permute { 1, 3, 4, 2 }:contiguous() end

local function write_json(path, v) spec.write_all(path, json.encode(v)) end

local function is_dir(p) return grove.C.grove_path_kind(p) == grove.C.GROVE_PATH_DIR end

spec.describe("DC-AE: the tiny-a fixture (diffusers' AutoencoderDC, float64)", function()
  local fx = spec.fixture_path("dcae/tiny-a")
  if not is_dir(fx) then spec.skip("the shared fixtures are not at " .. fx .. " (set GROVE_FIXTURES)"); return end
  local vae = diffusers.vae(fx)

  for _, case in ipairs {
    { "decode_4x4", "latents", "sample", "decode", "batch 2 → 128×128" },
    { "decode_2x3", "latents", "sample", "decode", "the deepest stage takes diffusers' N×N branch" },
    { "encode_128x128", "images", "latent", "encode", "batch 2" },
    { "encode_64x96", "images", "latent", "encode", "non-square" },
  } do
    spec.it(case[1] .. " (" .. case[5] .. ") within 1e-5", function()
      local x = nhwc(grove.load_safetensors(fx .. "/" .. case[1] .. ".in.safetensors")[case[2]])
      local want = nhwc(grove.load_safetensors(fx .. "/" .. case[1] .. ".out.f64.safetensors")[case[3]])
      local y = vae[case[4]](vae, x)
      spec.eq(y:shape_str(), want:shape_str(), "output shape")
      local e = err(y, want)
      print(string.format("    %-16s %.2e", case[1], e))
      spec.assert(e <= 1e-5, string.format("%s: error %.3e", case[1], e))
    end)
  end

  spec.it("is a grove.nn module: every tensor of the file is a parameter under its diffusers name", function()
    local file = grove.load_safetensors(fx .. "/diffusion_pytorch_model.safetensors")
    local params, n, count = spec.params(vae), 0, 0
    for name, t in pairs(file) do
      n = n + 1
      spec.assert(params[name] ~= nil, "no parameter " .. name)
      spec.eq(params[name]:shape_str(), t:shape_str(), name)
      spec.assert(params[name].requires_grad, name .. " is trainable")
    end
    for _ in pairs(params) do count = count + 1 end
    spec.eq(count, n, "as many parameters as tensors in the file")
    spec.eq(vae:num_parameters(), 194843)
    spec.eq(vae.scaling_factor, 0.41407)
    spec.eq(vae.factor, 32)
    spec.assert(#vae.encoder:parameters() + #vae.decoder:parameters() == n, "encoder and decoder hold them all")
  end)

  spec.it("the decoder's forward records on the tape: every decoder parameter gets a finite gradient", function()
    local z = nhwc(grove.load_safetensors(fx .. "/decode_2x3.in.safetensors").latents)
    local y = vae.decoder:forward(z)
    local loss = (y * y):mean()
    loss:backward()
    local nonzero, total = 0, 0
    for _, np in ipairs(vae.decoder:named_parameters()) do
      local g = np[2].grad
      spec.assert(g ~= nil, np[1] .. " has no gradient")
      local m = g:abs():max():item()
      spec.assert(m == m and m < math.huge, np[1] .. ": gradient not finite")
      total = total + 1
      if m > 0 then nonzero = nonzero + 1 end
    end
    spec.eq(nonzero, total, "every decoder parameter moves the loss")
    vae:zero_grad()
  end)

  spec.it("decode and encode record nothing (inference) and leave the inputs alone", function()
    local z = nhwc(grove.load_safetensors(fx .. "/decode_2x3.in.safetensors").latents)
    local before = z:clone()
    local y = vae:decode(z)
    spec.assert(y:grad_fn() == nil, "no tape")
    spec.eq(spec.max_diff(z, before), 0)
  end)

  spec.it("meta = true builds shapes only from config.json; it cannot run", function()
    local m = diffusers.vae(fx, { meta = true })
    spec.eq(m:num_parameters(), 194843)
    spec.assert(tostring(m):find("shapes only", 1, true), tostring(m))
    spec.raises(function() m:decode(grove.zeros { 1, 2, 2, 8 }) end, "meta = true")
  end)
end)

-- compute = "bf16": convolutions and projections on bf16-rounded operands
-- with f32 sums. Each such product is off by at most 2·2^-8 relative (both
-- operands rounded, unit roundoff 2^-8) of its output, and the norms keep
-- the layers' gains near 1, so to first order the decode is off by at most
-- n·2^-7 of max |f32| for n bf16 products (every Linear and every Conv2d
-- but the depthwise ones). The f32 decode stays bit for bit as it was.
spec.describe("DC-AE: bf16 compute on the tiny-a fixture", function()
  local fx = spec.fixture_path("dcae/tiny-a")
  if not is_dir(fx) then spec.skip("the shared fixtures are not at " .. fx .. " (set GROVE_FIXTURES)"); return end

  local function bf16_products(m)
    local n = 0
    for _, np in ipairs(m:named_parameters()) do
      local w = np[2]
      if np[1]:find("weight$") and (w:dim() == 2 or (w:dim() == 4 and not (w:size(2) == 1 and w:size(3) > 1))) then
        n = n + 1
      end
    end
    return n
  end

  for _, case in ipairs { "decode_4x4", "decode_2x3" } do
    spec.it(case .. ": within the bf16 bound of the f32 decode, f32 unchanged", function()
      local vae = diffusers.vae(fx)
      local z = nhwc(grove.load_safetensors(fx .. "/" .. case .. ".in.safetensors").latents)
      local want = nhwc(grove.load_safetensors(fx .. "/" .. case .. ".out.f64.safetensors").sample)
      local y32 = vae:decode(z)
      local b16 = diffusers.vae(fx, { compute = "bf16" })
      spec.eq(b16.decoder.conv_out.compute_dtype, "bf16")
      spec.assert(tostring(b16):find("bf16 compute", 1, true), tostring(b16))
      local y16 = b16:decode(z)
      local n = bf16_products(b16.decoder)
      local e = err(y16, y32)
      print(string.format("    %-16s bf16 vs f32 %.2e (bound %d·2^-7 = %.2e), vs float64 %.2e", case, e, n, n * 2 ^ -7,
                          err(y16, want)))
      spec.assert(e <= n * 2 ^ -7, string.format("bf16 decode off by %.3e", e))
      spec.assert(e > 1e-5, "the bf16 decode rounds (it is not the f32 one)")
      -- the reference paths (rounded operands, f32 kernels): the same bound
      grove.set_conv_bf16_dnnl(false); grove.set_gemm_bf16_dnnl(false)
      local ok, yr = pcall(b16.decode, b16, z)
      grove.set_conv_bf16_dnnl(true); grove.set_gemm_bf16_dnnl(true)
      if not ok then error(yr, 0) end
      spec.assert(err(yr, y32) <= n * 2 ^ -7, "reference path")
      -- back to f32: the very same bits, and the fixture's bar
      b16:set_compute_dtype("f32")
      spec.eq(spec.max_diff(b16:decode(z), y32), 0, "f32 decode unchanged")
      spec.assert(err(y32, want) <= 1e-5, "f32 within the fixture's bar")
    end)
  end

  spec.it("the pipeline's compute option reaches the DC-AE; bad values are refused", function()
    local dir = spec.tmpdir()
    diffusers.tiny_folder(dir, { seed = 1 })
    local pipe = diffusers.pipeline(dir, { compute = "bf16" })
    spec.eq(pipe.vae.compute_dtype, "bf16")
    spec.eq(pipe.vae.decoder.conv_in.compute_dtype, "bf16")
    spec.eq(diffusers.pipeline(dir).vae.compute_dtype, nil)
    spec.raises(function() diffusers.vae(fx, { compute = "f16" }) end, 'diffusers.vae: compute must be "f32" or "bf16", got f16')
  end)
end)

spec.describe("DC-AE: the released SANA autoencoder (dc-ae-f32c32-sana-1.0), shapes only", function()
  spec.it("has diffusers' parameter counts: encoder 153,027,104, decoder 159,223,171", function()
    local dir = spec.tmpdir()
    local sana = {
      _class_name = "AutoencoderDC", _diffusers_version = "0.32.0", attention_head_dim = 32,
      decoder_act_fns = "silu", decoder_block_out_channels = { 128, 256, 512, 512, 1024, 1024 },
      decoder_block_types = { "ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock",
                              "EfficientViTBlock" },
      decoder_layers_per_block = { 3, 3, 3, 3, 3, 3 }, decoder_norm_types = "rms_norm",
      decoder_qkv_multiscales = { json.array {}, json.array {}, json.array {}, { 5 }, { 5 }, { 5 } },
      downsample_block_type = "Conv", encoder_block_out_channels = { 128, 256, 512, 512, 1024, 1024 },
      encoder_block_types = { "ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock",
                              "EfficientViTBlock" },
      encoder_layers_per_block = { 2, 2, 2, 3, 3, 3 },
      encoder_qkv_multiscales = { json.array {}, json.array {}, json.array {}, { 5 }, { 5 }, { 5 } },
      in_channels = 3, latent_channels = 32, scaling_factor = 0.41407, upsample_block_type = "interpolate",
    }
    write_json(dir .. "/config.json", sana)
    local m = diffusers.vae(dir, { meta = true })
    spec.eq(m.encoder:num_parameters(), 153027104)
    spec.eq(m.decoder:num_parameters(), 159223171)
    spec.eq(m.factor, 32)
    spec.eq(m.latent_channels, 32)
    spec.run("rm -rf " .. dir)
  end)
end)

-- Configs that use what the fixture does not. b: pixel_unshuffle /
-- pixel_shuffle sampling, an empty first stage (conv_in is a down-sampling
-- block, conv_out an up-sampling one), mixed block types, two multiscale
-- kernels, SiLU at the decoder's end, 2×2 latents (the N×N branch with head
-- dim 4). c: BatchNorm + ReLU decoder stages, an EfficientViT stage without
-- multiscale kernels, one head narrower than its 12-channel stage, no
-- shortcuts at the ends, "swish", BF16 weights.
local CONFIGS = {
  b = {
    config = {
      in_channels = 3, latent_channels = 4, attention_head_dim = 4,
      encoder_block_out_channels = { 8, 16, 16, 32 }, decoder_block_out_channels = { 8, 16, 16, 32 },
      encoder_block_types = { "ResBlock", "EfficientViTBlock", "ResBlock", "EfficientViTBlock" },
      decoder_block_types = { "EfficientViTBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock" },
      encoder_layers_per_block = { 0, 2, 1, 1 }, decoder_layers_per_block = { 0, 1, 2, 1 },
      encoder_qkv_multiscales = { json.array {}, { 3, 5 }, json.array {}, { 5 } },
      decoder_qkv_multiscales = { { 3 }, json.array {}, json.array {}, { 3, 5 } },
      downsample_block_type = "pixel_unshuffle", upsample_block_type = "pixel_shuffle",
      decoder_norm_types = "rms_norm", decoder_act_fns = "silu", decoder_conv_act_fn = "silu", scaling_factor = 0.5,
    },
    args = "--seed 1 --latent 2,2,2 --latent 1,7,10 --image 2,32,48 --image 1,56,80 --tile 32 --stride 24 --grad",
    grad = true,
    tile = 32, stride = 24, dtype = "f32",
  },
  c = {
    config = {
      in_channels = 3, latent_channels = 6, attention_head_dim = 8,
      encoder_block_out_channels = { 6, 12, 24 }, decoder_block_out_channels = { 6, 12, 24 },
      encoder_block_types = { "ResBlock", "EfficientViTBlock", "EfficientViTBlock" },
      decoder_block_types = { "ResBlock", "EfficientViTBlock", "EfficientViTBlock" },
      encoder_layers_per_block = { 1, 1, 2 }, decoder_layers_per_block = { 2, 1, 1 },
      encoder_qkv_multiscales = { json.array {}, json.array {}, { 3 } },
      decoder_qkv_multiscales = { json.array {}, { 5 }, json.array {} },
      downsample_block_type = "Conv", upsample_block_type = "interpolate",
      decoder_norm_types = { "batch_norm", "batch_norm", "rms_norm" }, decoder_act_fns = { "relu", "silu", "silu" },
      decoder_conv_act_fn = "swish", encoder_out_shortcut = false, decoder_in_shortcut = false,
    },
    args = "--dtype bf16 --seed 2 --latent 2,3,5 --latent 1,9,7 --image 2,16,20 --image 1,36,28 --tile 16 --stride 12",
    tile = 16, stride = 12, dtype = "bf16",
  },
}

spec.describe("DC-AE: PyTorch reference (tests/reference/dcae_ref.py)", function()
  local _, torch_status = spec.run(python .. " -c 'import torch'")
  if torch_status ~= 0 then spec.skip(python .. " cannot import torch"); return end

  for _, name in ipairs { "b", "c" } do
    local cfg = CONFIGS[name]
    spec.it("config " .. name .. " (" .. cfg.dtype .. "): decode, encode and their tiled forms within 1e-5", function()
      local dir = spec.tmpdir()
      local out, code = spec.run(python .. " " .. root .. "/tests/reference/dcae_ref.py make " .. dir .. "/vae --config '"
                                 .. json.encode(cfg.config):gsub("\n", " ") .. "' " .. cfg.args)
      spec.assert(code == 0, out)
      local vae = diffusers.vae(dir)
      spec.eq(vae.decoder.conv_in.weight:dtype(), cfg.dtype, "weights stay in their stored dtype")
      local ins = grove.load_safetensors(dir .. "/vae/inputs.safetensors")
      local outs = grove.load_safetensors(dir .. "/vae/outputs.safetensors")
      local tiles = { tile = cfg.tile, tile_stride = cfg.stride }
      for k = 1, 2 do
        local z, x = nhwc(ins["latents." .. k]), nhwc(ins["images." .. k])
        for _, c in ipairs {
          { "decode", z, "sample." .. k, vae:decode(z) },
          { "encode", x, "latent." .. k, vae:encode(x) },
          { "tiled decode", z, "tiled_sample." .. k, vae:decode(z, tiles) },
          { "tiled encode", x, "tiled_latent." .. k, vae:encode(x, tiles) },
        } do
          local want = nhwc(outs[c[3]])
          spec.eq(c[4]:shape_str(), want:shape_str(), c[1] .. " shape")
          local e = err(c[4], want)
          print(string.format("    %s %-12s %-14s %.2e", name, c[1], c[2]:shape_str(), e))
          spec.assert(e <= 1e-5, string.format("config %s, %s %s: error %.3e", name, c[1], c[2]:shape_str(), e))
        end
      end
      if cfg.grad then
        -- the modules' forward on the tape: gradients of sum(out · w) for
        -- the input and every parameter, against PyTorch's autograd
        for _, side in ipairs { { "decode", "decoder", "latents.1" }, { "encode", "encoder", "images.1" } } do
          local x = nhwc(ins[side[3]]):requires_grad_(true)
          local y = vae[side[2]]:forward(x)
          ;(y * nhwc(ins["grad_weight." .. side[1]])):sum():backward()
          local worst, at = err(x.grad, nhwc(outs["grad." .. side[1] .. ".input"])), "the input"
          local n = 0
          for _, np in ipairs(vae[side[2]]:named_parameters()) do
            if np[2].requires_grad then
              local want = outs["grad." .. side[1] .. "." .. side[2] .. "." .. np[1]]
              spec.assert(want ~= nil, "the reference has no gradient for " .. np[1])
              local e = err(np[2].grad, want)
              if e > worst then worst, at = e, np[1] end
              n = n + 1
            end
          end
          print(string.format("    %s %s gradients (input and %d parameters): worst %.2e (%s)", name, side[1], n, worst, at))
          spec.assert(worst <= 1e-4, string.format("%s gradient of %s: error %.3e", side[1], at, worst))
          vae:zero_grad()
        end
      end
      spec.run("rm -rf " .. dir)
    end)
  end
end)

spec.describe("DC-AE: tiling", function()
  local fx = spec.fixture_path("dcae/tiny-a")
  if not is_dir(fx) then spec.skip("the shared fixtures are not at " .. fx .. " (set GROVE_FIXTURES)"); return end
  local vae = diffusers.vae(fx)
  local g = grove.Generator(5)

  spec.it("an input no larger than a tile gives exactly the untiled result", function()
    local z = grove.randn({ 1, 4, 3, 8 }, { generator = g })
    spec.eq(spec.max_diff(vae:decode(z, { tile = 128, tile_stride = 64 }), vae:decode(z)), 0)
    local x = grove.rand({ 1, 96, 128, 3 }, { generator = g }) * 2 - 1
    spec.eq(spec.max_diff(vae:encode(x, { tile = 128 }), vae:encode(x)), 0)
  end)

  spec.it("default tiling (set_tiling or the tile option) and tile = false per call", function()
    local z = grove.randn({ 1, 5, 3, 8 }, { generator = g })
    local plain, tiled = vae:decode(z), vae:decode(z, { tile = 64, tile_stride = 32 })
    spec.assert(spec.max_diff(plain, tiled) > 0, "tiles of 2 latents differ from the whole")
    local t = diffusers.vae(fx, { tile = 64, tile_stride = 32 })
    spec.eq(spec.max_diff(t:decode(z), tiled), 0)
    spec.eq(spec.max_diff(t:decode(z, { tile = false }), plain), 0)
    spec.eq(t.tile, 64); spec.eq(t.tile_stride, 32)
    t:set_tiling { tile = 512 }
    spec.eq(t.tile_stride, 448, "diffusers' default stride for 512")
    t:set_tiling()
    spec.eq(t.tile, nil)
  end)

  spec.it("bad tile settings are refused by name", function()
    local z = grove.randn({ 1, 2, 2, 8 }, { generator = g })
    spec.raises(function() vae:decode(z, { tile = 48 }) end, "tile must be a multiple of the down-sampling factor 32, got 48")
    spec.raises(function() vae:decode(z, { tile = 64, tile_stride = 96 }) end, "tile_stride must be a multiple of 32 between 32 and the tile 64, got 96")
    spec.raises(function() vae:set_tiling { tile_stride = 32 } end, "tile_stride without tile")
  end)

  spec.it("a large decode runs in bounded memory: the tiled peak grows with the output only", function()
    local function peak(h, w, tile)
      local z = grove.randn({ 1, h, w, 8 }, { generator = g })
      grove.collect()
      local base = grove.memory().live_bytes
      grove.reset_peak_memory()
      local y = vae:decode(z, { tile = tile, tile_stride = tile and tile - 32 })
      local p = grove.memory().peak_bytes - base
      local out = y:numel() * 4
      y:free()
      return p, out
    end
    local whole = peak(16, 16)
    local t16, o16 = peak(16, 16, 128)
    local t32, o32 = peak(32, 32, 128)
    print(string.format("    peak above the inputs: 512² whole %.1f MB, tiled %.1f MB; 1024² tiled %.1f MB (output %.1f MB)",
                        whole / 2^20, t16 / 2^20, t32 / 2^20, o32 / 2^20))
    spec.assert(t16 < whole / 2, "tiles need less than half the memory of the whole decode")
    -- beyond the output, what a tiled decode holds is one tile's run and
    -- the strips it blends: the same at 4× the pixels
    spec.assert(t32 - o32 < 1.25 * (t16 - o16) + 2^20,
                string.format("tiled peak beyond the output grew from %.1f MB to %.1f MB", (t16 - o16) / 2^20, (t32 - o32) / 2^20))
  end)
end)

spec.describe("DC-AE: bad input", function()
  local fx = spec.fixture_path("dcae/tiny-a")
  if not is_dir(fx) then spec.skip("the shared fixtures are not at " .. fx .. " (set GROVE_FIXTURES)"); return end

  -- A vae folder with the fixture's config changed (DROP removes a key) and
  -- the fixture's weights, or other tensors.
  local DROP = {}
  local function folder(changes, tensors)
    local dir = spec.tmpdir()
    local c = json.read(fx .. "/config.json")
    for k, v in pairs(changes or {}) do
      if v == DROP then c[k] = nil else c[k] = v end
    end
    write_json(dir .. "/config.json", c)
    if tensors then grove.save_safetensors(dir .. "/diffusion_pytorch_model.safetensors", tensors)
    else spec.run("cp " .. fx .. "/diffusion_pytorch_model.safetensors " .. dir .. "/") end
    return dir
  end
  local function refused(changes, pattern)
    local dir = folder(changes)
    spec.raises(function() diffusers.vae(dir) end, pattern)
    spec.run("rm -rf " .. dir)
  end

  spec.it("a folder without a vae, or a vae without weights", function()
    local dir = spec.tmpdir()
    spec.raises(function() diffusers.vae(dir) end, "has no vae/config.json nor config.json")
    spec.run("mkdir -p " .. dir .. "/vae && cp " .. fx .. "/config.json " .. dir .. "/vae/")
    spec.raises(function() diffusers.vae(dir) end, "vae: no weights")
    spec.raises(function() diffusers.vae(dir .. "/missing") end, "is not a folder")
    spec.run("rm -rf " .. dir)
  end)

  spec.it("a config key grove does not implement, and a wrong class", function()
    refused({ use_magic = true }, "config.json: key 'use_magic' is not implemented by grove")
    refused({ _class_name = "AutoencoderKL" }, "_class_name is 'AutoencoderKL', grove reads AutoencoderDC")
  end)

  spec.it("options outside what grove computes are refused with their key and value", function()
    refused({ upsample_block_type = "bilinear" }, "key 'upsample_block_type' is \"bilinear\"; grove needs")
    refused({ downsample_block_type = "avgpool" }, "key 'downsample_block_type' is \"avgpool\"")
    refused({ decoder_act_fns = "gelu" }, "key 'decoder_act_fns' is \"gelu\"; grove needs activations among")
    refused({ decoder_norm_types = { "rms_norm", "layer_norm", "rms_norm", "rms_norm", "rms_norm", "rms_norm" } },
            "(\"layer_norm\" is not implemented)")
    refused({ decoder_conv_act_fn = "mish" }, "key 'decoder_conv_act_fn' is \"mish\"")
    refused({ encoder_block_types = "ConvNeXt" }, "\"ConvNeXt\" is not implemented")
    refused({ encoder_layers_per_block = { 1, 1, 0, 1, 2, 1 } }, "every stage but the first (stage 2 has 0)")
    refused({ decoder_qkv_multiscales = { json.array {}, json.array {}, json.array {}, { 4 }, { 5 }, { 5 } } },
            "odd kernel sizes from 1 to 31")
    refused({ latent_channels = 2 ^ 40 }, "key 'latent_channels' is 1099511627776; grove needs an integer from 1 to 131072")
    refused({ encoder_layers_per_block = { 1, 1, 1, 1, 1e9, 1 } }, "a list of integers from 0 to 4096")
    refused({ scaling_factor = 0 }, "a nonzero finite number")
    refused({ attention_head_dim = 64 }, "at least attention_head_dim = 64 channels in stage 3")
    refused({ decoder_block_out_channels = { 8, 16, 16, 32, 32 }, decoder_layers_per_block = { 1, 1, 1, 1, 1 },
              decoder_block_types = "ResBlock", decoder_qkv_multiscales = { json.array {}, json.array {}, json.array {},
                                                                            json.array {}, json.array {} } },
            "is [8,16,16,32,32]; grove needs 6 stages like encoder_block_out_channels")
    refused({ decoder_layers_per_block = { 1, 1, 1, 1, 1 } }, "grove needs 6 entries (one per stage of decoder_block_out_channels)")
    refused({ latent_channels = 5 }, "divisible by latent_channels = 5")
    refused({ encoder_out_shortcut = "yes" }, "key 'encoder_out_shortcut' is \"yes\"; grove needs true or false")
  end)

  spec.it("a weight of the wrong shape, a missing one, an extra one", function()
    local w = grove.load_safetensors(fx .. "/diffusion_pytorch_model.safetensors")
    local ok = w["decoder.conv_in.weight"]
    w["decoder.conv_in.weight"] = grove.zeros { 32, 8, 1, 1 }
    local dir = folder(nil, w)
    spec.raises(function() diffusers.vae(dir) end,
                "tensor 'decoder.conv_in.weight' has shape (32, 8, 1, 1), but config.json implies (32, 8, 3, 3)")
    w["decoder.conv_in.weight"] = nil
    grove.save_safetensors(dir .. "/diffusion_pytorch_model.safetensors", w)
    spec.raises(function() diffusers.vae(dir) end, "tensor 'decoder.conv_in.weight' is missing")
    w["decoder.conv_in.weight"] = ok
    w["decoder.extra.weight"] = grove.zeros { 2 }
    grove.save_safetensors(dir .. "/diffusion_pytorch_model.safetensors", w)
    spec.raises(function() diffusers.vae(dir) end, "tensor 'decoder.extra.weight' is not part of a AutoencoderDC")
    spec.run("rm -rf " .. dir)
  end)

  spec.it("inputs: an image size not a multiple of 32, wrong channels, not NHWC", function()
    local vae = diffusers.vae(fx)
    spec.raises(function() vae:encode(grove.zeros { 1, 64, 80, 3 }) end,
                "image size 64×80 (height × width) is not a multiple of the down-sampling factor 32")
    spec.raises(function() vae:decode(grove.zeros { 1, 2, 2, 32 }) end,
                "expected latents (batch, height, width, 8) NHWC, got [1,2,2,32]")
    spec.raises(function() vae:encode(grove.zeros { 1, 3, 64, 64 }) end, "expected images (batch, height, width, 3)")
    spec.raises(function() vae:decode(grove.zeros({ 1, 2, 2, 8 }, { dtype = "bf16" })) end, "expected f32 latents, got bf16")
    -- the process and the model survive
    spec.eq(vae:decode(grove.zeros { 1, 1, 1, 8 }):shape_str(), "[1,32,32,3]")
  end)

  spec.it("unknown options", function()
    spec.raises(function() diffusers.vae(fx, { tiles = 3 }) end, "unknown option 'tiles'")
    spec.raises(function() diffusers.vae(fx):decode(grove.zeros { 1, 1, 1, 8 }, 3) end, "options must be a table")
  end)
end)
