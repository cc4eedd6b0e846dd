-- JSON for configs and index files. Decoding goes through the strict C
-- parser that also reads safetensors headers (core/io/json.c); encoding
-- writes what Python's json.dumps(value, indent=2, sort_keys=True) writes,
-- the form diffusers and transformers give config.json and index files, so
-- the same value always gives the same bytes.
--
--   local v = grove.json.decode(text, { source = "config.json" })
--   grove.json.read(path)                   -- decode a file; errors name it
--   grove.json.encode(value) -> text        -- ends with a newline
--   grove.json.null                         -- JSON null (a Lua nil cannot sit in a table)
--   grove.json.array(t), grove.json.object(t) -- mark a table's kind (an empty one is ambiguous)
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  local json = {}
  grove.json = json

  -- null is a unique value that prints as "null".
  json.null = setmetatable({}, { __tostring = function() return "null" end, __newindex = function()
    error("json.null is read-only", 2)
  end })

  -- Decoded arrays and objects carry these metatables, so an empty one keeps
  -- its kind through decode and encode.
  local array_mt = { __name = "json.array" }
  local object_mt = { __name = "json.object" }

  -- t marked as a JSON array (returned for chaining).
  function json.array(t) return setmetatable(t or {}, array_mt) end

  -- t marked as a JSON object (returned for chaining).
  function json.object(t) return setmetatable(t or {}, object_mt) end

  -- True for a table decoded from (or marked as) a JSON object.
  function json.is_object(v) return type(v) == "table" and getmetatable(v) == object_mt end

  -- True for a table decoded from (or marked as) a JSON array.
  function json.is_array(v) return type(v) == "table" and getmetatable(v) == array_mt end

  -- The path of a value inside the document, for messages: `weight_map."a.b"`.
  local function member(path, key)
    local k = key:match("^[%a_][%w_]*$") and key or string.format("%q", key)
    return path == "" and k or path .. "." .. k
  end

  local GROVE_JSON_NULL, GROVE_JSON_BOOL, GROVE_JSON_INT = C.GROVE_JSON_NULL, C.GROVE_JSON_BOOL, C.GROVE_JSON_INT
  local GROVE_JSON_NUMBER, GROVE_JSON_STRING, GROVE_JSON_ARRAY = C.GROVE_JSON_NUMBER, C.GROVE_JSON_STRING, C.GROVE_JSON_ARRAY

  local function convert(v, source, path)
    local kind = v.kind
    if kind == GROVE_JSON_NULL then return json.null end
    if kind == GROVE_JSON_BOOL then return v.boolean ~= 0 end
    if kind == GROVE_JSON_INT then return tonumber(v.integer) end
    if kind == GROVE_JSON_NUMBER then return v.number end
    if kind == GROVE_JSON_STRING then return ffi.string(v.str, v.len) end
    if kind == GROVE_JSON_ARRAY then
      local out, i, c = setmetatable({}, array_mt), 1, v.first
      while c ~= nil do
        out[i] = convert(c, source, path .. "[" .. i .. "]")
        i, c = i + 1, c.next
      end
      return out
    end
    local out, c = setmetatable({}, object_mt), v.first
    while c ~= nil do
      local key = ffi.string(c.key)
      local at = member(path, key)
      -- A repeated key is kept by many parsers (the last wins) and refused
      -- by none of them; here it is an error, as it hides data.
      if out[key] ~= nil then error(source .. ": key " .. at .. " appears twice", 0) end
      out[key] = convert(c, source, at)
      c = c.next
    end
    return out
  end

  -- Decodes JSON text into Lua values: objects and arrays become tables
  -- (marked with json.object / json.array), null becomes json.null. A
  -- repeated object key is an error. opts.source names the text in errors
  -- (default "json"); opts.allow_nan accepts Python's NaN and ±Infinity.
  function json.decode(text, opts)
    opts = opts or {}
    local source = opts.source or "json"
    if type(text) ~= "string" then error("json.decode: expected a string, got " .. type(text), 2) end
    local doc = C.grove_json_parse(text, #text, opts.allow_nan and C.GROVE_JSON_ALLOW_NAN or 0)
    if doc == nil then error(source .. ": invalid JSON " .. grove.c_error(), 0) end
    doc = ffi.gc(doc, C.grove_json_free)
    local ok, value = pcall(convert, C.grove_json_root(doc), source, "")
    ffi.gc(doc, nil)
    C.grove_json_free(doc)
    if not ok then error(value, 0) end
    return value
  end

  -- The largest JSON file read (configs, weight maps, tokenizer files are
  -- well under it; a weight map of a 100B-parameter model is ~10 MB): a
  -- downloaded file is not read whole into memory before its size is known.
  json.max_file_bytes = 256 * 2 ^ 20

  -- Reads and decodes the file at path; errors name the file.
  function json.read(path, opts)
    local f, err = io.open(path, "rb")
    if not f then error("cannot read " .. path .. ": " .. tostring(err), 0) end
    local size = f:seek("end")
    if size and size > json.max_file_bytes then
      f:close()
      error(path .. ": " .. size .. " bytes is larger than grove reads as JSON (" .. json.max_file_bytes ..
            " bytes, grove.json.max_file_bytes)", 0)
    end
    f:seek("set", 0)
    local text = f:read("*a")
    f:close()
    local o = { source = path }
    for k, v in pairs(opts or {}) do o[k] = v end
    return json.decode(text, o)
  end

  -- Python's json string escapes with ensure_ascii: every byte outside
  -- printable ASCII as \uXXXX (surrogate pairs above the BMP).
  local short = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
                  ["\t"] = "\\t" }
  local function encode_string(s, path)
    local out, i, n = { '"' }, 1, #s
    while i <= n do
      local c = s:byte(i)
      local cp, len
      if c < 0x80 then cp, len = c, 1
      elseif c >= 0xC2 and c <= 0xDF then cp, len = c % 0x20, 2
      elseif c >= 0xE0 and c <= 0xEF then cp, len = c % 0x10, 3
      elseif c >= 0xF0 and c <= 0xF4 then cp, len = c % 0x08, 4
      else error("json.encode: " .. path .. ": string is not valid UTF-8", 0) end
      for k = 1, len - 1 do
        local b = s:byte(i + k)
        if not b or b < 0x80 or b > 0xBF then error("json.encode: " .. path .. ": string is not valid UTF-8", 0) end
        cp = cp * 64 + b % 64
      end
      local ch = s:sub(i, i)
      if len == 1 and short[ch] then out[#out + 1] = short[ch]
      elseif cp >= 0x20 and cp < 0x7F then out[#out + 1] = ch
      elseif cp < 0x10000 then out[#out + 1] = string.format("\\u%04x", cp)
      else
        cp = cp - 0x10000
        out[#out + 1] = string.format("\\u%04x\\u%04x", 0xD800 + math.floor(cp / 1024), 0xDC00 + cp % 1024)
      end
      i = i + len
    end
    out[#out + 1] = '"'
    return table.concat(out)
  end

  -- Integral values as integers; others as the shortest text that reads back
  -- the same double (Python's repr: 1e-06, 0.1); non-finite ones as Python
  -- writes them (only json.decode with allow_nan reads them back).
  local function encode_number(x)
    if x ~= x then return "NaN" end
    if x == math.huge then return "Infinity" end
    if x == -math.huge then return "-Infinity" end
    if x == math.floor(x) and math.abs(x) < 2 ^ 53 then return string.format("%d", x) end
    for digits = 1, 17 do
      local s = string.format("%." .. digits .. "g", x)
      if tonumber(s) == x then return s end
    end
    return string.format("%.17g", x)
  end

  local function is_array(t)
    local mt = getmetatable(t)
    if mt == array_mt then return true end
    if mt == object_mt then return false end
    local n = #t
    if n == 0 then return false end
    local count = 0
    for _ in pairs(t) do count = count + 1 end
    return count == n
  end

  local function encode_value(v, indent, path, out)
    local tv = type(v)
    if v == json.null then out[#out + 1] = "null"
    elseif tv == "boolean" then out[#out + 1] = tostring(v)
    elseif tv == "number" then out[#out + 1] = encode_number(v)
    elseif tv == "string" then out[#out + 1] = encode_string(v, path)
    elseif tv == "table" then
      local inner = indent .. "  "
      if is_array(v) then
        if #v == 0 then out[#out + 1] = "[]"; return end
        out[#out + 1] = "[\n"
        for i = 1, #v do
          out[#out + 1] = inner
          encode_value(v[i], inner, path .. "[" .. i .. "]", out)
          out[#out + 1] = i < #v and ",\n" or "\n"
        end
        out[#out + 1] = indent .. "]"
      else
        local keys = {}
        for k in pairs(v) do
          if type(k) ~= "string" then
            error("json.encode: " .. (path == "" and "the value" or path) .. " mixes a list with keys, or has a key of type " .. type(k), 0)
          end
          keys[#keys + 1] = k
        end
        if #keys == 0 then out[#out + 1] = "{}"; return end
        table.sort(keys)
        out[#out + 1] = "{\n"
        for i, k in ipairs(keys) do
          out[#out + 1] = inner .. encode_string(k, path) .. ": "
          encode_value(v[k], inner, member(path, k), out)
          out[#out + 1] = i < #keys and ",\n" or "\n"
        end
        out[#out + 1] = indent .. "}"
      end
    else
      error("json.encode: " .. (path == "" and "the value" or path) .. " is a " .. tv .. ", which JSON cannot hold", 0)
    end
  end

  -- Encodes a Lua value as Python's json.dumps(value, indent=2,
  -- sort_keys=True) followed by a newline: sorted keys, two-space indent,
  -- ASCII only. A table is an array when marked with json.array or when its
  -- keys are exactly 1..n (n > 0); an empty unmarked table is an object.
  function json.encode(value)
    local out = {}
    encode_value(value, "", "", out)
    out[#out + 1] = "\n"
    return table.concat(out)
  end

  return json
end
