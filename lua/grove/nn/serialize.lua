-- Serialization of modules: saving and loading them as safetensors files with PyTorch's names.
-- A model's config travels in the file's metadata ("grove.config", a flat
-- JSON object), so grove.nn.load(path) can rebuild the model it came from.
local Module = require "grove.nn.module"

return function(grove)
  local nn = grove.nn

  -- Flat JSON objects of numbers, booleans and strings: enough for configs.
  local function encode_flat(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      local v = t[k]
      local s
      if type(v) == "number" then s = string.format("%.17g", v)
      elseif type(v) == "boolean" then s = tostring(v)
      elseif type(v) == "string" then s = string.format("%q", v)
      end
      if s then parts[#parts + 1] = string.format("%q:%s", k, s) end
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end

  local function decode_flat(s)
    local t = {}
    for k, v in s:gmatch('"([^"]+)":([^,}]+)') do
      if v == "true" then t[k] = true
      elseif v == "false" then t[k] = false
      elseif v:sub(1, 1) == '"' then t[k] = v:sub(2, -2)
      else t[k] = tonumber(v) end
    end
    return t
  end
  nn._encode_config, nn._decode_config = encode_flat, decode_flat

  function Module:save(path, metadata)
    local pairs_list = {}
    for _, np in ipairs(self:named_parameters()) do pairs_list[#pairs_list + 1] = { np[1], np[2]:detach() } end
    local meta = {}
    for k, v in pairs(metadata or {}) do meta[k] = tostring(v) end
    if self.config then meta["grove.config"] = encode_flat(self.config) end
    meta["format"] = "pt"
    grove.save_safetensors(path, pairs_list, meta)
  end

  -- Copies values from a name → tensor table into the parameters. strict
  -- (default) requires every name and shape to match and reports all
  -- mismatches in one error; strict = false loads what matches and returns
  -- the lists of missing and unexpected names.
  function Module:load_state_dict(state, opts)
    local strict = not (opts and opts.strict == false)
    local missing, unexpected, wrong = {}, {}, {}
    local seen = {}
    for _, np in ipairs(self:named_parameters()) do
      local name, p = np[1], np[2]
      local v = state[name]
      seen[name] = true
      if v == nil then missing[#missing + 1] = name
      elseif v:shape_str() ~= p:shape_str() then
        wrong[#wrong + 1] = name .. " (file " .. v:shape_str() .. ", model " .. p:shape_str() .. ")"
      end
    end
    for name in pairs(state) do if not seen[name] then unexpected[#unexpected + 1] = name end end
    table.sort(unexpected)
    if #wrong > 0 or (strict and (#missing > 0 or #unexpected > 0)) then
      local lines = {}
      if #missing > 0 then lines[#lines + 1] = "missing: " .. table.concat(missing, ", ") end
      if #unexpected > 0 then lines[#lines + 1] = "unexpected: " .. table.concat(unexpected, ", ") end
      if #wrong > 0 then lines[#lines + 1] = "shape mismatch: " .. table.concat(wrong, ", ") end
      error("load_state_dict: " .. table.concat(lines, "; "), 2)
    end
    grove.no_grad(function()
      for _, np in ipairs(self:named_parameters()) do
        local v = state[np[1]]
        if v then np[2]:copy_(v) end
      end
    end)
    return missing, unexpected
  end

  function Module:load(path, opts)
    local state = grove.load_safetensors(path)
    return self:load_state_dict(state, opts)
  end

  -- The first parameter of module (built with meta = true: shapes only)
  -- that tensors lacks under prefix (unless allow_missing) or holds in
  -- another shape, as "<name> the shape [..], but the file has [..] / lacks
  -- it"; nil when all match. A config from a file is checked so before
  -- anything is allocated.
  function nn.shape_mismatch(module, tensors, prefix, allow_missing)
    prefix = prefix or ""
    for _, np in ipairs(module:named_parameters()) do
      local name, want = np[1], np[2]:shape()
      local t = tensors[prefix .. name]
      local have = t and t:shape() or nil
      local same = have and #have == #want
      for i = 1, same and #want or 0 do same = same and have[i] == want[i] end
      if not same and (have or not allow_missing) then
        return string.format("%s the shape [%s], but the file %s", prefix .. name, table.concat(want, ","),
                             have and ("has [" .. table.concat(have, ",") .. "]") or "lacks it")
      end
    end
  end

  -- Rebuilds a model from a file saved by Module:save, with its config.
  function nn.load(path, opts)
    local state, meta = grove.load_safetensors(path)
    local cfg = meta and meta["grove.config"]
    if not cfg then error("nn.load: " .. path .. " has no grove.config metadata; build the model and use :load", 2) end
    local count = 0
    for _ in pairs(state) do count = count + 1 end
    local c = decode_flat(cfg)
    if type(c.depth) == "number" and c.depth > count then
      error("nn.load: " .. path .. ": grove.config gives depth " .. c.depth .. ", which the file's " .. count ..
            " tensors cannot hold", 2)
    end
    local ok, shapes = pcall(nn.Sana, c, { meta = true })
    if not ok then error("nn.load: " .. path .. ": grove.config does not describe a model grove can build: " .. tostring(shapes), 2) end
    local bad = nn.shape_mismatch(shapes, state, "", opts and opts.strict == false)
    if bad then error("nn.load: " .. path .. ": grove.config gives " .. bad, 2) end
    local model = nn.Sana(c, opts)
    model:load_state_dict(state, opts)
    return model
  end
end
