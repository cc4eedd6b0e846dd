-- Parity cases (CPU vs CUDA) of the comparison family: comparisons with
-- broadcasting, a number, a transposed operand and ties; logic on masks;
-- any / all over dimensions. The outputs are u8 masks (compared as f32:
-- they must agree exactly). Comparing a tensor with itself makes ties.
local grove = grove or require "grove"

local cases = {}
local function add(c) cases[#cases + 1] = c end

for _, op in ipairs{ "eq", "ne", "lt", "le", "gt", "ge" } do
  add { name = op .. " [37,45] vs [45] (broadcast)",
    fn = function(a, b) return a[op](a, b) end,
    inputs = { { 37, 45 }, { 45 } } }
end
add { name = "lt [45,37]^T vs [37,45] (strided)",
  fn = function(a, b) return a:t():lt(b) end,
  inputs = { { 45, 37 }, { 37, 45 } } }
add { name = "ge [3,1,33] vs [5,1] against itself rounded (ties)",
  fn = function(a, b) return a:ge(b), a:eq(a), b:ne(b) end,
  inputs = { { 3, 1, 33 }, { 5, 1 } } }
add { name = "gt scalar 0.25 and 0.25 < x, [1000]",
  fn = function(a) return a:gt(0.25), grove.lt(0.25, a), a:le(-0.5) end,
  inputs = { { 1000 } } }
add { name = "logical and/or/not [29,31] with a broadcast [31]",
  fn = function(a, b)
    local m, n = a:gt(0), b:lt(0.3)
    return m:logical_and(n), m:logical_or(n), m:logical_not()
  end,
  inputs = { { 29, 31 }, { 31 } } }
add { name = "any / all [6,7,33] over 2, over {1,3} keepdim, over all",
  fn = function(a)
    local m = a:gt(0.8)
    return m:any(2), m:all(2), m:any({ 1, 3 }, true), m:all({ 1, 3 }, true), m:any(), a:gt(-5):all()
  end,
  inputs = { { 6, 7, 33 } } }
add { name = "any / all over a transposed mask [40,70]^T dim 2",
  fn = function(a) local m = a:t():gt(1); return m:any(2), m:all(2), m:logical_not():all(1) end,
  inputs = { { 40, 70 } } }
return cases
