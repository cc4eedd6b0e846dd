-- Data parallel training, one process per GPU (docs/scale.md):
--
--   scripts/launch -n 4 build/grove recipes/train.lua --device cuda --dist
--
-- Each process trains the same model on its own batches; after backward
-- the gradients are averaged over the processes (NCCL all-reduce, then a
-- division by the world size), so every process takes the same optimizer
-- step and the replicas stay equal. Parameters start equal by a broadcast
-- from rank 0. The world comes from the environment the launcher sets:
-- RANK, WORLD_SIZE, GROVE_NCCL_ID_FILE (rank 0 writes NCCL's unique id
-- there), and CUDA_VISIBLE_DEVICES (one GPU per process, seen as device 0).
-- Without them, or with WORLD_SIZE=1, the world is this process alone and
-- every collective is the identity: the same training loop runs unchanged.
local ffi = require "ffi"

return function(grove)
  local C = grove.C
  local dist = {}
  grove.dist = dist

  local fail = grove.fail

  local function env_int(name)
    local v = os.getenv(name)
    if v == nil or v == "" then return nil end
    local n = tonumber(v)
    if not n or n % 1 ~= 0 then error("dist: " .. name .. "=" .. v .. " is not an integer", 3) end
    return n
  end

  -- dist.init{rank =, world_size =, id_file =} or from the environment.
  -- Returns rank, world size.
  function dist.init(opts)
    opts = opts or {}
    local rank = opts.rank or env_int("RANK") or 0
    local size = opts.world_size or env_int("WORLD_SIZE") or 1
    local id_file = opts.id_file or os.getenv("GROVE_NCCL_ID_FILE")
    if C.grove_dist_rank() == rank and C.grove_dist_world_size() == size then return rank, size end
    if C.grove_dist_init(rank, size, id_file) ~= 0 then fail(2) end
    return rank, size
  end

  function dist.rank() return tonumber(C.grove_dist_rank()) end
  function dist.world_size() return tonumber(C.grove_dist_world_size()) end
  function dist.is_main() return C.grove_dist_rank() == 0 end
  function dist.finalize()
    if C.grove_dist_finalize() ~= 0 then fail(2) end
  end

  local function c_list(tensors)
    local arr = ffi.new("grove_tensor *[?]", math.max(1, #tensors))
    for i, t in ipairs(tensors) do arr[i - 1] = t.p end
    return arr, #tensors
  end

  -- Averages the gradients of params (a model or a list) over the world, in
  -- place. Parameters without a gradient are skipped (every process must
  -- have the same ones: they ran the same model).
  function dist.all_reduce_grads(params)
    if type(params) == "table" and type(params.parameters) == "function" then params = params:parameters() end
    local grads = {}
    for _, p in ipairs(params) do
      local g = p.grad
      if g then grads[#grads + 1] = g end
    end
    if #grads == 0 then return end
    -- .grad hands out the tensor itself, so the reduction lands in place
    local arr, n = c_list(grads)
    if C.grove_dist_all_reduce_mean(n, arr) ~= 0 then fail(2) end
  end

  -- Each tensor (in place) takes the values of the root rank's.
  function dist.broadcast(tensors, root)
    local arr, n = c_list(tensors)
    if C.grove_dist_broadcast(n, arr, root or 0) ~= 0 then fail(2) end
  end

  -- Rank 0's parameters to every rank (a model or a list).
  function dist.broadcast_parameters(params, root)
    if type(params) == "table" and type(params.parameters) == "function" then params = params:parameters() end
    grove.no_grad(function() dist.broadcast(params, root) end)
  end
end
