/* dist_nccl.h — NCCL, loaded at first use, as core/dist.c needs it (kernels/cuda/nccl.c). */
#ifndef GROVE_KERNELS_CUDA_DIST_NCCL_H
#define GROVE_KERNELS_CUDA_DIST_NCCL_H

#include "internal.h"

/* Each returns 0, or -1 with the grove error set (naming op). */
grove_status gv_nccl_init(int32_t rank, int32_t world, const char *id_file);
/* In place on grove's stream, then waits for it. dtype is a grove_dtype
 * (f32 or u8 here). */
grove_status gv_nccl_all_reduce_sum(void *data, int64_t count, int32_t dtype);
grove_status gv_nccl_broadcast(void *data, int64_t count, int32_t dtype, int32_t root);
grove_status gv_nccl_finalize(void);

#endif
