/*
 * backend.h — the per-device kernel table every op front-end calls through.
 *
 * A front-end validates its arguments, then asks gv_kernels_for(op, t) for
 * the table of t's device and calls k->entry(...) with raw data pointers of
 * that device. The entries are generated from the kernel list
 * (kernels/kernels.def): each has the parameter list written there, which
 * is the CPU kernel's minus the sgemm-function argument of the kernels
 * marked GV_KERNEL_SGEMM (the CPU table wraps those and passes OpenBLAS's
 * sgemm itself, kernels/cpu/table.c).
 *
 * An entry may be NULL (a CUDA kernel not written yet): GV_KCALL and
 * gv_kernel_ready turn that into the error "<op>: no CUDA kernel for
 * <entry>". After kernels ran, gv_kernels_check(k) reports what they could
 * not return themselves (a CUDA launch error, OpenBLAS failing to load).
 *
 * Kernels that only ever run on the host (gv_cpu_philox_block,
 * gv_cpu_dynamic_map: fixed tables and test vectors; cpu.h) have no entry.
 */
#ifndef GROVE_BACKEND_H
#define GROVE_BACKEND_H

#include "internal.h"
#include "../kernels/cpu/cpu.h"

typedef struct gv_kernels {
    int32_t device;     /* grove_device */
    /* 0 when the kernels since the last call ran, else -1 with the grove
     * error set; takes the pending error. */
    int (*take_error)(void);

    /* one entry per kernel of the list, named as there */
#define GV_KERNEL(ret, name, params) ret (*name) params;
#include "../kernels/kernels.def"
} gv_kernels;

/* The tables (kernels/cpu/table.c, kernels/cuda/table.c). */
extern const gv_kernels gv_cpu_kernels;
#ifdef GROVE_HAVE_CUDA
extern const gv_kernels gv_cuda_kernels;
#endif

/* The table of t's device; NULL with an error naming op when this build or
 * this machine has no backend for it (backend.c). */
const gv_kernels *gv_kernels_for(const char *op, const grove_tensor *t);
/* The same for a device code, where no tensor is at hand (copies between
 * raw buffers). */
const gv_kernels *gv_kernels_on(const char *op, int32_t device);

/* t's values readable by the host: t itself (retained) when it is on the
 * CPU and contiguous, otherwise a contiguous CPU copy; NULL with the error
 * set. For front-ends that inspect data (index range checks). */
grove_tensor *gv_host_data(const char *op, grove_tensor *t);

/* t (B, N, D) as attention rows: read in place when its channels are
 * adjacent (a slice of a wider projection, say) and its rows fit BLAS's int
 * leading dimension, else as a contiguous copy; r receives the layout.
 * Returns the tensor read (a new reference), NULL with the error set
 * (attention_rows.c). */
grove_tensor *gv_attn_rows_of(grove_tensor *t, gv_attn_rows *r);
/* The checks every attention op starts with: q, k, v f32 on one device, each
 * 3-d (batch, tokens, what the op calls the last dimension: dims names it in
 * the message), and k and v of one shape. Fails naming op and the shapes. */
bool gv_attn_check_qkv(const char *op, grove_tensor *q, grove_tensor *k, grove_tensor *v, const char *dims);

/* Sets "<op>: no CUDA kernel for <entry>" (or the device's name) and returns false. */
bool gv_no_kernel(const char *op, const gv_kernels *k, const char *entry);

/* True when k has the entry, else false with the error set. */
#define gv_kernel_ready(op, k, entry) ((k)->entry != NULL || gv_no_kernel((op), (k), #entry))

/* Reports what the kernels since the last check could not return
 * themselves: 0, or -1 with the grove error set. */
static inline grove_status gv_kernels_check(const gv_kernels *k)
{
    return k->take_error ? k->take_error() : 0;
}

/* Calls a void entry and checks it: 0, or -1 with the error set when the
 * entry is missing or the kernel failed. */
#define GV_KCALL(op, k, entry, ...) \
    (gv_kernel_ready((op), (k), entry) ? ((k)->entry(__VA_ARGS__), gv_kernels_check(k)) : -1)

/* ---- the op skeleton (op.c) ------------------------------------------------
 * Every op front-end validates its arguments (returning NULL with the error
 * set), then runs its steps on a gv_op and ends with gv_op_end:
 *
 *     gv_op o;
 *     if (!gv_op_begin(&o, "glu_silu", glu_silu_backward, 1, &h)) return NULL;
 *     grove_tensor *hc = gv_op_input(&o, h);
 *     grove_tensor *out = gv_op_output(&o, h->ndim, shape, GROVE_F32);
 *     GV_OP_CALL(&o, glu_silu, rows, c, hc->data, out->data);
 *     gv_op_save(&o, 0, hc);
 *     return gv_op_end(&o);
 *
 * A step does nothing once an earlier one failed (o.ok false; the first
 * failure's error stays set), so the steps need no error branches, and a
 * kernel's arguments are not even evaluated then. gv_op_end releases the
 * held tensors and either attaches the node to the output and returns it,
 * or releases both and returns NULL. */
enum { GV_OP_MAX_HELD = 12 };

typedef struct gv_op {
    const char *name;
    const gv_kernels *k;  /* the kernels of the first input's device */
    grove_node *node;     /* the node recorded, NULL when grad mode asks for none */
    grove_tensor *out;    /* the result (gv_op_output) */
    bool ok;              /* every step so far worked */
    int32_t nheld;
    grove_tensor *held[GV_OP_MAX_HELD]; /* released by gv_op_end */
} gv_op;

/* Picks the kernels of inputs[0]'s device and starts a node over the n
 * inputs with backward fn (none when fn is NULL or no input needs grad).
 * False with the error set when either fails (nothing to release then). */
bool gv_op_begin(gv_op *o, const char *name, gv_backward_fn fn, int32_t n, grove_tensor *const *inputs);
/* t's data, contiguous, held for the run; NULL when t is NULL (an absent
 * optional input, not a failure) or after a failure. */
grove_tensor *gv_op_input(gv_op *o, grove_tensor *t);
/* Holds t, a new reference from elsewhere, for the run; t NULL is a
 * failure (its error set by whoever returned it). */
grove_tensor *gv_op_hold(gv_op *o, grove_tensor *t);
/* A new tensor on the op's device held for the run (scratch, statistics). */
grove_tensor *gv_op_temp(gv_op *o, int32_t ndim, const int64_t *shape, int32_t dtype);
/* The result: a new tensor on the op's device that gv_op_end returns. */
grove_tensor *gv_op_output(gv_op *o, int32_t ndim, const int64_t *shape, int32_t dtype);
/* Saves t in the node's slot for the backward (when a node is recorded). */
void gv_op_save(gv_op *o, int32_t slot, const grove_tensor *t);
/* Releases what the run held; returns the output with the node attached,
 * or NULL (output and node released) when a step failed. */
grove_tensor *gv_op_end(gv_op *o);

/* A matrix operand as the GEMM kernels read it (matmul.c): t, a new
 * reference, is the tensor whose data is read: the operand itself when its
 * last two strides are (ld, 1), or (1, ld) read transposed (trans), else
 * a contiguous copy. transposed reads the last two dimensions swapped. */
typedef struct gv_gemm_operand {
    grove_tensor *t;
    bool trans;
    int ld;
} gv_gemm_operand;
bool gv_gemm_operand_of(grove_tensor *t, bool transposed, gv_gemm_operand *op);

/* Runs kernel entry of the op's device when no step failed yet. */
#define GV_OP_CALL(o, entry, ...) \
    ((o)->ok = (o)->ok && !GV_KCALL((o)->name, (o)->k, entry, __VA_ARGS__))
/* The value kernel entry returns (a sum for the host), or 0 after a failure. */
#define GV_OP_VALUE(o, entry, ...) \
    (GV_OP_READY(o, entry) ? gv_op_checked((o), (o)->k->entry(__VA_ARGS__)) : 0)
/* v, failing the run when the kernels report an error (GV_OP_VALUE). */
static inline double gv_op_checked(gv_op *o, double v)
{
    o->ok = !gv_kernels_check(o->k);
    return v;
}
/* Fails the run unless the op's device has kernel entry. */
#define GV_OP_READY(o, entry) ((o)->ok = (o)->ok && gv_kernel_ready((o)->name, (o)->k, entry))
/* Fails the run with an error message (printf arguments). */
#define GV_OP_FAIL(o, ...) ((o)->ok = false, gv_fail(__VA_ARGS__))

#endif
