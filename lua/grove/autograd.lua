-- Grad mode scopes. Gradients themselves live on the C tape (core/autograd.c).
local ffi = require "ffi"

return function(grove)
  local C = grove.C

  -- Runs fn(...) with recording off, restoring the previous mode even when fn fails.
  function grove.no_grad(fn, ...)
    local prev = C.grove_set_grad_enabled(false)
    local res = { pcall(fn, ...) }
    C.grove_set_grad_enabled(prev)
    if not res[1] then error(res[2], 0) end
    return unpack(res, 2, table.maxn(res))
  end

  function grove.enable_grad(fn, ...)
    local prev = C.grove_set_grad_enabled(true)
    local res = { pcall(fn, ...) }
    C.grove_set_grad_enabled(prev)
    if not res[1] then error(res[2], 0) end
    return unpack(res, 2, table.maxn(res))
  end

  function grove.is_grad_enabled() return C.grove_grad_enabled() end
  function grove.set_grad_enabled(on) return C.grove_set_grad_enabled(on and true or false) end
end
