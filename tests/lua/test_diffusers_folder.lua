-- diffusers folders: JSON decode/encode, the safetensors reader's F64 and
-- BOOL, the shared fixtures' folders (sharded F32, BF16), write/read round
-- trips bit for bit (one file, shards, variants, streamed copies), and every
-- refusal of a hostile or broken folder.
local spec = require "spec"
local ffi = require "ffi"

local json, diffusers = grove.json, grove.diffusers
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "tests/lua"
local root = here:gsub("/?tests/lua$", "")
if root == "" then root = "." end
local fixtures = spec.fixture_path()
local sana = fixtures .. "/diffusers-sana"
local have_fixtures = grove.C.grove_path_kind(sana) == grove.C.GROVE_PATH_DIR

pcall(ffi.cdef, "int symlink(const char *target, const char *linkpath);")

local read_all, write_all = spec.read_all, spec.write_all

local function rm_rf(dir) os.execute("rm -rf '" .. dir .. "'") end

-- Exactly equal values, dtype and shape (compared through f64 lists: every
-- f32/bf16/f16 value is exact there; integers below 2^53 too).
local function same(got, want, msg)
  spec.eq(got:dtype(), want:dtype(), msg .. " dtype")
  spec.eq(spec.join(got:shape()), spec.join(want:shape()), msg .. " shape")
  local g = (got:dtype() == "i64" or got:dtype() == "i32") and got:reshape{-1}:tolist() or got:float():reshape{-1}:tolist()
  local w = (want:dtype() == "i64" or want:dtype() == "i32") and want:reshape{-1}:tolist() or want:float():reshape{-1}:tolist()
  for i = 1, #w do
    if g[i] ~= w[i] then error(string.format("%s: element %d is %.9g, expected %.9g", msg, i, g[i], w[i]), 2) end
  end
end

local function u64(n)
  local b = {}
  for i = 1, 8 do b[i] = string.char(n % 256); n = math.floor(n / 256) end
  return table.concat(b)
end

spec.describe("json", function()
  spec.it("decodes objects, arrays, numbers, strings, booleans and null", function()
    local v = json.decode('{"a": [1, 2.5, -3e2, "x\\u00e9\\ud83d\\ude00"], "b": null, "c": true, "d": {}, "e": []}')
    spec.eq(v.a[1], 1); spec.eq(v.a[2], 2.5); spec.eq(v.a[3], -300); spec.eq(v.a[4], "x\195\169\240\159\152\128")
    spec.eq(v.b, json.null); spec.eq(v.c, true)
    spec.assert(json.is_object(v.d) and json.is_array(v.e), "empty containers keep their kind")
    spec.eq(json.encode(v.d), "{}\n"); spec.eq(json.encode(v.e), "[]\n")
  end)
  spec.it("encodes as Python's json.dumps(indent=2, sort_keys=True)", function()
    local v = { a = { 1, 2.5, 1e-06, 0.1, json.null, true }, ["b\n"] = "\195\169\240\159\152\128", c = {},
                d = json.array(), e = { x = -3, y = 1e16, z = 123456.789 } }
    -- the text /usr/bin/python3 writes for the same value
    local python = '{\n  "a": [\n    1,\n    2.5,\n    1e-06,\n    0.1,\n    null,\n    true\n  ],\n  "b\\n": "\\u00e9\\ud83d\\ude00",\n  "c": {},\n  "d": [],\n  "e": {\n    "x": -3,\n    "y": 1e+16,\n    "z": 123456.789\n  }\n}\n'
    spec.eq(json.encode(v), python)
    spec.eq(json.encode(json.decode(python)), python, "decode then encode gives the same bytes")
  end)
  spec.it("refuses invalid JSON, repeated keys and values JSON cannot hold", function()
    spec.raises(function() json.decode('{"a": 1,}', { source = "x.json" }) end, "x.json: invalid JSON at byte 8")
    spec.raises(function() json.decode('{"a": {"b": 1, "b": 2}}', { source = "x.json" }) end, "x.json: key a.b appears twice")
    spec.raises(function() json.decode("NaN") end, "invalid JSON")
    local n = json.decode("[NaN, -Infinity]", { allow_nan = true })
    spec.assert(n[1] ~= n[1] and n[2] == -math.huge, "Python's non-finite numbers on request")
    spec.raises(function() json.encode({ f = print }) end, "f is a function")
    spec.raises(function() json.encode({ 1, x = 2 }) end, "mixes a list with keys")
    spec.raises(function() json.encode({ s = "\255" }) end, "not valid UTF-8")
  end)
end)

spec.describe("safetensors F64 and BOOL", function()
  spec.it("reads F64 as f32 and BOOL as u8, unaligned included", function()
    local dir = spec.tmpdir()
    local p = dir .. "/x.safetensors"
    -- BOOL first (4 bytes), so the F64 tensor starts at an odd offset of 4
    local header = '{"m":{"dtype":"BOOL","shape":[4],"data_offsets":[0,4]},'
                   .. '"r":{"dtype":"F64","shape":[3],"data_offsets":[4,28]}}'
    local d = ffi.new("double[3]", { 1.5, 0.1, -1e300 })
    write_all(p, u64(#header) .. header .. "\0\1\1\0" .. ffi.string(d, 24))
    local t = grove.load_safetensors(p)
    spec.eq(t.m:dtype(), "u8"); spec.eq(spec.join(t.m:tolist()), "0,1,1,0")
    spec.eq(t.r:dtype(), "f32")
    local r = t.r:tolist()
    spec.eq(r[1], 1.5)
    spec.eq(r[2], tonumber(ffi.new("float", 0.1)), "rounded to the nearest f32")
    spec.eq(r[3], -math.huge, "beyond f32 range: infinity, as a cast")
    local info = grove.safetensors_info(p)
    spec.eq(info[1].stored, "BOOL"); spec.eq(info[2].stored, "F64"); spec.eq(info[2].dtype, "f32")
    -- a wrong byte count is still refused with the file's element size
    local bad = '{"r":{"dtype":"F64","shape":[3],"data_offsets":[0,12]}}'
    write_all(p, u64(#bad) .. bad .. string.rep("\0", 12))
    spec.raises(function() grove.load_safetensors(p) end, "span 12 bytes, but F64 shape [3] needs 24")
    rm_rf(dir)
  end)
end)

spec.describe("diffusers folders", function()
  if not have_fixtures then
    spec.skip("the shared fixtures are not at " .. sana .. " (set GROVE_FIXTURES)")
  else
    spec.it("reads b_sana15's sharded transformer through its index", function()
      local c = diffusers.component(sana .. "/b_sana15", "transformer")
      spec.eq(c.class, "SanaTransformer2DModel"); spec.eq(c.name, "transformer")
      spec.eq(c.config.qk_norm, "rms_norm_across_heads")
      spec.eq(#c.files, 3)
      local idx = json.read(c.index)
      local total, per_file = 0, {}
      for _, n in ipairs(c:names()) do
        local i = c:info(n)
        spec.eq(i.file, idx.weight_map[n], n .. " in its shard")
        local t = c:load(n)
        spec.eq(t:dtype(), i.dtype)
        total = total + t:numel() * 4
        per_file[i.file] = (per_file[i.file] or 0) + 1
        t:free()
      end
      spec.eq(total, idx.metadata.total_size, "every byte of the index's total_size")
      for _, f in ipairs(c.files) do
        spec.eq(per_file[f], #grove.safetensors_open(c.dir .. "/" .. f).names, f .. ": every tensor of the shard")
      end
      spec.eq(diffusers.model_index(sana .. "/b_sana15"), nil, "no model_index.json there")
    end)
    spec.it("keeps d_sprint's BF16 weights in BF16, and reads F64 references as f32", function()
      local c = diffusers.component(sana .. "/d_sprint/transformer")
      spec.eq(c.config.guidance_embeds, true)
      local n = c:names()[1]
      spec.eq(c:info(n).dtype, "bf16"); spec.eq(c:load(n):dtype(), "bf16")
      local all = c:load_all()
      local count = 0
      for _ in pairs(all) do count = count + 1 end
      spec.eq(count, #c:names())
      local f64 = grove.load_safetensors(sana .. "/d_sprint/forward_out.safetensors").sample
      local f32 = grove.load_safetensors(sana .. "/d_sprint/forward_out_f32.safetensors").sample
      spec.eq(f64:dtype(), "f32")
      local err = spec.max_diff(f64, f32) / f64:abs():max():item()
      spec.assert(err < 1e-5, "the float64 and float32 references agree after conversion: " .. err)
    end)
    spec.it("check_config names the file and the key it does not know", function()
      local c = diffusers.component(sana .. "/c_sana4k", "transformer")
      local known = {}
      for k in pairs(c.config) do known[#known + 1] = k end
      spec.eq(diffusers.check_config(c.config, known, c.config_path), c.config)
      table.remove(known, 1)
      table.sort(known)
      local keys = {}
      for k in pairs(c.config) do keys[#keys + 1] = k end
      table.sort(keys)
      local missing
      for _, k in ipairs(keys) do
        local found = false
        for _, kk in ipairs(known) do if kk == k then found = true end end
        if not found then missing = k end
      end
      spec.raises(function() diffusers.check_config(c.config, known, c.config_path) end,
                  c.config_path .. ": key '" .. missing .. "' is not implemented by grove")
    end)
  end

  local function sample_tensors()
    grove.manual_seed(7)
    return {
      ["a.weight"] = grove.randn{16, 8},
      ["b.weight"] = grove.randn{8, 8}:bf16(),
      ["c.bias"] = grove.randn{5}:half(),
      ["d.ids"] = grove.tensor({ 1, -2, 3, 2 ^ 40 }, { dtype = "i64" }),
      ["e.mask"] = grove.tensor({ 0, 1, 1 }, { dtype = "u8" }),
      ["f.big"] = grove.randn{64, 4},
    }
  end
  local config = { _class_name = "SanaTransformer2DModel", num_layers = 2, qk_norm = json.null, norm_eps = 1e-6 }

  spec.it("writes shards and an index, and reads them back bit for bit", function()
    local dir = spec.tmpdir()
    local ts = sample_tensors()
    local r = diffusers.write_component(dir .. "/transformer", config, ts, { max_shard_bytes = 600 })
    local c = diffusers.component(dir, "transformer")
    spec.assert(#c.files > 2, "several shards")
    for i, f in ipairs(c.files) do
      spec.eq(f, string.format("diffusion_pytorch_model-%05d-of-%05d.safetensors", i, #c.files))
    end
    local idx = json.read(dir .. "/transformer/diffusion_pytorch_model.safetensors.index.json")
    spec.eq(idx.metadata.total_size, r.total_size)
    spec.eq(r.total_size, 16 * 8 * 4 + 64 * 2 + 5 * 2 + 4 * 8 + 3 + 64 * 4 * 4)
    spec.eq(c.config.qk_norm, json.null); spec.eq(c.config.norm_eps, 1e-6)
    spec.eq(read_all(c.config_path), json.encode(config), "config.json as diffusers writes it")
    spec.eq(spec.join(c:names()), "a.weight,b.weight,c.bias,d.ids,e.mask,f.big")
    for name, t in pairs(ts) do same(c:load(name), t, name) end
    local out = spec.run("ls " .. dir .. "/transformer")
    spec.assert(not out:find("%.tmp"), "no temporary left: " .. out)

    -- a streamed copy (component as the source) into one file
    local r2 = diffusers.write_component(dir .. "/copy", c.config, c)
    spec.eq(spec.join(r2.files), "diffusion_pytorch_model.safetensors,config.json")
    local c2 = diffusers.component(dir .. "/copy")
    for name, t in pairs(ts) do same(c2:load(name), t, "copy " .. name) end

    -- rewriting the sharded folder as one file leaves no stale shard or index
    diffusers.write_component(dir .. "/transformer", config, ts)
    local listing = spec.run("ls " .. dir .. "/transformer")
    spec.eq(listing, "config.json\ndiffusion_pytorch_model.safetensors\n")
    rm_rf(dir)
  end)

  spec.it("replaces a folder whole: other files stay, a failed write changes nothing", function()
    local dir = spec.tmpdir()
    local comp = dir .. "/transformer"
    local ts = sample_tensors()
    diffusers.write_component(comp, config, ts, { max_shard_bytes = 600 })
    write_all(comp .. "/README.md", "notes")
    os.execute("mkdir -p '" .. comp .. "/extra' && echo x > '" .. comp .. "/extra/f.txt'")
    diffusers.write_component(comp, config, ts, { variant = "fp16" })
    -- the sharded write's shards stay: another variant is another name
    spec.eq(read_all(comp .. "/README.md"), "notes")
    spec.eq(read_all(comp .. "/extra/f.txt"), "x\n")
    local listing = spec.run("ls " .. dir)
    spec.eq(listing, "transformer\n", "no staging folder left beside it")
    -- a source that fails halfway: the folder is as it was, nothing staged is left
    local before = spec.run("ls -R " .. comp)
    local failing = {
      names = function() return { "a", "b" } end,
      info = function() return { dtype = "f32", shape = { 4 } } end,
      load = function(_, n) if n == "b" then error("cannot read b", 0) end return grove.zeros { 4 } end,
    }
    spec.raises(function() diffusers.write_component(comp, config, failing) end, "cannot read b")
    spec.eq(spec.run("ls -R " .. comp), before)
    spec.eq(spec.run("ls " .. dir), "transformer\n")
    local c = diffusers.component(dir, "transformer")
    for name, t in pairs(ts) do same(c:load(name), t, name) end
    c:close()
    -- a file where the folder should be is refused, not replaced
    write_all(dir .. "/file", "keep me")
    spec.raises(function() diffusers.write_component(dir .. "/file", config, ts) end, "exists and is not a folder")
    spec.eq(read_all(dir .. "/file"), "keep me")
    rm_rf(dir)
  end)

  spec.it("reads and writes variants under diffusers' names", function()
    local dir = spec.tmpdir()
    local ts = sample_tensors()
    diffusers.write_component(dir, config, ts, { variant = "bf16", max_shard_bytes = 1000, weights_name = "model" })
    local listing = spec.run("ls " .. dir)
    spec.assert(listing:find("model.safetensors.index.bf16.json", 1, true), listing)
    spec.assert(listing:find("model.bf16-00001-of-0000", 1, true), listing)
    spec.raises(function() diffusers.component(dir) end, "a variant? pass { variant = ... }")
    local c = diffusers.component(dir, nil, { variant = "bf16" })
    for name, t in pairs(ts) do same(c:load(name), t, name) end
    diffusers.write_component(dir .. "/one", config, ts, { variant = "fp16" })
    spec.assert(grove.C.grove_path_kind(dir .. "/one/diffusion_pytorch_model.fp16.safetensors") == 1, "single variant file")
    rm_rf(dir)
  end)

  -- A sharded folder (a.weight | b.weight c.bias d.ids e.mask | f.big) broken
  -- by edit(idx, dir, index path), which returns the expected message and,
  -- optionally, the index text to write instead of idx.
  local S1, S2, S3 = "diffusion_pytorch_model-00001-of-00003.safetensors",
                     "diffusion_pytorch_model-00002-of-00003.safetensors",
                     "diffusion_pytorch_model-00003-of-00003.safetensors"
  local function refuses(edit)
    local dir = spec.tmpdir()
    diffusers.write_component(dir, config, sample_tensors(), { max_shard_bytes = 600 })
    local ip = dir .. "/diffusion_pytorch_model.safetensors.index.json"
    local idx = json.read(ip)
    spec.eq(idx.weight_map["a.weight"], S1); spec.eq(idx.weight_map["c.bias"], S2); spec.eq(idx.weight_map["f.big"], S3)
    local pattern, text = edit(idx, dir, ip)
    write_all(ip, text or json.encode(idx))
    local err = spec.raises(function() diffusers.component(dir) end, pattern)
    spec.assert(err:find(ip, 1, true), "the error names the index file: " .. err)
    rm_rf(dir)
    os.remove(dir .. ".outside.safetensors")
  end

  spec.it("refuses a weight map naming a file outside the folder", function()
    refuses(function(idx)
      idx.weight_map["a.weight"] = "../" .. S1
      return "tensor 'a.weight' names '../" .. S1 .. "', which is not a file name inside the folder"
    end)
    refuses(function(idx)
      idx.weight_map["a.weight"] = "/etc/passwd"
      return "names '/etc/passwd', which is not a file name"
    end)
    refuses(function(idx, dir)
      local outside = dir .. ".outside.safetensors"
      grove.save_safetensors(outside, { ["a.weight"] = grove.zeros{2} })
      spec.eq(ffi.C.symlink(outside, dir .. "/evil.safetensors"), 0)
      idx.weight_map["a.weight"] = "evil.safetensors"
      return "names 'evil.safetensors', a link leading outside the folder"
    end)
  end)

  spec.it("refuses missing shards, tensors listed twice, in two shards or in the wrong shard", function()
    refuses(function(idx)
      idx.weight_map["f.big"] = "diffusion_pytorch_model-00009-of-00009.safetensors"
      return "shard 'diffusion_pytorch_model-00009-of-00009.safetensors' (listed for tensor 'f.big') does not exist"
    end)
    refuses(function(_, _, ip)
      local text = read_all(ip)
      return 'key weight_map."c.bias" appears twice',
             (text:gsub('"weight_map": {\n', '"weight_map": {\n    "c.bias": "' .. S1 .. '",\n', 1))
    end)
    refuses(function(idx, dir)
      grove.save_safetensors(dir .. "/extra.safetensors", { ["a.weight"] = grove.zeros{2}, z = grove.zeros{1} })
      idx.weight_map.z = "extra.safetensors"
      return "tensor 'a.weight' is in both " .. S1 .. " and extra.safetensors"
    end)
    refuses(function(idx)
      idx.weight_map["c.bias"] = S3
      return "tensor 'c.bias' is listed in shard " .. S3 .. " but is in " .. S2
    end)
    refuses(function(idx)
      idx.weight_map.ghost = S1
      return "tensor 'ghost' is listed in shard " .. S1 .. ", which does not hold it"
    end)
    refuses(function(idx)
      idx.weight_map["e.mask"] = nil
      return "shard " .. S2 .. " holds tensor 'e.mask', which weight_map does not list"
    end)
    refuses(function(idx)
      idx.weight_map["f.big"] = nil
      return "weight_map lists no tensor in shard 3 of 3 (" .. S3 .. ")"
    end)
  end)

  spec.it("refuses malformed JSON, a malformed index and ambiguous weights, naming the file", function()
    refuses(function() return "invalid JSON at byte", '{"weight_map": {"a.weight": "x"' end)
    refuses(function(idx) idx.weight_map = json.array { 1 }; return "weight_map must be an object" end)
    refuses(function(idx) idx.shards = 3; return "unexpected key 'shards'" end)
    refuses(function(idx) idx.weight_map["a.weight"] = 5; return "tensor 'a.weight' maps to a number" end)
    local dir = spec.tmpdir()
    diffusers.write_component(dir, config, { w = grove.zeros{2} })
    write_all(dir .. "/config.json", '{"num_layers": 2,,}')
    spec.raises(function() diffusers.component(dir) end, dir .. "/config.json: invalid JSON at byte 17")
    write_all(dir .. "/config.json", "[1]")
    spec.raises(function() diffusers.component(dir) end, dir .. "/config.json: expected a JSON object")
    write_all(dir .. "/config.json", "{}")
    write_all(dir .. "/diffusion_pytorch_model.safetensors.index.json", "{}")
    spec.raises(function() diffusers.component(dir) end,
                "both diffusion_pytorch_model.safetensors and diffusion_pytorch_model.safetensors.index.json are present")
    os.remove(dir .. "/diffusion_pytorch_model.safetensors.index.json")
    local c = diffusers.component(dir)
    spec.raises(function() c:load("nope") end, dir .. ": no tensor named 'nope'")
    c:close()
    spec.raises(function() c:load("w") end, "is closed")
    spec.raises(function() diffusers.component(dir .. "/nowhere") end, "is not a folder")
    spec.raises(function() diffusers.component(root, "transformer") end, "has no transformer/config.json nor config.json")
    rm_rf(dir)
  end)
end)
