-- A pipeline folder made from another: some components written anew (a
-- fine-tuned transformer, say), every other component of the source's
-- model_index.json linked to the source's folder (a symbolic link to its
-- real path, so links never chain) or copied, and model_index.json copied
-- byte for byte. Everything goes to OUT.partial first, and OUT is replaced
-- by it in one step when it is complete (grove_dir_replace), so an
-- interrupted write leaves the previous OUT (or none), never half of one.
--
--   grove.diffusers.derive_folder(src, out, {
--     transformer = function(dir) grove.diffusers.save(dir, T) end,
--   }, { copy = false })
local ffi = require "ffi"
pcall(ffi.cdef, "int symlink(const char *target, const char *linkpath); char *strerror(int errnum);")

return function(grove, diffusers)
  local C = grove.C

  local function join(dir, name) return (dir:gsub("/+$", "")) .. "/" .. name end
  local function kind(p) return C.grove_path_kind(p) end
  local function fail(msg) error("diffusers.derive_folder: " .. msg, 0) end

  local function real_path(path)
    local buf = ffi.new("char[?]", 4096)
    if C.grove_path_real(path, buf, 4096) ~= 0 then fail(grove.c_error()) end
    return ffi.string(buf)
  end

  -- rm -rf that never follows a link: a linked component is unlinked, the
  -- source it points to stays.
  local function remove_tree(p)
    if C.grove_dir_remove(p) ~= 0 then fail(grove.c_error()) end
  end

  local function read_file(p)
    local f, err = io.open(p, "rb")
    if not f then fail("cannot read " .. tostring(err)) end
    local s = f:read("*a")
    f:close()
    return s
  end

  -- The component names model_index.json lists (its keys that are not
  -- _class_name and the like), sorted.
  local function components(index)
    local out = {}
    for k, v in pairs(index) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" and type(v) == "table" then out[#out + 1] = k end
    end
    table.sort(out)
    return out
  end

  -- Links (or, with copy, copies) src's component folder into dst. A copy
  -- hard-links the files where the file system allows (no space taken;
  -- grove writes files by renaming new ones into place, never in place).
  local function bring(src_comp, dst_comp, copy)
    local real = real_path(src_comp)
    if copy then
      if C.grove_path_link(real, dst_comp) ~= 0 then fail("cannot copy " .. real .. ": " .. grove.c_error()) end
    elseif ffi.C.symlink(real, dst_comp) ~= 0 then
      fail("cannot link " .. dst_comp .. " to " .. real .. ": " .. ffi.string(ffi.C.strerror(ffi.errno())))
    end
  end

  -- src: a pipeline folder (model_index.json). out: the new folder's path.
  -- writers: {component = function(dir)} writing that component into dir
  -- (a folder that does not exist yet). opts.copy: copy the other
  -- components instead of linking them. A component model_index.json names
  -- but src does not hold (an optional one, [null, null]) is left out, as
  -- diffusers does. Returns {written = {...}, linked = {...}, copied = {...}}.
  function diffusers.derive_folder(src, out, writers, opts)
    opts = opts or {}
    if type(src) ~= "string" or kind(src) ~= C.GROVE_PATH_DIR then fail("source " .. tostring(src) .. " is not a folder") end
    if type(out) ~= "string" or out == "" then fail("expected the output folder's path, got " .. tostring(out)) end
    if type(writers) ~= "table" then fail("expected a table of component writers, got " .. type(writers)) end
    local index_path = join(src, "model_index.json")
    if kind(index_path) ~= C.GROVE_PATH_FILE then
      fail(src .. " has no model_index.json (a pipeline folder is derived; a component folder is written alone)")
    end
    local index = diffusers.model_index(src)
    local names, listed = components(index), {}
    for _, n in ipairs(names) do listed[n] = true end
    for n in pairs(writers) do
      if not listed[n] then fail("component '" .. tostring(n) .. "' is not one of " .. index_path .. "'s") end
    end
    local real_src = real_path(src)
    if kind(out) ~= C.GROVE_PATH_NONE and real_path(out) == real_src then fail("the output " .. out .. " is the source itself") end

    local tmp = out:gsub("/+$", "") .. ".partial"
    remove_tree(tmp)
    if C.grove_dir_make(tmp) ~= 0 then fail(grove.c_error()) end
    local r = { written = {}, linked = {}, copied = {} }
    local ok, err = pcall(function()
      for _, n in ipairs(names) do
        local dst = join(tmp, n)
        if writers[n] then
          writers[n](dst)
          r.written[#r.written + 1] = n
        elseif kind(join(src, n)) == C.GROVE_PATH_DIR then
          bring(join(src, n), dst, opts.copy)
          local list = opts.copy and r.copied or r.linked
          list[#list + 1] = n
        end
      end
      require("grove.files").write_atomic(join(tmp, "model_index.json"), read_file(index_path))
    end)
    if not ok then
      remove_tree(tmp)
      error(err, 0)
    end
    -- One step puts the new folder in place (grove_dir_replace: a reader
    -- sees the old folder or the new one); the old one then goes. A crash
    -- before that leaves OUT.old, removed by the next write.
    local old = out:gsub("/+$", "") .. ".old"
    remove_tree(old)
    if C.grove_dir_replace(tmp, out:gsub("/+$", ""), old) ~= 0 then
      local e = grove.c_error()
      remove_tree(tmp)
      fail(e)
    end
    remove_tree(old)
    return r
  end
end
