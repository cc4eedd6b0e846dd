-- Pruning a diffusers transformer folder (`grove prune --in DIR`): the kept
-- blocks' tensors are copied bit for bit, one at a time, renumbered
-- transformer_blocks.0..K-1, into a new component folder (grow/folder.lua
-- writes it: config.json's num_layers, shards, index, stored dtypes).
--
--   grove.prune.folder("Sana_1600M", "pruned", {remove = {3}})       -- 1-based
--   grove.prune.folder("Sana_1600M", "pruned", {keep = {1, 2, 4, 5}}) -- exactly these stay
--   grove.prune.folder("Sana_1600M", "pruned", {depth = 16, calib_features = "calib.safetensors"})
--
-- With depth and calibration features the blocks are scored first, the
-- model loaded once (prune/features.lua); keep then protects blocks from
-- removal, as in grove.prune.
return function(grove, prune)
  -- the set of blocks a list names (grove.grow.block_list: "3,7", "1-18", a table)
  local function index_list(v, what, N, where)
    if v == nil then return nil end
    local _, set = grove.grow.block_list(v, what, N, where, "prune")
    return set
  end

  -- The kept source blocks (ascending) from opts.keep / opts.remove, for N blocks.
  function prune.given_blocks(opts, N, where)
    local keep, remove = index_list(opts.keep, "keep", N, where), index_list(opts.remove, "remove", N, where)
    if not keep and not remove then
      error("prune: say which blocks go: remove = {...} or keep = {...} (--remove / --keep), or score them " ..
            "with depth and calibration features", 0)
    end
    for j in pairs(keep or {}) do
      if remove and remove[j] then error("prune: block " .. j .. " is both kept and removed", 0) end
    end
    local kept = {}
    for j = 1, N do
      if (keep and keep[j]) or (not keep and not remove[j]) then kept[#kept + 1] = j end
    end
    if #kept == 0 then error("prune: that removes all " .. N .. " blocks of " .. where .. "; at least one must stay", 0) end
    if opts.depth ~= nil and opts.depth ~= #kept then
      error(string.format("prune: depth %s disagrees with the given blocks, which keep %d", tostring(opts.depth), #kept), 0)
    end
    return kept
  end

  local function one_line(info)
    return string.format("metric=%s schedule=%s source_depth=%d depth=%d removed=%s", info.metric or "given",
                         info.schedule or "given", info.source_depth, info.depth, table.concat(info.removed, ","))
  end

  -- Prunes a transformer folder. opts: keep / remove (1-based block lists, or
  -- comma-separated strings), or depth with calib_features (and metric,
  -- schedule, keep, seed, batch, timesteps: prune.score_folder), or scored
  -- (the info of blocks chosen already: prune.score_pipeline's);
  -- max_shard_bytes and variant as grove.grow.folder. Returns
  -- {source_depth, depth, kept, removed, scores (when scored), metric,
  -- schedule, tensors, bytes, files, dir, seconds}.
  function prune.folder(in_dir, out_dir, opts)
    local t0 = grove.now()
    opts = opts or {}
    if type(opts) ~= "table" then error("prune: expected an options table, got " .. type(opts), 0) end
    local grow = grove.grow
    local max = opts.max_shard_bytes and grow.parse_size(opts.max_shard_bytes, "prune")
    local comp, src, pipeline = grow.open_transformer(in_dir, "prune", opts)
    local ok, res = pcall(function()
      local info = {}
      -- the output is checked before any scoring: a bad --out fails at once
      local dir = grow.folder_target(out_dir, pipeline, "prune")
      local plan = grow.stream(src, { init = "identity", seed = 0 }, function(N)
        grow.check_layers(comp, N, "prune")
        info.source_depth = N
        if opts.scored then
          -- blocks chosen already (prune.score_pipeline), for this source
          if opts.scored.source_depth ~= N then
            error(string.format("prune: the scores are for %s blocks, but %s holds %d", tostring(opts.scored.source_depth),
                                comp.dir, N), 0)
          end
          for k, v in pairs(opts.scored) do info[k] = v end
        elseif opts.calib_features then
          for k, v in pairs(prune.score_folder(in_dir, opts)) do info[k] = v end
          -- the scored model is garbage now: give its memory back before writing
          grove.collect()
          grove.empty_cache()
        else
          info.kept = prune.given_blocks(opts, N, comp.dir)
        end
        return info.kept
      end, "prune")
      info.depth = #info.kept
      local gone = {}
      for _, j in ipairs(info.kept) do gone[j] = false end
      info.removed = {}
      for j = 1, info.source_depth do if gone[j] == nil then info.removed[#info.removed + 1] = j end end
      local meta = { format = "pt", ["grove.prune"] = one_line(info) }
      local w = grow.write_folder(plan, comp, dir, { max_shard_bytes = max, variant = opts.variant, metadata = meta })
      info.tensors, info.bytes, info.files, info.dir, info.pipeline = #plan.entries, plan.bytes, w.files, dir, pipeline
      info.seconds = grove.now() - t0
      return info
    end)
    comp:close()
    if not ok then error(res, 0) end
    return res
  end
end
