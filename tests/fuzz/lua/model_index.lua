-- A pipeline folder's model_index.json beside a real transformer/ config:
-- what grove.describe and grove.diffusers read of it.
package.path = debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/?.lua;" .. package.path
local common = require "common"
local dir = common.folder("model_index")
os.execute("mkdir -p '" .. dir .. "/transformer'")
common.write(dir .. "/transformer/config.json", [[{"_class_name": "SanaTransformer2DModel", "num_layers": 1,
  "num_attention_heads": 2, "attention_head_dim": 32, "num_cross_attention_heads": 2, "cross_attention_head_dim": 32,
  "cross_attention_dim": 64, "caption_channels": 32, "in_channels": 4, "out_channels": 4, "patch_size": 1,
  "sample_size": 8, "mlp_ratio": 2.5}]])

return function(bytes)
  common.write(dir .. "/model_index.json", bytes)
  local info = grove.describe(dir)
  assert(type(info.what) == "string", "FUZZ-INVARIANT: describe without what")
  grove.diffusers.model_index(dir)
  grove.diffusers.transformer(dir, { meta = true })
end
