/* tensor.c — tensor objects: creation, references, geometry, argument checks. */
#include "gpu.h"
#include "../kernels/cpu/cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int64_t gv_numel_of(int32_t ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int32_t i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

void gv_contiguous_strides(int32_t ndim, const int64_t *shape, int64_t *stride)
{
    int64_t s = 1;
    for (int32_t i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

bool gv_shape_ok(const char *op, int32_t ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > GROVE_MAX_DIMS) {
        gv_fail("%s: %d dimensions requested; tensors have at most %d", op, ndim, GROVE_MAX_DIMS);
        return false;
    }
    if (ndim > 0 && !shape) {
        gv_fail("%s: missing shape", op);
        return false;
    }
    /* The bound is on the product of the non-zero sizes, not only on the
     * element count: a tensor with no elements ([0, 2^62, 2^62]) would
     * otherwise be accepted, and its strides overflow. */
    int64_t n = 1;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            gv_fail("%s: negative size %lld in shape %s", op, (long long)shape[i], gv_dims_str(ndim, shape));
            return false;
        }
        if (shape[i] > 0 && n > ((int64_t)1 << 50) / shape[i]) {
            gv_fail("%s: shape %s has too many elements", op, gv_dims_str(ndim, shape));
            return false;
        }
        if (shape[i] > 0) n *= shape[i];
    }
    return true;
}

static grove_tensor *tensor_object(void)
{
    grove_tensor *t = calloc(1, sizeof *t);
    if (!t) return gv_fail_null("out of memory: cannot allocate a tensor object");
    t->refcount = 1;
    t->is_leaf = 1;
    gv_count_tensor(1);
    return t;
}

grove_tensor *gv_empty(int32_t ndim, const int64_t *shape, int32_t dtype, int32_t device)
{
    if (dtype < 0 || dtype >= GROVE_DTYPE_COUNT) return gv_fail_null("empty: unknown dtype %d", dtype);
    if (!gv_shape_ok("empty", ndim, shape)) return NULL;
    int64_t n = gv_numel_of(ndim, shape);
    grove_storage *s = gv_storage_new(n * grove_dtype_size(dtype), device);
    if (!s) return NULL;
    grove_tensor *t = tensor_object();
    if (!t) {
        gv_storage_release(s);
        return NULL;
    }
    t->storage = s;
    t->data = s->data;
    t->ndim = ndim;
    t->dtype = dtype;
    t->device = device;
    if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    gv_contiguous_strides(ndim, shape, t->stride);
    return t;
}

grove_tensor *gv_empty_like(const grove_tensor *t)
{
    return gv_empty(t->ndim, t->shape, t->dtype, t->device);
}

grove_tensor *gv_alias(const grove_tensor *t, int32_t ndim, const int64_t *shape,
                       const int64_t *stride, int64_t offset)
{
    grove_tensor *v = tensor_object();
    if (!v) return NULL;
    gv_storage_retain(t->storage);
    v->storage = t->storage;
    v->offset = offset;
    v->data = (char *)t->storage->data + offset * grove_dtype_size(t->dtype);
    v->ndim = ndim;
    v->dtype = t->dtype;
    v->device = t->device;
    if (ndim) {
        memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
        memcpy(v->stride, stride, (size_t)ndim * sizeof *stride);
    }
    return v;
}

/* gv_empty for a public constructor: an allocation failure names it. */
static grove_tensor *empty_for(const char *op, int32_t ndim, const int64_t *shape, int32_t dtype, int32_t device)
{
    grove_tensor *t = gv_empty(ndim, shape, dtype, device);
    if (!t) gv_name_oom(op);
    return t;
}

grove_tensor *grove_tensor_empty(int32_t ndim, const int64_t *shape, int32_t dtype, int32_t device)
{
    return empty_for("empty", ndim, shape, dtype, device);
}

static grove_tensor *full_for(const char *op, int32_t ndim, const int64_t *shape, double value, int32_t dtype,
                              int32_t device)
{
    grove_tensor *t = empty_for(op, ndim, shape, dtype, device);
    if (t && grove_fill_(t, value) != 0) {
        grove_tensor_release(t);
        return NULL;
    }
    return t;
}

grove_tensor *grove_tensor_full(int32_t ndim, const int64_t *shape, double value, int32_t dtype, int32_t device)
{
    return full_for("full", ndim, shape, value, dtype, device);
}

grove_tensor *grove_tensor_zeros(int32_t ndim, const int64_t *shape, int32_t dtype, int32_t device)
{
    return full_for("zeros", ndim, shape, 0.0, dtype, device);
}

grove_tensor *grove_tensor_from_doubles(int32_t ndim, const int64_t *shape, int32_t dtype,
                                        const double *src, int64_t count)
{
    if (!gv_shape_ok("tensor", ndim, shape)) return NULL;
    int64_t n = gv_numel_of(ndim, shape);
    if (count != n)
        return gv_fail_null("tensor: %lld values given for shape %s (%lld elements)", (long long)count,
                            gv_dims_str(ndim, shape), (long long)n);
    grove_tensor *t = empty_for("tensor", ndim, shape, dtype, GROVE_CPU);
    if (!t) return NULL;
    for (int64_t i = 0; i < n; i++) gv_store_double(t->data, dtype, i, src[i]);
    return t;
}

grove_tensor *grove_tensor_from_buffer(int32_t ndim, const int64_t *shape, int32_t dtype,
                                       const void *src, int32_t src_dtype, int64_t count)
{
    if (src_dtype < 0 || src_dtype >= GROVE_DTYPE_COUNT) return gv_fail_null("tensor: unknown dtype %d", src_dtype);
    if (!gv_shape_ok("tensor", ndim, shape)) return NULL;
    int64_t n = gv_numel_of(ndim, shape);
    if (count != n)
        return gv_fail_null("tensor: %lld values given for shape %s (%lld elements)", (long long)count,
                            gv_dims_str(ndim, shape), (long long)n);
    if (n > 0 && !src) return gv_fail_null("tensor: NULL source buffer");
    grove_tensor *t = empty_for("tensor", ndim, shape, dtype, GROVE_CPU);
    if (!t) return NULL;
    if (dtype == src_dtype) memcpy(t->data, src, (size_t)(n * grove_dtype_size(dtype)));
    else
        for (int64_t i = 0; i < n; i++) gv_store_double(t->data, dtype, i, gv_load_as_double(src, src_dtype, i));
    return t;
}

grove_tensor *grove_arange(double start, double end, double step, int32_t dtype)
{
    if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step))
        return gv_fail_null("arange: start %g, end %g, step %g do not make a finite range", start, end, step);
    double count = ceil((end - start) / step);
    if (count < 0) count = 0;
    if (count > 1e12) return gv_fail_null("arange: %g elements is too many", count);
    int64_t n = (int64_t)count;
    grove_tensor *t = empty_for("arange", 1, &n, dtype, GROVE_CPU);
    if (!t) return NULL;
    for (int64_t i = 0; i < n; i++) gv_store_double(t->data, dtype, i, start + (double)i * step);
    return t;
}

grove_tensor *grove_linspace(double start, double end, int64_t steps, int32_t dtype)
{
    if (steps < 0) return gv_fail_null("linspace: negative number of steps %lld", (long long)steps);
    grove_tensor *t = empty_for("linspace", 1, &steps, dtype, GROVE_CPU);
    if (!t) return NULL;
    for (int64_t i = 0; i < steps; i++)
        gv_store_double(t->data, dtype, i, steps == 1 ? start : start + (end - start) * (double)i / (double)(steps - 1));
    return t;
}

grove_tensor *grove_eye(int64_t n, int64_t m, int32_t dtype)
{
    int64_t shape[2] = {n, m};
    grove_tensor *t = grove_tensor_zeros(2, shape, dtype, GROVE_CPU);
    if (!t) return NULL;
    for (int64_t i = 0; i < n && i < m; i++) gv_store_double(t->data, dtype, i * m + i, 1.0);
    return t;
}

void grove_tensor_retain(grove_tensor *t)
{
    if (t) t->refcount++;
}

void grove_tensor_release(grove_tensor *t)
{
    if (!t || --t->refcount > 0) return;
    gv_storage_release(t->storage);
    if (t->grad) grove_tensor_release(t->grad);
    if (t->grad_fn) gv_node_release(t->grad_fn);
    gv_count_tensor(-1);
    free(t);
}

void grove_handle_release(grove_handle h) { grove_tensor_release(h.p); }

void grove_tensor_free_data(grove_tensor *t)
{
    if (!t) return;
    gv_storage_release(t->storage);
    t->storage = NULL;
    t->data = NULL;
    if (t->grad) grove_tensor_release(t->grad);
    t->grad = NULL;
    if (t->grad_fn) gv_node_release(t->grad_fn);
    t->grad_fn = NULL;
}

bool grove_tensor_is_freed(const grove_tensor *t) { return !t || !t->storage; }

int64_t grove_tensor_numel(const grove_tensor *t) { return t ? gv_numel_of(t->ndim, t->shape) : 0; }

bool grove_tensor_is_contiguous(const grove_tensor *t)
{
    int64_t s = 1;
    for (int32_t i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool gv_check_live(const char *op, const grove_tensor *t)
{
    if (!t) {
        gv_fail("%s: expected a tensor, got nil", op);
        return false;
    }
    if (!t->storage) {
        gv_fail("%s: use of a freed tensor (shape %s)", op, gv_shape_str(t));
        return false;
    }
    return true;
}

bool gv_check_f32(const char *op, const grove_tensor *t)
{
    if (!gv_check_live(op, t)) return false;
    if (t->dtype != GROVE_F32) {
        gv_fail("%s: expected an f32 tensor, got %s %s (convert with :float())", op, grove_dtype_name(t->dtype),
                gv_shape_str(t));
        return false;
    }
    return true;
}

bool gv_check_same_device(const char *op, const grove_tensor *a, const grove_tensor *b)
{
    if (a->device != b->device) {
        gv_fail("%s: tensors on different devices (%s and %s): %s on %s, %s on %s; move one with :to(\"%s\")", op,
                gv_device_name(a->device), gv_device_name(b->device), gv_shape_str(a), gv_device_name(a->device),
                gv_shape_str(b), gv_device_name(b->device), gv_device_name(a->device));
        return false;
    }
    return true;
}

bool gv_norm_dim(const char *op, const grove_tensor *t, int32_t *dim)
{
    int32_t d = *dim, n = t->ndim;
    if (d < 0) d += n;
    if (d < 0 || d >= n) {
        gv_fail("%s: dimension %d out of range for %s (%d dimensions)", op, *dim, gv_shape_str(t), n);
        return false;
    }
    *dim = d;
    return true;
}

void *gv_no_backend(const char *op, const grove_tensor *t)
{
    return gv_fail_null("%s: no kernel for device %s in this build", op, t->device == GROVE_CUDA ? "cuda" : "?");
}

bool gv_broadcast_shape(const char *op, const char *sym, const grove_tensor *a, const grove_tensor *b,
                        int32_t *out_ndim, int64_t *out_shape)
{
    int32_t n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int32_t i = 0; i < n; i++) {
        int32_t ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            gv_fail("%s: %s %s %s: shapes cannot broadcast (dimension %d: %lld vs %lld)", op, gv_shape_str(a), sym,
                    gv_shape_str(b), i, (long long)sa, (long long)sb);
            return false;
        }
        out_shape[i] = sa == 1 ? sb : sa;
    }
    *out_ndim = n;
    return true;
}

void gv_broadcast_strides(const grove_tensor *t, int32_t out_ndim, const int64_t *out_shape, int64_t *stride)
{
    GV_UNUSED(out_shape);
    int32_t lead = out_ndim - t->ndim;
    for (int32_t i = 0; i < out_ndim; i++) {
        int32_t it = i - lead;
        stride[i] = (it < 0 || t->shape[it] == 1) ? 0 : t->stride[it];
    }
}

grove_tensor *gv_contiguous_data(grove_tensor *t)
{
    if (grove_tensor_is_contiguous(t)) {
        grove_tensor_retain(t);
        return t;
    }
    grove_tensor *c = gv_empty_like(t);
    if (!c) return NULL;
    int32_t open_row = gv_profile_open_row(t->device);
    grove_status st = gv_copy_strided("contiguous", t->device, t->ndim, t->shape, c->data, c->stride, c->dtype,
                                      t->data, t->stride, t->dtype);
    gv_profile_reopen(open_row, t->device);
    if (st) {
        grove_tensor_release(c);
        return NULL;
    }
    return c;
}

grove_status grove_tensor_read_doubles(const grove_tensor *t, double *out, int64_t count)
{
    if (!gv_check_live("read", t)) return -1;
    int64_t n = grove_tensor_numel(t);
    if (count < n) return gv_fail("read: buffer of %lld for %lld elements", (long long)count, (long long)n);
    if (t->device != GROVE_CPU) {
        /* Device memory is never read from the host: copy it over first. */
        grove_tensor *h = gv_on_device("read", t, GROVE_CPU);
        if (!h) return -1;
        grove_status st = grove_tensor_read_doubles(h, out, count);
        grove_tensor_release(h);
        return st;
    }
    int64_t idx[GROVE_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int32_t d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
        out[i] = gv_load_as_double(t->data, t->dtype, off);
        for (int32_t d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
    return 0;
}

grove_status grove_tensor_item(const grove_tensor *t, double *out)
{
    if (!gv_check_live("item", t)) return -1;
    int64_t n = grove_tensor_numel(t);
    if (n != 1) return gv_fail("item: only a one-element tensor converts to a number, got %s", gv_shape_str(t));
    return grove_tensor_read_doubles(t, out, 1);
}
