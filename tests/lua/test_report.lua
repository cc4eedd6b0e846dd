-- grove.report (the HTML writer of the pipeline's report) and
-- grove.pipeline (resumable stages with manifests and done markers).
local spec = require "spec"
local report = require "grove.report"
local pipeline = require "grove.pipeline"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end
local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

spec.describe("grove.report", function()
  spec.it("escapes text, attributes and numbers", function()
    spec.eq(report.escape([[<a href="x">Tom & Jerry's</a>]]), "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;")
    spec.eq(report.escape(nil), "")
    spec.eq(report.escape(0.5), "0.5")
    local doc = report.new { title = "a <b> & c" }
    doc:p("1 < 2 & 3 > 2")
    local html = doc:render()
    spec.assert(html:find("<title>a &lt;b&gt; &amp; c</title>", 1, true), html)
    spec.assert(html:find("<p>1 &lt; 2 &amp; 3 &gt; 2</p>", 1, true), html)
    spec.assert(not html:find("<b> &", 1, true), "no raw markup from text")
  end)

  spec.it("encodes base64 as RFC 4648", function()
    spec.eq(report.base64(""), "")
    spec.eq(report.base64("f"), "Zg==")
    spec.eq(report.base64("fo"), "Zm8=")
    spec.eq(report.base64("foo"), "Zm9v")
    spec.eq(report.base64("foobar"), "Zm9vYmFy")
    spec.eq(report.base64("\0\255\128"), "AP+A")
  end)

  spec.it("builds a table of contents from unique section ids", function()
    local doc = report.new { title = "t" }
    local _, a = doc:section("scores", "Scores")
    local _, b = doc:section("scores", "Scores again")
    local _, c = doc:section(nil, "Sub section!", 3)
    spec.eq(a, "scores"); spec.eq(b, "scores-2"); spec.eq(c, "sub-section")
    local html = doc:render()
    spec.assert(html:find('<h2 id="scores">Scores</h2>', 1, true), html)
    spec.assert(html:find('<h3 id="sub-section">Sub section!</h3>', 1, true), html)
    spec.assert(html:find('<a href="#scores-2">Scores again</a>', 1, true), html)
    -- the level-3 entry sits in a nested list
    spec.assert(html:find('<ul>\n<li><a href="#sub-section">', 1, true), html)
    spec.eq(count(html, "<nav"), 1)
  end)

  spec.it("writes tables: header, numbers right-aligned and formatted, escaped cells, raw html cells", function()
    local doc = report.new {}
    doc:table { caption = "c&d", header = { "stage", "blocks", "overall" },
                rows = { { "base<1>", 3, 0.12345 }, { { html = "<i>x</i>" }, 4, 1 } }, bold_last = true,
                formats = { [3] = "%.3f" } }
    local html = doc:render()
    spec.assert(html:find("<caption>c&amp;d</caption>", 1, true), html)
    spec.assert(html:find("<thead><tr><th>stage</th><th>blocks</th><th>overall</th></tr></thead>", 1, true), html)
    spec.assert(html:find('<tr><td>base&lt;1&gt;</td><td class="num">3</td><td class="num"><b>0.123</b></td></tr>', 1, true), html)
    spec.assert(html:find('<tr><td><i>x</i></td><td class="num">4</td><td class="num"><b>1.000</b></td></tr>', 1, true), html)
    spec.eq(count(html, "<tr>"), 3)
  end)

  spec.it("embeds images as data: URIs or links them, and records missing files", function()
    local dir = spec.tmpdir()
    local f = assert(io.open(dir .. "/a.png", "wb"))
    f:write("\137PNG\r\n\26\n")
    f:close()
    local doc = report.new { dir = dir }
    doc:image("a.png", { alt = "an <image>", caption = "cap", width = 300 })
    doc:image("gone.png")
    local html = doc:render()
    spec.assert(html:find('<img src="data:image/png;base64,iVBORw0KGgo=" alt="an &lt;image&gt;" width="300">', 1, true), html)
    spec.assert(html:find("<figcaption>cap</figcaption>", 1, true), html)
    spec.eq(#doc.missing, 1)
    spec.assert(doc.missing[1]:find("gone.png", 1, true), doc.missing[1])
    local linked = report.new { dir = dir, embed = false }
    linked:image("a.png")
    spec.assert(linked:render():find('<img src="a.png" alt="a.png">', 1, true))
    os.execute("rm -rf '" .. dir .. "'")
  end)

  spec.it("writes a whole, self-contained page atomically", function()
    local dir = spec.tmpdir()
    local doc = report.new { title = "T" }
    doc:section("a", "A")
    doc:pre("x < y")
    doc:list { "one & two" }
    doc:write(dir .. "/r.html")
    local html = read(dir .. "/r.html")
    spec.assert(html:sub(1, 15) == "<!DOCTYPE html>", html:sub(1, 40))
    spec.assert(html:find("</html>\n$"), "ends the document")
    spec.assert(html:find("<style>", 1, true) and not html:find("<link", 1, true) and not html:find("http", 1, true),
      "inline CSS, no external resources")
    spec.assert(html:find("<pre>x &lt; y</pre>", 1, true) and html:find("<li>one &amp; two</li>", 1, true), html)
    spec.eq(io.open(dir .. "/r.html.tmp"), nil, "no temporary file left")
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)

spec.describe("grove.pipeline", function()
  spec.it("serializes plain values to Lua that loads back equal", function()
    local v = { a = 1, b = { 0.1, 2e-3, -3 }, ["odd key"] = "q\"uote\n", t = true, n = { [10] = "x" }, big = 2 ^ 40,
                inf = math.huge }
    local dir = spec.tmpdir()
    pipeline.write_atomic(dir .. "/m.lua", pipeline.serialize(v))
    local back = pipeline.load(dir .. "/m.lua")
    spec.eq(pipeline.serialize(back), pipeline.serialize(v))
    spec.eq(back.b[2], 2e-3); spec.eq(back["odd key"], "q\"uote\n"); spec.eq(back.inf, math.huge); spec.eq(back.n[10], "x")
    spec.raises(function() pipeline.serialize({ f = print }) end, "cannot store a function")
    -- a folder that is not there: a clear error, and the old file (none here) untouched
    spec.raises(function() pipeline.write_atomic(dir .. "/missing/m.lua", "x") end,
                "write_atomic: " .. dir .. "/missing/m.lua: directory '" .. dir .. "/missing' does not exist")
    spec.eq(pipeline.exists(dir .. "/m.lua"), true); spec.eq(pipeline.exists(dir .. "/missing/m.lua"), false)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  spec.it("skips done stages, re-runs a stage whose options changed and every later one, and honours from", function()
    local dir = spec.tmpdir()
    local ran, logs = {}, {}
    local function go(opts, from)
      ran = {}
      local r = pipeline.new { dir = dir, stages = { "a", "b", "c" }, from = from, log = function(s) logs[#logs + 1] = s end }
      for _, s in ipairs { "a", "b", "c" } do
        r:stage(s, opts[s] or {}, function(d)
          ran[#ran + 1] = s
          spec.assert(io.open(d .. "/DONE") == nil, "a running stage has no done marker")
          return { value = s .. "!" }
        end)
      end
      return r
    end
    go({})
    spec.eq(table.concat(ran, ","), "a,b,c")
    local r = go({})
    spec.eq(table.concat(ran, ","), "", "everything skipped")
    spec.eq(r.done.b.value, "b!"); spec.eq(r.done.b.skipped, true)
    spec.assert(logs[#logs]:find("skipped", 1, true), logs[#logs])
    go({ b = { steps = 2 } })
    spec.eq(table.concat(ran, ","), "b,c", "b's options changed: b and c run")
    go({ b = { steps = 2 } }, "c")
    spec.eq(table.concat(ran, ","), "c")
    -- a stage without its done marker (interrupted) runs again
    os.remove(dir .. "/a/DONE")
    go({ b = { steps = 2 } })
    spec.eq(table.concat(ran, ","), "a,b,c")
    spec.raises(function() pipeline.new { dir = dir, stages = { "a" }, from = "z" } end, "no such stage")
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
