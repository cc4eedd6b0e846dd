-- A complete pipeline folder out of folder surgery (`grove grow --model`,
-- `grove prune --model`): OUT/transformer is the surgery's, the other
-- components named in model_index.json are linked (a symbolic link to the
-- source component's absolute path) or copied, and the source's top-level
-- files (model_index.json, a README or licence) are copied, so
-- `grove sample --model OUT` and diffusers' from_pretrained(OUT) load it.
--
--   grove.grow.complete_folder("Sana_1600M", "Sana_grown", { components = "link" },
--     function(tmp) return grove.grow.folder("Sana_1600M", tmp, { depth = 24 }) end)
--
-- Everything is written under OUT.partial and renamed to OUT at the end:
-- a failed run removes OUT.partial (links are removed, never followed) and
-- leaves nothing.
local ffi = require "ffi"
pcall(ffi.cdef, "int symlink(const char *target, const char *linkpath);")
pcall(ffi.cdef, "char *strerror(int errnum);")

return function(grove, grow)
  local C = grove.C
  local COPY_CHUNK = 16 * 2 ^ 20

  local function join(dir, name) return (dir:gsub("/+$", "")) .. "/" .. name end
  local function kind(p) return C.grove_path_kind(p) end

  -- grove.diffusers' folder listing and link resolution
  local function list(dir) return grove.diffusers._list_dir(dir) end
  local function real_path(p) return grove.diffusers._real_path(p) end
  local function ccheck(rc) if rc ~= 0 then error(grove.c_error(), 0) end end

  -- Removes a tree without following links (grove_dir_remove: a link is
  -- unlinked, never descended through); a missing path is fine. It cleans
  -- up after failures, so it raises nothing of its own: what it cannot
  -- remove is left.
  local function remove_tree(p) C.grove_dir_remove(p) end
  grow.remove_tree = remove_tree

  local function copy_file(from, to)
    local src, err = io.open(from, "rb")
    if not src then error("cannot read " .. tostring(err), 0) end
    local dst, err2 = io.open(to, "wb")
    if not dst then src:close(); error("cannot write " .. tostring(err2), 0) end
    while true do
      local chunk = src:read(COPY_CHUNK)
      if not chunk then break end
      local ok, werr = dst:write(chunk)
      if not ok then src:close(); dst:close(); error("cannot write " .. to .. ": " .. tostring(werr), 0) end
    end
    src:close()
    local ok, cerr = dst:close()
    if not ok then error("cannot write " .. to .. ": " .. tostring(cerr), 0) end
  end

  -- Copies a folder (links inside it are followed: a hub snapshot's files
  -- are links to its blobs, and the copy holds the files themselves).
  local function copy_tree(from, to)
    ccheck(C.grove_dir_make(to))
    for _, n in ipairs(list(from)) do
      local a, b = join(from, n), join(to, n)
      local k = kind(a)
      if k == C.GROVE_PATH_DIR then copy_tree(a, b)
      elseif k == C.GROVE_PATH_FILE then copy_file(a, b) end
    end
  end

  local function link(from, to)
    if ffi.C.symlink(real_path(from), to) ~= 0 then
      error("cannot link " .. to .. " to " .. from .. ": " .. ffi.string(ffi.C.strerror(ffi.errno())), 0)
    end
  end

  grow.COMPONENT_MODES = { link = true, copy = true }

  -- Checks a complete-folder surgery before any work: in_dir is a pipeline
  -- folder (model_index.json, transformer/, a folder for every other
  -- component it names), out_dir and out_dir.partial do not exist, mode is
  -- link or copy. Returns the out folder (without a trailing /) and the
  -- component names to carry over (sorted).
  function grow.check_complete(in_dir, out_dir, mode, who)
    who = who or "grow"
    if not grow.COMPONENT_MODES[mode] then
      error(who .. ": components must be link or copy, got '" .. tostring(mode) .. "'", 0)
    end
    if type(in_dir) ~= "string" or kind(in_dir) ~= C.GROVE_PATH_DIR then
      error(who .. ": " .. tostring(in_dir) .. " is not a folder", 0)
    end
    local index = grove.diffusers.model_index(in_dir)
    if not index then
      error(who .. ": " .. in_dir .. " has no model_index.json: --model takes a pipeline folder (a transformer folder " ..
            "alone goes to --in)", 0)
    end
    if kind(join(in_dir, "transformer")) ~= C.GROVE_PATH_DIR then
      error(who .. ": " .. in_dir .. " has no transformer/ folder", 0)
    end
    if type(out_dir) ~= "string" or out_dir == "" then error(who .. ": expected the output folder's path", 0) end
    out_dir = out_dir:gsub("/+$", "")
    if kind(out_dir) ~= C.GROVE_PATH_NONE then
      error(who .. ": " .. out_dir .. " already exists; grove writes a new folder and never overwrites one " ..
            "(remove it or choose another --out)", 0)
    end
    if kind(out_dir .. ".partial") ~= C.GROVE_PATH_NONE then
      error(who .. ": " .. out_dir .. ".partial exists (left by an interrupted run?); remove it first", 0)
    end
    local names = {}
    for k, v in pairs(index) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" and k ~= "transformer" and type(v) == "table" then
        if kind(join(in_dir, k)) ~= C.GROVE_PATH_DIR then
          error(who .. ": " .. in_dir .. "/model_index.json names the component " .. k .. ", but " .. join(in_dir, k) ..
                " is not a folder", 0)
        end
        names[#names + 1] = k
      end
    end
    table.sort(names)
    return out_dir, names
  end

  -- in_dir: a pipeline folder (model_index.json). opts.components: "link"
  -- (default) or "copy". write(tmp) writes tmp/transformer (a surgery
  -- given the pipeline folder and tmp as its output) and returns its
  -- summary. Returns that summary with dir = out_dir/transformer,
  -- out = out_dir, components = {{name =, how = "link"|"copy"}, ...},
  -- top_files (the top-level files copied).
  function grow.complete_folder(in_dir, out_dir, opts, write, who)
    who = who or "grow"
    opts = opts or {}
    local mode = opts.components or "link"
    local names
    out_dir, names = grow.check_complete(in_dir, out_dir, mode, who)
    local tmp = out_dir .. ".partial"
    ccheck(C.grove_dir_make(tmp))
    local ok, res = pcall(function()
      local r = write(tmp)
      r.components = {}
      for _, n in ipairs(names) do
        local from, to = join(in_dir, n), join(tmp, n)
        if mode == "link" then link(from, to) else copy_tree(from, to) end
        r.components[#r.components + 1] = { name = n, how = mode }
      end
      r.top_files = {}
      for _, n in ipairs(list(in_dir)) do
        local p = join(in_dir, n)
        if kind(p) == C.GROVE_PATH_FILE then
          copy_file(p, join(tmp, n))
          r.top_files[#r.top_files + 1] = n
        end
      end
      local renamed, err = os.rename(tmp, out_dir)
      if not renamed then error("cannot rename " .. tmp .. " to " .. out_dir .. ": " .. tostring(err), 0) end
      r.out, r.dir = out_dir, join(out_dir, "transformer")
      return r
    end)
    if not ok then
      remove_tree(tmp)
      error(res, 0)
    end
    return res
  end
end
