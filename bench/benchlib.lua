-- benchlib.lua — what the Lua benchmarks share: a wall clock and a timing
-- loop. Loaded with `dofile` relative to the calling script (bench/ is not on
-- package.path).
local B = {}

-- Seconds on the monotonic wall clock (os.clock would add up CPU time over
-- all threads, which overstates a parallel op).
B.now = grove.now

-- Seconds per call of fn() in the steady state: warm-up calls (10 of them,
-- or fewer once 1 s has passed; an allocator needs a few calls to settle, and
-- glibc's, under PyTorch, needs several), then single timed calls until at
-- least min_runs of them and min_time seconds; the best call counts (the
-- least disturbed by whatever else the machine runs). bench/torch_ops.py
-- follows the same rule.
function B.best_time(fn, min_time, min_runs)
  min_time, min_runs = min_time or 0.3, min_runs or 5
  local w0 = B.now()
  for _ = 1, 10 do
    fn()
    if B.now() - w0 > 1.0 then break end
  end
  local best, total, runs = math.huge, 0, 0
  while runs < min_runs or total < min_time do
    local t0 = B.now()
    fn()
    local t = B.now() - t0
    total = total + t
    if t < best then best = t end
    runs = runs + 1
  end
  return best, runs
end

-- Microseconds per iteration of loop(n), which must run its body n times:
-- the best of reps timed loops, after a short warm-up that lets the JIT
-- compile the loop. Collects garbage before each loop so one loop's garbage
-- is not charged to the next, but the loop's own collection is charged to it.
function B.per_call_us(loop, n, reps)
  reps = reps or 3
  loop(math.min(n, 10000))
  local best = math.huge
  for _ = 1, reps do
    collectgarbage("collect")
    local t0 = B.now()
    loop(n)
    local t = B.now() - t0
    if t < best then best = t end
  end
  return best / n * 1e6
end

return B
