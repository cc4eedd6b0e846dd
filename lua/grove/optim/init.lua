-- grove.optim: SGD, AdamW, CAME and CAME-8bit over parameter lists, with
-- learning-rate schedules, gradient clipping and state files
-- (docs/optimizers.md). Installed by `require "grove.optim"(grove)`.
return function(grove)
  if grove.optim then return grove.optim end
  local optim = {}
  grove.optim = optim
  local kinds = require "grove.optim.kinds"(grove, optim)
  optim.kinds = kinds
  require "grove.optim.optimizer"(grove, optim, kinds)
  require "grove.optim.schedule"(grove, optim)
  require "grove.optim.extras"(grove, optim)

  -- grove.optim.sgd|adamw|came|came8bit(params_or_groups, options), each a
  -- file registered like a user's own (optim/kinds.lua)
  for _, name in ipairs { "sgd", "adamw", "came", "came8bit" } do
    optim.register(name, require("grove.optim." .. name)(grove, optim))
  end

  -- The C-backed clipping replaces grove.nn's Lua one (same contract, no
  -- temporaries: gradients are scaled in place).
  if grove.nn then grove.nn.clip_grad_norm = optim.clip_grad_norm end
  return optim
end
