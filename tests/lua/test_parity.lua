-- Parity with an independent PyTorch implementation (tests/reference/
-- sana_ref.py, run with Debian's /usr/bin/python3 and python3-torch):
-- the same safetensors file must give the same output and the same gradient
-- for every parameter, and files travel both ways by name.
local spec = require "spec"

local root = debug.getinfo(1, "S").source:match("^@(.*)/tests/lua/[^/]*$") or "."
local python = os.getenv("GROVE_TORCH_PYTHON") or "/usr/bin/python3"

-- Output and exit status of a shell command (LuaJIT's popen close gives no status).
local function run(cmd)
  local p = io.popen(cmd .. ' 2>&1; echo "__status=$?"')
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("__status=(%d+)%s*$"))
  local clean = out:gsub("__status=%d+%s*$", "")
  return clean, code
end

local tmpdir = spec.tmpdir

-- A random config that is not a preset: odd sizes catch layout mistakes.
local cfg = { depth = 2, width = 96, head_dim = 32, cross_heads = 3, mlp_ratio = 2.5, patch_size = 2,
              in_channels = 4, out_channels = 3, caption_channels = 24, text_len = 7, caption_dropout = 0,
              qk_norm = true, cross_norm = true }

local function to_nchw(t) return t:permute { 1, 4, 2, 3 }:contiguous() end

-- The options of diffusers' configs that no shared fixture exercises: q/k/v
-- biases, an affine FF norm, another norm eps, and a cross attention wider
-- inside (3 heads of 40 = 120) than the model (96).
local cfg_options = {}
for k, v in pairs(cfg) do cfg_options[k] = v end
cfg_options.attention_bias, cfg_options.norm_elementwise_affine = true, true
cfg_options.norm_eps, cfg_options.cross_head_dim, cfg_options.qk_norm = 1e-5, 40, false

local function write_case(dir, model, config)
  local g = grove.Generator(21)
  local B = 2
  local x = grove.randn({ B, 6, 10, 4 }, { generator = g })
  local t = grove.tensor { 37.5, 912.25 }
  local text = grove.randn({ B, 7, 24 }, { generator = g })
  local mask = grove.tensor { { 1, 1, 1, 1, 1, 0, 0 }, { 1, 1, 1, 1, 1, 1, 1 } }
  local out = model:forward(x, t, text, mask)
  local w = grove.randn(out:shape(), { generator = g })
  model:zero_grad()
  out:backward(w)
  local outputs = { out = to_nchw(out:detach()), weight = to_nchw(w) }
  for _, np in ipairs(model:named_parameters()) do outputs["grad." .. np[1]] = np[2].grad end
  model:save(dir .. "/model.safetensors")
  grove.save_safetensors(dir .. "/inputs.safetensors", { x = to_nchw(x), timestep = t, text = text, text_mask = mask })
  grove.save_safetensors(dir .. "/outputs.safetensors", outputs)
  local f = assert(io.open(dir .. "/config.json", "w"))
  f:write(grove.nn._encode_config(config))
  f:close()
end

spec.describe("PyTorch parity", function()
  local _, torch_status = run(python .. " -c 'import torch'")
  local have_torch = torch_status == 0
  spec.it("python3-torch is installed for the reference", function()
    spec.assert(have_torch, python .. " cannot import torch: run scripts/install-deps")
  end)
  if not have_torch then return end

  for _, case in ipairs { { "", cfg }, { " (attention_bias, affine FF norm, norm_eps, cross_head_dim)", cfg_options } } do
    spec.it("output and every parameter gradient match the reference within 1e-4" .. case[1], function()
      local model = grove.nn.Sana(case[2], { seed = 11 })
      -- the output projections and final layer start at zero in SANA; make
      -- every parameter random so that every path is compared
      grove.no_grad(function()
        for _, p in ipairs(model:parameters()) do p:copy_(p + grove.randn(p:shape(), { generator = grove.Generator(p:numel()) }) * 0.05) end
      end)
      local dir = tmpdir()
      write_case(dir, model, case[2])
      local out, code = run(python .. " " .. root .. "/tests/reference/sana_ref.py check " .. dir)
      run("rm -rf " .. dir)
      spec.assert(code == 0 and out:find("parity:", 1, true), out)
      print("    " .. (out:match("(parity:[^\n]*)") or ""))
    end)
  end

  spec.it("a file written by PyTorch loads by name, and back", function()
    local model = grove.nn.Sana(cfg, { seed = 12 })
    local dir = tmpdir()
    model:save(dir .. "/a.safetensors")
    local out, code = run(python .. " " .. root .. "/tests/reference/sana_ref.py roundtrip " .. dir .. "/a.safetensors " ..
                          dir .. "/b.safetensors --scale 2")
    spec.assert(code == 0, out)
    local back = grove.nn.Sana(cfg, { seed = 99 })
    back:load(dir .. "/b.safetensors")
    run("rm -rf " .. dir)
    local a, b = model:state_dict(), back:state_dict()
    for name, p in pairs(a) do
      spec.assert((b[name] - p * 2):abs():max():item() == 0, name .. " differs after the round trip")
    end
  end)
end)
