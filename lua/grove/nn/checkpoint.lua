-- Deprecated module name, kept for one release: saving and loading modules
-- is lua/grove/nn/serialize.lua now (a "checkpoint" in grove is a training
-- run's saved state, grove.train.save_state).
return require "grove.nn.serialize"
