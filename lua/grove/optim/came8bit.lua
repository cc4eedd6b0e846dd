-- CAME-8bit: CAME (optim/came.lua) with block-wise 8-bit first moments for
-- factored parameters larger than min_8bit_size; registered as
-- grove.optim.came8bit (optim/kinds.lua).
return function(grove, optim)
  return optim.came_kind("came8bit", true)
end
