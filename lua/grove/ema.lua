-- Exponential moving average of parameters: ema ← d·ema + (1 − d)·p after
-- each optimizer step, with the usual warm-up d = min(decay, (1+n)/(10+n)).
return function(grove)
  local EMA = {}
  EMA.__index = EMA

  -- named: list of {name, tensor} (a module's named_parameters()).
  function grove.EMA(named, decay)
    local self = setmetatable({ decay = decay or 0.999, updates = 0, names = {}, shadow = {}, params = {} }, EMA)
    grove.no_grad(function()
      for i, np in ipairs(named) do
        self.names[i], self.params[i] = np[1], np[2]
        self.shadow[i] = np[2]:detach():clone()
      end
    end)
    return self
  end

  function EMA:update()
    self.updates = self.updates + 1
    local d = math.min(self.decay, (1 + self.updates) / (10 + self.updates))
    grove.no_grad(function()
      for i, p in ipairs(self.params) do
        grove.lincomb_into(self.shadow[i], { self.shadow[i], p:detach() }, { d, 1 - d })
      end
    end)
  end

  -- name → shadow tensor, for saving.
  function EMA:state_dict(prefix)
    local out = {}
    for i, name in ipairs(self.names) do out[(prefix or "") .. name] = self.shadow[i] end
    return out
  end

  function EMA:load_state_dict(state, prefix)
    grove.no_grad(function()
      for i, name in ipairs(self.names) do
        local v = state[(prefix or "") .. name]
        if not v then error("EMA: checkpoint lacks " .. (prefix or "") .. name, 2) end
        self.shadow[i]:copy_(v)
      end
    end)
  end

  -- Runs fn with the EMA values swapped into the parameters, then swaps back.
  function EMA:apply(fn, ...)
    local saved = {}
    grove.no_grad(function()
      for i, p in ipairs(self.params) do
        saved[i] = p:detach():clone()
        p:copy_(self.shadow[i])
      end
    end)
    local res = { pcall(fn, ...) }
    grove.no_grad(function()
      for i, p in ipairs(self.params) do p:copy_(saved[i]) end
    end)
    if not res[1] then error(res[2], 0) end
    return unpack(res, 2, table.maxn(res))
  end
end
