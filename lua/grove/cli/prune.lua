-- grove prune: a shallower model's weights from a trained one's (SANA 1.5
-- depth pruning), with the per-block importance chart.
--   grove prune --in model.safetensors --out pruned.safetensors --depth K \
--               [--calib prompts.txt] [--metric cosine] [--schedule oneshot] [--chart importance.png] [--seed 0]
-- A diffusers transformer folder (or a pipeline folder) as --in is pruned
-- as files into a new folder, given the blocks (grove.prune.folder):
--   grove prune --in Sana_1600M --out pruned --remove 3
-- A pipeline folder as --model is scored on its own denoising trajectories
-- (calibration prompts through its Gemma-2) and written out complete, with
-- the importance table and chart beside it (grove.prune.pipeline_folder):
--   grove prune --model Sana_1600M --out Sana_pruned --depth 16 [--calib prompts.txt] [--steps 20]
local args = require "grove.cli.args"

local spec = {
  { "in", "string", nil, "grove training checkpoint or weights file (grove.train.save_weights), or a diffusers " ..
    "transformer or pipeline folder" },
  { "model", "string", nil, "a diffusers pipeline folder (model_index.json): scored on its own sampling, written out " ..
    "complete" },
  { "out", "string", nil, "weights file to write (loads with grove.train.load_for_inference, starts grove.train.run{init =});" ..
    " a new folder when --in is one", required = true },
  { "depth", "number", nil, "number of blocks to keep (checkpoints: required)", check = args.count },
  { "remove", "string", nil, "folders: blocks to remove, comma-separated 1-based indices (e.g. 3,7)" },
  { "calib_features", "string", nil, "folders: score blocks on these calibration features (safetensors: prompt_embeds, " ..
    "prompt_attention_mask, latents [, sigmas]; docs/pruning.md) and keep --depth" },
  { "max_shard_size", "string", "10GB", "folders: largest shard file (bytes, or 500MB, 5GB, 2GiB)" },
  { "variant", "string", nil, "folders: read and write the <name>.<variant>.safetensors weights (bf16, fp16)" },
  { "metric", "string", "cosine", "cosine, loss, a registered name, or a .lua file returning fn(model, calib, opts)" },
  { "schedule", "string", "oneshot", "oneshot, iterative, random, last, a registered name, or a .lua file returning fn(ctx)" },
  { "keep", "string", nil, "blocks never removed, comma-separated 1-based indices (e.g. 1,12); folders without " ..
    "--depth: exactly the blocks that stay" },
  { "calib", "string", nil, "calibration prompts, one per line (default: a seeded sample of the shapes training " ..
    "captions; --model: grove's default calibration prompts)" },
  { "prompts", "number", nil, "number of calibration prompts (default 64 shapes captions; --model: all of --calib or " ..
    "the 32 defaults, else the first N)", check = args.count },
  { "steps", "number", nil, "--model: sampling steps of each calibration trajectory (default: the scheduler's, 20)",
    check = args.count },
  { "cfg", "number", 4.5, "--model: guidance scale of the calibration sampling", check = args.number(0) },
  { "height", "number", nil, "--model: calibration image height (default the model's native size; a multiple of " ..
    "the VAE's scale)", short = "H", check = args.count },
  { "width", "number", nil, "--model: calibration image width", short = "W", check = args.count },
  { "components", "string", "link", "--model: link (symbolic links to the source's) or copy the other components" },
  { "calib_images", "string", nil, "--model: a feature cache (grove cache): score on its latents and captions, noised " ..
    "at the scheduler's --steps sigmas, instead of the model's own trajectories" },
  { "timesteps", "number", 8, "noise levels, spread over the model's shifted flow schedule", check = args.count },
  { "x0", "string", nil, "clean images: render (shapes captions) or sample (the model's own); default by prompts" },
  { "size", "number", 32, "image side of the calibration images", check = args.count },
  { "batch", "number", nil, "prompts per forward pass (default 32; --model: 4 per sampling run)", check = args.count },
  { "seed", "number", 0, "seed of the prompt sample, noise, and the random schedule", check = args.seed },
  { "chart", "string", nil, "write the per-block importance bar chart to this PNG (--model: OUT-importance.png too)" },
  { "raw", "boolean", false, "use the raw weights instead of the EMA weights" },
  { "quiet", "boolean", false, "print nothing but errors" },
  args.device_option(),
}

local USAGE = "grove prune --in FILE --out FILE --depth K [options]\n" ..
              "       grove prune --in FOLDER --out FOLDER (--remove LIST | --keep LIST | --depth K --calib-features FILE)\n" ..
              "       grove prune --model FOLDER --out FOLDER (--depth K [--calib FILE] | --remove LIST | --keep LIST)"

-- A diffusers folder, pruned as files with the given blocks.
local function prune_folder(o)
  local scored = o.calib_features ~= nil
  local ok, res = pcall(grove.prune.folder, o["in"], o.out, { keep = o.keep, remove = o.remove, depth = o.depth,
    max_shard_bytes = o.max_shard_size, variant = o.variant, calib_features = o.calib_features,
    metric = scored and grove.prune.load_metric(o.metric) or nil,
    schedule = scored and grove.prune.load_schedule(o.schedule) or nil, seed = o.seed, batch = o.batch,
    timesteps = scored and o.timesteps or nil })
  if not ok then error((tostring(res):gsub("^prune: ", "")), 0) end
  if not o.quiet then
    local zero_based = {}
    for k, j in ipairs(res.removed) do zero_based[k] = j - 1 end
    local size = res.bytes >= 1e9 and string.format("%.2f GB", res.bytes / 1e9) or string.format("%.1f MB", res.bytes / 1e6)
    print(string.format("%s: %d -> %d blocks%s; removed blocks %s (transformer_blocks.{%s}); %d tensors, %s in %.1f s -> %s",
      o["in"], res.source_depth, res.depth,
      scored and string.format(" (%s metric, %s schedule)", res.metric, res.schedule) or "",
      #res.removed > 0 and table.concat(res.removed, ",") or "none",
      table.concat(zero_based, ","), res.tensors, size, res.seconds, res.dir))
    if res.scores then
      local s = {}
      for i, v in ipairs(res.scores) do s[i] = string.format("%d:%.4g", i, v) end
      print("importance: " .. table.concat(s, " "))
    end
    if o.chart and res.scores then
      grove.prune.chart(o.chart, res.scores, res.removed, { metric = res.metric })
      print("chart: " .. o.chart)
    end
    print(string.format("  %d files: %s", #res.files, table.concat(res.files, ", ")))
    if res.pipeline then
      print("  only the transformer is written: copy or link the other components of " .. o["in"] .. " (docs/pruning.md)")
    end
  end
end

-- A pipeline folder (--model): scored on its own trajectories (or given
-- blocks, or calibration features) and written out complete.
local function prune_model(o)
  args.check_choice(o, "components", { "link", "copy" })
  local trajectory = o.depth ~= nil and not o.calib_features and not o.remove
  if trajectory and not o.quiet and not o.calib_images then
    local ok, prompts, origin = pcall(grove.prune.folder_prompts, o.calib, o.prompts)
    if not ok then error((tostring(prompts):gsub("^prune: ", "")), 0) end
    io.stderr:write(string.format("calibration: %d prompt%s from %s%s\n", #prompts, #prompts == 1 and "" or "s", origin,
                                  o.calib and "" or " (never the evaluation prompts; --calib FILE for yours)"))
  end
  local ok, res = pcall(grove.prune.pipeline_folder, o.model, o.out, {
    depth = o.depth, keep = o.keep, remove = o.remove, calib_features = o.calib_features, calib = o.calib,
    calib_images = o.calib_images,
    prompts = o.prompts, steps = o.steps, cfg = o.cfg, height = o.height, width = o.width, batch = o.batch,
    seed = o.seed, metric = grove.prune.load_metric(o.metric), schedule = grove.prune.load_schedule(o.schedule),
    timesteps = o.calib_features and o.timesteps or nil, components = o.components,
    max_shard_bytes = o.max_shard_size, variant = o.variant, device = o.device })
  if not ok then error((tostring(res):gsub("^prune: ", "")), 0) end
  if o.quiet then return end
  local zero_based = {}
  for k, j in ipairs(res.removed) do zero_based[k] = j - 1 end
  local size = res.bytes >= 1e9 and string.format("%.2f GB", res.bytes / 1e9) or string.format("%.1f MB", res.bytes / 1e6)
  print(string.format("%s: %d -> %d blocks%s; removed blocks %s (transformer_blocks.{%s}); %d tensors, %s in %.1f s -> %s",
    o.model, res.source_depth, res.depth,
    res.scores and string.format(" (%s metric, %s schedule)", res.metric, res.schedule) or "",
    #res.removed > 0 and table.concat(res.removed, ",") or "none", table.concat(zero_based, ","), res.tensors, size,
    res.seconds, res.out))
  if res.scores then
    local s = {}
    for i, v in ipairs(res.scores) do s[i] = string.format("%d:%.4g", i, v) end
    print("importance: " .. table.concat(s, " "))
  end
  if res.by_step then
    if res.latents == "cache" then
      print(string.format("  averaged over %d steps (sigma %.3f .. %.3f) of %d cached sample%s of %s", #res.by_step,
        res.sigmas[1], res.sigmas[#res.sigmas], #res.prompts, #res.prompts == 1 and "" or "s", res.prompts_origin))
    else
      print(string.format("  averaged over %d steps (sigma %.3f .. %.3f) of %d prompt%s at %dx%d, cfg %g", #res.by_step,
        res.sigmas[1], res.sigmas[#res.sigmas], #res.prompts, #res.prompts == 1 and "" or "s", res.width, res.height, res.cfg))
    end
  end
  if res.report then print(string.format("  table: %s, %s; chart: %s", res.report.json, res.report.csv, res.report.png)) end
  if o.chart and res.scores then
    grove.prune.chart(o.chart, res.scores, res.removed, { metric = res.metric })
    print("  chart: " .. o.chart)
  end
  local parts = {}
  for _, c in ipairs(res.components) do parts[#parts + 1] = c.name end
  print(string.format("  %s: transformer written; %s %s; copied %s", res.out, table.concat(parts, ", "),
    o.components == "link" and "linked" or "copied", table.concat(res.top_files, ", ")))
end

return function(argv)
  local o, rest = args.parse(argv, spec, { usage = USAGE,
    description = "Removes the least important blocks of a grove checkpoint (EMA weights when present) and writes the\n" ..
                  "model and text encoder weights; see docs/pruning.md." })
  if not o then print(rest); return end
  if #rest > 0 then error("unexpected argument '" .. rest[1] .. "' (see grove prune --help)", 0) end
  if (o["in"] == nil) == (o.model == nil) then
    error("give --in FILE|FOLDER or --model FOLDER (a pipeline folder, written out complete), one of them", 0)
  end
  if (o["in"] or o.model) == o.out then error("the output must differ from the input (" .. o.out .. ")", 0) end
  if o.model then return prune_model(o) end
  if o.steps or o.height or o.width or o.calib_images then
    error("--steps, --height, --width and --calib-images apply to --model", 0)
  end
  if grove.grow.is_folder(o["in"]) then return prune_folder(o) end
  if o.remove or o.variant or o.calib_features then
    error("--remove, --variant and --calib-features apply to folders; " .. o["in"] .. " is a file", 0)
  end
  if o.depth == nil then error("option --depth is required\n\n" .. args.usage(spec, { usage = USAGE }), 0) end
  local keep
  if o.keep then
    keep = {}
    for w in o.keep:gmatch("[^,%s]+") do
      local j = tonumber(w)
      if not j then error("--keep needs comma-separated block indices, got '" .. o.keep .. "'", 0) end
      keep[#keep + 1] = j
    end
  end
  local t0 = grove.now()
  local ok, res = pcall(function()
    local metric, schedule = grove.prune.load_metric(o.metric), grove.prune.load_schedule(o.schedule)
    local parts = grove.train.load_for_inference(o["in"], { ema = not o.raw, device = o.device })
    local opts = { depth = o.depth, metric = metric, schedule = schedule, keep = keep, seed = o.seed,
                   prompts = o.calib or o.prompts, timesteps = o.timesteps, x0 = o.x0, size = o.size, batch = o.batch }
    local pruned, info = grove.prune.parts(parts, opts)
    if o.chart and not info.scores then
      -- a schedule that scored nothing (random, last): the chart still shows the metric
      info.scores, info.calib = grove.prune.importance(parts.model, info.calib or parts, opts)
    end
    local meta = { ["grove.prune"] = grove.prune.describe(info) }
    if info.scores then
      local s = {}
      for i, v in ipairs(info.scores) do s[i] = string.format("%.6g", v) end
      meta["grove.prune.scores"] = table.concat(s, ",")
    end
    grove.train.save_weights(o.out, pruned, meta)
    if o.chart then
      grove.prune.chart(o.chart, info.scores, info.removed, { metric = info.metric })
    end
    return { info = info, parts = parts }
  end)
  -- the command's name already prefixes the message
  if not ok then error((tostring(res):gsub("^prune: ", "")), 0) end
  if not o.quiet then
    local info = res.info
    local zero_based = {}
    for k, j in ipairs(info.removed) do zero_based[k] = j - 1 end
    print(string.format("%s (%s weights): %d -> %d blocks (%s metric, %s schedule); removed blocks %s " ..
                        "(transformer_blocks.{%s}) in %.1f s -> %s", o["in"], res.parts.ema_used and "EMA" or "raw",
      info.source_depth, info.depth, info.metric, info.schedule,
      #info.removed > 0 and table.concat(info.removed, ",") or "none", table.concat(zero_based, ","),
      grove.now() - t0, o.out))
    if info.scores then
      local s = {}
      for i, v in ipairs(info.scores) do s[i] = string.format("%d:%.4g", i, v) end
      print("importance: " .. table.concat(s, " "))
    end
    if o.chart then print("chart: " .. o.chart) end
  end
end
