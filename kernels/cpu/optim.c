/* optim.c — CPU kernels for SGD, AdamW and CAME updates and for blockwise
 * 8-bit quantization (contracts in kernels/kernels.def). */
#include "cpu.h"
#include "optim_rules.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Parallel loops only pay off above this many elements. */
#define PAR_WORK 32768

/* ---- deterministic sums ----------------------------------------------------
 * A full sum splits [0, n) into at most MAX_CHUNKS pieces whose bounds
 * depend only on n; each piece is summed by one thread and the pieces are
 * added in order, so every thread count gives the same bits. */
enum { MAX_CHUNKS = 256, MIN_CHUNK = 4096 };

static int64_t chunk_size(int64_t n)
{
    int64_t c = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    return c < MIN_CHUNK ? MIN_CHUNK : c;
}

void gv_cpu_sum_squares_group(int32_t count, const float *const *xs, const int64_t *ns, double *sums)
{
    for (int32_t i = 0; i < count; i++) sums[i] = gv_cpu_sum_squares(xs[i], ns[i]);
}

double gv_cpu_sum_squares(const float *x, int64_t n)
{
    int64_t chunk = chunk_size(n), nchunks = (n + chunk - 1) / chunk;
    double part[MAX_CHUNKS];
#pragma omp parallel for schedule(static) if (n > PAR_WORK && nchunks > 1)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t hi = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        double s = 0;
        for (int64_t i = c * chunk; i < hi; i++) s += (double)x[i] * (double)x[i];
        part[c] = s;
    }
    double s = 0;
    for (int64_t c = 0; c < nchunks; c++) s += part[c];
    return s;
}

void gv_cpu_scale_group(int32_t count, float *const *xs, const int64_t *ns, float s)
{
    for (int32_t i = 0; i < count; i++) gv_cpu_scale_(xs[i], ns[i], s);
}

void gv_cpu_scale_(float *x, int64_t n, float s)
{
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

/* ---- SGD and AdamW ------------------------------------------------------- */

void gv_cpu_sgd(float *p, const float *g, float *buf, int64_t n, float lr, float momentum,
                float one_minus_dampening, float weight_decay, int nesterov, int first)
{
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t i = 0; i < n; i++)
        p[i] = gv_rule_sgd(p[i], g[i], buf ? buf + i : NULL, lr, momentum, one_minus_dampening, weight_decay,
                           nesterov, first);
}

void gv_cpu_adamw(float *p, const float *g, float *m, float *v, int64_t n, float keep, float beta1,
                  float one_minus_beta1, float beta2, float one_minus_beta2, float eps, float step_size,
                  float bc2_sqrt)
{
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t i = 0; i < n; i++)
        p[i] = gv_rule_adamw(p[i], g[i], m + i, v + i, keep, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                             step_size, bc2_sqrt);
}

void gv_cpu_adamw_group(int32_t count, const gv_adamw_task *tasks, float keep, float beta1, float one_minus_beta1,
                        float beta2, float one_minus_beta2, float eps)
{
    for (int32_t t = 0; t < count; t++)
        gv_cpu_adamw(tasks[t].p, tasks[t].g, tasks[t].m, tasks[t].v, tasks[t].n, keep, beta1, one_minus_beta1, beta2,
                     one_minus_beta2, eps, tasks[t].step_size, tasks[t].bc2_sqrt);
}

/* ---- CAME, full second moment ------------------------------------------- */

void gv_cpu_came_full(float *p, const float *g, float *m, float *v, int64_t n, const gv_came_hyper *h)
{
    int64_t chunk = chunk_size(n), nchunks = (n + chunk - 1) / chunk;
    double part[MAX_CHUNKS];
    const float b2 = h->beta2, omb2 = h->one_minus_beta2, eps1 = h->eps1;
    /* v ← β2·v + (1 − β2)(g² + ε1), and Σ u² for u = g/√v */
#pragma omp parallel for schedule(static) if (n > PAR_WORK && nchunks > 1)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t hi = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        double s = 0;
        for (int64_t i = c * chunk; i < hi; i++) {
            float vi = gv_rule_blend(v[i], b2, omb2, gv_rule_came_sq(g[i], eps1));
            v[i] = vi;
            float u = (1.0f / sqrtf(vi)) * g[i];
            s += (double)u * (double)u;
        }
        part[c] = s;
    }
    double ss = 0;
    for (int64_t c = 0; c < nchunks; c++) ss += part[c];
    const float denom = gv_rule_clip_divisor(ss, n, h->clip);
    const float b1 = h->beta1, omb1 = h->one_minus_beta1, lr = h->lr, decay = h->decay;
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t i = 0; i < n; i++) {
        float u = ((1.0f / sqrtf(v[i])) * g[i]) / denom;
        float mi = gv_rule_blend(m[i], b1, omb1, u);
        m[i] = mi;
        p[i] = gv_rule_came_step(p[i], decay, mi, lr);
    }
}

/* ---- CAME, factored statistics -------------------------------------------
 * Row sums belong to one thread each. Column sums are built from partial
 * sums over fixed bands of ROW_BAND rows (each band one thread), added band
 * by band in order; scratch holds the band partials, then the row and
 * column sums. */
enum { ROW_BAND = 16, COL_BLOCK = 256 };

int64_t gv_cpu_came_scratch_doubles(int64_t rows, int64_t cols)
{
    int64_t bands = (rows + ROW_BAND - 1) / ROW_BAND;
    return bands * cols + rows + cols;
}

/* csum[j] = Σ_band part[band][j], in band order. */
static void add_bands(const double *part, int64_t bands, int64_t cols, double *csum)
{
    int64_t nblocks = (cols + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (bands * cols > PAR_WORK && nblocks > 1)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t j0 = b * COL_BLOCK, j1 = j0 + COL_BLOCK < cols ? j0 + COL_BLOCK : cols;
        for (int64_t j = j0; j < j1; j++) csum[j] = 0;
        for (int64_t k = 0; k < bands; k++) {
            const double *pk = part + k * cols;
            for (int64_t j = j0; j < j1; j++) csum[j] += pk[j];
        }
    }
}

/* row ← β·row + (1 − β)·rsum/cols, col likewise with csum/rows; then the
 * factors rsqrt(row_i / mean(row)) and rsqrt(col_j) of CAME's
 * _approx_sq_grad. */
static void blend_and_factor(float *row, float *col, const double *rsum, const double *csum, int64_t rows,
                             int64_t cols, float beta, float one_minus_beta, float *fa, float *fb)
{
    double mean_sum = 0;
    for (int64_t i = 0; i < rows; i++) {
        row[i] = gv_rule_blend(row[i], beta, one_minus_beta, (float)(rsum[i] / (double)cols));
        mean_sum += row[i];
    }
    for (int64_t j = 0; j < cols; j++)
        col[j] = gv_rule_blend(col[j], beta, one_minus_beta, (float)(csum[j] / (double)rows));
    float mean = (float)(mean_sum / (double)rows);
    for (int64_t i = 0; i < rows; i++) fa[i] = 1.0f / sqrtf(row[i] / mean);
    for (int64_t j = 0; j < cols; j++) fb[j] = 1.0f / sqrtf(col[j]);
}

void gv_cpu_came_factored(float *p, const float *g, float *m, float *sq_row, float *sq_col, float *res_row,
                          float *res_col, int64_t rows, int64_t cols, const gv_came_hyper *h, double *scratch,
                          float *factors)
{
    const int64_t n = rows * cols, bands = (rows + ROW_BAND - 1) / ROW_BAND;
    double *part = scratch, *rsum = scratch + bands * cols, *csum = rsum + rows;
    float *fa = factors, *fb = factors + rows;

    /* 1. row and column means of g² + ε1 into the second-moment statistics */
    const float eps1 = h->eps1;
#pragma omp parallel for schedule(static) if (n > PAR_WORK && bands > 1)
    for (int64_t k = 0; k < bands; k++) {
        double *pk = part + k * cols;
        memset(pk, 0, (size_t)cols * sizeof *pk);
        int64_t i1 = (k + 1) * ROW_BAND < rows ? (k + 1) * ROW_BAND : rows;
        for (int64_t i = k * ROW_BAND; i < i1; i++) {
            const float *gi = g + i * cols;
            double rs = 0;
            for (int64_t j = 0; j < cols; j++) {
                float q = gv_rule_came_sq(gi[j], eps1);
                rs += q;
                pk[j] += q;
            }
            rsum[i] = rs;
        }
    }
    add_bands(part, bands, cols, csum);
    blend_and_factor(sq_row, sq_col, rsum, csum, rows, cols, h->beta2, h->one_minus_beta2, fa, fb);

    /* 2. RMS of u = (a_i·b_j)·g, per-row partial sums added in row order */
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t i = 0; i < rows; i++) {
        const float *gi = g + i * cols;
        const float a = fa[i];
        double s = 0;
        for (int64_t j = 0; j < cols; j++) {
            float u = (a * fb[j]) * gi[j];
            s += (double)u * (double)u;
        }
        rsum[i] = s;
    }
    double ss = 0;
    for (int64_t i = 0; i < rows; i++) ss += rsum[i];
    const float denom = gv_rule_clip_divisor(ss, n, h->clip);

    /* 3. first moment from the clipped update û, and the instability
     *    (û − m)² + ε2 summed by rows and columns */
    const float b1 = h->beta1, omb1 = h->one_minus_beta1, eps2 = h->eps2;
#pragma omp parallel for schedule(static) if (n > PAR_WORK && bands > 1)
    for (int64_t k = 0; k < bands; k++) {
        double *pk = part + k * cols;
        memset(pk, 0, (size_t)cols * sizeof *pk);
        int64_t i1 = (k + 1) * ROW_BAND < rows ? (k + 1) * ROW_BAND : rows;
        for (int64_t i = k * ROW_BAND; i < i1; i++) {
            const float *gi = g + i * cols;
            float *mi = m + i * cols;
            const float a = fa[i];
            double rs = 0;
            for (int64_t j = 0; j < cols; j++) {
                float u = ((a * fb[j]) * gi[j]) / denom;
                float mm = gv_rule_blend(mi[j], b1, omb1, u);
                mi[j] = mm;
                float r = gv_rule_came_instability(u, mm, eps2);
                rs += r;
                pk[j] += r;
            }
            rsum[i] = rs;
        }
    }
    add_bands(part, bands, cols, csum);
    blend_and_factor(res_row, res_col, rsum, csum, rows, cols, h->beta3, h->one_minus_beta3, fa, fb);

    /* 4. p ← p − lr·wd·p − lr·(a'_i·b'_j)·m */
    const float lr = h->lr, decay = h->decay;
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t i = 0; i < rows; i++) {
        float *pi = p + i * cols;
        const float *mi = m + i * cols;
        const float a = fa[i];
        for (int64_t j = 0; j < cols; j++) pi[j] = gv_rule_came_step(pi[j], decay, (a * fb[j]) * mi[j], lr);
    }
}

/* ---- blockwise 8-bit quantization ----------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* bitsandbytes' signed dynamic map (create_dynamic_map(signed=True), 7
 * exponent bits): for decades 10^(i−6), i = 0..6, the midpoints of 2^i + 1
 * evenly spaced points of [0.1, 1], with both signs; plus 0 and 1. Computed
 * in double, rounded once to float, so every machine builds the same map. */
void gv_cpu_dynamic_map(float map[256])
{
    static const double decade[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
    int k = 0;
    for (int i = 0; i < 7; i++) {
        int pts = (1 << i) + 1;
        for (int j = 0; j + 1 < pts; j++) {
            double lo = 0.1 + 0.9 * (double)j / (double)(pts - 1);
            double hi = 0.1 + 0.9 * (double)(j + 1) / (double)(pts - 1);
            double v = decade[i] * 0.5 * (lo + hi);
            map[k++] = (float)v;
            map[k++] = (float)-v;
        }
    }
    map[k++] = 0.0f;
    map[k++] = 1.0f;
    qsort(map, 256, sizeof map[0], cmp_float);
}

/* Rounding to the nearest map value: the code is the number of midpoints
 * (between neighbouring map values) lying below x. A binary search is a
 * chain of 8 dependent loads; instead, x's float bits, made monotonic,
 * index a table of the code at the start of each of 16384 ranges (6
 * mantissa bits per binade), and a scan of fixed length, without branches,
 * covers the midpoints inside one range (the map's finest spacing, 0.9/64
 * near 1, is wider than a range there, 1/128). The tables are built once. */
enum { KEY_SHIFT = 17 };

typedef struct {
    float map[256];
    float mid[256];                 /* mid[255] = +inf stops the scan */
    uint32_t key_lo;                /* key of −1 */
    int32_t nbuckets;
    int32_t max_scan;               /* most midpoints inside one range */
    int32_t start[16384];           /* int32: vector gathers load 32-bit words */
} dyn_tables;

static dyn_tables dyn;
static pthread_once_t dyn_once = PTHREAD_ONCE_INIT;

static inline uint32_t float_key(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float key_float(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static void build_dyn_tables(void)
{
    gv_cpu_dynamic_map(dyn.map);
    for (int k = 0; k < 255; k++) dyn.mid[k] = 0.5f * (dyn.map[k] + dyn.map[k + 1]);
    dyn.mid[255] = INFINITY;
    dyn.key_lo = float_key(-1.0f);
    dyn.nbuckets = (int32_t)(((float_key(1.0f) - dyn.key_lo) >> KEY_SHIFT) + 1);
    int32_t cap = (int32_t)(sizeof dyn.start / sizeof dyn.start[0]);
    if (dyn.nbuckets > cap) dyn.nbuckets = cap; /* not reached: 16257 ranges */
    for (int32_t b = 0; b < dyn.nbuckets; b++) {
        float v = key_float(dyn.key_lo + ((uint32_t)b << KEY_SHIFT));
        int c = 0;
        while (c < 255 && v > dyn.mid[c]) c++;
        dyn.start[b] = c;
    }
    /* midpoints between one range's start and the next one's */
    dyn.max_scan = 1;
    for (int32_t b = 0; b + 1 < dyn.nbuckets; b++)
        if (dyn.start[b + 1] - dyn.start[b] > dyn.max_scan) dyn.max_scan = dyn.start[b + 1] - dyn.start[b];
}

/* Codes of len values in [−1, 1] (NaN gives some code, never a fault):
 * written without branches so that the loop vectorises with gathers. */
static void nearest_codes(const float *v, int64_t len, uint8_t *codes)
{
    const uint32_t key_lo = dyn.key_lo;
    const int32_t last = dyn.nbuckets - 1;
    const int32_t *start = dyn.start;
    const float *mid = dyn.mid;
#pragma omp simd
    for (int64_t j = 0; j < len; j++) {
        union { float f; uint32_t u; } w = {.f = v[j]};
        uint32_t k = (w.u & 0x80000000u) ? ~w.u : (w.u | 0x80000000u);
        int64_t b = ((int64_t)k - (int64_t)key_lo) >> KEY_SHIFT;
        b = b < 0 ? 0 : b > last ? last : b;
        int32_t c = start[b];
        c += v[j] > mid[c];
        codes[j] = (uint8_t)c;
    }
    /* with this map one comparison always suffices (max_scan is 1) */
    for (int t = 1; t < dyn.max_scan; t++)
        for (int64_t j = 0; j < len; j++) codes[j] = (uint8_t)(codes[j] + (v[j] > mid[codes[j]]));
}

/* Each block's scale, then its normalised values (a vectorised division)
 * in a buffer, then their codes. */
enum { QBUF = 1024 };

void gv_cpu_quantize_dynamic(const float *x, int64_t n, int64_t block, uint8_t *codes, float *absmax)
{
    pthread_once(&dyn_once, build_dyn_tables);
    int64_t nblocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t i0 = b * block, i1 = i0 + block < n ? i0 + block : n;
        float a = 0;
#pragma omp simd reduction(max : a)
        for (int64_t i = i0; i < i1; i++) a = fabsf(x[i]) > a ? fabsf(x[i]) : a;
        absmax[b] = a;
        float buf[QBUF];
        for (int64_t j0 = i0; j0 < i1; j0 += QBUF) {
            int64_t len = i1 - j0 < QBUF ? i1 - j0 : QBUF;
            if (a > 0) {
#pragma omp simd
                for (int64_t j = 0; j < len; j++) buf[j] = x[j0 + j] / a;
            } else {
                memset(buf, 0, (size_t)len * sizeof buf[0]);
            }
            nearest_codes(buf, len, codes + j0);
        }
    }
}

void gv_cpu_dequantize_dynamic(const uint8_t *codes, const float *absmax, int64_t n, int64_t block, float *out)
{
    pthread_once(&dyn_once, build_dyn_tables);
    const float *map = dyn.map;
    int64_t nblocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t i0 = b * block, i1 = i0 + block < n ? i0 + block : n;
        const float a = absmax[b];
        for (int64_t i = i0; i < i1; i++) out[i] = map[codes[i]] * a;
    }
}

void gv_cpu_quantize_affine(const float *x, int64_t n, int64_t block, uint8_t *codes, float *min_step)
{
    int64_t nblocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t i0 = b * block, i1 = i0 + block < n ? i0 + block : n;
        float lo = x[i0], hi = x[i0];
#pragma omp simd reduction(min : lo) reduction(max : hi)
        for (int64_t i = i0; i < i1; i++) {
            lo = x[i] < lo ? x[i] : lo;
            hi = x[i] > hi ? x[i] : hi;
        }
        float step = (hi - lo) / 255.0f;
        min_step[2 * b] = lo;
        min_step[2 * b + 1] = step;
        if (!(step > 0)) {
            memset(codes + i0, 0, (size_t)(i1 - i0));
            continue;
        }
        /* round half up: x ≥ lo, so truncating v + 0.5 is floor; the
         * clamps also send a NaN to 0 before the conversion */
#pragma omp simd
        for (int64_t i = i0; i < i1; i++) {
            float v = (x[i] - lo) / step + 0.5f;
            v = v >= 0.0f ? v : 0.0f;
            v = v <= 255.0f ? v : 255.0f;
            codes[i] = (uint8_t)(int32_t)v;
        }
    }
}

void gv_cpu_dequantize_affine(const uint8_t *codes, const float *min_step, int64_t n, int64_t block, float *out)
{
    int64_t nblocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static) if (n > PAR_WORK)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t i0 = b * block, i1 = i0 + block < n ? i0 + block : n;
        const float lo = min_step[2 * b], step = min_step[2 * b + 1];
#pragma omp simd
        for (int64_t i = i0; i < i1; i++) out[i] = lo + (float)codes[i] * step;
    }
}
