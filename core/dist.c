/*
 * dist.c — data parallel training across processes, one GPU each: the
 * world (rank, size), gradient averaging and parameter broadcast. The
 * collectives are NCCL's (kernels/cuda/nccl.c, loaded at first use); a
 * world of one process — the default, and the only one a CPU or a build
 * without CUDA has — makes every collective the identity, so a training
 * loop calls them unconditionally.
 */
#include "backend.h"

#ifdef GROVE_HAVE_CUDA
#include "dist_nccl.h"
#include "gpu.h"
#endif

static int32_t world_rank = 0, world_size = 1;

int32_t grove_dist_rank(void) { return world_rank; }
int32_t grove_dist_world_size(void) { return world_size; }

grove_status grove_dist_init(int32_t rank, int32_t size, const char *id_file)
{
    if (size < 1 || rank < 0 || rank >= size)
        return gv_fail("dist: rank %d of world size %d is out of range (need 0 <= rank < size)", rank, size);
    if (world_size > 1) return gv_fail("dist: already initialised (rank %d of %d)", world_rank, world_size);
    if (size > 1) {
#ifdef GROVE_HAVE_CUDA
        if (!gv_gpu_require("dist") || gv_nccl_init(rank, size, id_file)) return -1;
#else
        GV_UNUSED(id_file);
        return gv_fail("dist: world size %d needs NCCL, and this build has no CUDA", size);
#endif
    }
    world_rank = rank;
    world_size = size;
    return 0;
}

grove_status grove_dist_finalize(void)
{
    grove_status st = 0;
#ifdef GROVE_HAVE_CUDA
    if (world_size > 1) st = gv_nccl_finalize();
#endif
    world_rank = 0;
    world_size = 1;
    return st;
}

static bool collective_ok(const char *op, const grove_tensor *t)
{
    if (!gv_check_live(op, t)) return false;
    if (!grove_tensor_is_contiguous(t)) {
        gv_fail("%s: %s is not contiguous", op, gv_shape_str(t));
        return false;
    }
    if (world_size > 1 && t->device != GROVE_CUDA) {
        gv_fail("%s: %s is on the %s; NCCL collectives need CUDA tensors", op, gv_shape_str(t),
                t->device == GROVE_CPU ? "cpu" : "wrong device");
        return false;
    }
    return true;
}

grove_status grove_dist_all_reduce_mean(int64_t n, grove_tensor *const *tensors)
{
    const char *op = "all_reduce";
    for (int64_t i = 0; i < n; i++) {
        grove_tensor *t = tensors[i];
        if (!t) continue;
        if (!gv_check_f32(op, t) || !collective_ok(op, t)) return -1;
    }
    if (world_size == 1) return 0; /* the mean over one process */
#ifdef GROVE_HAVE_CUDA
    for (int64_t i = 0; i < n; i++) {
        grove_tensor *t = tensors[i];
        if (!t) continue;
        int64_t count = grove_tensor_numel(t);
        if (count == 0) continue;
        if (gv_nccl_all_reduce_sum(t->data, count, GROVE_F32)) return -1;
        const gv_kernels *k = gv_kernels_for(op, t);
        if (!k || GV_KCALL(op, k, scale_, t->data, count, 1.0f / (float)world_size)) return -1;
    }
    return 0;
#else
    return gv_fail("%s: world size %d without CUDA", op, world_size);
#endif
}

grove_status grove_dist_broadcast(int64_t n, grove_tensor *const *tensors, int32_t root)
{
    const char *op = "broadcast";
    if (root < 0 || root >= world_size) return gv_fail("%s: root %d is not a rank of a world of %d", op, root, world_size);
    for (int64_t i = 0; i < n; i++)
        if (tensors[i] && !collective_ok(op, tensors[i])) return -1;
    if (world_size == 1) return 0;
#ifdef GROVE_HAVE_CUDA
    for (int64_t i = 0; i < n; i++) {
        grove_tensor *t = tensors[i];
        if (!t) continue;
        int64_t bytes = grove_tensor_numel(t) * grove_dtype_size(t->dtype);
        if (bytes > 0 && gv_nccl_broadcast(t->data, bytes, GROVE_U8, root)) return -1;
    }
    return 0;
#else
    return gv_fail("%s: world size %d without CUDA", op, world_size);
#endif
}
