-- Files from strangers cannot make grove read outside the folder it was
-- given, nor allocate or loop by sizes they declare: image folders with
-- links leading out, oversized captions and JSON files, configs with
-- absurd sizes. (Weight maps: test_diffusers_folder.lua; checkpoint
-- configs against their tensors: test_load.lua.)
local spec = require "spec"

local function sh(cmd) assert(os.execute(cmd) == 0, cmd) end

spec.describe("data.folder", function()
  spec.it("refuses an image or caption that is a link leading outside the folder, unless follow_links", function()
    local root = spec.tmpdir()
    sh("mkdir -p " .. root .. "/ds " .. root .. "/elsewhere")
    grove.image.save(root .. "/ds/a.png", grove.zeros { 4, 4, 3 })
    grove.image.save(root .. "/elsewhere/b.png", grove.zeros { 4, 4, 3 })
    spec.write_all(root .. "/elsewhere/secret.txt", "not a caption")
    sh("ln -s ../elsewhere/b.png " .. root .. "/ds/b.png")
    spec.raises(function() grove.data.folder { dir = root .. "/ds", size = 4, batch = 1 } end,
      "data.folder: image " .. root .. "/ds/b.png is a link leading outside the folder")
    local ds = grove.data.folder { dir = root .. "/ds", size = 4, batch = 2, follow_links = true }
    spec.eq(ds.n, 2)
    os.remove(root .. "/ds/b.png")
    sh("ln -s ../elsewhere/secret.txt " .. root .. "/ds/a.txt")
    spec.raises(function() grove.data.folder { dir = root .. "/ds", size = 4, batch = 1 } end,
      "data.folder: caption " .. root .. "/ds/a.txt is a link leading outside the folder")
    -- a link inside the folder is fine
    os.remove(root .. "/ds/a.txt")
    spec.write_all(root .. "/ds/real.txt", "a red circle")
    sh("ln -s real.txt " .. root .. "/ds/a.txt")
    ds = grove.data.folder { dir = root .. "/ds", size = 4, batch = 1, shuffle = false }
    spec.eq(ds.captions[1], "a red circle")
    os.execute("rm -rf " .. root)
  end)

  spec.it("refuses a caption file larger than 1 MiB without reading it whole", function()
    local root = spec.tmpdir()
    grove.image.save(root .. "/a.png", grove.zeros { 4, 4, 3 })
    spec.write_all(root .. "/a.txt", string.rep("x", 2 ^ 20 + 1))
    spec.raises(function() grove.data.folder { dir = root, size = 4, batch = 1 } end,
      "caption file " .. root .. "/a.txt is larger than 1048576 bytes")
    os.execute("rm -rf " .. root)
  end)
end)

spec.describe("JSON files", function()
  spec.it("a file above grove.json.max_file_bytes is refused before it is read", function()
    local root = spec.tmpdir()
    spec.write_all(root .. "/config.json", '{"a": "' .. string.rep("x", 200) .. '"}')
    local keep = grove.json.max_file_bytes
    grove.json.max_file_bytes = 100
    local ok, err = pcall(grove.json.read, root .. "/config.json")
    grove.json.max_file_bytes = keep
    spec.assert(not ok and tostring(err):find("config.json: 209 bytes is larger than grove reads as JSON", 1, true),
                tostring(err))
    spec.eq(grove.json.read(root .. "/config.json").a:len(), 200)
    os.execute("rm -rf " .. root)
  end)
end)

spec.describe("diffusers transformer configs", function()
  local base = { _class_name = "SanaTransformer2DModel", num_layers = 1, num_attention_heads = 2, attention_head_dim = 32,
                 num_cross_attention_heads = 2, cross_attention_head_dim = 32, cross_attention_dim = 64,
                 caption_channels = 32, in_channels = 4, out_channels = 4, patch_size = 1, sample_size = 8, mlp_ratio = 2.5 }
  local function with(k, v)
    local c = {}
    for a, b in pairs(base) do c[a] = b end
    c[k] = v
    return function() return grove.diffusers.transformer_config(c, "config.json") end
  end
  spec.it("sizes are bounded before a model is built from them", function()
    spec.eq(with("num_layers", 2)().depth, 2)
    spec.raises(with("num_layers", 1e15), "config.json: key 'num_layers' is 1e+15; grove needs an integer from 1 to 4096")
    spec.raises(with("attention_head_dim", 2 ^ 40), "key 'attention_head_dim' is")
    spec.raises(with("in_channels", 2 ^ 31), "key 'in_channels' is")
    spec.raises(with("num_attention_heads", 8192), "num_attention_heads × attention_head_dim of at most 131072")
    spec.raises(with("mlp_ratio", math.huge), "key 'mlp_ratio' is inf; grove needs a positive finite number")
    spec.raises(with("mlp_ratio", 1e6), "key 'mlp_ratio' is 1000000; grove needs a positive number of at most 64")
    spec.raises(with("norm_eps", 0 / 0), "key 'norm_eps'")
  end)
end)
