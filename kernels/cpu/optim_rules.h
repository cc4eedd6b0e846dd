/*
 * optim_rules.h — the per-element arithmetic of the optimizer updates,
 * written once for the CPU kernels (optim.c) and their CUDA twins
 * (kernels/cuda/optim.cu): one definition, so the two devices round the
 * same operations in the same order. How the elements are visited and how
 * sums are split belongs to each kernel.
 */
#ifndef GROVE_KERNELS_CPU_OPTIM_RULES_H
#define GROVE_KERNELS_CPU_OPTIM_RULES_H

#include <math.h>
#include <stdint.h>

#include "hostdev.h"

/* avg·β + (1 − β)·x: every moving average below (1 − β arrives precomputed). */
static inline GV_HD float gv_rule_blend(float avg, float beta, float one_minus_beta, float x)
{
    return avg * beta + one_minus_beta * x;
}

/* torch.optim.SGD on one element; *buf is the momentum (buf NULL: none). Returns the new p. */
static inline GV_HD float gv_rule_sgd(float p, float g, float *buf, float lr, float momentum,
                                      float one_minus_dampening, float weight_decay, int nesterov, int first)
{
    float d = g;
    if (weight_decay != 0.0f) d = d + weight_decay * p;
    if (buf) {
        float b = first ? d : gv_rule_blend(*buf, momentum, one_minus_dampening, d);
        *buf = b;
        d = nesterov ? d + momentum * b : b;
    }
    return p - lr * d;
}

/* torch.optim.AdamW on one element, updating *m and *v. Returns the new p. */
static inline GV_HD float gv_rule_adamw(float p, float g, float *m, float *v, float keep, float beta1,
                                        float one_minus_beta1, float beta2, float one_minus_beta2, float eps,
                                        float step_size, float bc2_sqrt)
{
    float mi = gv_rule_blend(*m, beta1, one_minus_beta1, g);
    float vi = gv_rule_blend(*v, beta2, one_minus_beta2, g * g);
    *m = mi;
    *v = vi;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    return p * keep - step_size * (mi / denom);
}

/* CAME's second-moment statistic g² + ε1. */
static inline GV_HD float gv_rule_came_sq(float g, float eps1) { return g * g + eps1; }

/* CAME's instability statistic (û − m)² + ε2. */
static inline GV_HD float gv_rule_came_instability(float u, float m, float eps2)
{
    float d = u - m;
    return d * d + eps2;
}

/* The clip divisor max(1, RMS(u)/clip) from Σu² over n values. */
static inline GV_HD float gv_rule_clip_divisor(double sum_sq, int64_t n, float clip)
{
    double rms = sqrt(sum_sq / (double)n);
    double d = rms / (double)clip;
    return d > 1.0 ? (float)d : 1.0f;
}

/* p − decay·p − step·lr (decay = lr·weight_decay), CAME's parameter update. */
static inline GV_HD float gv_rule_came_step(float p, float decay, float step, float lr)
{
    if (decay != 0.0f) p = p + (-decay) * p;
    return p - step * lr;
}

#endif
