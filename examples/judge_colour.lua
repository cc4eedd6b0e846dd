-- A search judge that checks colours: the probability that an image shows
-- the colours its prompt names, from a colour histogram. Use it with
--   grove search --model DIR -p "a red apple on a blue plate" -n 16 --judge examples/judge_colour.lua
-- or call it from Lua: local judge = dofile("examples/judge_colour.lua"); judge(image, prompt).
--
-- A judge is any function (image, prompt) -> probability in [0, 1]; image
-- is (H, W, 3) f32 in [-1, 1]. This one takes the centre square shrunk to
-- at most 64 pixels a side, gives each pixel to the nearest of a dozen
-- named colours, and asks that every colour word of the prompt own at
-- least 10% of the pixels: each colour's share counts up to that, and the
-- probability is the mean over the colours named. A prompt with no colour word learns
-- nothing from colours: 0.5. A VLM judge plugs in the same way.
local grove = grove or require "grove"

-- sRGB anchors of the colour words (0..255)
local COLOURS = {
  red = { 200, 30, 30 }, orange = { 240, 140, 20 }, yellow = { 240, 220, 40 }, green = { 40, 160, 60 },
  blue = { 30, 70, 200 }, purple = { 130, 50, 170 }, pink = { 240, 150, 190 }, brown = { 120, 70, 30 },
  black = { 15, 15, 15 }, white = { 240, 240, 240 }, gray = { 128, 128, 128 }, grey = { 128, 128, 128 },
}
local NAMES = {}
for name in pairs(COLOURS) do if name ~= "grey" then NAMES[#NAMES + 1] = name end end
table.sort(NAMES)
local WANT = 0.10 -- share of the pixels a named colour should own

return function(image, prompt)
  local wanted = {}
  for word in prompt:lower():gmatch("%a+") do
    if COLOURS[word] then wanted[word == "grey" and "gray" or word] = true end
  end
  if next(wanted) == nil then return 0.5 end
  -- at most 64 x 64 pixels, as u8
  local side = math.min(64, image:size(1), image:size(2))
  local small = grove.image.resize_crop(grove.image.to_u8(image), side):tolist()
  local count, total = {}, 0
  for _, name in ipairs(NAMES) do count[name] = 0 end
  for _, row in ipairs(small) do
    for _, px in ipairs(row) do
      local best, best_d
      for _, name in ipairs(NAMES) do
        local c = COLOURS[name]
        local dr, dg, db = px[1] - c[1], px[2] - c[2], px[3] - c[3]
        local d = dr * dr + dg * dg + db * db
        if not best_d or d < best_d then best, best_d = name, d end
      end
      count[best] = count[best] + 1
      total = total + 1
    end
  end
  local sum, k = 0, 0
  for name in pairs(wanted) do
    sum = sum + math.min(1, count[name] / total / WANT)
    k = k + 1
  end
  return sum / k
end
