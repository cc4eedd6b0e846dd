-- Checkpoint surgery (`grove grow`): grows a safetensors file in diffusers
-- naming (transformer_blocks.<i>.<name>) without building the model. It reads
-- one tensor, applies the init, writes it and frees it, so growing a file
-- needs memory of the order of its largest tensor, whatever the model's size.
-- Strategies (their map), inits and random draws are grove.grow's, so a file
-- grown here holds the tensors grove.grow gives for the same model.
--
--   grove.grow.file("base.safetensors", "grown.safetensors",
--                   {strategy = "partial", depth = 60, init = "identity", seed = 0})
return function(grove, grow)
  local nn = grove.nn
  local PREFIX = "transformer_blocks."

  local function shape_str(s) return "[" .. table.concat(s, ",") .. "]" end

  -- Non-block names (file order), and per source block its names inside the
  -- block (file order) with their dtype and shape. Every block must have the
  -- names, dtypes and shapes of block 0.
  local function layout(r, path)
    local others, blocks, last = {}, {}, -1
    local pattern = "^" .. (r.block_prefix or PREFIX):gsub("%.", "%%.") .. "(%d+)%.(.+)$"
    for _, name in ipairs(r.names) do
      local i, rel = name:match(pattern)
      if i then
        i = tonumber(i)
        local b = blocks[i + 1] or { names = {}, info = {} }
        blocks[i + 1] = b
        b.names[#b.names + 1] = rel
        b.info[rel] = r.info(name)
        last = math.max(last, i)
      else
        others[#others + 1] = name
      end
    end
    if last < 0 then error("grow: " .. path .. " has no transformer_blocks.<i>.* tensors (diffusers naming)", 0) end
    local N = last + 1
    for j = 1, N do
      if not blocks[j] then
        error(string.format("grow: %s has transformer_blocks up to %d, but block %d is missing (no transformer_blocks.%d.*)",
                            path, last, j - 1, j - 1), 0)
      end
    end
    local ref = blocks[1]
    for j = 2, N do
      local b = blocks[j]
      for _, rel in ipairs(ref.names) do
        local a, c = ref.info[rel], b.info[rel]
        if not c then error(string.format("grow: %s: transformer_blocks.%d lacks %s (block 0 has it)", path, j - 1, rel), 0) end
        if c.dtype ~= a.dtype or shape_str(c.shape) ~= shape_str(a.shape) then
          error(string.format("grow: %s: transformer_blocks.%d.%s is %s %s, but block 0's is %s %s", path, j - 1, rel,
                              c.dtype, shape_str(c.shape), a.dtype, shape_str(a.shape)), 0)
        end
      end
      for _, rel in ipairs(b.names) do
        if not ref.info[rel] then
          error(string.format("grow: %s: transformer_blocks.%d has %s, which block 0 lacks", path, j - 1, rel), 0)
        end
      end
    end
    return others, ref, N
  end

  -- The block config for new blocks: the file's grove.config, or what the
  -- shapes of block 0 say.
  local function block_config(r, ref, path)
    local cfg = r.metadata and r.metadata["grove.config"]
    if cfg then return nn.resolve_config(nn._decode_config(cfg)) end
    -- (a diffusers folder's blocks: the block's init depends on the shapes
    -- and on which parameters exist, not on the head split)
    local sst, cp, cq = ref.info["scale_shift_table"], ref.info["ff.conv_point.weight"], ref.info["attn2.to_q.weight"]
    if not sst or not cp or not cq then
      error("grow: " .. path .. " has no grove.config metadata, and its blocks lack scale_shift_table, " ..
            "ff.conv_point.weight or attn2.to_q.weight to read the widths from, so new blocks cannot be made", 0)
    end
    return { width = sst.shape[2], hidden = cp.shape[2], qk_norm = ref.info["attn1.norm_q.weight"] ~= nil,
             cross_norm = ref.info["attn2.norm_q.weight"] ~= nil, cross_heads = 1, cross_head_dim = cq.shape[1],
             attention_bias = ref.info["attn1.to_q.bias"] ~= nil,
             norm_elementwise_affine = ref.info["norm2.weight"] ~= nil, norm_eps = 1e-6 }
  end

  -- A block's default init as {name, shape, init} in the order the model
  -- draws them: a block built from shapes only, its factory calls recorded.
  local function default_specs(c)
    local meta = nn.param_factory { meta = true }
    local order = {}
    local function record(shape, init)
      local t = meta(shape, init)
      order[#order + 1] = { stub = t, shape = shape, init = init }
      return t
    end
    local block = nn.SanaBlock(record, c)
    local name_of = {}
    for _, np in ipairs(block:named_parameters()) do name_of[np[2]] = np[1] end
    for _, s in ipairs(order) do s.name, s.stub = name_of[s.stub], nil end
    return order
  end

  local function check_specs(specs, ref, path)
    local seen = {}
    for _, s in ipairs(specs) do
      seen[s.name] = true
      local inf = ref.info[s.name]
      if not inf or shape_str(inf.shape) ~= shape_str(s.shape) then
        error(string.format("grow: new blocks take grove's default init, but the blocks of %s do not match grove's " ..
                            "block: %s is %s in grove's, %s in the file", path, s.name, shape_str(s.shape),
                            inf and shape_str(inf.shape) or "absent"), 0)
      end
    end
    for _, rel in ipairs(ref.names) do
      if not seen[rel] then
        error("grow: new blocks take grove's default init, but the blocks of " .. path .. " have " .. rel ..
              ", which grove's block has not", 0)
      end
    end
  end

  local function numel(shape)
    local n = 1
    for _, s in ipairs(shape) do n = n * s end
    return n
  end
  -- Philox counters a draw of n values advances its generator by (core/copy.c).
  local function counters(n) return math.ceil(n / 4) end
  local DRAWS = { normal = true, uniform = true, randn_scaled = true, xavier = true }

  -- The streaming plan of a surgery: the target tensors, each made on demand
  -- from the source and the init, in any order. src: {path, names (a list),
  -- info(name) -> {dtype, shape}, load(name) -> a new tensor, metadata
  -- (safetensors metadata, may be empty), order = "specs" (block tensors in
  -- grove's parameter order when the blocks are grove's, as a folder's sorted
  -- names are not)}. map(N) -> target block -> source block or false; name
  -- names the strategy. Returns {N, M, kinds, map, entries = {{name, dtype,
  -- shape}, ...} (non-block tensors, then the blocks in order), bytes,
  -- make(name) -> a new tensor}. Every random draw is placed at its own
  -- counter (the block's offset plus the draws before it in the block's
  -- order), so tensors come out the same whatever order they are made in.
  function grow.stream(src, o, map_of, name)
    local others, ref, N = layout(src, src.path)
    local block_prefix = src.block_prefix or PREFIX
    local map = map_of(N)
    if type(map) ~= "table" then error("grow: strategy " .. name .. ": map gave a " .. type(map), 0) end
    local M = o.depth or #map
    for i = 1, M do if map[i] == nil then map[i] = false end end
    if #map ~= M then
      error(string.format("grow: strategy %s mapped %d target blocks for depth %d", name, #map, M), 0)
    end
    local kinds = grow.plan(map, N, M, name)
    grow.check_block_names(function(_, n) return ref.info[n] ~= nil end, kinds, o,
                           function(i) return "target block " .. i .. " (blocks of " .. src.path .. ")" end)

    -- Block tensors go in the order the default init draws them when new
    -- blocks are drawn, so the draws match grove.grow's; otherwise in block
    -- 0's order (a folder's: grove's order when its blocks are grove's).
    local order, spec_of = ref.names, {}
    local need_default = false
    for _, k in ipairs(kinds) do need_default = need_default or grow.base(k, o.init) == "default" end
    local specs
    if need_default then
      specs = default_specs(block_config(src, ref, src.path))
      check_specs(specs, ref, src.path)
    elseif src.order == "specs" then
      local ok, s = pcall(function()
        local sp = default_specs(block_config(src, ref, src.path))
        check_specs(sp, ref, src.path)
        return sp
      end)
      if ok then specs = s end
    end
    if specs then
      order = {}
      for i, s in ipairs(specs) do order[i], spec_of[s.name] = s.name, s end
    end
    -- each tensor's counter offset inside its block: default init, noise
    local init_at, noise_at = {}, {}
    local ia, na = 0, 0
    for _, rel in ipairs(order) do
      local n = numel(ref.info[rel].shape)
      init_at[rel], noise_at[rel] = ia, na
      local s = spec_of[rel]
      if s and DRAWS[s.init:match("^(%a[%w_]*)")] then ia = ia + counters(n) end
      na = na + counters(n)
    end

    local entries, bytes, target = {}, 0, {}
    local function add(tname, inf, where)
      entries[#entries + 1] = { tname, inf.dtype, inf.shape }
      target[tname] = where
      bytes = bytes + numel(inf.shape) * tonumber(grove.C.grove_dtype_size(grove._dtype_id(inf.dtype)))
    end
    for _, n in ipairs(others) do add(n, src.info(n), { name = n }) end
    for i = 1, M do
      for _, rel in ipairs(order) do add(block_prefix .. (i - 1) .. "." .. rel, ref.info[rel], { block = i, rel = rel }) end
    end

    local init_gen, noise_gen = grove.Generator(o.seed), grove.Generator(o.seed + 1)
    local factory = nn.param_factory { generator = init_gen }
    local last_block
    local function make(tname)
      local where = target[tname]
      if not where then error("grow: the plan has no tensor '" .. tostring(tname) .. "'", 2) end
      if not where.block then return src.load(where.name) end
      local i, rel = where.block, where.rel
      -- freed blocks stay in grove's allocator cache; hand them back per block
      if last_block and last_block ~= i then
        grove.empty_cache()
        if o.log then o.log(last_block, M, kinds[last_block]) end
      end
      last_block = i
      local kind = kinds[i]
      local t, default = nil, grow.base(kind, o.init) == "default"
      if default then
        local s = spec_of[rel]
        grow.position(init_gen, o.seed, i)
        init_gen.offset = init_gen.offset + init_at[rel]
        t = factory(s.shape, s.init):requires_grad_(false)
      else
        t = src.load(block_prefix .. (map[i] - 1) .. "." .. rel)
      end
      grow.position(noise_gen, o.seed + 1, i)
      noise_gen.offset = noise_gen.offset + noise_at[rel]
      grow.init_tensor(rel, t, kind, o, noise_gen)
      -- a new block is drawn and initialised in f32, then rounded once to
      -- the stored dtype, as a model grown in memory and saved would be
      local dtype = ref.info[rel].dtype
      if default and dtype ~= "f32" then
        local c = t:to(dtype)
        t:free()
        t = c
      end
      return t
    end
    local count = { keep = 0, ["repeat"] = 0, new = 0 }
    for _, k in ipairs(kinds) do count[k] = (count[k] or 0) + 1 end
    return { N = N, M = M, kinds = kinds, map = map, entries = entries, bytes = bytes, make = make,
             keep = count.keep, repeats = count["repeat"], new = count.new }
  end

  local function file_source(r, path)
    return { path = path, names = r.names, metadata = r.metadata, info = function(n) return r:info(n) end,
             load = function(n) return r:get(n) end }
  end

  -- A grove training checkpoint or weights file (model.* and text.*, a
  -- checkpoint also ema.* and optim.*) as a source: its model's blocks
  -- grow, the text encoder is copied, and the result is a weights file
  -- (grove.kind = weights) that sample, prune and train's init read. A
  -- checkpoint gives its EMA weights unless o.raw (as grove sample does);
  -- the optimizer state stays behind: it belongs to the run, not the model.
  local function parts_source(r, path, info, o)
    local from = ""
    if info.kind == "train_checkpoint" and info.ema and not o.raw then from = "ema." end
    local names = {}
    for _, n in ipairs(r.names) do
      if n:sub(1, #from) == from then
        local rest = n:sub(#from + 1)
        if rest:match("^model%.") or rest:match("^text%.") then names[#names + 1] = rest end
      end
    end
    local meta = { ["grove.kind"] = "weights", ["grove.config"] = r.metadata["grove.config"],
                   ["text.config"] = r.metadata["text.config"] }
    if info.kind == "train_checkpoint" then
      meta["grove.source"] = string.format("training checkpoint step %s (%s weights)", tostring(info.step),
                                           from == "ema." and "EMA" or "raw")
    end
    return { path = path, names = names, metadata = meta, block_prefix = "model." .. PREFIX,
             ema_used = from == "ema.", kind = info.kind,
             info = function(n) return r:info(from .. n) end, load = function(n) return r:get(from .. n) end }
  end

  -- The strategy's map for N source blocks, checked.
  function grow.strategy_map(o, where)
    return function(N) return (grow.source_map(o, N, where or "the source")) end
  end

  local function surgery(src, in_path, out_path, o)
    local t0 = grove.now()
    local plan = grow.stream(src, o, grow.strategy_map(o, in_path), o.strategy.name)
    local N, M = plan.N, plan.M
    local meta = {}
    for k, v in pairs(src.metadata) do meta[k] = v end
    if meta["grove.config"] then
      local c = nn._decode_config(meta["grove.config"])
      c.depth = M
      meta["grove.config"] = nn._encode_config(c)
    end
    meta["grove.grow"] = grow.describe(o, N, M)

    local w = grove.safetensors_writer(out_path, plan.entries, meta)
    local ok, err = pcall(function()
      for _, e in ipairs(plan.entries) do
        local t = plan.make(e[1])
        w:write(e[1], t)
        t:free()
      end
      grove.empty_cache()
      if o.log then o.log(M, M, plan.kinds[M]) end
    end)
    if not ok then
      w:abort()
      error(err, 0)
    end
    w:finish()
    return { source_depth = N, depth = M, kinds = plan.kinds, tensors = #plan.entries, bytes = plan.bytes,
             seconds = grove.now() - t0, keep = plan.keep, repeats = plan.repeats, new = plan.new,
             source_kind = src.kind, ema_used = src.ema_used }
  end

  -- One line for a file's metadata: what growth did.
  function grow.describe(o, N, M)
    local keep = ""
    if o.keep ~= nil then keep = " keep=" .. table.concat((grow.block_list(o.keep, "keep", N, "the source")), ",") end
    return string.format("strategy=%s init=%s%s seed=%d source_depth=%d depth=%d%s", o.strategy.name,
                         o.init, o.init == "noise" and (" noise=" .. o.noise) or "", o.seed, N, M, keep)
  end

  -- opts: grove.grow's (strategy, depth, init, noise, seed) and log(i, M, kind),
  -- called after each target block. Returns a summary table.
  function grow.file(in_path, out_path, opts)
    if type(in_path) ~= "string" or type(out_path) ~= "string" then
      error("grow.file: expected the input and output paths, got " .. type(in_path) .. " and " .. type(out_path), 2)
    end
    if in_path == out_path then error("grow: the output must differ from the input (" .. in_path .. ")", 0) end
    local o = grow.options(opts)
    if not o.strategy.map then
      error("grow: strategy " .. o.strategy.name .. " has no map(N, M), which file surgery needs " ..
            "(a strategy that is only a function works on models in memory: grove.grow)", 0)
    end
    local info = grove.describe(in_path)
    local parts = grove.file_kinds_with_parts[info.kind]
    if not parts and info.kind ~= "model" and info.kind ~= "diffusers_weights" and
       not (info.kind == "safetensors" and not info.metadata["grove.kind"]) then
      error("grow: " .. in_path .. " is " .. info.what .. "; grow reads model weights, a training checkpoint " ..
            "or a diffusers folder", 0)
    end
    local r = grove.safetensors_open(in_path)
    local src
    if parts then
      src = parts_source(r, in_path, info, { raw = opts and opts.raw })
    else
      src = file_source(r, in_path)
      src.kind = info.kind
    end
    local ok, res = pcall(surgery, src, in_path, out_path, o)
    r:close()
    if not ok then error(res, 0) end
    return res
  end
end
