-- grove.grow: a deeper model from a trained one (SANA 1.5, DESIGN.md §4).
--
--   local big = grove.grow(model, {strategy = "partial", depth = 60, init = "identity"})
--
-- A strategy (grow/partial.lua, cyclic.lua, block.lua, or your own) decides
-- where each target block comes from; the init decides how the blocks that
-- are not simply kept start:
--   identity  the output projections of the three branches (attn1.to_out.0,
--             attn2.to_out.0, ff.conv_point) and their biases are zero, so the
--             block passes its input through; repeated copies also get zero
--             gates (rows 3 and 6 of their scale_shift_table)
--   random    the model's default init (repeats are replaced by new blocks)
--   noise     copies plus Gaussian noise of scale opts.noise; new blocks start
--             as under identity, then get the noise
-- Every random draw for target block i comes from Generator(seed) (default
-- init) or Generator(seed + 1) (noise) at counter offset i·2^36, so a block's
-- values depend on (seed, i) only, and this Lua path and the file surgery of
-- `grove grow` (grow/file.lua) give the same tensors.
return function(grove)
  local grow = {}
  grow.inits = { "identity", "random", "noise" }
  grow.BLOCK_STRIDE = 2 ^ 36

  -- What identity init zeroes, by name inside a block; the weights must exist.
  grow.ZERO = { "attn1.to_out.0.weight", "attn1.to_out.0.bias", "attn2.to_out.0.weight", "attn2.to_out.0.bias",
                "ff.conv_point.weight", "ff.conv_point.bias" }
  grow.REQUIRED = { "attn1.to_out.0.weight", "attn2.to_out.0.weight", "ff.conv_point.weight" }
  grow.GATE_TABLE, grow.GATE_ROWS = "scale_shift_table", { 3, 6 } -- gate1, gate2
  local zero_set = {}
  for _, n in ipairs(grow.ZERO) do zero_set[n] = true end

  -- ---- strategies ---------------------------------------------------------------
  -- A strategy as {map = fn(N, M), grow = fn(source_blocks, M, opts)}, from a
  -- function (grow only), a table with map and/or grow, or a registered name.
  local function normalize(s, what)
    if type(s) == "function" then return { grow = s, name = what } end
    if type(s) ~= "table" or (type(s.map) ~= "function" and type(s.grow) ~= "function") then
      error("grow: strategy " .. what .. " must be a function (source_blocks, M, opts) -> target_blocks " ..
            "or a table with map(N, M) and/or grow(...), got " .. type(s), 0)
    end
    local out = { map = s.map, grow = s.grow, name = s.name or what }
    if not out.grow then
      out.grow = function(source_blocks, M, opts)
        local blocks = {}
        for i, j in ipairs(s.map(#source_blocks, M)) do
          blocks[i] = j and opts.copy(source_blocks[j]) or opts.new_block(i)
        end
        return blocks
      end
    end
    return out
  end

  local strategies = grove.registry.new { owner = "grow", kind = "strategy", register_name = "grow.register",
    entry = function(s, name) return normalize(s, name) end }
  grow.strategies = strategies.entries
  grow.strategy_registry = strategies
  grow.register = strategies.register
  for _, name in ipairs { "partial", "cyclic", "block" } do grow.register(name, require("grove.grow." .. name)) end

  -- The strategy from a registered name, a function or a table.
  grow.strategy = function(s) return (strategies.get(s)) end
  -- ... or a .lua file returning one (the command line's --strategy).
  grow.load_strategy = strategies.load

  -- ---- options --------------------------------------------------------------------
  local function is_integer(v) return type(v) == "number" and v % 1 == 0 and v >= 0 and v < 2 ^ 53 end

  -- Checks and completes the options shared by grove.grow and grow.file.
  function grow.options(opts)
    if type(opts) ~= "table" then error("grow: expected an options table {strategy =, depth =, init =}, got " .. type(opts), 0) end
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    if not is_integer(o.depth) or o.depth < 1 then
      error("grow: depth must be a positive integer (the number of blocks to grow to), got " .. tostring(o.depth), 0)
    end
    o.strategy = grow.strategy(o.strategy or "partial")
    o.init = o.init or "identity"
    local known = false
    for _, n in ipairs(grow.inits) do known = known or n == o.init end
    if not known then
      error("grow: unknown init '" .. tostring(o.init) .. "' (known: " .. table.concat(grow.inits, ", ") .. ")", 0)
    end
    if o.init == "noise" and not (type(o.noise) == "number" and o.noise > 0) then
      error("grow: init 'noise' needs a positive scale (noise = 1e-3, say), got " .. tostring(o.noise), 0)
    end
    o.seed = o.seed or 0
    if not is_integer(o.seed) then error("grow: seed must be a non-negative integer, got " .. tostring(o.seed), 0) end
    return o
  end

  -- ---- the plan: what each target block is ------------------------------------
  -- map[i] is a source index, false (a new block) or nil (a block the strategy
  -- made itself, left as it is). The first target copying a source block keeps
  -- it; later ones are repeats.
  function grow.plan(map, N, M, name)
    if type(map) ~= "table" then error("grow: strategy " .. name .. " gave no block map", 0) end
    local kinds, seen = {}, {}
    for i = 1, M do
      local j = map[i]
      if j == false then kinds[i] = "new"
      elseif j == nil then kinds[i] = "custom"
      elseif type(j) ~= "number" or j % 1 ~= 0 or j < 1 or j > N then
        error(string.format("grow: strategy %s maps target block %d to source block %s, but the source has blocks 1..%d",
                            name, i, tostring(j), N), 0)
      elseif seen[j] then kinds[i] = "repeat"
      else kinds[i] = "keep"; seen[j] = true end
    end
    return kinds
  end

  -- Where the copy comes from: the source block ("copy") or the default init ("default").
  function grow.base(kind, init)
    if kind == "new" or (kind == "repeat" and init == "random") then return "default" end
    return "copy"
  end

  -- Places a generator at target block i's counter range.
  function grow.position(gen, seed, i)
    gen.seed = seed
    gen.offset = i * grow.BLOCK_STRIDE
    return gen
  end

  -- Applies the init to one tensor of target block i, in place. rel is the
  -- name inside the block; noise_gen is positioned at the block and advanced
  -- by each tensor in the block's parameter order.
  function grow.init_tensor(rel, t, kind, o, noise_gen)
    if kind == "keep" or kind == "custom" then return t end
    grove.no_grad(function()
      if o.init == "identity" or (o.init == "noise" and kind == "new") then
        if zero_set[rel] then t:zero_() end
      end
      if o.init == "identity" and kind == "repeat" and rel == grow.GATE_TABLE then
        if t:dim() ~= 2 or t:size(1) ~= 6 then
          error("grow: identity init zeroes the gate rows of " .. rel .. ", which must be (6, D), got " .. t:shape_str(), 0)
        end
        for _, r in ipairs(grow.GATE_ROWS) do t:narrow(1, r, 1):zero_() end
      end
      if o.init == "noise" then
        local f32 = t:dtype() == "f32"
        local base = f32 and t or t:float()
        local n = grove.randn(t:shape(), { generator = noise_gen })
        local scaled = n * o.noise
        local sum = base + scaled
        t:copy_(sum)
        n:free(); scaled:free(); sum:free()
        if not f32 then base:free() end
      end
    end)
    return t
  end

  -- The block names an init relies on, checked before anything is built.
  -- has(i, name) tells whether target block i has the parameter; where(i)
  -- names block i for the message.
  function grow.check_block_names(has, kinds, o, where)
    for i, kind in ipairs(kinds) do
      local zeroes = (o.init == "identity" and (kind == "new" or kind == "repeat")) or (o.init == "noise" and kind == "new")
      if zeroes then
        for _, n in ipairs(grow.REQUIRED) do
          if not has(i, n) then
            error(string.format("grow: %s init zeroes %s, but %s has no such parameter", o.init, n, where(i)), 0)
          end
        end
      end
      if o.init == "identity" and kind == "repeat" and not has(i, grow.GATE_TABLE) then
        error(string.format("grow: identity init zeroes the gates in %s, but %s has none", grow.GATE_TABLE, where(i)), 0)
      end
    end
  end

  -- ---- growing a model in memory ------------------------------------------------
  local function is_module(m) return type(m) == "table" and type(m.named_parameters) == "function" end

  -- A deep copy: parameters cloned (same requires_grad), children copied,
  -- plain tables copied one level, anything else shared. skip names fields to leave out.
  local function clone_module(m, skip)
    local c = setmetatable({}, getmetatable(m))
    for k, v in pairs(m) do
      if skip and skip[k] then
      elseif type(k) == "string" and m._param_names[k] then
        if not grove.is_tensor(v) then
          error("grow: parameter '" .. k .. "' is not a tensor (a model built with meta = true cannot grow)", 0)
        end
        c[k] = grove.no_grad(function() return v:detach():clone() end)
        if v.requires_grad then c[k]:requires_grad_(true) end
      elseif type(k) == "string" and m._child_names[k] then c[k] = clone_module(v)
      elseif type(v) == "table" and getmetatable(v) == nil then
        local t = {}
        for kk, vv in pairs(v) do t[kk] = vv end
        c[k] = t
      else c[k] = v end
    end
    return c
  end
  grow.clone_module = clone_module

  local function grow_model(model, opts)
    local N = grove.nn.check_blocks(model, "grow")
    local o = grow.options(opts)
    local M, strategy = o.depth, o.strategy

    local grown = clone_module(model, { blocks = true })
    if type(model.config) == "table" then
      grown.config = {}
      for k, v in pairs(model.config) do grown.config[k] = v end
      grown.config.depth = M
    end
    local init_gen, noise_gen = grove.Generator(o.seed), grove.Generator(o.seed + 1)
    -- new blocks draw from init_gen, placed at their target index
    if grown.make ~= nil then grown.make = grove.nn.param_factory { generator = init_gen } end

    local origin, source_index = {}, {}
    for j, b in ipairs(model.blocks) do source_index[b] = j end
    local extra = M
    local function new_block(i)
      if type(grown.new_block) ~= "function" then error("grow: a new block is needed, but the model has no new_block()", 0) end
      if i == nil then extra = extra + 1; i = extra end
      grow.position(init_gen, o.seed, i)
      local b = grown:new_block()
      origin[b] = false
      return b
    end
    local sopts = {}
    for k, v in pairs(o) do sopts[k] = v end
    sopts.model, sopts.source = grown, model
    sopts.new_block = new_block
    sopts.copy = function(b)
      if not is_module(b) then error("grow: copy expects a block (a module), got " .. type(b), 0) end
      local c = clone_module(b)
      if b.config == model.config and grown.config then c.config = grown.config end
      origin[c] = source_index[b]
      return c
    end

    local target = strategy.grow(model.blocks, M, sopts)
    if type(target) ~= "table" or #target ~= M then
      error(string.format("grow: strategy %s returned %s blocks for depth %d", strategy.name,
                          type(target) == "table" and tostring(#target) or ("a " .. type(target) .. " instead of"), M), 0)
    end
    local map, seen = {}, {}
    for i = 1, M do
      local b = target[i]
      if not is_module(b) then error(string.format("grow: strategy %s returned a %s as block %d", strategy.name, type(b), i), 0) end
      if source_index[b] then -- a source block itself: copy it, so the source stays untouched
        b = sopts.copy(b)
        target[i] = b
      end
      if seen[b] then
        error(string.format("grow: strategy %s returned one block object as blocks %d and %d (use opts.copy for a second one)",
                            strategy.name, seen[b], i), 0)
      end
      seen[b] = i
      map[i] = origin[b]
    end
    local kinds = grow.plan(map, N, M, strategy.name)

    local names = {}
    for i, b in ipairs(target) do
      names[i] = {}
      for _, np in ipairs(b:named_parameters()) do names[i][np[1]] = true end
    end
    grow.check_block_names(function(i, n) return names[i][n] end, kinds, o,
                           function(i) return "target block " .. i end)

    for i, kind in ipairs(kinds) do
      if kind == "repeat" and o.init == "random" then target[i] = new_block(i) end
      grow.position(noise_gen, o.seed + 1, i)
      for _, np in ipairs(target[i]:named_parameters()) do grow.init_tensor(np[1], np[2], kind, o, noise_gen) end
    end
    grown.blocks = target
    return grown, kinds
  end

  require "grove.grow.file"(grove, grow)
  require "grove.grow.folder"(grove, grow)
  require "grove.grow.complete"(grove, grow)

  grove.grow = setmetatable(grow, { __call = function(_, model, opts) return grow_model(model, opts) end })
end
