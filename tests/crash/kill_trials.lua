-- Crash safety: a child grove process writes in a loop (a safetensors
-- checkpoint, a sharded diffusers folder, or a training run saving every
-- step) and is killed with SIGKILL at a random moment; then the file must
-- load and hold one complete generation of what was written, and the next
-- successful save must leave no temporary file behind. The cache kind kills
-- `grove.diffusers.cache` on the tiny folder mid-run: every shard the
-- manifest lists must load, and the run that finishes it must leave the
-- bytes of an uninterrupted run. A cache run ends, so its kill times are
-- drawn over the measured time of one uninterrupted run (from 5% to 95% of
-- it), and trials whose run finished before the kill are counted apart.
--
--   build/grove tests/crash/kill_trials.lua [--trials N] [--kind save|folder|train|cache|all] [--seed S]
--                                           [--pictures N]
--
-- Prints one line per kind; exits with status 1 on the first bad trial.
local args = require "grove.cli.args"
local o = args.parse(arg, {
  { "trials", "number", 5, "trials per kind", check = args.count },
  { "kind", "string", "all", "save, folder, train, cache or all" },
  { "seed", "number", 1, "seed of the kill times", check = args.seed },
  { "pictures", "number", 16, "pictures (and shards) of the cache kind", check = args.count },
}, { usage = "grove tests/crash/kill_trials.lua [options]" })
if not o then return end
math.randomseed(o.seed)

local exe = arg[-1]
local function sh(cmd) return os.execute(cmd) end
local function tmpdir()
  local p = io.popen("mktemp -d"); local d = p:read("*l"); p:close(); return d
end
local function exists(p) local f = io.open(p, "rb"); if f then f:close() end; return f ~= nil end
local function list(dir)
  local p = io.popen("ls -A '" .. dir .. "' 2>/dev/null"); local s = p:read("*a"); p:close()
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- The children: each writes generation g = 1, 2, ... forever, every
-- tensor filled with g, so a loaded file names the generation it holds.
local child = {
  save = [[
    local path = arg[1]
    local g = 0
    while true do
      g = g + 1
      local t = {}
      for i = 1, 8 do t["w" .. i] = grove.full({ 64, 256 }, g) end
      grove.save_safetensors(path, t, { generation = tostring(g) })
    end]],
  folder = [[
    local dir = arg[1]
    local g = 0
    while true do
      g = g + 1
      local t = {}
      for i = 1, 8 do t["w" .. i] = grove.full({ 64, 256 }, g) end
      grove.diffusers.write_component(dir, { _class_name = "Test", generation = g }, t, { max_shard_bytes = 3 * 65536 })
    end]],
  train = [[
    grove.train.run { preset = "tiny", batch = 2, steps = 100000, save_every = 1, sample_every = 0, log_every = 100000,
                      eval = false, seed = 3, out = arg[1], config = { depth = 1, width = 64, cross_heads = 2 },
                      text_depth = 1, text_heads = 2 }]],
}

-- The cache kind's tiny folder, pictures and uninterrupted reference cache,
-- made once.
local CACHE_OPTS = "{ size = 128, batch = 1, shard_size = 1, log = function() end }"
local cache_env
local function cache_setup()
  if cache_env then return cache_env end
  local root = tmpdir()
  local env = { root = root, tiny = root .. "/tiny", photos = root .. "/photos", ref = root .. "/ref" }
  grove.diffusers.tiny_folder(env.tiny, { seed = 1 })
  sh("mkdir -p '" .. env.photos .. "'")
  local scenes = grove.data.shapes { batch = o.pictures, size = 64, seed = 2 }:next()
  for i = 1, o.pictures do
    grove.image.save(string.format("%s/%02d.png", env.photos, i), scenes.images:select(1, i))
    local f = assert(io.open(string.format("%s/%02d.txt", env.photos, i), "w")); f:write(scenes.captions[i]); f:close()
  end
  grove.diffusers.cache(env.tiny, env.photos, env.ref, assert(loadstring("return " .. CACHE_OPTS))())
  cache_env = env
  return env
end
child.cache = [[
    grove.diffusers.cache(arg[2], arg[3], arg[1], ]] .. CACHE_OPTS .. [[)]]

-- Seconds one uninterrupted child run of `kind` takes, start-up included.
local function child_seconds(kind, extra)
  local dir = tmpdir()
  local script = dir .. "/child.lua"
  local f = assert(io.open(script, "w")); f:write(child[kind]); f:close()
  local t0 = grove.now()
  local status = sh(string.format("'%s' '%s' '%s'%s > /dev/null 2>&1", exe, script, dir .. "/out", extra))
  local t = grove.now() - t0
  sh("rm -rf '" .. dir .. "'")
  if status ~= 0 and status ~= true then error("kill_trials: an uninterrupted " .. kind .. " run failed", 0) end
  return t
end

local function read_all(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("*a"); f:close(); return s
end

-- Checks what a killed child left; returns nil or a message.
local check = {
  save = function(dir)
    local path = dir .. "/ckpt.safetensors"
    if not exists(path) then return nil, "none" end -- killed before the first save finished
    local ok, t, meta = pcall(grove.load_safetensors, path)
    if not ok then return "the checkpoint does not load: " .. tostring(t) end
    local g = tonumber(meta.generation)
    for i = 1, 8 do
      local x = t["w" .. i]
      if not x or x:min():item() ~= g or x:max():item() ~= g then return "tensor w" .. i .. " is not generation " .. g end
    end
    return nil, g
  end,
  folder = function(dir)
    local path = dir .. "/out"
    if not exists(path .. "/config.json") then return nil, "none" end
    local ok, comp = pcall(grove.diffusers.component, path)
    if not ok then return "the folder does not load: " .. tostring(comp) end
    local g = comp.config.generation
    local gens = {}
    for i = 1, 8 do
      local ok2, x = pcall(comp.load, comp, "w" .. i)
      if not ok2 then comp:close(); return "w" .. i .. " does not load: " .. tostring(x) end
      if x:min():item() ~= x:max():item() then comp:close(); return "w" .. i .. " holds two generations" end
      gens[i] = x:max():item()
    end
    comp:close()
    for i = 1, 8 do
      if gens[i] ~= g then
        return "config.json is generation " .. g .. " but the shards hold generations " .. table.concat(gens, ",")
      end
    end
    return nil, g
  end,
  cache = function(dir)
    local path = dir .. "/out/manifest.json"
    if not exists(path) then return nil, "none" end
    local ok, m = pcall(grove.json.read, path)
    if not ok then return "the manifest does not load: " .. tostring(m) end
    for _, e in ipairs(m.shards) do
      local ok2, r = pcall(grove.safetensors_open, dir .. "/out/" .. e.file)
      if not ok2 then return "listed shard " .. e.file .. " does not load: " .. tostring(r) end
      local n = #r.names
      r:close()
      if n ~= 3 * e.count then return "listed shard " .. e.file .. " holds " .. n .. " tensors, not " .. 3 * e.count end
    end
    return nil, #m.shards
  end,
  train = function(dir)
    local path = dir .. "/run/checkpoint.safetensors"
    if not exists(path) then return nil, "none" end
    local ok, parts = pcall(grove.train.load_for_inference, path)
    if not ok then return "the checkpoint does not load: " .. tostring(parts) end
    return nil, parts.step
  end,
}

-- The next save after a kill: it must succeed and leave no temporary file.
local resave = {
  save = function(dir) grove.save_safetensors(dir .. "/ckpt.safetensors", { w = grove.zeros { 2 } }) return dir end,
  folder = function(dir)
    grove.diffusers.write_component(dir .. "/out", { _class_name = "Test" }, { w = grove.zeros { 2 } })
    return dir .. "/out"
  end,
  cache = function(dir)
    local env = cache_env
    grove.diffusers.cache(env.tiny, env.photos, dir .. "/out", assert(loadstring("return " .. CACHE_OPTS))())
    local names = list(env.ref)
    if table.concat(list(dir .. "/out"), " ") ~= table.concat(names, " ") then
      return nil, "the finished cache holds " .. table.concat(list(dir .. "/out"), " ") .. ", an uninterrupted run " ..
                  table.concat(names, " ")
    end
    for _, name in ipairs(names) do
      if read_all(dir .. "/out/" .. name) ~= read_all(env.ref .. "/" .. name) then
        return nil, "the finished cache's " .. name .. " differs from an uninterrupted run's"
      end
    end
    return dir .. "/out"
  end,
  train = function(dir)
    grove.train.run { preset = "tiny", batch = 2, steps = 1, save_every = 1, sample_every = 0, log_every = 100000,
                      eval = false, seed = 3, out = dir .. "/run2", config = { depth = 1, width = 64, cross_heads = 2 },
                      text_depth = 1, text_heads = 2 }
    return dir .. "/run2"
  end,
}

local kinds = o.kind == "all" and { "save", "folder", "train", "cache" } or { o.kind }
for _, kind in ipairs(kinds) do
  if not child[kind] then error("unknown --kind " .. kind .. " (save, folder, train, cache or all)", 0) end
  local extra = ""
  local run_time  -- of an uninterrupted run, for the kinds that end
  if kind == "cache" then
    local env = cache_setup()
    extra = " '" .. env.tiny .. "' '" .. env.photos .. "'"
    run_time = child_seconds(kind, extra)
  end
  local seen, t0, finished = {}, os.time(), 0
  for trial = 1, o.trials do
    local dir = tmpdir()
    local script = dir .. "/child.lua"
    local f = assert(io.open(script, "w")); f:write(child[kind]); f:close()
    local target = kind == "save" and dir .. "/ckpt.safetensors" or (kind == "folder" or kind == "cache") and dir .. "/out"
                   or dir .. "/run"
    -- grove starts in ~0.2 s; a kill from 0.3 s to 3 s lands in the loop
    local delay = string.format("%.3f", run_time and run_time * (0.05 + 0.9 * math.random())
                                        or 0.3 + math.random() * (kind == "train" and 6 or 2.7))
    local status = sh(string.format("timeout -s KILL %s '%s' '%s' '%s'%s > /dev/null 2>&1", delay, exe, script, target,
                                    extra))
    if status == 0 or status == true then finished = finished + 1 end
    local err, g = check[kind](dir)
    if err then
      io.stderr:write(string.format("kill_trials: %s trial %d (killed after %s s): %s (left in %s)\n", kind, trial, delay, err, dir))
      os.exit(1)
    end
    seen[#seen + 1] = tostring(g)
    local where, why = resave[kind](dir)
    if not where then
      io.stderr:write(string.format("kill_trials: %s trial %d (killed after %s s): %s (left in %s)\n", kind, trial, delay, why, dir))
      os.exit(1)
    end
    -- a folder is staged beside itself (out.tmp, out.old), a file inside it
    for _, name in ipairs(list(kind == "folder" and dir or where)) do
      if name:match("%.tmp$") or name:match("%.old$") then
        io.stderr:write(string.format("kill_trials: %s trial %d: %s/%s left after the next save\n", kind, trial, where, name))
        os.exit(1)
      end
    end
    sh("rm -rf '" .. dir .. "'")
  end
  print(string.format("%s: %d kills, every time the last complete save loaded and the next save left no temporary " ..
                      "file (%d s; generations/steps found: %s)%s", kind, o.trials, os.time() - t0,
                      table.concat(seen, " "), run_time and string.format("; an uninterrupted run %.2f s, killed " ..
                      "from 5%% to 95%% of it; %d of %d finished before their kill", run_time, finished, o.trials) or ""))
end
if cache_env then sh("rm -rf '" .. cache_env.root .. "'") end
