-- A sharded weight map (diffusion_pytorch_model.safetensors.index.json)
-- beside two real shards: the index is the input. Opening the component
-- checks the map against the shards; every tensor it then lists is read.
package.path = debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/?.lua;" .. package.path
local common = require "common"
local dir = common.folder("index")
common.write(dir .. "/config.json", '{"_class_name": "SanaTransformer2DModel"}')
grove.save_safetensors(dir .. "/diffusion_pytorch_model-00001-of-00002.safetensors", { a = grove.ones { 2, 3 } })
grove.save_safetensors(dir .. "/diffusion_pytorch_model-00002-of-00002.safetensors", { b = grove.zeros { 4 } })
common.write(dir .. "/outside.safetensors", common.read(dir .. "/diffusion_pytorch_model-00002-of-00002.safetensors"))
local index = dir .. "/diffusion_pytorch_model.safetensors.index.json"

return function(bytes)
  common.write(index, bytes)
  local c = grove.diffusers.component(dir)
  for _, name in ipairs(c:names()) do
    c:info(name)
    c:load(name):free()
  end
  c:close()
end
