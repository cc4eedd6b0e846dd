-- grove grow: checkpoint surgery, a deeper model's file from a trained one's
-- (SANA 1.5 growth), streamed one tensor at a time without building the model.
--   grove grow --in base.safetensors --out grown.safetensors --depth 60 \
--              --strategy partial --init identity [--noise 1e-3] [--seed 0]
local args = require "grove.cli.args"

local spec = {
  { "in", "string", nil, "source checkpoint (safetensors, diffusers names transformer_blocks.<i>.*)", required = true },
  { "out", "string", nil, "grown checkpoint to write", required = true },
  { "depth", "number", nil, "number of blocks to grow to", required = true },
  { "strategy", "string", "partial", "partial, cyclic, block, a registered name, or a .lua file returning {map = fn(N, M)}" },
  { "init", "string", "identity", "identity, random or noise: how new and repeated blocks start" },
  { "noise", "number", nil, "scale of the Gaussian noise (--init noise)" },
  { "seed", "number", 0, "seed of the random and noise draws" },
  { "quiet", "boolean", false, "print nothing but errors" },
}

return function(argv)
  local o, rest = args.parse(argv, spec, { usage = "grove grow --in FILE --out FILE --depth M [options]",
    description = "Grows a checkpoint to M blocks (partial preservation, cyclic or block replication), reading and\n" ..
                  "writing one tensor at a time. Non-block tensors and metadata are copied; grove.config gets the new depth." })
  if not o then print(rest); return end
  if #rest > 0 then error("unexpected argument '" .. rest[1] .. "' (see grove grow --help)", 0) end
  local strategy = grove.grow.load_strategy(o.strategy)
  local last = grove.now()
  local ok, res = pcall(grove.grow.file, o["in"], o.out, { depth = o.depth, strategy = strategy, init = o.init,
    noise = o.noise, seed = o.seed, log = not o.quiet and function(i, M)
      if grove.now() - last > 5 then
        io.stderr:write(string.format("  block %d/%d\n", i, M))
        last = grove.now()
      end
    end or nil })
  -- the command's name already prefixes the message
  if not ok then error((tostring(res):gsub("^grow: ", "")), 0) end
  if not o.quiet then
    local size = res.bytes >= 1e9 and string.format("%.2f GB", res.bytes / 1e9) or string.format("%.1f MB", res.bytes / 1e6)
    print(string.format("%s: %d -> %d blocks (%s, %s init: %d kept, %d repeated, %d new); %d tensors, %s in %.1f s -> %s",
      o["in"], res.source_depth, res.depth, o.strategy, o.init, res.keep, res.repeats, res.new, res.tensors, size,
      res.seconds, o.out))
  end
end
