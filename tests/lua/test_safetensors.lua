-- safetensors from Lua: round trips of values, dtypes, shapes and metadata,
-- both table forms, header-only info, and errors that leave the process running.
local spec = require "spec"

if not grove.save_safetensors then require "grove.io"(grove) end

local base = os.tmpname()
local made = {}
local function path(name)
  local p = base .. "." .. name .. ".safetensors"
  made[#made + 1] = p
  return p
end

local read_all, write_all = spec.read_all, spec.write_all

-- Little-endian u64 prefix for hand-made files.
local function u64(n)
  local b = {}
  for i = 1, 8 do b[i] = string.char(n % 256); n = math.floor(n / 256) end
  return table.concat(b)
end

local function same_tensor(got, want, msg)
  spec.eq(got:dtype(), want:dtype(), msg .. " dtype")
  local gs, ws = got:shape(), want:shape()
  spec.eq(#gs, #ws, msg .. " ndim")
  for i = 1, #ws do spec.eq(gs[i], ws[i], msg .. " shape[" .. i .. "]") end
  spec.eq(got:numel(), want:numel(), msg .. " numel")
  if want:numel() == 0 then return end
  local g, w = got:float():reshape{-1}:tolist(), want:float():reshape{-1}:tolist()
  for i = 1, #w do spec.eq(g[i], w[i], msg .. " element " .. i) end
end

spec.describe("safetensors", function()
  spec.it("round-trips values, dtypes, shapes and metadata", function()
    local x = grove.randn{2, 3}
    local ts = {
      ["w.f32"] = x,
      ["w.f16"] = grove.tensor({0.5, -2, 65504, 1.5}, {dtype = "f16"}),
      ["w.bf16"] = grove.tensor({{0.5, -2}, {3, 1.5}}, {dtype = "bf16"}),
      u8 = grove.tensor({0, 1, 128, 255}, {dtype = "u8"}),
      i8 = grove.tensor({-128, -1, 0, 127}, {dtype = "i8"}),
      i32 = grove.tensor({-2147483648, 7, 2147483647}, {dtype = "i32"}),
      i64 = grove.tensor({-9007199254740992, 0, 9007199254740992}, {dtype = "i64"}),
      scalar = grove.full({}, 7.25),
      empty = grove.zeros({0, 3}, {dtype = "i64"}),
      transposed = x:t(),
    }
    local meta = {format = "pt", note = "quote \" backslash \\ newline \n tab \t é 🌳", step = 12}
    local p = path("round")
    grove.save_safetensors(p, ts, meta)
    local got, gmeta, names = grove.load_safetensors(p)
    local want_names = {}
    for k in pairs(ts) do want_names[#want_names + 1] = k end
    table.sort(want_names)
    spec.eq(#names, #want_names, "name count")
    for i, k in ipairs(want_names) do
      spec.eq(names[i], k, "names come back in sorted order")
      same_tensor(got[k], ts[k], k)
      spec.assert(got[k]:is_contiguous(), k .. " is contiguous")
    end
    spec.eq(gmeta.format, "pt")
    spec.eq(gmeta.note, meta.note)
    spec.eq(gmeta.step, "12", "numbers are stored as strings")
    local count = 0
    for _ in pairs(gmeta) do count = count + 1 end
    spec.eq(count, 3, "metadata entries")
    os.remove(p)
  end)

  spec.it("saves a list in its own order and the same tensors to the same bytes", function()
    local a, b = grove.arange(0, 6):view{2, 3}, grove.ones({4}, {dtype = "u8"})
    local p1, p2 = path("list"), path("map")
    grove.save_safetensors(p1, {{"zeta", a}, {"alpha", b}})
    local _, _, names = grove.load_safetensors(p1)
    spec.eq(names[1], "zeta")
    spec.eq(names[2], "alpha")
    grove.save_safetensors(p2, {zeta = a, alpha = b}, {k = "v"})
    local first = read_all(p2)
    grove.save_safetensors(p2, {alpha = b, zeta = a}, {k = "v"})
    spec.eq(read_all(p2), first, "the bytes do not depend on table order")
    local n = 0
    for i = 8, 1, -1 do n = n * 256 + first:byte(i) end
    spec.eq(n % 8, 0, "the header is padded to a multiple of 8")
    spec.eq(#first, 8 + n + 6 * 4 + 4, "header, then the data of both tensors")
    os.remove(p1)
    os.remove(p2)
  end)

  spec.it("reads shapes and dtypes without the data", function()
    local p = path("info")
    grove.save_safetensors(p, {a = grove.zeros({2, 3, 4}, {dtype = "bf16"}), b = grove.full({}, 1, {dtype = "i32"})},
                           {author = "grove"})
    local info, meta = grove.safetensors_info(p)
    spec.eq(#info, 2)
    spec.eq(info[1].name, "a")
    spec.eq(info[1].dtype, "bf16")
    spec.eq(table.concat(info[1].shape, ","), "2,3,4")
    spec.eq(info[2].name, "b")
    spec.eq(info[2].dtype, "i32")
    spec.eq(#info[2].shape, 0)
    spec.eq(meta.author, "grove")
    os.remove(p)
  end)

  spec.it("reads a file written by another writer", function()
    local header = '{"__metadata__":{"format":"pt"},"b":{"dtype":"I64","shape":[2],"data_offsets":[4,20]},' ..
                   '"a":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]}}'
    local data = string.char(1, 2, 3, 4) .. string.char(5, 0, 0, 0, 0, 0, 0, 0) .. string.char(255, 255, 255, 255, 255, 255, 255, 255)
    local p = path("foreign")
    write_all(p, u64(#header) .. header .. data)
    local t, meta, names = grove.load_safetensors(p)
    spec.eq(names[1], "b", "file order")
    spec.eq(table.concat(t.a:reshape{-1}:tolist(), ","), "1,2,3,4")
    spec.eq(table.concat(t.b:tolist(), ","), "5,-1")
    spec.eq(meta.format, "pt")
    os.remove(p)
  end)

  spec.it("turns malformed files into Lua errors and keeps running", function()
    grove.collect()
    local live = grove.memory().live_tensors
    local p = path("bad")
    write_all(p, "\1\2\3")
    spec.raises(function() grove.load_safetensors(p) end, "too short (3 bytes)")
    write_all(p, u64(1000) .. "{}")
    spec.raises(function() grove.load_safetensors(p) end, "beyond the end of the file")
    write_all(p, u64(5) .. "{} x ")
    spec.raises(function() grove.safetensors_info(p) end, "not valid JSON")
    local h = '{"a":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[0,1]}}'
    write_all(p, u64(#h) .. h .. string.rep("\0", 1))
    spec.raises(function() grove.load_safetensors(p) end, "tensor 'a': unsupported dtype 'F8_E5M2'")
    h = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    write_all(p, u64(#h) .. h .. string.rep("\0", 12))
    spec.raises(function() grove.load_safetensors(p) end, "4 trailing bytes")
    spec.raises(function() grove.load_safetensors(path("absent")) end, "cannot open")
    spec.raises(function() grove.load_safetensors(nil) end, "expected a file path")
    grove.collect()
    spec.eq(grove.memory().live_tensors, live, "failed loads leave no tensors behind")
    -- after all that, a normal load still works
    grove.save_safetensors(p, {x = grove.ones{2}})
    spec.eq(grove.load_safetensors(p).x:sum():item(), 2)
    os.remove(p)
  end)

  spec.it("reports bad saves", function()
    local x = grove.ones{2}
    spec.raises(function() grove.save_safetensors(base .. ".no/such/dir/m.safetensors", {x = x}) end, "does not exist")
    spec.raises(function() grove.save_safetensors(path("s"), {x = 1}) end, "'x' must be a tensor")
    spec.raises(function() grove.save_safetensors(path("s"), {[1] = x}) end, "{name, tensor} pair")
    spec.raises(function() grove.save_safetensors(path("s"), {{"a", x}, {"a", x}}) end, "duplicate tensor name 'a'")
    spec.raises(function() grove.save_safetensors(path("s"), {[""] = x}) end, "is empty")
    spec.raises(function() grove.save_safetensors(path("s"), {x = x}, {k = true}) end, "metadata value for 'k'")
    spec.raises(function() grove.save_safetensors(path("s"), {x = x}, {[1] = "v"}) end, "metadata names must be strings")
    spec.raises(function() grove.save_safetensors(path("s"), "x") end, "expected a table of tensors")
    spec.assert(io.open(path("s")) == nil, "nothing was written")
    spec.assert(io.open(path("s") .. ".tmp") == nil, "no temporary is left")
  end)
end)

-- also what a failed check left behind
for _, p in ipairs(made) do os.remove(p) end
os.remove(base)
