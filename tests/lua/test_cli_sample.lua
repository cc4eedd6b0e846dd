-- `grove sample`: from a grove training checkpoint (one grid, as before) and
-- from a diffusers SANA folder (--model: one PNG per image with the prompt
-- and settings in its text chunks); bad input ends with a clear message, a
-- non-zero status and no Lua file:line.
local spec = require "spec"

local exe = arg and arg[-1]
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function grove_cmd(args) return q(exe) .. " " .. args end

local function fails_cleanly(args, want)
  local out, code = spec.run(grove_cmd(args))
  spec.assert(code ~= 0, "non-zero exit for: " .. args .. "\n" .. out)
  spec.assert(out:find(want, 1, true), "message for " .. args .. " says '" .. want .. "':\n" .. out)
  spec.assert(not out:find("%.lua:%d+:"), "no Lua file:line for " .. args .. ":\n" .. out)
  spec.assert(not out:find("stack traceback", 1, true), "no traceback for " .. args .. ":\n" .. out)
  return out
end

spec.describe("grove sample --checkpoint", function()
  if not exe then spec.skip("the grove executable's path is unknown (arg[-1]); run through tests/lua/run.lua"); return end
  spec.it("samples a grid from a training checkpoint, as it did", function()
    local dir = spec.tmpdir()
    grove.train.run { preset = "tiny", batch = 4, steps = 2, out = dir, save_every = 2, sample_every = 0, log_every = 1000,
                      eval = false, seed = 3 }
    local out, code = spec.run(grove_cmd("sample --checkpoint " .. q(dir .. "/checkpoint.safetensors") ..
      " -p 'a red circle' -n 2 --steps 2 -o " .. q(dir .. "/grid.png")))
    spec.eq(code, 0, out)
    spec.assert(out:find("2 images in", 1, true), out)
    local img = grove.image.load(dir .. "/grid.png")
    spec.eq(img:dim(), 3)
    os.execute("rm -rf " .. q(dir))
  end)
end)

spec.describe("grove sample: bad input", function()
  if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
  spec.it("refuses bad numbers by option name", function()
    local dir = spec.tmpdir()
    local m = "sample --model " .. q(dir) .. " -p cat "
    fails_cleanly(m .. "--steps 0", "option --steps must be an integer >= 1, got 0")
    fails_cleanly(m .. "-n 0", "option --n must be an integer >= 1, got 0")
    fails_cleanly(m .. "-n -3", "option --n must be an integer >= 1, got -3")
    fails_cleanly(m .. "-n 1.5", "option --n must be an integer >= 1, got 1.5")
    fails_cleanly(m .. "--cfg nan", "option --cfg must be a finite number >= 0, got nan")
    fails_cleanly(m .. "--cfg -2", "option --cfg must be a finite number >= 0")
    fails_cleanly(m .. "--seed -1", "option --seed must be an integer >= 0, got -1")
    fails_cleanly(m .. "-H 0", "option --height must be an integer >= 1, got 0")
    fails_cleanly(m .. "--dtype f64", "option --dtype must be bf16 or f32, got 'f64'")
    fails_cleanly(m .. "--steps many", "option --steps needs a number, got 'many'")
    fails_cleanly(m .. "-o out.jpg", "option --output must name a .png file")
    fails_cleanly("sample --model " .. q(dir), "give at least one --prompt")
    fails_cleanly("sample --model " .. q(dir) .. " --prompts " .. q(dir .. "/none.txt"), "--prompts: cannot read")
    fails_cleanly("sample -p cat", "give --checkpoint FILE")
    fails_cleanly("sample --model " .. q(dir) .. " --checkpoint x -p cat", "not both")
    fails_cleanly("sample --model " .. q(dir) .. " -p cat", "has no model_index.json")
    fails_cleanly("sample --model " .. q(dir .. "/nope") .. " -p cat", "is not a folder")
    -- a folder whose model_index.json names a component it lacks
    spec.write_all(dir .. "/model_index.json", grove.json.encode {
      _class_name = "SanaPipeline", vae = grove.json.array { "diffusers", "AutoencoderDC" } })
    fails_cleanly("sample --model " .. q(dir) .. " -p cat", "is missing its vae")
    os.execute("rm -rf " .. q(dir))
  end)
end)

spec.describe("grove sample --model on the tiny folder", function()
  if not exe then spec.skip("the grove executable's path is unknown (arg[-1])"); return end
  local spm = io.popen("command -v spm_train 2>/dev/null"):read("*l")
  if not spm or spm == "" then spec.skip("spm_train is not installed (scripts/install-deps)"); return end
  if type(grove.diffusers.vae) ~= "function" then spec.skip("this build has no DC-AE decoder (grove.diffusers.vae)"); return end
  local root = spec.tmpdir()
  local dir = root .. "/tiny"
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
  local out, code = spec.run("GROVE=" .. q(exe) .. " " .. q(here .. "/../../scripts/tiny-sana-folder") .. " " .. q(dir) ..
                             " --seed 4")
  spec.eq(code, 0, out)
  local function sample(args) return spec.run(grove_cmd("sample --model " .. q(dir) .. " " .. args)) end

  spec.it("writes a PNG of the asked size; the same seed gives the same bytes", function()
    local o1, c1 = sample("-p 'a red cat at dusk' -H 64 -W 96 --no-binning --steps 2 --seed 3 -o " .. q(root .. "/a.png"))
    spec.eq(c1, 0, o1)
    spec.assert(o1:find("step 2/2", 1, true), "a progress line per step:\n" .. o1)
    local img = grove.image.load(root .. "/a.png")
    spec.eq(img:shape_str(), "[64,96,3]")
    local o2, c2 = sample("-p 'a red cat at dusk' -H 64 -W 96 --no-binning --steps 2 --seed 3 -o " .. q(root .. "/b.png"))
    spec.eq(c2, 0, o2)
    spec.eq(spec.read_all(root .. "/a.png"), spec.read_all(root .. "/b.png"), "same seed, same bytes")
    local o3, c3 = sample("-p 'a red cat at dusk' -H 64 -W 96 --no-binning --steps 2 --seed 4 -o " .. q(root .. "/c.png"))
    spec.eq(c3, 0, o3)
    spec.assert(spec.read_all(root .. "/a.png") ~= spec.read_all(root .. "/c.png"), "another seed, another image")
    local text = grove.image.read_text(root .. "/a.png")
    spec.eq(text.prompt, "a red cat at dusk")
    spec.eq(text.seed, "3")
    spec.eq(text.steps, "2")
    spec.eq(text.cfg, "4.5")
    spec.eq(text.sampler, "dpm")
    spec.eq(text.size, "96x64")
    spec.eq(text.negative_prompt, "")
  end)

  spec.it("bins a size that is not a multiple of 32 and gives back the asked size; refuses it without binning", function()
    local o, c = sample("-p 'a cat' -H 100 -W 150 --steps 1 -o " .. q(root .. "/binned.png"))
    spec.eq(c, 0, o)
    spec.eq(grove.image.load(root .. "/binned.png"):shape_str(), "[100,150,3]")
    spec.eq(grove.image.read_text(root .. "/binned.png").generated_size, "608x416 (resolution binning)")
    fails_cleanly("sample --model " .. q(dir) .. " -p cat -H 100 -W 150 --no-binning -o " .. q(root .. "/x.png"),
                  "multiples of 32")
  end)

  spec.it("writes one file per image for several prompts and images, and warns about a long prompt", function()
    local file = root .. "/prompts.txt"
    spec.write_all(file, "a red cat\n\n" .. string.rep("a fluffy dog next to a shiny robot ", 60) .. "\n")
    local o, c = sample("--prompts " .. q(file) .. " -n 2 -H 64 -W 64 --no-binning --steps 1 -o " .. q(root .. "/many.png"))
    spec.eq(c, 0, o)
    for i = 1, 4 do spec.eq(grove.image.load(root .. "/many-" .. i .. ".png"):shape_str(), "[64,64,3]") end
    spec.eq(grove.image.read_text(root .. "/many-2.png").image, "2 of 2")
    spec.eq(grove.image.read_text(root .. "/many-3.png").prompt:sub(1, 12), "a fluffy dog")
    spec.assert(o:find("warning: prompt 1 is longer than the text encoder takes", 1, true), o)
    spec.assert(not o:find("%.lua:%d+:"), o)
  end)

  spec.it("holds the weights as bf16 and computes bf16 GEMMs when asked, with --offload", function()
    local o, c = sample("-p 'a red cat' -H 64 -W 64 --no-binning --steps 1 --dtype bf16 --compute bf16 --offload -o " ..
                        q(root .. "/half.png"))
    spec.eq(c, 0, o)
    local text = grove.image.read_text(root .. "/half.png")
    spec.eq(text.dtype, "bf16")
    spec.eq(text.compute, "bf16")
    spec.eq(grove.image.load(root .. "/half.png"):shape_str(), "[64,64,3]")
  end)

  spec.it("a Sprint folder samples with SCM", function()
    local sdir = root .. "/sprint"
    grove.diffusers.tiny_folder(sdir, { seed = 1, sprint = true })
    local o, c = spec.run(grove_cmd("sample --model " .. q(sdir) .. " -p 'a cat' -H 64 -W 64 --no-binning -o " ..
                                    q(root .. "/sprint.png")))
    spec.eq(c, 0, o)
    local text = grove.image.read_text(root .. "/sprint.png")
    spec.eq(text.sampler, "scm")
    spec.eq(text.steps, "2")
    spec.eq(text.guidance, "4.5")
    fails_cleanly("sample --model " .. q(sdir) .. " -p cat --negative-prompt blurry -o " .. q(root .. "/y.png"),
                  "takes no negative prompt")
  end)

  os.execute("rm -rf " .. q(root))
end)
