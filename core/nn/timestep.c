/* timestep.c — the sinusoidal timestep embedding of SANA (diffusers'
 * Timesteps with flip_sin_to_cos=True, downscale_freq_shift=0): [cos, sin]
 * of t·exp(−ln(max_period)·i/half). t is a conditioning input, never
 * differentiated, so nothing is recorded on the tape. */
#include "backend.h"

#include <math.h>

grove_tensor *grove_timestep_embedding(grove_tensor *t, int32_t dim, double max_period)
{
    const char *op = "timestep_embedding";
    if (!gv_check_f32(op, t)) return NULL;
    if (t->ndim != 1) return gv_fail_null("%s: t %s must be 1-d (B)", op, gv_shape_str(t));
    if (dim < 2) return gv_fail_null("%s: dim must be >= 2, got %d (t %s)", op, dim, gv_shape_str(t));
    if (!(max_period > 0) || isinf(max_period))
        return gv_fail_null("%s: max_period must be finite and > 0, got %g", op, max_period);
    int64_t shape[2] = {t->shape[0], dim};
    gv_op o;
    if (!gv_op_begin(&o, op, NULL, 1, &t)) return NULL;
    grove_tensor *out = gv_op_output(&o, 2, shape, GROVE_F32);
    GV_OP_CALL(&o, timestep_embedding, t->shape[0], t->data, t->stride[0], dim, max_period, out->data);
    return gv_op_end(&o);
}
