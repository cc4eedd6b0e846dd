/* philox.c — Philox4x32-10 (Salmon et al., SC'11), the generator cuRAND implements. */
#include "cpu.h"
#include "parallel.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void gv_cpu_philox_block(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* As cuRAND: a 32-bit draw to a float in (0, 1]. */
static inline float to_unit(uint32_t x) { return (float)x * 2.3283064e-10f + 1.1641532e-10f; }

static void block_at(uint64_t seed, uint64_t c, uint32_t out[4])
{
    uint32_t ctr[4] = {(uint32_t)c, (uint32_t)(c >> 32), 0, 0};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    gv_cpu_philox_block(ctr, key, out);
}

void gv_cpu_philox_uniform(float *out, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi)
{
    int64_t blocks = (n + 3) / 4;
    GV_PARALLEL_FOR(n > 65536,
        for (int64_t b = 0; b < blocks; b++) {
            uint32_t r[4];
            block_at(seed, offset + (uint64_t)b, r);
            for (int k = 0; k < 4 && b * 4 + k < n; k++) out[b * 4 + k] = lo + (hi - lo) * to_unit(r[k]);
        });
}

void gv_cpu_philox_normal(float *out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std)
{
    int64_t blocks = (n + 3) / 4;
    GV_PARALLEL_FOR(n > 65536,
        for (int64_t b = 0; b < blocks; b++) {
            uint32_t r[4];
            float z[4];
            block_at(seed, offset + (uint64_t)b, r);
            for (int p = 0; p < 4; p += 2) {
                /* Box-Muller as cuRAND: radius from the first draw, angle from the second. */
                float u = to_unit(r[p]);
                float v = (float)r[p + 1] * 1.4629181e-09f + 7.3145904e-10f; /* 2π·2^-32, centred */
                float s = sqrtf(-2.0f * logf(u));
                z[p] = sinf(v) * s;
                z[p + 1] = cosf(v) * s;
            }
            for (int k = 0; k < 4 && b * 4 + k < n; k++) out[b * 4 + k] = mean + std * z[k];
        });
}
