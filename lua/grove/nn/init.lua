-- grove.nn: modules, parameter factories and the SANA model.
local Module = require "grove.nn.module"

return function(grove)
  local nn = { Module = Module }
  grove.nn = nn

  -- A stand-in for a parameter when a model is built as shapes only.
  local Meta = {}
  Meta.__index = Meta
  function Meta:shape() return self._shape end
  function Meta:numel()
    local n = 1
    for _, s in ipairs(self._shape) do n = n * s end
    return n
  end
  function Meta:dim() return #self._shape end
  function Meta:size(d) return self._shape[d] end
  function Meta:zero_grad() end
  nn.is_meta = function(t) return getmetatable(t) == Meta end

  -- Returns make(shape, init) → parameter. init is "zeros", "ones",
  -- "xavier" (uniform, fans from the 2-D view of the weight), "normal:STD",
  -- "const:V", "uniform:A" (±A), or "randn_scaled" (N(0,1)/√last dim).
  -- opts.meta builds shape-only stand-ins; opts.generator seeds the draws.
  function nn.param_factory(opts)
    opts = opts or {}
    local gen = opts.generator or grove.default_generator()
    return function(shape, init)
      if opts.meta then return setmetatable({ _shape = shape }, Meta) end
      local t = grove.empty(shape)
      local kind, arg = init:match("^(%a[%w_]*):?(.*)$")
      grove.no_grad(function()
        if kind == "zeros" then t:fill_(0)
        elseif kind == "ones" then t:fill_(1)
        elseif kind == "const" then t:fill_(tonumber(arg))
        elseif kind == "normal" then t:normal_(0, tonumber(arg), gen)
        elseif kind == "uniform" then t:uniform_(-tonumber(arg), tonumber(arg), gen)
        elseif kind == "randn_scaled" then t:normal_(0, 1 / math.sqrt(shape[#shape]), gen)
        elseif kind == "xavier" then
          local fan_out, fan_in = shape[1], 1
          for i = 2, #shape do fan_in = fan_in * shape[i] end
          if #shape > 2 then
            -- a conv: fans include the receptive field, as torch computes them
            local rf = 1
            for i = 3, #shape do rf = rf * shape[i] end
            fan_out = shape[1] * rf
          end
          local a = math.sqrt(6 / (fan_in + fan_out))
          t:uniform_(-a, a, gen)
        else error("param_factory: unknown init '" .. tostring(init) .. "'", 2) end
      end)
      return t:requires_grad_(true)
    end
  end

  local layers = require "grove.nn.layers"(grove)
  for k, v in pairs(layers) do nn[k] = v end
  require "grove.nn.sana"(grove)
  require "grove.nn.serialize"(grove)

  -- Scales all gradients so that their global L2 norm is at most max_norm;
  -- returns the norm before clipping (computed in C: grove.optim).
  -- The depth N of a model whose `blocks` form a list of modules 1..N, or a
  -- clear error prefixed with `who` (the growth and pruning front doors).
  function nn.check_blocks(model, who)
    if type(model) ~= "table" or type(model.blocks) ~= "table" then
      error(who .. ": expected a model with a list of blocks (model.blocks), got " ..
            (type(model) == "table" and "a table without blocks" or type(model)), 0)
    end
    local N = 0
    for k in pairs(model.blocks) do
      if type(k) ~= "number" or k % 1 ~= 0 or k < 1 then
        error(who .. ": model.blocks must be a list of blocks 1..n, but it has the key " .. tostring(k), 0)
      end
      N = math.max(N, k)
    end
    if N == 0 then error(who .. ": the model has no blocks", 0) end
    for i = 1, N do
      local b = model.blocks[i]
      if b == nil then
        error(string.format("%s: model.blocks has a hole: it runs to block %d, but block %d is missing", who, N, i), 0)
      end
      if type(b) ~= "table" or type(b.named_parameters) ~= "function" then
        error(who .. ": model.blocks[" .. i .. "] is not a module (" .. type(b) .. ")", 0)
      end
    end
    return N
  end

  function nn.clip_grad_norm(params, max_norm) return grove.optim.clip_grad_norm(params, max_norm) end
end
