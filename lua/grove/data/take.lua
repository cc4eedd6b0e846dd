-- ds:take(n), shared by the data sets (shapes, folder, the feature cache):
--   for step, batch in ds:take(n) do ... end   -- step = 1 .. n
-- n must be an integer from 0 to 2^53.
return function(self, n)
  if type(n) ~= "number" or n ~= n or n % 1 ~= 0 or n < 0 or n > 2 ^ 53 then
    error("take must be an integer from 0 to 2^53, got " .. tostring(n), 2)
  end
  local step = 0
  return function()
    if step >= n then return nil end
    step = step + 1
    return step, self:next()
  end
end
