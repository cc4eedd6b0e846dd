-- grove sample: images for one or more prompts, from a grove training
-- checkpoint (one grid) or from a diffusers SANA folder (one PNG per image,
-- the prompt and settings in its text chunks).
--   grove sample --checkpoint runs/tiny/checkpoint.safetensors --prompt "two red circles" \
--                --seed 1 --steps 20 --cfg 4.5 --sampler dpm -n 8 -o out.png
--   grove sample --model DIR -p "a cyberpunk cat" -n 4 --steps 20 --cfg 4.5 -H 1024 -W 1024 --seed 0 -o cat.png
local args = require "grove.cli.args"

local spec = {
  { "checkpoint", "string", nil, "a grove training checkpoint (safetensors): images as one grid" },
  { "model", "string", nil, "a diffusers SANA folder (model_index.json): one PNG per image" },
  { "prompt", "list", nil, "prompt (repeat for several)", short = "p" },
  { "prompts", "string", nil, "a file of prompts, one a line (blank lines skipped)" },
  { "negative_prompt", "string", nil, "negative prompt (--model; default \"\"; Sprint takes none)" },
  { "n", "number", nil, "images per prompt (default 4 with --checkpoint, 1 with --model)", short = "n" },
  { "seed", "number", nil, "noise seed, an integer >= 0 (default 1 with --checkpoint, 0 with --model)", short = "s" },
  { "steps", "number", nil, "sampling steps (default 20; SCM 2)" },
  { "cfg", "number", 4.5, "classifier-free guidance scale (1: off); Sprint: its embedded guidance" },
  { "sampler", "string", nil, "dpm, euler or scm (--model: default the folder's scheduler; --checkpoint: dpm, "
    .. "a registered name or a .lua file)" },
  { "size", "number", 32, "image size (--checkpoint)" },
  { "height", "number", nil, "image height in pixels (--model; default the model's native size)", short = "H" },
  { "width", "number", nil, "image width in pixels (--model; default the model's native size)", short = "W" },
  { "no_binning", "boolean", false, "--model: generate at exactly -H x -W (multiples of 32) instead of SANA's "
    .. "nearest trained size resized back" },
  { "dtype", "string", nil, "--model: bf16 or f32, how the weights are held (default: as stored)" },
  { "compute", "string", "f32", "--model: f32, or bf16 GEMMs and convolutions (inputs rounded to bf16, f32 sums; the transformer's and text encoder's GEMM weights stored bf16)" },
  { "offload", "boolean", false, "--model: drop the text encoder after encoding and the transformer before decoding" },
  { "output", "string", "sample.png", "output PNG (--model with several images: NAME-1.png, NAME-2.png, ...)",
    short = "o" },
  { "raw", "boolean", false, "use the raw weights instead of the EMA weights (--checkpoint)" },
  args.device_option(),
}

local USAGE = "grove sample (--checkpoint FILE | --model DIR) --prompt TEXT [options]"

local function read_prompts(path)
  local f, err = io.open(path, "r")
  if not f then error("--prompts: cannot read " .. tostring(err), 0) end
  local out = {}
  for line in f:lines() do
    line = line:gsub("\r$", "")
    if line:find("%S") then out[#out + 1] = line end
  end
  f:close()
  if #out == 0 then error("--prompts: " .. path .. " holds no prompt (one a line)", 0) end
  return out
end

-- A progress bar on stderr: one line redrawn on a terminal, a line a step
-- otherwise (a log file keeps them all).
local ffi = require "ffi"
pcall(ffi.cdef, "int isatty(int fd);")
local function progress(label, steps)
  local tty = ffi.C.isatty(2) == 1
  local t0 = grove.now()
  return function(i)
    local el = grove.now() - t0
    local width = 24
    local done = math.floor(width * i / steps + 0.5)
    local line = string.format("%sstep %d/%d [%s%s] %.1fs (%.2f s/step)", label, i, steps, string.rep("#", done),
                               string.rep(".", width - done), el, el / i)
    if tty then
      io.stderr:write("\r" .. line .. (i == steps and "\n" or ""))
    else
      io.stderr:write(line .. "\n")
    end
    io.stderr:flush()
  end
end

-- NAME.png for one image, NAME-1.png … NAME-k.png for several.
local function output_names(output, total)
  if not output:lower():find("%.png$") then error("option --output must name a .png file, got '" .. output .. "'", 0) end
  if total == 1 then return { output } end
  local stem = output:sub(1, -5)
  local digits = #tostring(total)
  local names = {}
  for i = 1, total do names[i] = string.format("%s-%0" .. digits .. "d.png", stem, i) end
  return names
end

local function sample_model(o)
  args.check_int(o, "n", 1)
  args.check_int(o, "steps", 1)
  args.check_number(o, "cfg", 0)
  args.check_int(o, "seed", 0)
  args.check_int(o, "height", 1)
  args.check_int(o, "width", 1)
  args.check_choice(o, "dtype", { "bf16", "f32" })
  args.check_choice(o, "compute", { "f32", "bf16" })
  args.check_choice(o, "device", { "cpu", "cuda" })
  local prompts = {}
  for _, p in ipairs(o.prompt or {}) do prompts[#prompts + 1] = p end
  if o.prompts then
    for _, p in ipairs(read_prompts(o.prompts)) do prompts[#prompts + 1] = p end
  end
  if #prompts == 0 then error("give at least one --prompt (-p TEXT) or --prompts FILE", 0) end
  local n, seed = o.n or 1, o.seed or 0
  local names = output_names(o.output, #prompts * n)
  local pipe = grove.diffusers.pipeline(o.model, { dtype = o.dtype, device = o.device, compute = o.compute,
                                                    drop_after_use = o.offload })
  local t0, k = grove.now(), 0
  for pi, prompt in ipairs(prompts) do
    local label = #prompts > 1 and string.format("[%d/%d] ", pi, #prompts) or ""
    local bar
    local out = pipe:generate {
      prompt = prompt, negative_prompt = o.negative_prompt, steps = o.steps, cfg = o.cfg, height = o.height,
      width = o.width, seed = seed, sampler = o.sampler, num_images = n, binning = not o.no_binning,
      callback = function(i)
        bar = bar or progress(label, o.steps or pipe:steps_for(o.sampler))
        bar(i)
      end,
    }
    for b = 1, n do
      k = k + 1
      local text = {
        prompt = prompt, seed = tostring(seed), image = string.format("%d of %d", b, n), steps = tostring(out.steps),
        sampler = out.sampler, size = string.format("%dx%d", out.width, out.height), model = o.model,
        Software = "grove " .. grove._VERSION, dtype = o.dtype or "as stored", compute = o.compute,
      }
      if out.sprint or out.sampler == "scm" then text.guidance = tostring(out.cfg)
      else
        text.cfg = tostring(out.cfg)
        text.negative_prompt = o.negative_prompt or ""
      end
      if out.generated_width ~= out.width or out.generated_height ~= out.height then
        text.generated_size = string.format("%dx%d (resolution binning)", out.generated_width, out.generated_height)
      end
      grove.image.save(names[k], out.images:narrow(1, b, 1), { text = text })
      print(names[k])
    end
  end
  io.stderr:write(string.format("%d image%s in %.1f s\n", k, k == 1 and "" or "s", grove.now() - t0))
end

local function sample_checkpoint(o)
  -- 0 or negative steps returned the noise itself; -n 0 failed deep inside
  args.check_int(o, "n", 1)
  args.check_int(o, "steps", 1)
  args.check_number(o, "cfg")
  args.check_int(o, "seed", 0)
  args.check_int(o, "size", 1)
  if not o.prompt then error("give at least one --prompt", 0) end
  local n, seed = o.n or 4, o.seed or 1
  local parts = grove.train.load_for_inference(o.checkpoint, { ema = not o.raw, device = o.device })
  local prompts = {}
  for _, p in ipairs(o.prompt) do
    for _ = 1, n do prompts[#prompts + 1] = p end
  end
  local t0 = grove.now()
  local images = grove.train.sample_prompts(parts, prompts, { size = o.size, seed = seed, steps = o.steps or 20, cfg = o.cfg,
                                                              sampler = grove.sample.load(o.sampler or "dpm") })
  grove.image.save(o.output, grove.image.grid(images, { cols = math.min(n, 8), captions = prompts, scale = 3 }))
  print(string.format("%d images in %.1f s (%s weights, step %d) -> %s", #prompts, grove.now() - t0,
    parts.ema_used and "EMA" or "raw", parts.step or 0, o.output))
end

return function(argv)
  local o, rest = args.parse(argv, spec, { usage = USAGE,
    description = "Samples images from a grove training checkpoint (one grid) or a diffusers SANA folder (one PNG each)." })
  if not o then print(rest); return end
  if #rest > 0 then error("unexpected argument '" .. rest[1] .. "' (a prompt goes after -p)\n\n" .. args.usage(spec, { usage = USAGE }), 0) end
  if o.model and o.checkpoint then error("give --checkpoint or --model, not both", 0) end
  if o.model then return sample_model(o) end
  if o.checkpoint then return sample_checkpoint(o) end
  error("give --checkpoint FILE (a grove training checkpoint) or --model DIR (a diffusers SANA folder)\n\n" ..
        args.usage(spec, { usage = USAGE }), 0)
end
