-- Deprecated module name, kept for one release: activation checkpointing is
-- grove.recompute now (lua/grove/recompute.lua); `require
-- "grove.checkpointing"(grove)` installs the same thing.
return require "grove.recompute"
