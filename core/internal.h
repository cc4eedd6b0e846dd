/*
 * internal.h — what the pieces of libgrove share and users never see:
 * storage and tape structures, error helpers, and the tape API used by every
 * op front-end. Kernels do not include this file.
 */
#ifndef GROVE_INTERNAL_H
#define GROVE_INTERNAL_H

#include "grove.h"

#include <stdarg.h>

#define GV_UNUSED(x) ((void)(x))

/* ---- errors (error.c) --------------------------------------------------- */
/* Sets the thread-local message; returns -1 so front-ends can `return gv_fail(...)`. */
grove_status gv_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, returning NULL. */
void *gv_fail_null(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Puts "op: " before the message when it is an allocation failure that does
 * not name its op yet ("out of memory: cannot allocate ..." from the
 * storage allocator, which does not know who asked). */
void gv_name_oom(const char *op);
/* "[2,3]" in one of a few rotating thread-local buffers, so several can
 * appear in one message. */
const char *gv_shape_str(const grove_tensor *t);
const char *gv_dims_str(int32_t ndim, const int64_t *shape);

/* ---- storage (storage.c) ---------------------------------------------- */
struct grove_storage {
    void *data;         /* 64-byte aligned host memory, or a device pointer */
    int64_t nbytes;
    int32_t device;
    int32_t refcount;
};

grove_storage *gv_storage_new(int64_t nbytes, int32_t device);
void gv_storage_retain(grove_storage *s);
void gv_storage_release(grove_storage *s);
void gv_count_tensor(int delta);
void gv_count_node(int delta);

/* ---- tensors (tensor.c) ----------------------------------------------- */
/* A contiguous tensor with fresh storage; NULL (error set) on failure. */
grove_tensor *gv_empty(int32_t ndim, const int64_t *shape, int32_t dtype, int32_t device);
grove_tensor *gv_empty_like(const grove_tensor *t);
/* A new tensor object sharing t's storage with the given geometry. */
grove_tensor *gv_alias(const grove_tensor *t, int32_t ndim, const int64_t *shape,
                       const int64_t *stride, int64_t offset);
/* t itself (retained) when contiguous, otherwise a contiguous copy.
 * Does not record on the tape: use it for kernel inputs. */
grove_tensor *gv_contiguous_data(grove_tensor *t);
void gv_contiguous_strides(int32_t ndim, const int64_t *shape, int64_t *stride);
int64_t gv_numel_of(int32_t ndim, const int64_t *shape);
/* Validates a size list: every entry >= 0, product representable. */
bool gv_shape_ok(const char *op, int32_t ndim, const int64_t *shape);

/* Argument checks shared by the front-ends; each sets a message naming op. */
bool gv_check_live(const char *op, const grove_tensor *t);
bool gv_check_f32(const char *op, const grove_tensor *t);
bool gv_check_same_device(const char *op, const grove_tensor *a, const grove_tensor *b);
/* Normalises a possibly negative dim into [0, ndim); false with an error if out of range. */
bool gv_norm_dim(const char *op, const grove_tensor *t, int32_t *dim);
/* An error for an op the tensor's device has no kernel for. */
void *gv_no_backend(const char *op, const grove_tensor *t);

/* Broadcasting (torch rules). out_ndim/out_shape receive the result shape;
 * false with an error naming op, a and b otherwise. */
bool gv_broadcast_shape(const char *op, const char *sym, const grove_tensor *a, const grove_tensor *b,
                        int32_t *out_ndim, int64_t *out_shape);
/* Strides of t seen as out_ndim x out_shape (0 along broadcast dimensions). */
void gv_broadcast_strides(const grove_tensor *t, int32_t out_ndim, const int64_t *out_shape,
                          int64_t *stride);

/* ---- autograd (autograd.c) ---------------------------------------------- */
enum { GV_NODE_MAX_INPUTS = 4, GV_NODE_MAX_SAVED = 4 };

typedef struct gv_edge {
    grove_node *node;       /* the input's own grad_fn, or NULL */
    grove_tensor *leaf;     /* a leaf requiring grad, or NULL */
} gv_edge;

/* Computes the gradients of the node's inputs from grad_out. grad_in[i] is
 * only wanted where n->needs_grad[i]; set it to a new reference (or leave
 * NULL for "zero"). Runs with grad mode off, so it may call the public ops. */
typedef grove_status (*gv_backward_fn)(grove_node *n, grove_tensor *grad_out, grove_tensor **grad_in);

struct grove_node {
    const char *name;
    gv_backward_fn backward;
    int32_t refcount;
    int32_t n_inputs;
    int32_t released;                       /* saved tensors freed by backward */
    gv_edge inputs[GV_NODE_MAX_INPUTS];
    bool needs_grad[GV_NODE_MAX_INPUTS];
    int32_t in_ndim[GV_NODE_MAX_INPUTS];    /* the inputs' shapes, for sum_to */
    int64_t in_shape[GV_NODE_MAX_INPUTS][GROVE_MAX_DIMS];
    grove_tensor *saved[GV_NODE_MAX_SAVED]; /* aliases: no grad_fn, no cycles */
    double scalars[4];
    int64_t ints[GROVE_MAX_DIMS * 2];
    /* Called just before the node is freed (custom nodes tell their owner), or NULL. */
    void (*on_free)(grove_node *n);
    /* scratch used during one backward pass */
    grove_tensor *pending_grad;
    int32_t deps;
    int32_t visited;
};

/* True when an op on t must be recorded: grad mode on and t needs grad. */
bool gv_tracks(const grove_tensor *t);
/* Starts a node in *out when grad mode is on and any of the n inputs
 * requires grad; *out = NULL when nothing is to be recorded. Returns -1 (error
 * set) only when the node cannot be allocated. */
grove_status gv_node_begin(const char *name, gv_backward_fn fn, int32_t n, grove_tensor *const *inputs,
                           grove_node **out);
/* A node over the n inputs whatever the grad mode (edges to those that
 * require grad); NULL (error set) when it cannot be allocated. */
grove_node *gv_node_new(const char *name, gv_backward_fn fn, int32_t n, grove_tensor *const *inputs);
/* Keeps an alias of t's data (without its grad_fn) for backward; -1 when it
 * cannot be allocated. */
grove_status gv_node_save(grove_node *n, int32_t slot, const grove_tensor *t);
/* Attaches the node as out's grad_fn (takes the node's creation reference). */
void gv_node_finish(grove_node *n, grove_tensor *out);
void gv_node_release(grove_node *n);
/* The last step of an op that recorded n (NULL when nothing was recorded):
 * when ok, attaches n to out and returns out; otherwise releases both and
 * returns NULL (the error already set). */
grove_tensor *gv_node_end(grove_node *n, grove_tensor *out, bool ok);

/* Sums g down to the given shape (the gradient of a broadcast). Returns a
 * new reference; g itself (retained) when the shapes already match. */
grove_tensor *gv_sum_to(grove_tensor *g, int32_t ndim, const int64_t *shape);

/* ---- the op profiler (profile.c) ---------------------------------------- */
/* Marks the start of op on device when profiling (called by gv_kernels_for). */
void gv_profile_op(const char *op, int32_t device);
/* A backward node starts: the ops it calls count towards it, not their own rows. */
void gv_profile_backward_begin(const char *node, int32_t device);
void gv_profile_backward_end(void);
/* A copy inside an op (gv_contiguous_data) gets a row of its own and then
 * hands the clock back to the row that was open: the op's own kernels after
 * the copy stay the op's time. gv_profile_open_row is that row (-1 when none
 * or not profiling); gv_profile_reopen marks it again without a call. */
int32_t gv_profile_open_row(int32_t device);
void gv_profile_reopen(int32_t row, int32_t device);

/* ---- BLAS (blas.c): OpenBLAS, loaded at first use ----------------------- */
typedef void (*gv_sgemm_fn)(int order, int transa, int transb, int m, int n, int k, float alpha, const float *a,
                            int lda, const float *b, int ldb, float beta, float *c, int ldc);
typedef struct gv_blas {
    /* The sgemm every op calls: OpenBLAS run single-threaded on blocks of C
     * split across grove's OpenMP threads, so that one thread pool serves
     * both GEMMs and the other kernels (two pools that spin after their work
     * fight over the cores between every GEMM and the next kernel). With
     * GROVE_BLAS_THREADS=openblas it is cblas_sgemm with OpenBLAS's threads. */
    gv_sgemm_fn sgemm;
    gv_sgemm_fn cblas_sgemm;            /* OpenBLAS itself, for baselines */
    void (*set_num_threads)(int n);     /* OpenBLAS's own thread count */
    char *(*get_corename)(void);
    bool own_threads;                   /* true when sgemm splits over OpenMP */
} gv_blas;
/* NULL (error set) when OpenBLAS cannot be loaded. */
const gv_blas *gv_blas_get(void);
enum { GV_CBLAS_ROW_MAJOR = 101, GV_CBLAS_NO_TRANS = 111, GV_CBLAS_TRANS = 112 };

/* ---- threads (threads.c) ------------------------------------------------ */
int32_t gv_threads(void);

/* ---- dtype conversion (dtype.c) --------------------------------------- */
float gv_bf16_to_f32(uint16_t h);
uint16_t gv_f32_to_bf16(float f);
float gv_f16_to_f32(uint16_t h);
uint16_t gv_f32_to_f16(float f);
/* Reads element i (flat index into data) of a dtype as double, and writes. */
double gv_load_as_double(const void *data, int32_t dtype, int64_t i);
void gv_store_double(void *data, int32_t dtype, int64_t i, double v);

#endif /* GROVE_INTERNAL_H */
