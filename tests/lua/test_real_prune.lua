-- Pruning a complete diffusers pipeline folder on its own trajectories
-- (`grove prune --model`, grove.prune.pipeline_folder): the importance
-- table equals the block-by-block cosine computed here independently (the
-- same trajectories sampled again, the blocks called one by one, the
-- cosine summed in doubles), the least important blocks are the ones
-- removed (and --keep protects), the kept blocks are copied bit for bit
-- into a complete folder with the table and chart beside it, and the
-- default calibration prompts are none of the evaluation prompts.
local spec = require "spec"

local exe = arg and arg[-1]
local diffusers = grove.diffusers
local C = grove.C
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function exists(p) return C.grove_path_kind(p) ~= C.GROVE_PATH_NONE end
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local PROMPTS = { "a red cat at dusk", "a shiny robot on a table", "a green tree by the sea" }
local STEPS, CFG, H, W, SEED = 3, 4.5, 64, 96, 2

-- Adds each token's cos(x_in, x_out) of every block (called one by one on
-- item s: x, t, text, mask of one sample), summed in doubles.
local function add_cosines(T, s, h, w, sum, count)
  grove.no_grad(function()
    local _, t0, y = T:condition(s.t, s.text)
    local tokens = T:embed(s.x)
    for i, block in ipairs(T.blocks) do
      local out = block:forward(tokens, t0, y, s.mask, h, w)
      local a, b = tokens:tolist()[1], out:tolist()[1]
      for k = 1, #a do
        local dot, na, nb = 0, 0, 0
        for d = 1, #a[k] do
          dot, na, nb = dot + a[k][d] * b[k][d], na + a[k][d] ^ 2, nb + b[k][d] ^ 2
        end
        sum[i] = sum[i] + dot / math.sqrt(na * nb)
        count[i] = count[i] + 1
      end
      tokens = out
    end
  end)
end
local averages

-- 1 − mean cos(x_in, x_out) per block and step, from the blocks called one
-- by one on the trajectories of pipe's sampling (the conditional rows),
-- the cosine of each token computed in doubles.
local function independent_importance(pipe, prompts)
  local T = pipe.transformer
  local N = #T.blocks
  local sum, count = {}, {}
  for j = 1, STEPS do
    sum[j], count[j] = {}, {}
    for i = 1, N do sum[j][i], count[j][i] = 0, 0 end
  end
  local vs = pipe:vae_scale_factor()
  local h, w = H / vs, W / vs
  for p, prompt in ipairs(prompts) do
    local g = grove.Generator(SEED)
    g.offset = (p - 1) * 2 ^ 24
    local noise = grove.randn({ 1, h, w, T.config.in_channels }, { generator = g })
    local seen = {}
    pipe:generate { prompt = prompt, latents = noise, steps = STEPS, cfg = CFG, output = "latent",
      callback = function(i, _, _, info)
        local row = info.model_in:size(1)   -- the positive row of [negative, positive]
        seen[i] = { x = info.model_in:narrow(1, row, 1):contiguous(), t = info.timestep_in:narrow(1, row, 1):contiguous(),
                    text = info.encoder_hidden_states_in:narrow(1, row, 1):contiguous(),
                    mask = info.encoder_attention_mask_in:narrow(1, row, 1):contiguous() }
      end }
    for j, s in ipairs(seen) do add_cosines(T, s, h, w, sum[j], count[j]) end
  end
  return averages(sum, count, N, STEPS)
end

-- The same on a feature cache's first samples: x0 noised at the recorded
-- σ with the transformer's recorded timesteps.
local function cache_importance(pipe, cache, n, sigmas, timesteps)
  local T = pipe.transformer
  local N, S = #T.blocks, #sigmas
  local sum, count = {}, {}
  for j = 1, S do
    sum[j], count[j] = {}, {}
    for i = 1, N do sum[j][i], count[j][i] = 0, 0 end
  end
  local b = diffusers.cache_dataset(cache, { batch_size = n, shuffle = false }):next()
  for p = 1, n do
    local x0 = b.latents:narrow(1, p, 1):contiguous()
    local g = grove.Generator(SEED)
    g.offset = (p - 1) * 2 ^ 24
    local eps = grove.randn(x0:shape(), { generator = g })
    for j = 1, S do
      local s = { x = x0 * (1 - sigmas[j]) + eps * sigmas[j], t = grove.full({ 1 }, timesteps[j]),
                  text = b.features:narrow(1, p, 1):contiguous(), mask = b.mask:narrow(1, p, 1):contiguous() }
      add_cosines(T, s, x0:size(2), x0:size(3), sum[j], count[j])
    end
  end
  return averages(sum, count, N, S)
end

averages = function(sum, count, N, S)
  local by_step, mean = {}, {}
  for i = 1, N do mean[i] = 0 end
  for j = 1, S do
    by_step[j] = {}
    for i = 1, N do
      by_step[j][i] = 1 - sum[j][i] / count[j][i]
      mean[i] = mean[i] + by_step[j][i] / S
    end
  end
  return mean, by_step
end

local function lowest(scores, k, protected)
  local order = {}
  for i = 1, #scores do if not (protected and protected[i]) then order[#order + 1] = i end end
  table.sort(order, function(a, b) return scores[a] < scores[b] end)
  local out = {}
  for n = 1, k do out[n] = order[n] end
  table.sort(out)
  return out
end

spec.describe("grove prune --model: block importance on the folder's own trajectories", function()
  local spm = io.popen("command -v spm_train 2>/dev/null"):read("*l")
  if not spm or spm == "" then spec.skip("spm_train is not installed (scripts/install-deps)"); return end
  if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
  local root = spec.tmpdir()
  local src = root .. "/tiny"
  diffusers.tiny_folder(src, { seed = 8, layers = 4 })
  local calib = root .. "/calib.txt"
  spec.write_all(calib, table.concat(PROMPTS, "\n") .. "\n\n")
  local mean, by_step = independent_importance(diffusers.pipeline(src), PROMPTS)

  spec.it("the table is the blocks' cosine computed one by one; the least important go; kept blocks bit for bit", function()
    local out = root .. "/pruned"
    local res = grove.prune.pipeline_folder(src, out, { depth = 2, calib = calib, steps = STEPS, cfg = CFG, height = H,
                                                        width = W, seed = SEED, batch = 2 })
    spec.eq(#res.scores, 4)
    for i = 1, 4 do
      spec.near(res.scores[i], mean[i], 1e-5, "block " .. i .. " importance")
      for j = 1, STEPS do spec.near(res.by_step[j][i], by_step[j][i], 1e-5, "block " .. i .. " step " .. j) end
    end
    spec.eq(table.concat(res.removed, ","), table.concat(lowest(mean, 2), ","), "the two least important removed")
    spec.eq(#res.sigmas, STEPS)
    spec.assert(res.sigmas[1] > res.sigmas[STEPS], "sigmas from noise down")
    -- the files beside the folder
    local doc = grove.json.read(out .. "-importance.json")
    spec.eq(doc.latents, "trajectory")
    spec.eq(doc.prompts_origin, calib)
    spec.eq(#doc.prompts, 3)
    for i = 1, 4 do
      spec.near(doc.blocks[i].importance, mean[i], 1e-5, "json block " .. i)
      spec.eq(doc.blocks[i].name, "transformer_blocks." .. (i - 1))
    end
    local csv = spec.read_all(out .. "-importance.csv")
    spec.assert(csv:find("^block,name,importance,removed,step_1_sigma_"), csv)
    local lines = 0
    for _ in csv:gmatch("\n") do lines = lines + 1 end
    spec.eq(lines, 5, "a header and a row per block")
    spec.eq(grove.image.load(out .. "-importance.png"):dim(), 3)
    -- the complete folder: kept blocks copied bit for bit, renumbered; components linked
    local a, b = diffusers.component(src .. "/transformer"), diffusers.component(out .. "/transformer")
    spec.eq(b.config.num_layers, 2)
    for k, j in ipairs(res.kept) do
      for _, rel in ipairs { "attn1.to_q.weight", "attn2.to_out.0.bias", "ff.conv_inverted.weight", "scale_shift_table" } do
        local x, y = a:load("transformer_blocks." .. (j - 1) .. "." .. rel), b:load("transformer_blocks." .. (k - 1) .. "." .. rel)
        spec.eq(spec.max_diff(x, y), 0, rel .. " of kept block " .. j)
      end
    end
    spec.eq(spec.max_diff(a:load("proj_out.weight"), b:load("proj_out.weight")), 0)
    for _, comp in ipairs { "text_encoder", "tokenizer", "vae", "scheduler" } do
      spec.assert(exists(out .. "/" .. comp .. "/"), comp .. " is there")
    end
    a:close(); b:close()
  end)

  spec.it("the command line: --keep protects the least important block; grove sample runs on the result", function()
    local out = root .. "/cli"
    local protect = lowest(mean, 1)[1]
    local text, code = spec.run(q(exe) .. " prune --model " .. q(src) .. " --out " .. q(out) .. " --depth 2 --calib " ..
      q(calib) .. string.format(" --steps %d -H %d -W %d --seed %d --keep %d --components copy", STEPS, H, W, SEED, protect))
    spec.eq(code, 0, text)
    local want = lowest(mean, 2, { [protect] = true })
    spec.assert(text:find("removed blocks " .. table.concat(want, ","), 1, true), text)
    spec.assert(text:find("calibration: 3 prompts from " .. calib, 1, true), text)
    spec.assert(text:find("averaged over 3 steps", 1, true), text)
    spec.assert(exists(out .. "-importance.csv") and exists(out .. "-importance.png"), "table and chart written")
    local o, c = spec.run(q(exe) .. " sample --model " .. q(out) .. " -p 'a cat' -H 64 -W 64 --no-binning --steps 1 -o " ..
                          q(root .. "/pruned.png"))
    spec.eq(c, 0, o)
    -- the default calibration prompts, the first one of them
    local out2 = root .. "/defaults"
    local t2, c2 = spec.run(q(exe) .. " prune --model " .. q(src) .. " --out " .. q(out2) ..
                            " --depth 3 --prompts 1 --steps 2 -H 32 -W 32")
    spec.eq(c2, 0, t2)
    spec.assert(t2:find("calibration: 1 prompt from grove's default calibration prompts", 1, true), t2)
    spec.eq(grove.json.read(out2 .. "-importance.json").prompts[1], grove.prune.calib_prompts[1])
  end)

  spec.it("--calib-images: a feature cache's latents and captions, noised at the schedule's sigmas", function()
    local photos = root .. "/photos"
    os.execute("mkdir -p " .. q(photos))
    local scenes = grove.data.shapes { batch = 3, size = 64, seed = 4 }:next()
    for i = 1, 3 do
      grove.image.save(string.format("%s/%d.png", photos, i), scenes.images:select(1, i))
      spec.write_all(string.format("%s/%d.txt", photos, i), scenes.captions[i] .. "\n")
    end
    local cache = root .. "/cache"
    diffusers.cache(src, photos, cache, { size = 64 })
    local out = root .. "/from_cache"
    local text, code = spec.run(q(exe) .. " prune --model " .. q(src) .. " --out " .. q(out) .. " --depth 3 --calib-images " ..
                                q(cache) .. " --steps 4 --seed " .. SEED)
    spec.eq(code, 0, text)
    spec.assert(text:find("averaged over 4 steps", 1, true) and text:find("3 cached samples of " .. cache, 1, true), text)
    local doc = grove.json.read(out .. "-importance.json")
    spec.eq(doc.latents, "cache")
    spec.eq(#doc.prompts, 3)
    spec.eq(doc.prompts[1], scenes.captions[1])
    local cmean, cby = cache_importance(diffusers.pipeline(src), cache, 3, doc.sigmas, doc.timesteps)
    for i = 1, 4 do
      spec.near(doc.blocks[i].importance, cmean[i], 1e-5, "cached block " .. i)
      for j = 1, 4 do spec.near(doc.blocks[i].by_step[j], cby[j][i], 1e-5, "cached block " .. i .. " step " .. j) end
    end
    spec.eq(table.concat(doc.removed, ","), table.concat(lowest(cmean, 1), ","))
    local o2, c2 = spec.run(q(exe) .. " prune --model " .. q(src) .. " --out " .. q(root .. "/x") .. " --depth 3 " ..
                            "--calib-images " .. q(cache) .. " --calib " .. q(calib))
    spec.assert(c2 ~= 0 and o2:find("not both", 1, true), o2)
  end)

  spec.it("refuses bad calibration input with clear messages, leaving nothing", function()
    local function fails(args, want)
      local o, c = spec.run(q(exe) .. " prune --model " .. q(src) .. " --out " .. q(root .. "/bad") .. " " .. args)
      spec.assert(c ~= 0, "non-zero exit for " .. args .. "\n" .. o)
      spec.assert(o:find(want, 1, true), "message for " .. args .. " says '" .. want .. "':\n" .. o)
      spec.assert(not o:find("%.lua:%d+:"), "no Lua file:line:\n" .. o)
    end
    fails("--depth 9 --prompts 1 --steps 1 -H 32 -W 32", "depth must be an integer from 1 to 4")
    fails("--depth 2 --prompts 99", "99 calibration prompts asked, but grove's default calibration prompts")
    spec.write_all(root .. "/empty.txt", "\n  \n")
    fails("--depth 2 --calib " .. q(root .. "/empty.txt"), "has no prompts")
    fails("--depth 2 --prompts 1 -H 40 -W 32", "must be a multiple of 32")
    fails("--depth 2 --prompts 1 --components none", "option --components must be link or copy")
    spec.assert(not exists(root .. "/bad") and not exists(root .. "/bad.partial"), "nothing written")
  end)

  os.execute("rm -rf " .. q(root))
end)

spec.describe("the default calibration prompts", function()
  spec.it("are none of the evaluation prompts grove ships", function()
    local evals = {}
    local p = io.popen("ls " .. q(here .. "/../../data/shapes/prompts") .. "/*.txt 2>/dev/null")
    local n = 0
    for f in p:lines() do
      n = n + 1
      for _, line in ipairs(grove.prune.read_prompts(f)) do evals[line:lower()] = f end
    end
    p:close()
    spec.assert(n > 0, "the shapes evaluation prompt sets are there")
    spec.assert(#grove.prune.calib_prompts >= 32, "32 or more")
    local seen = {}
    for i, c in ipairs(grove.prune.calib_prompts) do
      spec.assert(not evals[c:lower()], "calibration prompt " .. i .. " is in " .. tostring(evals[c:lower()]))
      spec.assert(not seen[c], "calibration prompt " .. i .. " repeats")
      spec.assert(not grove.data.captions.parse(c), "calibration prompt " .. i .. " is not a shapes caption")
      seen[c] = true
    end
  end)
end)
