-- Growth of a complete diffusers pipeline folder (`grove grow --model`,
-- grove.grow.complete_folder): the tiny random SANA folder grown by each
-- strategy with identity init computes exactly what the source did (the
-- transformer on the same inputs, and the pipeline from a prompt), the
-- other components are linked or copied as asked, --keep grows from the
-- kept source blocks only, `grove sample --model` runs on the result, and
-- a failed run leaves nothing and the source untouched.
local spec = require "spec"

local exe = arg and arg[-1]
local diffusers = grove.diffusers
local C = grove.C
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function exists(p) return C.grove_path_kind(p) ~= C.GROVE_PATH_NONE end
local function is_link(p)
  local r = os.execute("test -L " .. q(p))
  return r == 0 or r == true
end

-- The same random inputs for two transformers of the tiny folder's config.
local function inputs(T, seed)
  local g = grove.Generator(seed)
  local c = T.config
  local x = grove.randn({ 2, 4, 6, c.in_channels }, { generator = g })
  local t = grove.rand({ 2 }, { generator = g }) * 1000
  local text = grove.randn({ 2, 5, c.caption_channels }, { generator = g })
  local mask = grove.tensor { { 1, 1, 1, 0, 0 }, { 1, 1, 1, 1, 1 } }
  return x, t, text, mask
end

local function forward(T, x, t, text, mask)
  return grove.no_grad(function() return T:forward(x, t, text, mask) end)
end

spec.describe("grove grow --model: a complete grown folder", function()
  local spm = io.popen("command -v spm_train 2>/dev/null"):read("*l")
  if not spm or spm == "" then spec.skip("spm_train is not installed (scripts/install-deps)"); return end
  if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
  local root = spec.tmpdir()
  local src = root .. "/tiny"
  diffusers.tiny_folder(src, { seed = 6 })
  local source = diffusers.transformer(src)
  local x, t, text, mask = inputs(source, 11)
  local want = forward(source, x, t, text, mask)

  spec.it("each strategy with identity init computes exactly what the source did; links by default", function()
    for _, case in ipairs { { "partial", 5 }, { "cyclic", 4 }, { "block", 6 } } do
      local out = root .. "/grown_" .. case[1]
      local res = grove.grow.complete_folder(src, out, {}, function(tmp)
        return grove.grow.folder(src, tmp, { strategy = case[1], depth = case[2], init = "identity" })
      end)
      spec.eq(res.out, out)
      spec.eq(res.dir, out .. "/transformer")
      spec.eq(res.depth, case[2])
      local big = diffusers.transformer(out)
      spec.eq(#big.blocks, case[2], case[1] .. " blocks")
      spec.eq(diffusers.component(out .. "/transformer").config.num_layers, case[2], case[1] .. " num_layers")
      spec.eq(spec.max_diff(forward(big, x, t, text, mask), want), 0, case[1] .. ": grown forward against the source's")
      for _, comp in ipairs { "text_encoder", "tokenizer", "vae", "scheduler" } do
        spec.assert(is_link(out .. "/" .. comp), case[1] .. ": " .. comp .. " is a link")
      end
      spec.assert(not is_link(out .. "/transformer"), "the transformer is written, not linked")
      spec.eq(spec.read_all(out .. "/model_index.json"), spec.read_all(src .. "/model_index.json"))
      spec.assert(not exists(out .. ".partial"), "nothing left behind")
    end
  end)

  spec.it("the grown pipeline samples the source's latents from a prompt", function()
    local a = diffusers.pipeline(src):generate { prompt = "a red cat at dusk", seed = 3, steps = 2, output = "latent",
                                                 height = 64, width = 96, binning = false }
    local b = diffusers.pipeline(root .. "/grown_partial"):generate { prompt = "a red cat at dusk", seed = 3, steps = 2,
      output = "latent", height = 64, width = 96, binning = false }
    spec.eq(spec.max_diff(a.latents, b.latents), 0, "same latents")
  end)

  spec.it("the command line: --keep, --components copy, and grove sample --model on the result", function()
    local out = root .. "/cli"
    local text_out, code = spec.run(q(exe) .. " grow --model " .. q(src) .. " --out " .. q(out) ..
                                    " --depth 3 --strategy partial --init identity --keep 2 --components copy")
    spec.eq(code, 0, text_out)
    spec.assert(text_out:find("2 -> 3 blocks (partial, identity init: 1 kept, 0 repeated, 2 new; source blocks 1 left out)",
                              1, true), text_out)
    spec.assert(text_out:find("copied from", 1, true), text_out)
    for _, f in ipairs { "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "tokenizer/tokenizer.model",
                         "text_encoder/model.safetensors", "scheduler/scheduler_config.json" } do
      spec.assert(not is_link(out .. "/" .. f:match("^[^/]+")), f .. ": copied, not linked")
      spec.eq(spec.read_all(out .. "/" .. f), spec.read_all(src .. "/" .. f), f .. " copied byte for byte")
    end
    -- growing from block 2 alone equals the source pruned to block 2
    local pruned = root .. "/keep2"
    grove.prune.folder(src, pruned, { keep = { 2 } })
    local small = diffusers.transformer(pruned)
    spec.eq(spec.max_diff(forward(diffusers.transformer(out), x, t, text, mask), forward(small, x, t, text, mask)), 0,
            "--keep 2 then identity growth computes what block 2 alone does")
    local meta = diffusers.component(out .. "/transformer")
    spec.eq(meta.config.num_layers, 3)
    -- grove sample --model on the grown folder gives the source's pixels
    local function sample(dir, png)
      local o, c = spec.run(q(exe) .. " sample --model " .. q(dir) .. " -p 'a blue dog' -H 64 -W 64 --no-binning " ..
                            "--steps 2 --seed 5 -o " .. q(png))
      spec.eq(c, 0, o)
      return grove.image.load(png)
    end
    local grown_png = sample(root .. "/grown_cyclic", root .. "/grown.png")
    local src_png = sample(src, root .. "/src.png")
    spec.eq(grown_png:shape_str(), "[64,64,3]")
    spec.eq(spec.max_diff(grown_png:float(), src_png:float()), 0, "the grown folder samples the source's image")
    sample(out, root .. "/kept.png")
  end)

  spec.it("refuses a bad call with a clear message and leaves nothing; the source stays whole", function()
    local function fails(args, want)
      local o, c = spec.run(q(exe) .. " grow " .. args)
      spec.assert(c ~= 0, "non-zero exit for " .. args .. "\n" .. o)
      spec.assert(o:find(want, 1, true), "message for " .. args .. " says '" .. want .. "':\n" .. o)
      spec.assert(not o:find("%.lua:%d+:"), "no Lua file:line:\n" .. o)
    end
    local out = root .. "/bad"
    fails("--model " .. q(src) .. " --out " .. q(out) .. " --depth 1", "partial keeps all 2 source blocks")
    fails("--model " .. q(src) .. " --out " .. q(root .. "/grown_partial") .. " --depth 4", "already exists")
    fails("--model " .. q(src .. "/transformer") .. " --out " .. q(out) .. " --depth 4", "has no model_index.json")
    fails("--model " .. q(src) .. " --out " .. q(out) .. " --depth 4 --components hardlink",
          "option --components must be link or copy")
    fails("--model " .. q(src) .. " --in " .. q(src) .. " --out " .. q(out) .. " --depth 4", "one of them")
    fails("--model " .. q(src) .. " --out " .. q(out) .. " --depth 4 --keep 3", "keep names block 3, but")
    fails("--model " .. q(src) .. " --out " .. q(out) .. " --depth 4 --keep 2-1", "runs backwards")
    spec.assert(not exists(out) and not exists(out .. ".partial"), "a failed run leaves no folder")
    local ok = pcall(grove.grow.complete_folder, src, out, {}, function(tmp)
      grove.grow.folder(src, tmp, { depth = 3 })
      error("grow: stopped on purpose", 0)
    end)
    spec.assert(not ok)
    spec.assert(not exists(out) and not exists(out .. ".partial"), "nothing left after a failure")
    -- the clean-up unlinks links and never follows them into the source
    local linked = root .. "/grown_block"
    spec.assert(is_link(linked .. "/vae"))
    grove.grow.remove_tree(linked)
    spec.assert(not exists(linked), "removed")
    for _, f in ipairs { "vae/config.json", "tokenizer/tokenizer.model", "text_encoder/config.json",
                         "scheduler/scheduler_config.json" } do
      spec.assert(exists(src .. "/" .. f), "the source keeps " .. f)
    end
  end)

  os.execute("rm -rf " .. q(root))
end)
