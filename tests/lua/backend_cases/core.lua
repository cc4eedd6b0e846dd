-- A few cases across the front-ends, so the suite runs before the kernel
-- families add their own files.
return {
  { name = "add [5,37] + [37]", fn = function(a, b) return a + b end, inputs = { {5, 37}, {37} }, grad = true },
  { name = "add transposed [33,9]:t() + [9,33]", fn = function(a, b) return a:t() + b end,
    inputs = { {33, 9}, {9, 33} }, grad = true },
  { name = "matmul [17,40] @ [40,23]", fn = function(a, b) return grove.matmul(a, b) end,
    inputs = { {17, 40}, {40, 23} }, grad = true },
  { name = "matmul [17,40]:t() @ narrow", fn = function(a, b) return grove.matmul(a:t(), b:narrow(2, 3, 11)) end,
    inputs = { {17, 40}, {17, 20} }, grad = true },
  { name = "softmax dim -1 [7,33]", fn = function(x) return grove.softmax(x, -1) end, inputs = { {7, 33} },
    grad = true },
  { name = "softmax dim 1 [6,5,9] narrowed", fn = function(x) return grove.softmax(x:narrow(3, 2, 6), 1) end,
    inputs = { {6, 5, 9} }, grad = true },
  { name = "sum dim 2 [3,70,5]", fn = function(x) return x:sum(2) end, inputs = { {3, 70, 5} }, grad = true },
}
