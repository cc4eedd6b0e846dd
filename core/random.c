/* random.c — the default generator. The Philox arithmetic is in kernels/cpu/philox.c. */
#include "internal.h"
#include "../kernels/cpu/cpu.h"

static _Thread_local grove_generator default_gen = {0x853c49e6748fea9bull, 0};

grove_generator *grove_default_generator(void) { return &default_gen; }

void grove_manual_seed(uint64_t seed)
{
    default_gen.seed = seed;
    default_gen.offset = 0;
}

void grove_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
    gv_cpu_philox_block(counter, key, out);
}
