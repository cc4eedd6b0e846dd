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
