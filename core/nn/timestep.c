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
    const gv_kernels *k = gv_kernels_for(op, t);
    if (!k) return NULL;
    int64_t shape[2] = {t->shape[0], dim};
    grove_tensor *out = gv_empty(2, shape, GROVE_F32, t->device);
    if (out && GV_KCALL(op, k, timestep_embedding, t->shape[0], t->data, t->stride[0], dim, max_period, out->data)) {
        grove_tensor_release(out);
        return NULL;
    }
    return out;
}
