-- A search judge that asks grove's shapes evaluator (grove.eval.shapes,
-- docs/shapes.md): the probability that an image shows what a shapes
-- caption asks ("two red circles", "a blue square left of a green
-- triangle"). Use it with a model trained on the shapes data set:
--   grove search --model DIR -p "two red circles" -n 16 --judge examples/judge_shapes.lua
--
-- A judge is any function (image, prompt) -> probability in [0, 1]; image
-- is (H, W, 3) f32 in [-1, 1]. The centre square is resized to the
-- evaluator's 32 pixels. An image the evaluator passes scores 1; one it fails scores
-- 0.45 times the share of the caption's objects found in their number
-- (always below 0.5, a "no", and higher the closer it came). A prompt that
-- is not a shapes caption is an error naming it.
local grove = grove or require "grove"

local SIZE = 32

return function(image, prompt)
  local spec, why = grove.data.captions.parse(prompt)
  if not spec then error("judge_shapes: '" .. prompt .. "' is not a shapes caption: " .. tostring(why), 0) end
  local x = image
  if x:size(1) ~= SIZE or x:size(2) ~= SIZE then x = grove.image.to_float(grove.image.resize_crop(grove.image.to_u8(x), SIZE)) end
  x = x:unsqueeze(1)
  if grove.eval.shapes.check(x, spec, 1) then return 1 end
  local dets = grove.eval.shapes.detect(x, 1)
  local found = 0
  for _, o in ipairs(spec.objects) do
    local n = 0
    for _, d in ipairs(dets) do
      if d.shape == o.shape and (o.color == nil or d.color == o.color) then n = n + 1 end
    end
    found = found + math.min(1, n / o.count)
  end
  return 0.45 * found / #spec.objects
end
