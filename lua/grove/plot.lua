-- Charts written as PNG files: a small RGBA canvas (anti-aliased thick
-- lines, rectangles, a 5×7 bitmap font) and line and bar charts with axes,
-- ticks, grid and legend on top of it. PNG encoding is lodepng's, loaded through
-- the FFI (Debian package liblodepng-dev; Debian builds it as C++, so its
-- symbols carry C++-mangled names, bound here with asm labels; a C build's
-- plain names are tried next).
--
--   local plot = require "grove.plot"
--   plot.lines { path = "loss.png", title = "loss", xlabel = "step", ylabel = "loss", log_y = true,
--                series = { { name = "adamw", y = {...} }, { name = "came", x = {...}, y = {...} } } }
--   plot.bars { path = "importance.png", title = "block importance", values = {...}, colors = {...} }
--
-- Text is drawn in capitals (the font has no lowercase).
local ffi = require "ffi"

ffi.cdef [[
unsigned grove_png_encode32_cxx(const char *filename, const unsigned char *image, unsigned w, unsigned h)
  __asm__("_Z21lodepng_encode32_filePKcPKhjj");
const char *grove_png_error_text_cxx(unsigned code) __asm__("_Z18lodepng_error_textj");
unsigned grove_png_encode32_c(const char *filename, const unsigned char *image, unsigned w, unsigned h)
  __asm__("lodepng_encode32_file");
const char *grove_png_error_text_c(unsigned code) __asm__("lodepng_error_text");
]]

local plot = {}

-- {encode = fn, error_text = fn} from whichever build of lodepng is installed.
local png
local function png_lib()
  if png then return png end
  local ok, lib = pcall(ffi.load, "lodepng")
  if not ok then ok, lib = pcall(ffi.load, "/usr/lib/x86_64-linux-gnu/liblodepng.so") end
  if not ok then error("plot: cannot load liblodepng (install the Debian package liblodepng-dev)", 3) end
  for _, suffix in ipairs { "cxx", "c" } do
    local okf, enc = pcall(function() return lib["grove_png_encode32_" .. suffix] end)
    if okf then
      png = { lib = lib, encode = enc, error_text = lib["grove_png_error_text_" .. suffix] }
      return png
    end
  end
  error("plot: liblodepng has no lodepng_encode32_file", 3)
end

-- ---- the font: 5 columns × 7 rows, a row per number, bit 4 the leftmost ----
local glyphs = {
  ["0"] = { 14, 17, 19, 21, 25, 17, 14 }, ["1"] = { 4, 12, 4, 4, 4, 4, 14 }, ["2"] = { 14, 17, 1, 2, 4, 8, 31 },
  ["3"] = { 31, 2, 4, 2, 1, 17, 14 }, ["4"] = { 2, 6, 10, 18, 31, 2, 2 }, ["5"] = { 31, 16, 30, 1, 1, 17, 14 },
  ["6"] = { 6, 8, 16, 30, 17, 17, 14 }, ["7"] = { 31, 1, 2, 4, 8, 8, 8 }, ["8"] = { 14, 17, 17, 14, 17, 17, 14 },
  ["9"] = { 14, 17, 17, 15, 1, 2, 12 },
  A = { 14, 17, 17, 31, 17, 17, 17 }, B = { 30, 17, 17, 30, 17, 17, 30 }, C = { 14, 17, 16, 16, 16, 17, 14 },
  D = { 28, 18, 17, 17, 17, 18, 28 }, E = { 31, 16, 16, 30, 16, 16, 31 }, F = { 31, 16, 16, 30, 16, 16, 16 },
  G = { 14, 17, 16, 23, 17, 17, 15 }, H = { 17, 17, 17, 31, 17, 17, 17 }, I = { 14, 4, 4, 4, 4, 4, 14 },
  J = { 7, 2, 2, 2, 2, 18, 12 }, K = { 17, 18, 20, 24, 20, 18, 17 }, L = { 16, 16, 16, 16, 16, 16, 31 },
  M = { 17, 27, 21, 21, 17, 17, 17 }, N = { 17, 17, 25, 21, 19, 17, 17 }, O = { 14, 17, 17, 17, 17, 17, 14 },
  P = { 30, 17, 17, 30, 16, 16, 16 }, Q = { 14, 17, 17, 17, 21, 18, 13 }, R = { 30, 17, 17, 30, 20, 18, 17 },
  S = { 15, 16, 16, 14, 1, 1, 30 }, T = { 31, 4, 4, 4, 4, 4, 4 }, U = { 17, 17, 17, 17, 17, 17, 14 },
  V = { 17, 17, 17, 17, 17, 10, 4 }, W = { 17, 17, 17, 21, 21, 21, 10 }, X = { 17, 17, 10, 4, 10, 17, 17 },
  Y = { 17, 17, 17, 10, 4, 4, 4 }, Z = { 31, 1, 2, 4, 8, 16, 31 },
  [" "] = { 0, 0, 0, 0, 0, 0, 0 }, ["."] = { 0, 0, 0, 0, 0, 12, 12 }, [","] = { 0, 0, 0, 0, 12, 4, 8 },
  ["-"] = { 0, 0, 0, 31, 0, 0, 0 }, ["+"] = { 0, 4, 4, 31, 4, 4, 0 }, [":"] = { 0, 12, 12, 0, 12, 12, 0 },
  ["("] = { 2, 4, 8, 8, 8, 4, 2 }, [")"] = { 8, 4, 2, 2, 2, 4, 8 }, ["/"] = { 0, 1, 2, 4, 8, 16, 0 },
  ["%"] = { 24, 25, 2, 4, 8, 19, 3 }, ["="] = { 0, 0, 31, 0, 31, 0, 0 }, ["_"] = { 0, 0, 0, 0, 0, 0, 31 },
  ["["] = { 14, 8, 8, 8, 8, 8, 14 }, ["]"] = { 14, 2, 2, 2, 2, 2, 14 }, ["*"] = { 0, 4, 21, 14, 21, 4, 0 },
  ["<"] = { 2, 4, 8, 16, 8, 4, 2 }, [">"] = { 8, 4, 2, 1, 2, 4, 8 }, ["'"] = { 4, 4, 8, 0, 0, 0, 0 },
  ["#"] = { 10, 10, 31, 10, 31, 10, 10 }, ["?"] = { 14, 17, 1, 2, 4, 0, 4 }, ["!"] = { 4, 4, 4, 4, 4, 0, 4 },
}

-- ---- canvas -------------------------------------------------------------------
local Canvas = {}
Canvas.__index = Canvas
plot.Canvas = Canvas

-- A width × height canvas filled with color {r, g, b} (0..255; default white).
function plot.canvas(width, height, color)
  assert(width >= 1 and height >= 1, "plot.canvas: size must be positive")
  local c = setmetatable({ w = width, h = height, px = ffi.new("uint8_t[?]", width * height * 4) }, Canvas)
  c:rect(0, 0, width, height, color or { 255, 255, 255 })
  return c
end

-- Blends color into pixel (x, y) with coverage a in [0, 1].
function Canvas:blend(x, y, color, a)
  if x < 0 or y < 0 or x >= self.w or y >= self.h or a <= 0 then return end
  if a > 1 then a = 1 end
  local i = (y * self.w + x) * 4
  local p = self.px
  for k = 0, 2 do p[i + k] = math.floor(p[i + k] + (color[k + 1] - p[i + k]) * a + 0.5) end
  p[i + 3] = 255
end

-- A filled axis-aligned rectangle [x, x + w) × [y, y + h).
function Canvas:rect(x, y, w, h, color)
  local x0, y0 = math.max(0, math.floor(x)), math.max(0, math.floor(y))
  local x1, y1 = math.min(self.w, math.floor(x + w)), math.min(self.h, math.floor(y + h))
  local p = self.px
  for yy = y0, y1 - 1 do
    for xx = x0, x1 - 1 do
      local i = (yy * self.w + xx) * 4
      p[i], p[i + 1], p[i + 2], p[i + 3] = color[1], color[2], color[3], 255
    end
  end
end

-- Distance from (px, py) to the segment (ax, ay)–(bx, by).
local function seg_dist(px, py, ax, ay, bx, by)
  local dx, dy = bx - ax, by - ay
  local len2 = dx * dx + dy * dy
  local t = len2 > 0 and ((px - ax) * dx + (py - ay) * dy) / len2 or 0
  if t < 0 then t = 0 elseif t > 1 then t = 1 end
  local qx, qy = ax + t * dx - px, ay + t * dy - py
  return math.sqrt(qx * qx + qy * qy)
end

-- An anti-aliased polyline of the given width through points {{x, y}, ...};
-- each pixel takes its largest coverage over the segments, so joints do
-- not darken. clip = {x0, y0, x1, y1} limits the drawing.
function Canvas:polyline(points, color, width, clip)
  local hw = (width or 1) / 2
  local cov = {}
  local cx0, cy0, cx1, cy1 = 0, 0, self.w - 1, self.h - 1
  if clip then cx0, cy0, cx1, cy1 = clip[1], clip[2], clip[3], clip[4] end
  for s = 1, #points - 1 do
    local a, b = points[s], points[s + 1]
    local x0 = math.max(cx0, math.floor(math.min(a[1], b[1]) - hw - 1))
    local x1 = math.min(cx1, math.ceil(math.max(a[1], b[1]) + hw + 1))
    local y0 = math.max(cy0, math.floor(math.min(a[2], b[2]) - hw - 1))
    local y1 = math.min(cy1, math.ceil(math.max(a[2], b[2]) + hw + 1))
    for y = y0, y1 do
      for x = x0, x1 do
        local c = hw + 0.5 - seg_dist(x + 0.5, y + 0.5, a[1], a[2], b[1], b[2])
        if c > 0 then
          local k = y * self.w + x
          if c > (cov[k] or 0) then cov[k] = c end
        end
      end
    end
  end
  for k, c in pairs(cov) do self:blend(k % self.w, math.floor(k / self.w), color, c) end
end

function Canvas:line(x0, y0, x1, y1, color, width, clip)
  self:polyline({ { x0, y0 }, { x1, y1 } }, color, width, clip)
end

-- Pixel width of text at a scale (each glyph 5 wide plus 1 of spacing).
function plot.text_width(s, scale) return #s * 6 * (scale or 1) - (scale or 1) end

-- Text with its top-left corner at (x, y); scale multiplies the 5×7 glyphs.
-- vertical = true writes bottom-to-top (for a y-axis label).
function Canvas:text(x, y, s, color, scale, vertical)
  scale = scale or 1
  s = tostring(s):upper()
  for n = 1, #s do
    local g = glyphs[s:sub(n, n)] or glyphs["?"]
    local ox = (n - 1) * 6 * scale
    for row = 1, 7 do
      local bits = g[row]
      for col = 0, 4 do
        if bit.band(bits, bit.lshift(1, 4 - col)) ~= 0 then
          for sy = 0, scale - 1 do
            for sx = 0, scale - 1 do
              local gx, gy = ox + col * scale + sx, (row - 1) * scale + sy
              if vertical then self:blend(x + gy, y - gx, color, 1)
              else self:blend(x + gx, y + gy, color, 1) end
            end
          end
        end
      end
    end
  end
end

function Canvas:save(path)
  local lib = png_lib()
  local rc = lib.encode(path, self.px, self.w, self.h)
  if rc ~= 0 then error("plot: writing " .. path .. ": " .. ffi.string(lib.error_text(rc)), 2) end
end

-- ---- axes -----------------------------------------------------------------------
-- About n "nice" tick values (1, 2, 5 × 10^k steps) covering [lo, hi].
local function nice_ticks(lo, hi, n)
  local span = hi - lo
  if span <= 0 then return { lo } end
  local raw = span / (n or 5)
  local mag = 10 ^ math.floor(math.log10(raw))
  local step = mag
  for _, m in ipairs { 1, 2, 5, 10 } do
    if m * mag >= raw then step = m * mag; break end
  end
  local out = {}
  local v = math.ceil(lo / step - 1e-9) * step
  while v <= hi + step * 1e-9 do
    out[#out + 1] = math.abs(v) < step * 1e-9 and 0 or v
    v = v + step
  end
  return out
end

-- Ticks of a log axis: decades, with 2 and 5 when few decades are shown.
local function log_ticks(lo, hi)
  local out = {}
  local d0, d1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
  local mult = (d1 - d0) <= 3 and { 1, 2, 5 } or { 1 }
  for d = d0, d1 do
    for _, m in ipairs(mult) do
      local v = m * 10 ^ d
      if v >= lo * (1 - 1e-9) and v <= hi * (1 + 1e-9) then out[#out + 1] = v end
    end
  end
  return out
end

local function tick_label(v)
  if v == 0 then return "0" end
  local a = math.abs(v)
  if a >= 1e5 or a < 1e-3 then return (string.format("%.0e", v):gsub("e%+?(%-?)0*(%d)", "e%1%2")) end
  local s = string.format("%.4g", v)
  return s
end

plot.palette = {
  { 31, 119, 180 }, { 255, 127, 14 }, { 44, 160, 44 }, { 214, 39, 40 }, { 148, 103, 189 },
  { 140, 86, 75 }, { 227, 119, 194 }, { 127, 127, 127 }, { 188, 189, 34 }, { 23, 190, 207 },
}

-- A line chart. o: path (written when given), series = {{name=, y=, x=?,
-- color=?}} (x defaults to 1..#y), title, xlabel, ylabel, width (900),
-- height (560), log_y, x_min/x_max/y_min/y_max (default: the data's),
-- line_width (2). Returns the canvas.
function plot.lines(o)
  local W, H = o.width or 900, o.height or 560
  local c = plot.canvas(W, H)
  local ink, grid = { 40, 40, 40 }, { 225, 225, 225 }
  local L, R, T, B = 78, 24, o.title and 44 or 20, 56
  local px0, py0, px1, py1 = L, T, W - R, H - B
  -- data ranges
  local xmin, xmax, ymin, ymax = math.huge, -math.huge, math.huge, -math.huge
  for _, s in ipairs(o.series) do
    for i, y in ipairs(s.y) do
      local x = s.x and s.x[i] or i
      if y == y and (not o.log_y or y > 0) then
        xmin, xmax = math.min(xmin, x), math.max(xmax, x)
        ymin, ymax = math.min(ymin, y), math.max(ymax, y)
      end
    end
  end
  if xmin > xmax then xmin, xmax, ymin, ymax = 0, 1, 0, 1 end
  xmin, xmax = o.x_min or xmin, o.x_max or xmax
  ymin, ymax = o.y_min or ymin, o.y_max or ymax
  if xmax == xmin then xmax = xmin + 1 end
  if ymax == ymin then ymax = ymin + (o.log_y and ymin or 1) end
  if not o.log_y and not o.y_min then
    local pad = (ymax - ymin) * 0.04
    ymin, ymax = ymin - pad, ymax + pad
  elseif o.log_y then
    -- widen to the 1-2-5 values around the data, so both ends carry a label
    local function snap(v, up)
      local d = 10 ^ math.floor(math.log10(v))
      local steps = up and { 1, 2, 5, 10 } or { 10, 5, 2, 1 }
      for _, m in ipairs(steps) do
        if (up and m * d >= v * (1 - 1e-9)) or (not up and m * d <= v * (1 + 1e-9)) then return m * d end
      end
      return v
    end
    if not o.y_min then ymin = snap(ymin, false) end
    if not o.y_max then ymax = snap(ymax, true) end
  end
  local ly0, ly1 = o.log_y and math.log10(ymin) or ymin, o.log_y and math.log10(ymax) or ymax
  local function sx(x) return px0 + (x - xmin) / (xmax - xmin) * (px1 - px0) end
  local function sy(y)
    local v = o.log_y and math.log10(y) or y
    return py1 - (v - ly0) / (ly1 - ly0) * (py1 - py0)
  end
  -- grid, ticks and labels
  local yt = o.log_y and log_ticks(ymin, ymax) or nice_ticks(ymin, ymax, 6)
  for _, v in ipairs(yt) do
    local y = math.floor(sy(v)) + 0.5
    c:line(px0, y, px1, y, grid, 1)
    local s = tick_label(v)
    c:text(px0 - 6 - plot.text_width(s), math.floor(y) - 3, s, ink)
  end
  for _, v in ipairs(nice_ticks(xmin, xmax, 8)) do
    local x = math.floor(sx(v)) + 0.5
    c:line(x, py0, x, py1, grid, 1)
    local s = tick_label(v)
    c:text(math.floor(x) - math.floor(plot.text_width(s) / 2), py1 + 8, s, ink)
  end
  c:line(px0, py1 + 0.5, px1, py1 + 0.5, ink, 1)
  c:line(px0 - 0.5, py0, px0 - 0.5, py1, ink, 1)
  if o.title then c:text(math.floor((W - plot.text_width(o.title, 2)) / 2), 12, o.title, ink, 2) end
  if o.xlabel then c:text(math.floor((px0 + px1 - plot.text_width(o.xlabel)) / 2), H - 20, o.xlabel, ink) end
  if o.ylabel then c:text(12, math.floor((py0 + py1 + plot.text_width(o.ylabel)) / 2), o.ylabel, ink, 1, true) end
  -- series
  local clip = { px0, py0, px1 - 1, py1 - 1 }
  for k, s in ipairs(o.series) do
    local color = s.color or plot.palette[(k - 1) % #plot.palette + 1]
    local pts = {}
    for i, y in ipairs(s.y) do
      local x = s.x and s.x[i] or i
      if y == y and (not o.log_y or y > 0) then pts[#pts + 1] = { sx(x), sy(y) } end
    end
    c:polyline(pts, color, o.line_width or 2, clip)
  end
  -- legend, top right inside the plot
  local lw = 0
  for _, s in ipairs(o.series) do lw = math.max(lw, plot.text_width(s.name or "")) end
  if lw > 0 then
    local bx, by = px1 - lw - 44, py0 + 8
    c:rect(bx, by, lw + 36, #o.series * 14 + 8, { 255, 255, 255 })
    for k, s in ipairs(o.series) do
      local color = s.color or plot.palette[(k - 1) % #plot.palette + 1]
      local y = by + 8 + (k - 1) * 14
      c:line(bx + 6, y + 0.5, bx + 24, y + 0.5, color, 3)
      c:text(bx + 30, y - 3, s.name or "", ink)
    end
  end
  if o.path then c:save(o.path) end
  return c
end

-- A bar chart, one bar per value, rising from 0 (negative values hang
-- below it). o: path (written when given), values, labels (default 1..n;
-- as many as fit are drawn), colors (one per bar; default the palette's
-- first), legend = {{name =, color =}}, title, xlabel, ylabel, width (900),
-- height (480), y_min/y_max. Returns the canvas.
function plot.bars(o)
  local values = o.values or {}
  local n = #values
  local W, H = o.width or 900, o.height or 480
  local c = plot.canvas(W, H)
  local ink, grid = { 40, 40, 40 }, { 225, 225, 225 }
  local L, R, T, B = 78, 24, o.title and 44 or 20, 56
  local px0, py0, px1, py1 = L, T, W - R, H - B
  local ymin, ymax = 0, 0
  for _, v in ipairs(values) do
    if v == v then ymin, ymax = math.min(ymin, v), math.max(ymax, v) end
  end
  if ymax == ymin then ymax = ymin + 1 end
  local pad = (ymax - ymin) * 0.04
  ymin = o.y_min or (ymin < 0 and ymin - pad or 0)
  ymax = o.y_max or ymax + pad
  local function sy(y) return py1 - (y - ymin) / (ymax - ymin) * (py1 - py0) end
  for _, v in ipairs(nice_ticks(ymin, ymax, 6)) do
    local y = math.floor(sy(v)) + 0.5
    c:line(px0, y, px1, y, grid, 1)
    local s = tick_label(v)
    c:text(px0 - 6 - plot.text_width(s), math.floor(y) - 3, s, ink)
  end
  -- bars, each in a slot of equal width with a gap of a fifth of it
  local slot = (px1 - px0) / math.max(n, 1)
  local zero = sy(math.max(ymin, math.min(0, ymax)))
  for i, v in ipairs(values) do
    if v == v then
      local x = px0 + (i - 1) * slot + slot * 0.1
      local top, bottom = sy(math.min(math.max(v, ymin), ymax)), zero
      if top > bottom then top, bottom = bottom, top end
      local color = o.colors and o.colors[i] or o.color or plot.palette[1]
      c:rect(x, top, math.max(1, slot * 0.8), math.max(1, bottom - top), color)
    end
  end
  -- labels under the bars: every k-th, so that they do not overlap
  local widest = 0
  for i = 1, n do widest = math.max(widest, plot.text_width(tostring(o.labels and o.labels[i] or i))) end
  local every = math.max(1, math.ceil((widest + 6) / math.max(slot, 1e-9)))
  for i = 1, n, every do
    local s = tostring(o.labels and o.labels[i] or i)
    local x = px0 + (i - 0.5) * slot
    c:text(math.floor(x - plot.text_width(s) / 2), py1 + 8, s, ink)
  end
  c:line(px0, math.floor(zero) + 0.5, px1, math.floor(zero) + 0.5, ink, 1)
  c:line(px0 - 0.5, py0, px0 - 0.5, py1, ink, 1)
  if o.title then c:text(math.floor((W - plot.text_width(o.title, 2)) / 2), 12, o.title, ink, 2) end
  if o.xlabel then c:text(math.floor((px0 + px1 - plot.text_width(o.xlabel)) / 2), H - 20, o.xlabel, ink) end
  if o.ylabel then c:text(12, math.floor((py0 + py1 + plot.text_width(o.ylabel)) / 2), o.ylabel, ink, 1, true) end
  if o.legend and #o.legend > 0 then
    local lw = 0
    for _, e in ipairs(o.legend) do lw = math.max(lw, plot.text_width(e.name or "")) end
    local bx, by = px1 - lw - 44, py0 + 8
    c:rect(bx, by, lw + 36, #o.legend * 14 + 8, { 255, 255, 255 })
    for k, e in ipairs(o.legend) do
      local y = by + 8 + (k - 1) * 14
      c:rect(bx + 8, y - 4, 14, 9, e.color)
      c:text(bx + 30, y - 3, e.name or "", ink)
    end
  end
  if o.path then c:save(o.path) end
  return c
end

return plot
