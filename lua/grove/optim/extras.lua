-- What sits beside the optimizers: gradient clipping, parameter groups
-- without weight decay, and the blockwise 8-bit quantizers.
local ffi = require "ffi"

return function(grove, optim)
  local C = grove.C

  local function tensor_list(params, op)
    if type(params) == "table" and type(params.named_parameters) == "function" then params = params:parameters() end
    if type(params) ~= "table" then error(op .. ": expected a list of tensors, got " .. type(params), 3) end
    local n = #params
    local arr = ffi.new("grove_tensor *[?]", n > 0 and n or 1)
    for i = 1, n do
      local p = params[i]
      if type(p) == "table" and not grove.is_tensor(p) then p = p[2] end
      if not grove.is_tensor(p) then error(op .. ": entry " .. i .. " is not a tensor", 3) end
      arr[i - 1] = p.p
    end
    return n, arr, params
  end

  local norm_out = ffi.new("double[1]")

  -- Scales all gradients in place so that their global L2 norm is at most
  -- max_norm (by max_norm / (norm + 1e-6)); returns the norm before.
  -- params: a model, a list of tensors or of {name, tensor} pairs.
  function optim.clip_grad_norm(params, max_norm)
    if max_norm ~= nil and (type(max_norm) ~= "number" or max_norm < 0 or max_norm ~= max_norm) then
      error("clip_grad_norm: max_norm must be a number >= 0, got " .. tostring(max_norm), 2)
    end
    local n, arr, keep = tensor_list(params, "clip_grad_norm")
    local rc = C.grove_clip_grad_norm(n, arr, max_norm or 0, norm_out)
    local _ = keep  -- the tensors stay alive through the call
    grove.check(rc)
    return norm_out[0]
  end

  -- Two groups from a model (or a {name, tensor} list): parameters that
  -- decay, and those that never should — norms, biases, tables, and any
  -- other vector — with weight_decay 0.
  -- opts.no_decay: Lua patterns on names (default optim.no_decay_patterns);
  -- opts.vectors (default true): 1-d parameters never decay;
  -- opts.weight_decay: the decaying group's value (default: the optimizer's).
  optim.no_decay_patterns = { "%.bias$", "norm", "scale_shift_table$", "y_embedding$" }

  function optim.param_groups(model, opts)
    opts = opts or {}
    local named = model
    if type(model) == "table" and type(model.named_parameters) == "function" then named = model:named_parameters() end
    if type(named) ~= "table" then error("param_groups: expected a model or a {name, tensor} list, got " .. type(model), 2) end
    local patterns = opts.no_decay or optim.no_decay_patterns
    local decay, keep = {}, {}
    for i, np in ipairs(named) do
      if type(np) ~= "table" or type(np[1]) ~= "string" then
        error("param_groups: entry " .. i .. " is not a {name, tensor} pair", 2)
      end
      local name, p = np[1], np[2]
      local no = opts.vectors ~= false and #p:shape() <= 1
      for _, pat in ipairs(patterns) do
        if name:find(pat) then no = true end
      end
      if no then keep[#keep + 1] = np else decay[#decay + 1] = np end
    end
    local groups = {}
    if #decay > 0 then groups[#groups + 1] = { params = decay, weight_decay = opts.weight_decay } end
    if #keep > 0 then groups[#groups + 1] = { params = keep, weight_decay = 0 } end
    return groups
  end

  -- ---- blockwise 8-bit quantization ----------------------------------------
  local function quant_args(o, op)
    o = o or {}
    local kind = o.quant or optim.kinds.came8bit.spec.quant[1]
    local id = optim.quant_ids[kind]
    if not id then error(op .. ": quant must be 'dynamic' or 'affine', got " .. tostring(kind), 3) end
    local block = o.block or 256
    if type(block) ~= "number" or block < 1 or block % 1 ~= 0 then
      error(op .. ": block must be an integer >= 1, got " .. tostring(block), 3)
    end
    return kind, id, block
  end

  -- x (f32, any shape) → codes (u8, {numel}), scales (f32: {blocks} for
  -- dynamic, {blocks, 2} (min, step) for affine). o: quant (default: CAME-8bit's, affine), block (256).
  function optim.quantize(x, o)
    local kind, id, block = quant_args(o, "quantize")
    if not grove.is_tensor(x) then error("quantize: expected a tensor, got " .. type(x), 2) end
    local n = x:numel()
    local nb = math.ceil(n / block)
    local codes = grove.empty({ n }, { dtype = "u8" })
    local scales = grove.empty(kind == "affine" and { nb, 2 } or { nb })
    if x:device() ~= "cpu" then codes, scales = codes:cuda(), scales:cuda() end
    grove.check(C.grove_quantize_blockwise(x.p, id, block, codes.p, scales.p))
    return codes, scales
  end

  -- The decoded f32 values, shaped o.shape (default {numel}).
  function optim.dequantize(codes, scales, o)
    local _, id, block = quant_args(o, "dequantize")
    if not grove.is_tensor(codes) or not grove.is_tensor(scales) then error("dequantize: expected codes and scales tensors", 2) end
    local out = grove.empty({ codes:numel() })
    if codes:device() ~= "cpu" then out = out:cuda() end
    grove.check(C.grove_dequantize_blockwise(codes.p, scales.p, id, block, out.p))
    if o and o.shape then return out:view(o.shape) end
    return out
  end

  -- The signed dynamic code map: 256 ascending numbers.
  function optim.dynamic_map()
    local buf = ffi.new("float[256]")
    C.grove_quant_dynamic_map(buf)
    local out = {}
    for i = 0, 255 do out[i + 1] = buf[i] end
    return out
  end
end
