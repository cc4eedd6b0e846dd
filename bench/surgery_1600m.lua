-- Memory and time of folder surgery at the size of Sana 1600M: writes a
-- random BF16 transformer folder with Sana_1600M_1024px_diffusers' config.json
-- and tensor names (20 blocks, width 2240, 1,604,462,752 parameters, about
-- 3.2 GB in shards), then runs, each in its own process under
-- /usr/bin/time -v,
--   grove grow  --in SRC --out OUT --depth 24 --strategy partial   (4 new blocks)
--   grove grow  --in SRC --out OUT --depth 40 --strategy block     (every block repeated)
--   grove prune --in SRC --out OUT --remove 3
-- and prints each one's peak resident set ("Maximum resident set size") and
-- wall time beside those of a grove process that only starts, checks the
-- outputs (num_layers, tensor count, a kept tensor bit for bit) and removes
-- every folder it wrote.
--   grove bench/surgery_1600m.lua [--dir /tmp/grove-surgery-1600m] [--shard 1GB] [--small]
-- --small runs the same steps on a 3-block model of width 64 (a check of the
-- script itself, seconds). The folders are never left behind.
local o = { dir = "/tmp/grove-surgery-1600m", shard = "1GB", small = false }
local i = 1
while arg[i] do
  local a = arg[i]
  if a == "--dir" then o.dir = arg[i + 1]; i = i + 1
  elseif a == "--shard" then o.shard = arg[i + 1]; i = i + 1
  elseif a == "--small" then o.small = true
  else error("surgery_1600m: unknown argument " .. a, 0) end
  i = i + 1
end

local exe = arg[-1]
local B = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/benchlib.lua")
local diffusers = grove.diffusers

-- Sana_1600M_1024px_diffusers/transformer/config.json
local config = {
  _class_name = "SanaTransformer2DModel", _diffusers_version = "0.32.0.dev0", attention_bias = false,
  attention_head_dim = 32, caption_channels = 2304, cross_attention_dim = 2240, cross_attention_head_dim = 112,
  dropout = 0.0, in_channels = 32, mlp_ratio = 2.5, norm_elementwise_affine = false, norm_eps = 1e-06,
  num_attention_heads = 70, num_cross_attention_heads = 20, num_layers = 20, out_channels = 32, patch_size = 1,
  sample_size = 32,
}
local depth, grown_partial, grown_block, remove = 20, 24, 40, 3
if o.small then
  config.num_attention_heads, config.cross_attention_dim, config.num_cross_attention_heads = 2, 64, 2
  config.cross_attention_head_dim, config.caption_channels, config.num_layers = 32, 48, 3
  depth, grown_partial, grown_block, remove = 3, 4, 6, 2
end

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo __status=$?")
  local out = p:read("*a")
  p:close()
  local status = tonumber(out:match("__status=(%d+)%s*$"))
  return out:gsub("__status=%d+%s*$", ""), status
end
local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- refuse to start without room for the source and the largest output
local need = o.small and 1e7 or 12e9
local parent = o.dir:match("^(.*)/[^/]+$") or "."
local df = sh("df -Pk " .. quote(parent) .. " | tail -1")
local free = tonumber(df:match("^%S+%s+%d+%s+%d+%s+(%d+)")) * 1024
if free < need then
  error(string.format("surgery_1600m: %s has %.1f GB free; the folders need %.1f GB", parent, free / 1e9, need / 1e9), 0)
end
if grove.C.grove_path_kind(o.dir) ~= grove.C.GROVE_PATH_NONE then
  error("surgery_1600m: " .. o.dir .. " exists; remove it or pass another --dir", 0)
end

local src = o.dir .. "/Sana_1600M_1024px_BF16/transformer"
local ok, err = pcall(function()
  -- 1. the source: names and shapes from the config (a meta model), values
  -- N(0, 0.02²) drawn per tensor and rounded to BF16, one tensor at a time
  local t0 = grove.now()
  local written, params = B.write_random_component(src, config,
    function(d) return diffusers.transformer(d, { meta = true }) end,
    { dtype = "bf16", seed = 1000, max_shard_bytes = grove.grow.parse_size(o.shard) })
  print(string.format("source: %s, %d blocks, %d parameters, %.2f GB BF16 in %d files, written in %.1f s",
                      src, depth, params, written.total_size / 1e9, #written.files, grove.now() - t0))

  -- 2. each command in its own process, measured by /usr/bin/time -v
  local function measure(cmd)
    local out, status = sh("/usr/bin/time -v " .. cmd)
    if status ~= 0 then error("surgery_1600m: `" .. cmd .. "` failed:\n" .. out, 0) end
    local kb = tonumber(out:match("Maximum resident set size %(kbytes%): (%d+)"))
    local wall = out:match("Elapsed %(wall clock%) time %(h:mm:ss or m:ss%): ([%d:%.]+)")
    local secs = 0
    for part in wall:gmatch("[%d%.]+") do secs = secs * 60 + tonumber(part) end
    return kb * 1024, secs, out
  end
  local base_rss, base_s = measure(quote(exe) .. " -e 'grove.diffusers.component(" .. string.format("%q", src) .. ")'")
  local rows = { { "grove -e (start, open the source folder)", base_rss, base_s } }

  local function check(dir, want_depth, kept_from, kept_to)
    local comp = diffusers.component(dir, "transformer")
    assert(comp.config.num_layers == want_depth, dir .. ": num_layers " .. tostring(comp.config.num_layers))
    local blocks = 0
    for _, n in ipairs(comp:names()) do
      local b = n:match("^transformer_blocks%.(%d+)%.")
      if b then blocks = math.max(blocks, tonumber(b) + 1) end
    end
    assert(blocks == want_depth, dir .. ": " .. blocks .. " blocks")
    local s = diffusers.component(src)
    local a = s:load("transformer_blocks." .. kept_from .. ".ff.conv_inverted.weight")
    local b = comp:load("transformer_blocks." .. kept_to .. ".ff.conv_inverted.weight")
    local d = (a:float() - b:float()):abs():max():item()
    assert(d == 0, dir .. ": kept block differs by " .. d)
    local files = #comp.files
    s:close(); comp:close()
    return files
  end

  local runs = {
    { "grow --depth " .. grown_partial .. " --strategy partial", "grow", grown_partial, depth - 1, depth - 1 },
    { "grow --depth " .. grown_block .. " --strategy block", "grow", grown_block, 1, grown_block / depth },
    { "prune --remove " .. remove, "prune", depth - 1, remove, remove - 1 },
  }
  for k, r in ipairs(runs) do
    local out = o.dir .. "/out" .. k
    local cmd = quote(exe) .. " " .. r[2] .. " --in " .. quote(o.dir .. "/Sana_1600M_1024px_BF16") .. " --out " ..
                quote(out) .. " " .. r[1]:gsub("^%a+ ", "") .. " --max-shard-size " .. o.shard .. " --quiet"
    local rss, secs = measure(cmd)
    local files = check(out, r[3], r[4], r[5])
    local du = sh("du -sb " .. quote(out)):match("^(%d+)")
    rows[#rows + 1] = { "grove " .. r[1], rss, secs, tonumber(du), files }
    sh("rm -rf " .. quote(out))
  end

  print("")
  print("| command | peak resident set | wall time | output |")
  print("| --- | --- | --- | --- |")
  for _, r in ipairs(rows) do
    print(string.format("| `%s` | %.0f MB | %.1f s | %s |", r[1], r[2] / 1e6, r[3],
                        r[4] and string.format("%.2f GB, %d weight files", r[4] / 1e9, r[5]) or "-"))
  end
  print(string.format("\nSURGERYBENCH source_gb=%.2f base_rss_mb=%.0f grow_partial_rss_mb=%.0f grow_block_rss_mb=%.0f " ..
                      "prune_rss_mb=%.0f", written.total_size / 1e9, rows[1][2] / 1e6, rows[2][2] / 1e6, rows[3][2] / 1e6,
                      rows[4][2] / 1e6))
end)
sh("rm -rf " .. quote(o.dir))
if not ok then error(err, 0) end
