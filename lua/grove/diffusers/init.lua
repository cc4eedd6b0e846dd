-- grove.diffusers: the released SANA checkpoints as diffusers folders. Each
-- part lives in its own file beside this one and adds its functions to the
-- grove.diffusers table; folder.lua reads and writes the folders themselves.
--
--   local comp = grove.diffusers.component(dir, "transformer")
--   grove.diffusers.write_component(out, comp.config, comp, { max_shard_bytes = 2^30 })
--   local tok = grove.diffusers.tokenizer(dir)   -- tokenizer.lua
--   local vae = grove.diffusers.vae(dir)         -- vae.lua (DC-AE)
return function(grove)
  local diffusers = grove.diffusers or {}
  grove.diffusers = diffusers
  require "grove.diffusers.folder"(grove, diffusers)
  require "grove.diffusers.text_encoder"(grove, diffusers)
  require "grove.diffusers.tokenizer"(grove, diffusers)
  require "grove.diffusers.prompt"(grove, diffusers)
  require "grove.diffusers.vae"(grove, diffusers)
  return diffusers
end
