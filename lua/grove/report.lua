-- A small HTML writer for reports: one self-contained page, plain and
-- readable, inline CSS, a table of contents built from the sections, tables
-- and images (embedded as data: URIs by default, so the page is one file
-- that needs no network; or linked as files beside the page). The writer is
-- pure Lua (no tensors, no grove); report.pipeline(grove, run) builds the
-- pipeline recipe's page with it (lua/grove/report/pipeline.lua).
--
--   local report = require "grove.report"
--   local doc = report.new { title = "Pipeline", dir = "runs/quick" }   -- dir: where relative image paths start
--   doc:section("config", "Configuration")
--   doc:p("Trained on shapes & friends.")                 -- text is escaped
--   doc:table { header = { "stage", "overall" }, rows = { { "base", 0.25 } }, caption = "scores" }
--   doc:image("base/loss.png", { alt = "base loss", caption = "loss of the base model" })
--   doc:write("runs/quick/report.html")                   -- temp file + rename
local report = {}

local escapes = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

-- Text as HTML: & < > " ' escaped; nil is the empty string, numbers as %g.
function report.escape(s)
  if s == nil then return "" end
  if type(s) == "number" then s = string.format("%.6g", s) end
  return (tostring(s):gsub("[&<>\"']", escapes))
end
local esc = report.escape

-- An id usable in a URL fragment: lower case letters, digits and dashes.
function report.slug(s)
  local id = tostring(s):lower():gsub("[^%w]+", "-"):gsub("^%-+", ""):gsub("%-+$", "")
  return id ~= "" and id or "section"
end

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
-- Standard base64 (RFC 4648, with padding).
function report.base64(data)
  local out, n = {}, #data
  for i = 1, n, 3 do
    local a, b, c = data:byte(i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1, c2 = math.floor(v / 262144) % 64, math.floor(v / 4096) % 64
    local c3, c4 = math.floor(v / 64) % 64, v % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
      .. (b and b64chars:sub(c3 + 1, c3 + 1) or "=") .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

local mime = { png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif", svg = "image/svg+xml" }

report.css = [[
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1000px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .2em 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; image-rendering: pixelated; }
figcaption { font-size: .9em; color: #555; }
pre, code { background: #f6f6f6; font-size: .9em; }
pre { padding: .6em; overflow-x: auto; }
nav.toc { background: #fafafa; border: 1px solid #eee; padding: .4em 1em; }
nav.toc ul { margin: .2em 0; padding-left: 1.2em; }
.note { color: #555; font-size: .92em; }
]]

local Doc = {}
Doc.__index = Doc
report.Doc = Doc

-- opts: title, dir (where relative image paths are read from; default "."),
-- embed (default true: images as data: URIs; false: linked by their path).
function report.new(opts)
  opts = opts or {}
  return setmetatable({ title = opts.title or "report", dir = opts.dir or ".", embed = opts.embed ~= false,
                        parts = {}, toc = {}, ids = {}, missing = {} }, Doc)
end

function Doc:raw(html)
  self.parts[#self.parts + 1] = html
  return self
end

-- A heading that the table of contents lists; level 2 (default) or 3.
-- Returns the id (unique within the page).
function Doc:section(id, title, level)
  level = level or 2
  id = report.slug(id or title)
  local base, k = id, 1
  while self.ids[id] do k = k + 1; id = base .. "-" .. k end
  self.ids[id] = true
  self.toc[#self.toc + 1] = { id = id, title = title, level = level }
  return self:raw(string.format('<h%d id="%s">%s</h%d>\n', level, id, esc(title), level)), id
end

-- A paragraph of escaped text; opts.class adds a class ("note").
function Doc:p(text, opts)
  local cls = opts and opts.class and (' class="' .. esc(opts.class) .. '"') or ""
  return self:raw("<p" .. cls .. ">" .. esc(text) .. "</p>\n")
end

-- Preformatted text (logs, commands).
function Doc:pre(text)
  return self:raw("<pre>" .. esc(text) .. "</pre>\n")
end

-- A bulleted list of escaped strings.
function Doc:list(items)
  local out = { "<ul>" }
  for _, it in ipairs(items) do out[#out + 1] = "<li>" .. esc(it) .. "</li>" end
  out[#out + 1] = "</ul>\n"
  return self:raw(table.concat(out, "\n"))
end

-- A table. t: header = {cells}, rows = {{cells}}, caption, format (for
-- non-integer numbers; default "%.3f"; integers print as integers),
-- formats = {[column] = format} (for every number in that column),
-- bold_last (the last column in bold). Numbers are right-aligned; cells are
-- escaped; a cell may be {html = "..."} to pass markup through.
function Doc:table(t)
  local fmt, formats = t.format or "%.3f", t.formats or {}
  local out = { "<table>" }
  if t.caption then out[#out + 1] = "<caption>" .. esc(t.caption) .. "</caption>" end
  local function cell(tag, v, last, col)
    local cls, text = "", nil
    if type(v) == "number" then
      cls = ' class="num"'
      if formats[col] then text = esc(string.format(formats[col], v))
      else text = esc(v % 1 == 0 and string.format("%d", v) or string.format(fmt, v)) end
    elseif type(v) == "table" and v.html then text = v.html
    else text = esc(v) end
    if last and t.bold_last and tag == "td" then text = "<b>" .. text .. "</b>" end
    return string.format("<%s%s>%s</%s>", tag, cls, text, tag)
  end
  if t.header then
    local h = {}
    for i, v in ipairs(t.header) do h[i] = cell("th", v, false, i) end
    out[#out + 1] = "<thead><tr>" .. table.concat(h) .. "</tr></thead>"
  end
  out[#out + 1] = "<tbody>"
  for _, row in ipairs(t.rows or {}) do
    local r = {}
    for i = 1, #row do r[i] = cell("td", row[i], i == #row, i) end
    out[#out + 1] = "<tr>" .. table.concat(r) .. "</tr>"
  end
  out[#out + 1] = "</tbody></table>\n"
  return self:raw(table.concat(out, "\n"))
end

-- A two-column table of key, value pairs: {{key, value}, ...}.
function Doc:kv(pairs_list, caption)
  return self:table { header = { "option", "value" }, rows = pairs_list, caption = caption }
end

-- The src of an image: a data: URI of the file's bytes (embed) or its path
-- relative to the page. A missing file is recorded in doc.missing and gets
-- its path (the browser test then reports it as broken).
function Doc:image_src(path)
  local full = path:sub(1, 1) == "/" and path or (self.dir .. "/" .. path)
  if not self.embed then return path end
  local f = io.open(full, "rb")
  if not f then
    self.missing[#self.missing + 1] = full
    return path
  end
  local data = f:read("*a")
  f:close()
  local ext = (path:match("%.(%w+)$") or "png"):lower()
  return "data:" .. (mime[ext] or "application/octet-stream") .. ";base64," .. report.base64(data)
end

-- A figure: the image, with alt text and an optional caption; opts.width
-- (CSS pixels) scales it.
function Doc:image(path, opts)
  opts = opts or {}
  local w = opts.width and string.format(' width="%d"', opts.width) or ""
  local html = string.format('<figure><img src="%s" alt="%s"%s>', esc(self:image_src(path)), esc(opts.alt or path), w)
  if opts.caption then html = html .. "<figcaption>" .. esc(opts.caption) .. "</figcaption>" end
  return self:raw(html .. "</figure>\n")
end

-- The whole page as a string.
function Doc:render()
  local toc = { '<nav class="toc"><b>Contents</b><ul>' }
  local open3 = false
  for _, e in ipairs(self.toc) do
    if e.level > 2 and not open3 then toc[#toc + 1] = "<ul>"; open3 = true end
    if e.level <= 2 and open3 then toc[#toc + 1] = "</ul>"; open3 = false end
    toc[#toc + 1] = string.format('<li><a href="#%s">%s</a></li>', e.id, esc(e.title))
  end
  if open3 then toc[#toc + 1] = "</ul>" end
  toc[#toc + 1] = "</ul></nav>\n"
  return table.concat {
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    "<title>", esc(self.title), "</title>\n<style>\n", report.css, "</style>\n</head>\n<body>\n",
    "<h1>", esc(self.title), "</h1>\n", #self.toc > 0 and table.concat(toc, "\n") or "",
    table.concat(self.parts), "</body>\n</html>\n",
  }
end

-- Writes the page atomically (PATH.tmp, then rename); returns the path.
function Doc:write(path)
  require("grove.files").write_atomic(path, self:render())
  return path
end

-- The pipeline's report: doc, score rows, total seconds (report/pipeline.lua).
function report.pipeline(grove, run) return require("grove.report.pipeline")(grove, run) end

return report
