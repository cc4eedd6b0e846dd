/* came.c — CAME (Luo et al., ACL 2023) over one parameter: factored or full
 * second moment, RMS-clipped update, confidence-guided step from the
 * factored instability, decoupled weight decay; optionally with the first
 * moment held as blockwise 8-bit codes. */
#include "common.h"

#include <math.h>
#include <string.h>

static bool check_options(const char *op, const grove_came_options *o)
{
    if (!o) {
        gv_fail("%s: options are missing", op);
        return false;
    }
    if (!gv_optim_nonneg(op, "lr", o->lr) || !gv_optim_beta(op, "beta1", o->beta1) ||
        !gv_optim_beta(op, "beta2", o->beta2) || !gv_optim_beta(op, "beta3", o->beta3) ||
        !gv_optim_nonneg(op, "eps1", o->eps1) || !gv_optim_nonneg(op, "eps2", o->eps2) ||
        !gv_optim_nonneg(op, "weight_decay", o->weight_decay))
        return false;
    if (!(o->clip_threshold > 0 && isfinite(o->clip_threshold))) {
        gv_fail("%s: clip_threshold must be a finite number > 0, got %g", op, o->clip_threshold);
        return false;
    }
    return true;
}

/* Scales per block for a quantizer kind; 0 for an unknown kind. */
static int64_t scales_per_block(int32_t kind)
{
    return kind == GROVE_QUANT_DYNAMIC ? 1 : kind == GROVE_QUANT_AFFINE ? 2 : 0;
}

static grove_status dequantize(const char *op, const gv_kernels *k, const grove_came_state *s, int64_t n,
                               float *out)
{
    if (s->quant == GROVE_QUANT_DYNAMIC)
        return GV_KCALL(op, k, dequantize_dynamic, s->exp_avg_codes->data, s->exp_avg_scales->data, n, s->block, out);
    return GV_KCALL(op, k, dequantize_affine, s->exp_avg_codes->data, s->exp_avg_scales->data, n, s->block, out);
}

static grove_status quantize(const char *op, const gv_kernels *k, const grove_came_state *s, int64_t n,
                             const float *x)
{
    if (s->quant == GROVE_QUANT_DYNAMIC)
        return GV_KCALL(op, k, quantize_dynamic, x, n, s->block, s->exp_avg_codes->data, s->exp_avg_scales->data);
    return GV_KCALL(op, k, quantize_affine, x, n, s->block, s->exp_avg_codes->data, s->exp_avg_scales->data);
}

/* Checks the state; *rows, *cols receive the factored geometry (0 when full). */
static bool check_state(const char *op, const grove_came_state *s, const grove_tensor *param, int64_t n,
                        int64_t *rows, int64_t *cols)
{
    *rows = *cols = 0;
    if (!s) {
        gv_fail("%s: state is missing", op);
        return false;
    }
    if (s->exp_avg) {
        if (!gv_optim_state(op, "exp_avg", s->exp_avg, param, GROVE_F32, n)) return false;
    } else {
        int64_t per = scales_per_block(s->quant);
        if (!per) {
            gv_fail("%s: unknown quantizer kind %d", op, s->quant);
            return false;
        }
        if (s->block < 1) {
            gv_fail("%s: quantization block must be >= 1, got %lld", op, (long long)s->block);
            return false;
        }
        int64_t nblocks = (n + s->block - 1) / s->block;
        if (!gv_optim_state(op, "exp_avg_codes", s->exp_avg_codes, param, GROVE_U8, n) ||
            !gv_optim_state(op, "exp_avg_scales", s->exp_avg_scales, param, GROVE_F32, per * nblocks))
            return false;
    }
    if (s->exp_avg_sq) {
        if (s->exp_avg_sq_row || s->exp_avg_sq_col || s->exp_avg_res_row || s->exp_avg_res_col) {
            gv_fail("%s: state has both a full second moment and factored statistics", op);
            return false;
        }
        return gv_optim_state(op, "exp_avg_sq", s->exp_avg_sq, param, GROVE_F32, n);
    }
    if (!s->exp_avg_sq_row || !s->exp_avg_sq_col) {
        gv_fail("%s: state has neither exp_avg_sq nor exp_avg_sq_row/exp_avg_sq_col", op);
        return false;
    }
    int64_t r = grove_tensor_numel(s->exp_avg_sq_row), c = grove_tensor_numel(s->exp_avg_sq_col);
    if (r * c != n) {
        gv_fail("%s: factored statistics %s x %s do not cover parameter %s (%lld elements)", op,
                gv_shape_str(s->exp_avg_sq_row), gv_shape_str(s->exp_avg_sq_col), gv_shape_str(param), (long long)n);
        return false;
    }
    if (!gv_optim_state(op, "exp_avg_sq_row", s->exp_avg_sq_row, param, GROVE_F32, r) ||
        !gv_optim_state(op, "exp_avg_sq_col", s->exp_avg_sq_col, param, GROVE_F32, c) ||
        !gv_optim_state(op, "exp_avg_res_row", s->exp_avg_res_row, param, GROVE_F32, r) ||
        !gv_optim_state(op, "exp_avg_res_col", s->exp_avg_res_col, param, GROVE_F32, c))
        return false;
    *rows = r;
    *cols = c;
    return true;
}

grove_status grove_came_step(grove_tensor *param, grove_tensor *grad, const grove_came_state *state,
                             const grove_came_options *o)
{
    const char *op = "came";
    if (!check_options(op, o)) return -1;
    grove_tensor *g;
    const gv_kernels *k;
    if (!gv_optim_param(op, param, grad, &g, &k)) return -1;
    int64_t n = grove_tensor_numel(param), rows, cols;
    if (!check_state(op, state, param, n, &rows, &cols)) {
        grove_tensor_release(g);
        return -1;
    }
    if (n == 0) {
        grove_tensor_release(g);
        return 0;
    }
    gv_came_hyper h = {
        .lr = (float)o->lr, .decay = (float)(o->lr * o->weight_decay), .clip = (float)o->clip_threshold,
        .beta1 = (float)o->beta1, .one_minus_beta1 = (float)(1.0 - o->beta1),
        .beta2 = (float)o->beta2, .one_minus_beta2 = (float)(1.0 - o->beta2),
        .beta3 = (float)o->beta3, .one_minus_beta3 = (float)(1.0 - o->beta3),
        .eps1 = (float)o->eps1, .eps2 = (float)o->eps2,
    };
    /* Scratch: the dequantized first moment (8-bit state), then the band
     * sums and factors of the factored rule. */
    int64_t m_bytes = state->exp_avg ? 0 : n * (int64_t)sizeof(float);
    m_bytes = (m_bytes + 63) / 64 * 64;
    if (rows && !gv_kernel_ready(op, k, came_scratch_doubles)) {
        grove_tensor_release(g);
        return -1;
    }
    int64_t d_bytes = rows ? k->came_scratch_doubles(rows, cols) * (int64_t)sizeof(double) : 0;
    int64_t f_bytes = rows ? (rows + cols) * (int64_t)sizeof(float) : 0;
    grove_storage *scratch = NULL;
    if (m_bytes + d_bytes + f_bytes > 0) {
        /* kernel data: on the parameter's device */
        scratch = gv_storage_new(m_bytes + d_bytes + f_bytes, param->device);
        if (!scratch) {
            grove_tensor_release(g);
            return -1;
        }
    }
    char *base = scratch ? scratch->data : NULL;
    float *m = state->exp_avg ? state->exp_avg->data : (float *)base;
    grove_status st = state->exp_avg ? 0 : dequantize(op, k, state, n, m);
    if (st == 0 && rows)
        st = GV_KCALL(op, k, came_factored, param->data, g->data, m, state->exp_avg_sq_row->data,
                      state->exp_avg_sq_col->data, state->exp_avg_res_row->data, state->exp_avg_res_col->data, rows,
                      cols, &h, (double *)(base + m_bytes), (float *)(base + m_bytes + d_bytes));
    else if (st == 0)
        st = GV_KCALL(op, k, came_full, param->data, g->data, m, state->exp_avg_sq->data, n, &h);
    if (st == 0 && !state->exp_avg) st = quantize(op, k, state, n, m);
    gv_storage_release(scratch);
    grove_tensor_release(g);
    return st;
}
