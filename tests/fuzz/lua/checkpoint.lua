-- grove's training-checkpoint metadata: a tiny checkpoint's real tensors
-- with metadata from the input (grove.kind, grove.config, text.config,
-- step, gen.* and data.position, split at NUL bytes), read the way a run
-- resumes or a command loads it.
package.path = debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/?.lua;" .. package.path
local common = require "common"
local dir = common.folder("checkpoint")
local parts = grove.train.build { preset = "tiny", seed = 1, text_depth = 1, text_heads = 2,
                                  config = { depth = 1, width = 64, cross_heads = 2 } }
local tensors = {}
for _, np in ipairs(parts.both:named_parameters()) do tensors[np[1]] = np[2]:detach() end
local keys = { "grove.kind", "grove.config", "text.config", "step", "gen.seed", "gen.offset", "data.position" }
local path = dir .. "/checkpoint.safetensors"

return function(bytes)
  local meta, i = {}, 1
  for field in (bytes .. "\0"):gmatch("([^%z]*)%z") do
    if keys[i] then meta[keys[i]] = field end
    i = i + 1
  end
  grove.save_safetensors(path, tensors, meta)
  local info = grove.describe(path)
  assert(type(info.what) == "string", "FUZZ-INVARIANT: describe without what")
  local value = grove.load(path)
  assert(value ~= nil, "FUZZ-INVARIANT: load returned nil")
end
