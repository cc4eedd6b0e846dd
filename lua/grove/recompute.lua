-- Activation recomputation (what PyTorch calls activation checkpointing; in
-- grove a checkpoint is only a training run's saved state): a function (a
-- block's forward) runs without recording its tape, keeping only its tensor
-- arguments; one custom tape node stands for it (core/autograd_custom.c). In
-- backward that node re-runs the function with grad mode on from the kept
-- arguments, with the random generators where they were, backpropagates the
-- incoming gradient through the recomputed graph (which accumulates straight
-- into the parameters' .grad, as they are leaves of it) and hands the
-- arguments' gradients back to the outer tape. Memory: one block's
-- activations at a time instead of every block's, for one more forward per
-- recomputed block.
--
--   model:recompute(true)         every block
--   model:recompute{1, 3, 5}      those blocks (1-based), the others not
--   model.blocks[i].recompute = true
--   y = grove.recompute(fn, ...)  any function of at most 4 tensors
--
-- The old names (grove.checkpoint, grove.checkpoint_with,
-- grove.checkpoint_stats, model:checkpoint, model:checkpointed, a block's
-- .checkpoint) still work for this release and then go.
--
-- The C tape calls back into Lua through one FFI callback, made once here
-- and never freed (LuaJIT callbacks are a scarce resource and a freed one
-- would leave the tape pointing at nothing). The functions that enter
-- grove_backward are excluded from the JIT: LuaJIT cannot call back into
-- Lua from a C call made by compiled code.
local ffi = require "ffi"

return function(grove)
  if grove.recompute then return end -- installed once: the callback is made once
  local C = grove.C
  local nn = grove.nn
  local handle_ct = ffi.typeof("grove_handle")
  local freed_buf = ffi.new("int64_t[64]")
  local entries = {}      -- handle → what the node's backward needs besides its saved tensors
  local next_handle = 0

  local fail = grove.fail

  -- A Lua handle to a borrowed C tensor (takes its own reference).
  local function borrow(p)
    if p == nil then return nil end
    C.grove_tensor_retain(p)
    return ffi.gc(handle_ct(p), C.grove_handle_release)
  end

  local function drop_freed()
    while true do
      local n = C.grove_custom_take_freed(freed_buf, 64)
      for i = 0, n - 1 do entries[tonumber(freed_buf[i])] = nil end
      if n < 64 then return end
    end
  end

  -- The recompute: runs inside grove_backward (grad mode off).
  local function recompute(handle, saved, grad_out, grad_in)
    local e = entries[tonumber(handle)]
    if not e then error("recompute: the node's record is gone (internal error)", 0) end
    local args = {}
    for i = 1, e.nargs do args[i] = e.args[i] end
    local leaves = {}
    for k, pos in ipairs(e.tensor_pos) do
      local t = borrow(saved[k - 1])
      if e.needs_grad[k] then
        t = t:detach():requires_grad_(true)
        leaves[k] = t
      end
      args[pos] = t
    end
    -- the generators as they were when the forward ran
    local now_offsets = {}
    for i, g in ipairs(e.gens) do
      now_offsets[i] = g.offset
      g.offset = e.offsets[i]
    end
    local prev = C.grove_set_grad_enabled(true)
    local ok, out = pcall(e.fn, unpack(args, 1, e.nargs))
    C.grove_set_grad_enabled(prev)
    for i, g in ipairs(e.gens) do g.offset = now_offsets[i] end
    if not ok then error(out, 0) end
    if not grove.is_tensor(out) then error("recompute: the function returned " .. type(out) .. " on recompute", 0) end
    if out.requires_grad then
      local g = borrow(grad_out)
      if C.grove_backward(out.p, g.p, false) ~= 0 then fail(1) end
    end
    for k in pairs(leaves) do
      grad_in[k - 1] = C.grove_tensor_grad(leaves[k].p) -- a new reference, or NULL
    end
    -- the recomputed activations go before the next block recomputes
    out, args, leaves = nil, nil, nil
    collectgarbage("collect")
  end

  local callback = ffi.cast("grove_custom_backward_fn", function(handle, saved, grad_out, grad_in)
    local ok, err = pcall(recompute, handle, saved, grad_out, grad_in)
    if ok then return 0 end
    C.grove_set_error("recompute: recomputing in backward failed: " .. tostring(err))
    return -1
  end)
  C.grove_custom_set_backward(callback)
  grove._recompute_callback = callback -- kept alive for the life of the process

  -- grove.recompute(fn, ...): fn(...) computed without its tape; its tensor
  -- arguments (at most 4) are kept for the recompute. opts via
  -- grove.recompute_with{generators = {...}} add generators whose offsets
  -- the recompute restores (the default generator always is).
  local function record(opts, fn, ...)
    local nargs = select("#", ...)
    local args = { ... }
    if not grove.is_grad_enabled() then return fn(...) end
    drop_freed()
    local tensor_pos, needs_grad, tensors = {}, {}, {}
    local any = false
    for i = 1, nargs do
      local a = args[i]
      if grove.is_tensor(a) then
        tensor_pos[#tensor_pos + 1] = i
        tensors[#tensors + 1] = a
        needs_grad[#tensors] = a.requires_grad
        any = any or a.requires_grad
      end
    end
    if #tensors > 4 then error("recompute: at most 4 tensor arguments, got " .. #tensors, 3) end
    local gens = { grove.default_generator() }
    for _, g in ipairs(opts.generators or {}) do gens[#gens + 1] = g end
    local offsets = {}
    for i, g in ipairs(gens) do offsets[i] = g.offset end
    local out = grove.no_grad(fn, ...)
    -- The block's intermediates are garbage now, but their memory returns
    -- only when the collector finalizes their handles: collect, or the
    -- blocks' activations would pile up as if nothing were recomputed.
    collectgarbage("collect")
    if not grove.is_tensor(out) then error("recompute: the function must return one tensor, got " .. type(out), 3) end
    next_handle = next_handle + 1
    local stored = {}
    for i = 1, nargs do if not grove.is_tensor(args[i]) then stored[i] = args[i] end end
    entries[next_handle] = { fn = fn, nargs = nargs, args = stored, tensor_pos = tensor_pos, needs_grad = needs_grad,
                             gens = gens, offsets = offsets }
    local n = #tensors
    local arr = ffi.new("grove_tensor *[4]")
    for i = 1, n do arr[i - 1] = tensors[i].p end
    -- force: parameters inside fn may need gradients even when no argument does
    local p = C.grove_custom_record("recompute", out.p, n, arr, n, arr, next_handle, true)
    if p == nil then
      entries[next_handle] = nil
      fail(2)
    end
    -- nothing was recorded (grad mode on but no node made): the record is not needed
    if C.grove_grad_fn_name(p) == nil then entries[next_handle] = nil end
    return grove._wrap(p)
  end

  function grove.recompute(fn, ...) return record({}, fn, ...) end
  function grove.recompute_with(opts, fn, ...) return record(opts or {}, fn, ...) end
  -- Custom nodes alive and records kept for them (a leak test's numbers).
  function grove.recompute_stats()
    drop_freed()
    local n = 0
    for _ in pairs(entries) do n = n + 1 end
    return { nodes = tonumber(C.grove_custom_live()), records = n }
  end

  -- Blocks: a block with .recompute set (or the old .checkpoint) runs
  -- through grove.recompute when gradients are being recorded.
  local Block = nn.SanaBlock
  local plain_forward = Block.forward
  Block._plain_forward = plain_forward
  function Block:forward(x, t0, text, mask, h, w)
    if (self.recompute or self.checkpoint) and grove.is_grad_enabled() then
      return record({}, plain_forward, self, x, t0, text, mask, h, w)
    end
    return plain_forward(self, x, t0, text, mask, h, w)
  end

  -- model:recompute(true | false | {i, ...}): which blocks recompute.
  -- Returns the model.
  function nn.SanaModel:recompute(which)
    local set = {}
    if type(which) == "table" then
      for _, i in ipairs(which) do
        if type(i) ~= "number" or not self.blocks[i] then
          error("recompute: no block " .. tostring(i) .. " (the model has " .. #self.blocks .. ")", 2)
        end
        set[i] = true
      end
    elseif type(which) ~= "boolean" and which ~= nil then
      error("recompute: expected true, false or a list of block numbers, got " .. type(which), 2)
    end
    for i, b in ipairs(self.blocks) do
      if type(which) == "table" then b.recompute = set[i] or false else b.recompute = which ~= false end
      b.checkpoint = nil
    end
    return self
  end

  -- The list of recomputed blocks' numbers.
  function nn.SanaModel:recomputed()
    local out = {}
    for i, b in ipairs(self.blocks) do if b.recompute or b.checkpoint then out[#out + 1] = i end end
    return out
  end

  -- The old names, for one release (docs/scale.md): activation
  -- "checkpointing" is recomputation; a checkpoint is a run's saved state.
  grove.checkpoint, grove.checkpoint_with, grove.checkpoint_stats = grove.recompute, grove.recompute_with,
                                                                    grove.recompute_stats
  nn.SanaModel.checkpoint, nn.SanaModel.checkpointed = nn.SanaModel.recompute, nn.SanaModel.recomputed

  -- LuaJIT cannot call back into Lua from a C function called by compiled
  -- code, and grove_backward may call back: run the callers interpreted.
  local probe = grove.zeros { 1 }
  jit.off(probe.backward)
  jit.off(recompute)
end
