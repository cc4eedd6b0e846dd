-- grove grow: checkpoint surgery, a deeper model's file from a trained one's
-- (SANA 1.5 growth), streamed one tensor at a time without building the model.
--   grove grow --in base.safetensors --out grown.safetensors --depth 60 \
--              --strategy partial --init identity [--noise 1e-3] [--seed 0]
-- --in may be a diffusers transformer folder (or a pipeline folder holding
-- transformer/): then --out is a new folder (grove.grow.folder). A grove
-- training checkpoint or weights file gives a weights file: the model's
-- blocks grown (a checkpoint's EMA weights unless --raw), its text encoder
-- copied.
--   grove grow --model Sana_1600M --out Sana_4800M --depth 60 --strategy partial --init identity \
--              [--keep 1-18] [--components link|copy]
-- --model takes a pipeline folder and writes a complete one: the grown
-- transformer, the other components linked or copied (grove.grow.complete_folder).
local args = require "grove.cli.args"

local spec = {
  { "in", "string", nil, "source: a model file (safetensors, diffusers names transformer_blocks.<i>.*), grove model " ..
    "weights or a training checkpoint, or a diffusers transformer folder or pipeline folder" },
  { "model", "string", nil, "source: a diffusers pipeline folder (model_index.json); --out becomes a complete one" },
  { "out", "string", nil, "grown checkpoint to write (a new folder when --in is a folder or with --model)", required = true },
  { "depth", "number", nil, "number of blocks to grow to", required = true, check = args.count },
  { "strategy", "string", "partial", "partial, cyclic, block, a registered name, or a .lua file returning {map = fn(N, M)}" },
  { "init", "string", "identity", "identity, random or noise: how new and repeated blocks start" },
  { "noise", "number", nil, "scale of the Gaussian noise (--init noise)", check = args.number(0) },
  { "seed", "number", 0, "seed of the random and noise draws", check = args.seed },
  { "keep", "string", nil, "source blocks to grow from, 1-based (e.g. 1-18: the first 18); the others are left out" },
  { "components", "string", "link", "--model: link (symbolic links to the source's) or copy the other components" },
  { "raw", "boolean", false, "a training checkpoint's raw weights instead of its EMA weights" },
  { "max_shard_size", "string", "10GB", "folders: largest shard file (bytes, or 500MB, 5GB, 2GiB)" },
  { "variant", "string", nil, "folders: read and write the <name>.<variant>.safetensors weights (bf16, fp16)" },
  { "quiet", "boolean", false, "print nothing but errors" },
}

return function(argv)
  local o, rest = args.parse(argv, spec, { usage = "grove grow (--in FILE|FOLDER | --model FOLDER) --out OUT --depth M [options]",
    description = "Grows a checkpoint to M blocks (partial preservation, cyclic or block replication), reading and\n" ..
                  "writing one tensor at a time. Non-block tensors and metadata are copied; grove.config gets the new depth." })
  if not o then print(rest); return end
  if #rest > 0 then error("unexpected argument '" .. rest[1] .. "' (see grove grow --help)", 0) end
  if (o["in"] == nil) == (o.model == nil) then
    error("give --in FILE|FOLDER or --model FOLDER (a pipeline folder, written out complete), one of them", 0)
  end
  args.check_choice(o, "components", { "link", "copy" })
  local strategy = grove.grow.load_strategy(o.strategy)
  local last = grove.now()
  local source = o.model or o["in"]
  local folder = o.model ~= nil or grove.grow.is_folder(source)
  if not folder and o.variant then error("--variant applies to folders; " .. source .. " is a file", 0) end
  local gopts = {
    max_shard_bytes = folder and o.max_shard_size or nil, variant = o.variant, depth = o.depth, strategy = strategy, init = o.init,
    noise = o.noise, seed = o.seed, raw = o.raw, keep = o.keep, log = not o.quiet and function(i, M)
      if grove.now() - last > 5 then
        io.stderr:write(string.format("  block %d/%d\n", i, M))
        last = grove.now()
      end
    end or nil }
  local ok, res
  if o.model then
    ok, res = pcall(grove.grow.complete_folder, o.model, o.out, { components = o.components }, function(tmp)
      return grove.grow.folder(o.model, tmp, gopts)
    end)
  else
    ok, res = pcall(folder and grove.grow.folder or grove.grow.file, source, o.out, gopts)
  end
  -- the command's name already prefixes the message
  if not ok then error((tostring(res):gsub("^grow: ", "")), 0) end
  if not o.quiet then
    local size = res.bytes >= 1e9 and string.format("%.2f GB", res.bytes / 1e9) or string.format("%.1f MB", res.bytes / 1e6)
    if res.source_kind == "train_checkpoint" then
      print(string.format("%s is a training checkpoint: growing its %s weights into a weights file (the optimizer " ..
                          "state stays behind)", o["in"], res.ema_used and "EMA" or "raw"))
    end
    local dropped = ""
    if res.dropped and #res.dropped > 0 then dropped = "; source blocks " .. table.concat(res.dropped, ",") .. " left out" end
    print(string.format("%s: %d -> %d blocks (%s, %s init: %d kept, %d repeated, %d new%s); %d tensors, %s in %.1f s -> %s",
      source, res.source_depth, res.depth, o.strategy, o.init, res.keep, res.repeats, res.new, dropped, res.tensors, size,
      res.seconds, res.dir or o.out))
    if res.files then
      print(string.format("  %d files: %s", #res.files, table.concat(res.files, ", ")))
      if res.components then
        local parts = {}
        for _, c in ipairs(res.components) do parts[#parts + 1] = c.name end
        print(string.format("  %s: %s %s from %s; copied %s", res.out, table.concat(parts, ", "),
          o.components == "link" and "linked" or "copied", o.model, table.concat(res.top_files, ", ")))
      elseif res.pipeline then
        print("  only the transformer is written: copy or link the other components of " .. source ..
              " (docs/growth.md), or give the folder as --model to write a complete one")
      end
    end
  end
end
