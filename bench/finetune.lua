-- Fine-tuning a Sana 600M-shaped random folder on the CPU
-- (grove.diffusers.finetune): peak resident memory and step time of
-- CAME-8bit with every block recomputed, against the named baseline AdamW
-- keeping every activation, each run in its own child process (a fresh
-- peak-memory count), same folder, data, batch and steps. Asserts nothing.
--
--   grove bench/finetune.lua [--steps 3] [--batch 1] [--size 512] [--dir /tmp/grove-bench-finetune] [--keep]
--                            [--runs came8bit,adamw] [--small]
--
-- The folder: grove.diffusers.tiny_folder with its transformer replaced by
-- one of Sana_600M_512px's config (28 blocks of width 1152, 590 M
-- parameters, N(0, 0.02²) F32 weights; benchlib.write_random_component).
-- The data: cached batches as grove.diffusers.cache_dataset gives them,
-- latents (B, size/32, size/32, 32) and Gemma-2-2B-shaped caption features
-- (B, 300, 2304) with their mask, drawn once per child and held in memory:
-- reading a cache is not part of the step time, which is what is measured.
-- The first step (allocator warm-up) is reported apart; the peak is read
-- after the last step, before the run writes its checkpoint and folder.
-- --small: the tiny folder's own transformer (a check of the script).
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local exe = arg[-1]
local benchlib = dofile(here .. "/benchlib.lua")
local quote, sh, proc_status = benchlib.quote, benchlib.sh, benchlib.proc_status

local o = { steps = 3, batch = 1, size = 512, dir = "/tmp/grove-bench-finetune", keep = false, small = false,
            runs = "came8bit,adamw" }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--keep" then o.keep = true
    elseif a == "--small" then o.small = true
    elseif a == "--child" then o.child = arg[i + 1]; i = i + 1
    elseif a:match("^%-%-") and arg[i + 1] and o[a:sub(3)] ~= nil then
      local k = a:sub(3)
      o[k] = type(o[k]) == "number" and tonumber(arg[i + 1]) or arg[i + 1]
      if o[k] == nil then error("finetune bench: " .. a .. " takes a number", 0) end
      i = i + 1
    else
      error("usage: grove bench/finetune.lua [--steps 3] [--batch 1] [--size 512] [--dir D] [--keep] " ..
            "[--runs came8bit,adamw] [--small]", 0)
    end
    i = i + 1
  end
end

-- The two runs: what a fine-tune of a released folder uses, and the baseline.
local RUNS = {
  came8bit = { optimizer = "came8bit", recompute = true, label = "CAME-8bit, every block recomputed" },
  adamw = { optimizer = "adamw", recompute = false, label = "AdamW, activations kept (baseline)" },
}

-- ---------------------------------------------------------------------------
-- child: one run, one RESULT line

if o.child then
  local run = RUNS[o.child]
  local dir = o.dir .. "/folder"
  local T = grove.diffusers.transformer(dir, { meta = true })
  local c = T.config
  local side = o.size / 32
  local B, L = o.batch, o.small and 8 or 300
  -- the data set: one fixed set of cached-looking batches, in memory
  local gen = grove.Generator(11)
  local latents = grove.randn({ 4 * B, side, side, c.in_channels }, { generator = gen })
  local features = grove.randn({ 4 * B, L, c.caption_channels }, { generator = gen })
  local mask = grove.ones { 4 * B, L }
  local ds = { pos = 0, size = 4 * B }
  function ds:next()
    local i = self.pos % 4
    self.pos = self.pos + 1
    return { latents = latents:narrow(1, i * B + 1, B), features = features:narrow(1, i * B + 1, B),
             mask = mask:narrow(1, i * B + 1, B) }
  end
  function ds:state() return { pos = self.pos } end
  function ds:set_state(s) self.pos = s.pos end
  local rss_data = proc_status("VmRSS")
  local times, last, hwm = {}, nil, 0
  local t0 = grove.now()
  local res = grove.diffusers.finetune(dir, ds, {
    out = o.dir .. "/run_" .. o.child, steps = o.steps, optimizer = run.optimizer, recompute = run.recompute,
    lr = 1e-5, warmup = 0, save_every = 1000000, log_every = 1, seed = 1,
    on_step = function(step)
      local t = grove.now()
      times[step] = t - (last or t0)
      last = t
      -- the peak of training itself: read before the run's final save
      hwm = proc_status("VmHWM")
    end,
  })
  local state = res.optimizer:state_bytes()
  local rest = {}
  for i = 2, #times do rest[#rest + 1] = times[i] end
  table.sort(rest)
  local median = #rest > 0 and rest[math.floor((#rest + 1) / 2)] or times[1]
  print(string.format("RESULT run=%s first_s=%.2f step_s=%.2f steps=%s hwm_bytes=%d rss_data_bytes=%d " ..
                      "state_bytes=%d params=%d total_s=%.1f", o.child, times[1], median,
                      table.concat((function() local s = {}; for i, t in ipairs(times) do s[i] = string.format("%.2f", t) end; return s end)(), ","),
                      hwm, rss_data, state.total, state.params, grove.now() - t0))
  return
end

-- ---------------------------------------------------------------------------
-- parent: the folder, then one child per run

local dir = o.dir .. "/folder"
sh("rm -rf " .. quote(o.dir))
grove.C.grove_dir_make(o.dir)
print(string.format("finetune bench: %s, %d threads, %s; load %s; %s", os.date("!%Y-%m-%d %H:%M UTC"), grove.num_threads(),
                    grove.blas_info(), benchlib.loadavg(), o.small and "SMALL model (a check of the script)" or
                    "Sana 600M shapes"))
local t0 = grove.now()
grove.diffusers.tiny_folder(dir, { seed = 0 })
if not o.small then
  local SANA = benchlib.sana_600m_config()
  sh("rm -rf " .. quote(dir .. "/transformer"))
  local written, count = benchlib.write_random_component(dir .. "/transformer", SANA,
    function(d) return grove.diffusers.transformer(d, { meta = true }) end,
    { dtype = "f32", seed = 1000, max_shard_bytes = 2 ^ 31 })
  print(string.format("transformer: %d parameters, %.2f GB F32", count, written.total_size / 1e9))
end
print(string.format("folder written in %.1f s", grove.now() - t0))

local results = {}
for name in o.runs:gmatch("[^,]+") do
  if not RUNS[name] then error("finetune bench: unknown run '" .. name .. "' (came8bit, adamw)", 0) end
  local cmd = string.format("%s %s/finetune.lua --child %s --dir %s --size %d --steps %d --batch %d%s", quote(exe),
                            quote(here), name, quote(o.dir), o.size, o.steps, o.batch, o.small and " --small" or "")
  local out, status = sh(cmd)
  for l in out:gmatch("[^\n]+") do if not l:match("^RESULT") then print("   " .. l) end end
  local r = {}
  for k, v in (out:match("RESULT ([^\n]*)") or ""):gmatch("(%S+)=(%S+)") do r[k] = v end
  if status ~= 0 or not r.step_s then error("finetune bench: run " .. name .. " failed (status " .. tostring(status) .. ")", 0) end
  results[#results + 1] = r
end
if not o.keep then sh("rm -rf " .. quote(o.dir)) end

print("")
print(string.format("fine-tuning, latents %dx%d (%d px), batch %d, %d steps, f32, %d threads, load after: %s:",
                    o.size / 32, o.size / 32, o.size, o.batch, o.steps, grove.num_threads(), benchlib.loadavg()))
print("| run | step (s, median after the first) | first step (s) | optimizer state (GB) | peak resident (GB) |")
print("| --- | --- | --- | --- | --- |")
for _, r in ipairs(results) do
  print(string.format("| %s | %.2f | %.2f | %.3f | %.2f |", RUNS[r.run].label, tonumber(r.step_s), tonumber(r.first_s),
                      tonumber(r.state_bytes) / 1e9, tonumber(r.hwm_bytes) / 1e9))
end
if #results == 2 then
  local a, b = results[1], results[2]
  print(string.format("%s / %s: step time %.2fx, peak memory %.2fx, optimizer state %.3fx", a.run, b.run,
                      tonumber(a.step_s) / tonumber(b.step_s), tonumber(a.hwm_bytes) / tonumber(b.hwm_bytes),
                      tonumber(a.state_bytes) / tonumber(b.state_bytes)))
end
