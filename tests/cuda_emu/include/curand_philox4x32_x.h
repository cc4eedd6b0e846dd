/* curand_philox4x32_x.h (emulator) — Philox4x32-10 as Salmon et al. (SC'11)
 * define it and cuRAND implements it: ten rounds, each multiplying words 0
 * and 2 by the round constants and mixing in the key, the key bumped by the
 * Weyl constants between rounds. */
#ifndef GROVE_CUDA_EMU_CURAND_PHILOX_H
#define GROVE_CUDA_EMU_CURAND_PHILOX_H

#include "cuda_runtime.h"

#include <stdint.h>

static inline uint4 gv_emu_philox_round(uint4 c, uint2 k)
{
    const uint64_t p0 = (uint64_t)0xD2511F53u * c.x, p1 = (uint64_t)0xCD9E8D57u * c.z;
    uint4 r;
    r.x = (uint32_t)(p1 >> 32) ^ c.y ^ k.x;
    r.y = (uint32_t)p1;
    r.z = (uint32_t)(p0 >> 32) ^ c.w ^ k.y;
    r.w = (uint32_t)p0;
    return r;
}

static inline uint4 curand_Philox4x32_10(uint4 c, uint2 k)
{
    for (int i = 0; i < 10; i++) {
        if (i > 0) {
            k.x += 0x9E3779B9u;
            k.y += 0xBB67AE85u;
        }
        c = gv_emu_philox_round(c, k);
    }
    return c;
}

#endif
