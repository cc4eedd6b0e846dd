-- The smallest grove program: make tensors, run a tiny model forward, print
-- a number. It runs alike in the grove executable (`grove examples/hello.lua`)
-- and in stock LuaJIT with the modules on LUA_PATH (docs/install.md), so it
-- is also how the install test checks an installed grove.
local grove = grove or require "grove"

grove.manual_seed(0)
local make = grove.nn.param_factory()

-- tensors and arithmetic
local x = grove.randn { 4, 8 }
local scale = grove.linspace(0.5, 1.5, 8)
print("x:", table.concat(x:shape(), "x"), string.format("mean %.6f", (x * scale):mean():item()))

-- a tiny model: Linear(8, 16) -> SiLU -> Linear(16, 2), forward only
local l1, l2 = grove.nn.Linear(make, 8, 16), grove.nn.Linear(make, 16, 2)
local y = grove.no_grad(function() return l2:forward(l1:forward(x):silu()) end)
print("y:", table.concat(y:shape(), "x"), string.format("sum of squares %.6f", (y * y):sum():item()))
