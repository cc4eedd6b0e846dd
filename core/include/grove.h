/*
 * grove.h — the one public header of libgrove.
 *
 * Everything between GROVE_FFI_BEGIN and GROVE_FFI_END is also the LuaJIT FFI
 * declaration of the library: the build extracts it into lua/grove/cdefs.lua.
 * So that region holds plain C declarations only — no macros, no #if, no
 * function-like constructs LuaJIT's parser does not know.
 *
 * Conventions: dimensions and indices are 0-based here (the Lua layer
 * translates from 1-based); shapes are outermost-first, row-major. A function
 * returning a tensor returns a new reference (release it with
 * grove_tensor_release) or NULL on error; a function returning grove_status
 * returns 0 on success and -1 on error. After an error grove_last_error()
 * names the op and the shapes. Nothing here aborts or exits.
 */
#ifndef GROVE_H
#define GROVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* GROVE_FFI_BEGIN */

typedef int32_t grove_status;

typedef enum grove_dtype {
    GROVE_F32 = 0,
    GROVE_F16 = 1,
    GROVE_BF16 = 2,
    GROVE_U8 = 3,
    GROVE_I8 = 4,
    GROVE_I32 = 5,
    GROVE_I64 = 6,
    GROVE_DTYPE_COUNT = 7
} grove_dtype;

typedef enum grove_device {
    GROVE_CPU = 0,
    GROVE_CUDA = 1,
    GROVE_DEVICE_COUNT = 2
} grove_device;

enum { GROVE_MAX_DIMS = 8 };

typedef struct grove_storage grove_storage;
typedef struct grove_node grove_node;

/* A strided view into a refcounted storage (Torch7's TH model). The fields
 * are public so that Lua can read shapes without a call; only the library
 * writes them. */
typedef struct grove_tensor {
    grove_storage *storage;     /* NULL once the tensor was freed explicitly */
    void *data;                 /* address of element 0 of this view */
    int64_t offset;             /* in elements, from the storage's start */
    int64_t shape[8];
    int64_t stride[8];          /* in elements */
    int32_t ndim;
    int32_t dtype;              /* grove_dtype */
    int32_t device;             /* grove_device */
    int32_t refcount;
    int32_t requires_grad;      /* a leaf that collects .grad, or a tape output */
    int32_t is_leaf;
    struct grove_tensor *grad;  /* accumulated gradient of a leaf, or NULL */
    grove_node *grad_fn;        /* the tape node that produced it, or NULL */
} grove_tensor;

/* Counter-based Philox4x32-10 generator: element i of a fill draws counter
 * (offset + i/4), lane i%4, so a draw never depends on the thread count. */
typedef struct grove_generator {
    uint64_t seed;
    uint64_t offset;            /* counters consumed so far */
} grove_generator;

typedef struct grove_memory_stats {
    int64_t live_bytes;         /* bytes held by live storages */
    int64_t peak_bytes;         /* highest live_bytes since the last reset */
    int64_t cached_bytes;       /* freed blocks kept by the caching allocator */
    int64_t live_tensors;       /* tensor objects alive (all devices) */
    int64_t live_nodes;         /* autograd nodes alive */
} grove_memory_stats;

typedef enum grove_unary_op {
    GROVE_NEG = 0, GROVE_EXP, GROVE_LOG, GROVE_SQRT, GROVE_RSQRT, GROVE_ABS,
    GROVE_RELU, GROVE_SILU, GROVE_GELU_TANH, GROVE_SIGMOID, GROVE_TANH,
    GROVE_UNARY_COUNT
} grove_unary_op;

typedef enum grove_binary_op {
    GROVE_ADD = 0, GROVE_SUB, GROVE_MUL, GROVE_DIV,
    GROVE_BINARY_COUNT
} grove_binary_op;

/* Comparisons and logic give u8 masks (1 or 0) for grove_where and
 * grove_masked_fill (core/ops/compare.c). */
typedef enum grove_compare_op {
    GROVE_EQ = 0, GROVE_NE, GROVE_LT, GROVE_LE, GROVE_GT, GROVE_GE,
    GROVE_COMPARE_COUNT
} grove_compare_op;

typedef enum grove_logical_op {
    GROVE_AND = 0, GROVE_OR, GROVE_NOT,
    GROVE_LOGICAL_COUNT
} grove_logical_op;

typedef enum grove_reduce_op {
    GROVE_SUM = 0, GROVE_MEAN, GROVE_MAX, GROVE_MIN,
    GROVE_REDUCE_COUNT
} grove_reduce_op;

/* ---- library ---------------------------------------------------------- */
const char *grove_version(void);
/* The build of this libgrove as "key=value" lines (each ending in a
 * newline): version, compiler, build_type, march, simd, sanitizers, openmp,
 * cuda (on/off), cuda_architectures, openblas (the library it dlopens).
 * Keys may be added, never renamed. */
const char *grove_build_info(void);
const char *grove_last_error(void);
void grove_clear_error(void);
int32_t grove_num_threads(void);
grove_status grove_set_num_threads(int32_t n);
/* The OpenBLAS core type in use ("SkylakeX", "Haswell", ...) and how it was
 * chosen; loads OpenBLAS if it is not loaded yet. */
const char *grove_blas_info(void);
grove_status grove_memory(int32_t device, grove_memory_stats *out);
void grove_memory_reset_peak(int32_t device);
/* Bytes held by live storages on all devices: a cheap read for the Lua
 * layer, which collects garbage when this grows (the Lua collector cannot
 * see the C memory behind its small tensor handles). */
int64_t grove_memory_live_total(void);
/* Returns blocks kept by the caching allocator to the system. */
void grove_memory_empty_cache(int32_t device);
const char *grove_dtype_name(int32_t dtype);
int64_t grove_dtype_size(int32_t dtype);

/* Ctrl-C as a request rather than a kill: while armed, SIGINT only sets a
 * flag that a training loop polls between steps (so it can save and exit
 * cleanly); a second Ctrl-C before the flag is read ends the process as usual. */
grove_status grove_interrupt_arm(bool armed);
/* True once after each Ctrl-C received while armed. */
bool grove_interrupt_pending(void);

/* ---- tensors ---------------------------------------------------------- */
grove_tensor *grove_tensor_empty(int32_t ndim, const int64_t *shape, int32_t dtype, int32_t device);
grove_tensor *grove_tensor_zeros(int32_t ndim, const int64_t *shape, int32_t dtype, int32_t device);
grove_tensor *grove_tensor_full(int32_t ndim, const int64_t *shape, double value, int32_t dtype, int32_t device);
/* Copies count values of src_dtype from a host buffer into a new tensor. */
grove_tensor *grove_tensor_from_buffer(int32_t ndim, const int64_t *shape, int32_t dtype,
                                       const void *src, int32_t src_dtype, int64_t count);
grove_tensor *grove_tensor_from_doubles(int32_t ndim, const int64_t *shape, int32_t dtype,
                                        const double *src, int64_t count);
grove_tensor *grove_arange(double start, double end, double step, int32_t dtype);
grove_tensor *grove_linspace(double start, double end, int64_t steps, int32_t dtype);
grove_tensor *grove_eye(int64_t n, int64_t m, int32_t dtype);
grove_tensor *grove_rand(int32_t ndim, const int64_t *shape, grove_generator *gen);
grove_tensor *grove_randn(int32_t ndim, const int64_t *shape, grove_generator *gen);

void grove_tensor_retain(grove_tensor *t);
/* Drops one reference; the tensor object is freed when none are left. */
void grove_tensor_release(grove_tensor *t);
/* What Lua holds: one reference to a tensor. Its finalizer is
 * grove_handle_release, a C function, so the collector never calls into Lua
 * to free a tensor. */
typedef struct grove_handle { grove_tensor *p; } grove_handle;
void grove_handle_release(grove_handle h);
/* Releases the tensor's data now (Lua's :free()); later use is an error. */
void grove_tensor_free_data(grove_tensor *t);
bool grove_tensor_is_freed(const grove_tensor *t);
int64_t grove_tensor_numel(const grove_tensor *t);
bool grove_tensor_is_contiguous(const grove_tensor *t);
/* Writes the elements in logical (row-major) order as doubles. */
grove_status grove_tensor_read_doubles(const grove_tensor *t, double *out, int64_t count);
grove_status grove_tensor_item(const grove_tensor *t, double *out);

/* ---- devices (docs/cuda.md) ------------------------------------------------ */
/* A copy of t on device (GROVE_CPU or GROVE_CUDA), recorded on the tape so
 * that the gradient flows back to t's device; t itself (a new reference)
 * when it is already there. */
grove_tensor *grove_tensor_to_device(grove_tensor *t, int32_t device);
/* 0 without a GPU, without a driver, or in a build without CUDA (never an
 * error, nothing printed). grove uses device 0. */
int32_t grove_cuda_device_count(void);
/* Name (NUL-terminated, truncated to name_len), total and free bytes of
 * device i; any output may be NULL. free_bytes is -1 for a device other
 * than 0. */
grove_status grove_cuda_device_info(int32_t i, char *name, int64_t name_len, int64_t *total_bytes,
                                    int64_t *free_bytes);
/* Waits for all work queued on grove's CUDA stream; reports a failed kernel. */
grove_status grove_cuda_synchronize(void);
/* Lets cuBLAS use TF32 tensor cores for f32 GEMMs (off by default: full f32). */
void grove_cuda_set_tf32(int32_t on);

/* ---- the op profiler (profile.c) ---------------------------------------- */
/* Between start and stop, each op's time is the time from its start to the
 * start of the next op on the same device (on the CPU by the clock, on
 * CUDA by events on the stream: the GPU's time whenever the host keeps the
 * stream full); a backward node's time runs from its start to the next
 * node's, everything it calls included. Starting again clears the table. */
grove_status grove_profile_start(void);
/* Waits for the GPU's pending work, closes the table. */
grove_status grove_profile_stop(void);
/* Rows of the table: name, 1 for a backward node's row, calls, milliseconds. */
int32_t grove_profile_rows(void);
grove_status grove_profile_row(int32_t i, const char **name, int32_t *backward, int64_t *calls, double *ms);

/* ---- views (share storage) ---------------------------------------------- */
grove_tensor *grove_view(grove_tensor *t, int32_t ndim, const int64_t *shape);
/* A view when the strides allow, a copy otherwise; one dimension may be -1. */
grove_tensor *grove_reshape(grove_tensor *t, int32_t ndim, const int64_t *shape);
grove_tensor *grove_permute(grove_tensor *t, int32_t ndim, const int32_t *dims);
grove_tensor *grove_transpose(grove_tensor *t, int32_t dim0, int32_t dim1);
grove_tensor *grove_narrow(grove_tensor *t, int32_t dim, int64_t start, int64_t length);
grove_tensor *grove_select(grove_tensor *t, int32_t dim, int64_t index);
grove_tensor *grove_expand(grove_tensor *t, int32_t ndim, const int64_t *shape);
/* dim < 0 squeezes every dimension of size 1. */
grove_tensor *grove_squeeze(grove_tensor *t, int32_t dim);
grove_tensor *grove_unsqueeze(grove_tensor *t, int32_t dim);

/* ---- copies ------------------------------------------------------------- */
grove_tensor *grove_contiguous(grove_tensor *t);
grove_tensor *grove_clone(grove_tensor *t);
grove_tensor *grove_to_dtype(grove_tensor *t, int32_t dtype);
/* In place; src broadcasts to dst and is converted to dst's dtype. */
grove_status grove_copy_(grove_tensor *dst, grove_tensor *src);
grove_status grove_fill_(grove_tensor *t, double value);
grove_status grove_uniform_(grove_tensor *t, grove_generator *gen, double lo, double hi);
grove_status grove_normal_(grove_tensor *t, grove_generator *gen, double mean, double std);

/* ---- random --------------------------------------------------------------- */
grove_generator *grove_default_generator(void);
void grove_manual_seed(uint64_t seed);
/* Raw Philox4x32-10 block, for tests against published vectors. */
void grove_philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* ---- elementwise ------------------------------------------------------ */
grove_tensor *grove_unary(grove_tensor *a, int32_t op);
grove_tensor *grove_binary(grove_tensor *a, grove_tensor *b, int32_t op);
/* a op s, or s op a when reverse is true. */
grove_tensor *grove_binary_scalar(grove_tensor *a, double s, int32_t op, bool reverse);
grove_tensor *grove_pow_scalar(grove_tensor *a, double exponent);
/* Use -INFINITY / INFINITY for an open side. */
grove_tensor *grove_clamp(grove_tensor *a, double lo, double hi);

/* ---- comparisons and masks (u8, 1 or 0; never on the autograd tape) ---- */
/* a op b (grove_compare_op) with broadcasting; inputs that are not f32
 * compare as f32 (exact below 2^24). */
grove_tensor *grove_compare(grove_tensor *a, grove_tensor *b, int32_t op);
/* a op s, s rounded to f32 as the tensor's values are. */
grove_tensor *grove_compare_scalar(grove_tensor *a, double s, int32_t op);
/* a op b (grove_logical_op) on u8 masks (nonzero = true) with
 * broadcasting; GROVE_NOT takes b NULL. */
grove_tensor *grove_logical(grove_tensor *a, grove_tensor *b, int32_t op);
/* Whether any / every value of the u8 mask a over the listed dimensions
 * (ndims = 0: over all) is nonzero. */
grove_tensor *grove_any(grove_tensor *a, int32_t ndims, const int32_t *dims, bool keepdim);
grove_tensor *grove_all(grove_tensor *a, int32_t ndims, const int32_t *dims, bool keepdim);

/* ---- reductions ---------------------------------------------------------- */
/* Over the listed dimensions (ndims = 0: over all, giving a 0-d tensor). */
grove_tensor *grove_reduce(grove_tensor *a, int32_t op, int32_t ndims, const int32_t *dims, bool keepdim);
/* Max or min over one dimension; *indices (i64) receives the positions. */
grove_tensor *grove_reduce_arg(grove_tensor *a, int32_t op, int32_t dim, bool keepdim, grove_tensor **indices);
/* i64 positions; dim < 0 means over the flattened tensor. */
grove_tensor *grove_argmax(grove_tensor *a, int32_t dim, bool keepdim);
grove_tensor *grove_argmin(grove_tensor *a, int32_t dim, bool keepdim);

/* ---- linear algebra --------------------------------------------------- */
/* 2-d @ 2-d, or batched with broadcast batch dimensions; 1-d operands are
 * treated as a row (left) or column (right) vector as in torch. */
grove_tensor *grove_matmul(grove_tensor *a, grove_tensor *b);
/* x (..., in) · w (out, in)ᵀ + b (out); b may be NULL. */
grove_tensor *grove_linear(grove_tensor *x, grove_tensor *w, grove_tensor *b);

/* ---- neural network ops ----------------------------------------------- */
grove_tensor *grove_softmax(grove_tensor *x, int32_t dim);
grove_tensor *grove_log_softmax(grove_tensor *x, int32_t dim);
/* Over the last dimension; w and b may be NULL (no affine). */
grove_tensor *grove_layer_norm(grove_tensor *x, grove_tensor *w, grove_tensor *b, double eps);
grove_tensor *grove_rms_norm(grove_tensor *x, grove_tensor *w, double eps);
/* NHWC input (B, H, W, Cin), PyTorch-layout weight (Cout, Cin/groups, kh, kw),
 * bias (Cout) or NULL; any kernel, stride >= 1, symmetric zero padding >= 0,
 * groups dividing Cin and Cout. Output (B, (H + 2p - kh)/stride + 1,
 * (W + 2p - kw)/stride + 1, Cout). */
grove_tensor *grove_conv2d(grove_tensor *x, grove_tensor *w, grove_tensor *b,
                           int32_t stride, int32_t padding, int32_t groups);
/* Whether this build runs the general CPU conv2d forward through oneDNN
 * (found at build time); grove_conv_set_dnnl(0) turns it off for the
 * process (im2col + sgemm instead), 1 back on (the default). */
bool grove_conv_dnnl_available(void);
void grove_conv_set_dnnl(int32_t on);
/* The oneDNN forward of a dense 3x3 stride-1 convolution with at least
 * 128x128 output pixels runs oneDNN's Winograd F(4x4, 3x3) algorithm where
 * oneDNN has it for the CPU (AVX-512): fewer multiplications, results
 * within f32 rounding of the direct convolution but not the same bits.
 * grove_conv_set_winograd(0) keeps the direct convolution for the process,
 * 1 restores the default. */
void grove_conv_set_winograd(int32_t on);
/* conv2d in bf16 mixed precision: x and w rounded to bf16 (nearest, ties
 * to even), the products summed in f32, bias and output f32; arguments as
 * grove_conv2d. Through oneDNN's bf16 convolution where the CPU has bf16
 * arithmetic and the build has oneDNN, elsewhere the f32 convolution of
 * the rounded operands (grove_conv_bf16_set_dnnl(0) keeps that reference
 * path). Its gradients are the f32 conv2d's at the unrounded operands. */
grove_tensor *grove_conv2d_bf16(grove_tensor *x, grove_tensor *w, grove_tensor *b,
                                int32_t stride, int32_t padding, int32_t groups);
bool grove_conv_bf16_dnnl_available(void);
void grove_conv_bf16_set_dnnl(int32_t on);
/* bf16 GEMMs (grove_matmul_bf16, the bf16 compute mode) run through
 * oneDNN's bf16 matmul where the CPU has bf16 arithmetic (AVX512-BF16 or
 * AMX, from cpuid) and the build has oneDNN: the same rounded products as
 * the reference path (rounded operands, f32 sgemm), summed in another
 * order. grove_gemm_bf16_set_dnnl(0) keeps the reference path. */
bool grove_gemm_bf16_dnnl_available(void);
void grove_gemm_bf16_set_dnnl(int32_t on);
/* Whether the CPU multiplies bf16 in hardware (cpuid). */
bool grove_cpu_has_bf16(void);
grove_tensor *grove_embedding(grove_tensor *weight, grove_tensor *indices);
grove_tensor *grove_cat(int32_t n, grove_tensor *const *ts, int32_t dim);
grove_tensor *grove_stack(int32_t n, grove_tensor *const *ts, int32_t dim);
/* pads holds (before, after) pairs starting from the last dimension, as torch. */
grove_tensor *grove_pad(grove_tensor *x, int32_t npairs, const int64_t *pads, double value);
/* NHWC images x (B, H, W, C), f32. Nearest upsampling by an integer scale
 * s >= 1: out (B, H·s, W·s, C), out[y, x] = x[y/s, x/s] (torch's
 * interpolate(mode="nearest", scale_factor=s)); its gradient sums each
 * s×s block. */
grove_tensor *grove_upsample_nearest(grove_tensor *x, int32_t scale);
/* PyTorch's pixel_shuffle on NHWC: (B, H, W, C·r²) → (B, H·r, W·r, C) with
 * out[y·r + i, x·r + j, c] = x[y, x, c·r² + i·r + j]; pixel_unshuffle is
 * its inverse (H and W divisible by r). Each is the other's gradient. */
grove_tensor *grove_pixel_shuffle(grove_tensor *x, int32_t r);
grove_tensor *grove_pixel_unshuffle(grove_tensor *x, int32_t r);
/* cond is u8; a and b broadcast against it. */
grove_tensor *grove_where(grove_tensor *cond, grove_tensor *a, grove_tensor *b);
grove_tensor *grove_masked_fill(grove_tensor *x, grove_tensor *mask, double value);
grove_tensor *grove_mse_loss(grove_tensor *input, grove_tensor *target);
/* logits (N, C), target i64 (N): mean negative log-likelihood. */
grove_tensor *grove_cross_entropy(grove_tensor *logits, grove_tensor *target);
grove_tensor *grove_dropout(grove_tensor *x, double p, bool training, grove_generator *gen);
grove_tensor *grove_cosine_similarity(grove_tensor *a, grove_tensor *b, int32_t dim, double eps);

/* ---- fused SANA ops (core/nn/) --------------------------------------------- */
/* SANA's ReLU linear attention on projected, normalised q, k, v (B, N, D),
 * heads of head_dim channels: o_i = Σ_j v_j φ(k_j)·φ(q_i) / (Σ_j φ(k_j)·φ(q_i) + eps),
 * φ = ReLU, in O(N·d²) per head, never forming the N×N matrix. */
grove_tensor *grove_linear_attention(grove_tensor *q, grove_tensor *k, grove_tensor *v, int32_t head_dim, double eps);
/* Softmax attention from q (B, N, D) to k, v (B, M, D) over `heads` heads,
 * scale 1/√(D/heads). mask (B, M) (u8 or f32, nonzero = a real token) or
 * NULL; padding adds (1 − mask)·(−10000) to the scores (diffusers' rule),
 * so an all-padding caption gives finite output (the bias is then the same
 * for every key and cancels in the softmax) instead of NaN. */
grove_tensor *grove_cross_attention(grove_tensor *q, grove_tensor *k, grove_tensor *v, grove_tensor *mask, int32_t heads);
/* Causal softmax self-attention of a decoder text encoder (Gemma-2), in one
 * fused pass that keeps no L×L matrix: q (B, L, heads·d), k, v
 * (B, L, kv_heads·d); query head h reads key/value head h / (heads /
 * kv_heads) (grouped-query attention). Query i sees key j when j ≤ i,
 * mask[b][j] is nonzero (mask (B, L) u8 or f32, or NULL: all real) and,
 * when window > 0, j > i − window (the last `window` keys including
 * itself). Scores are scale·(q·k), then softcap·tanh(s / softcap) when
 * softcap > 0. A query that sees no key gets zeros. head_dim ≤ 1024.
 * Forward only: the gradient is an error naming the op. */
grove_tensor *grove_causal_attention(grove_tensor *q, grove_tensor *k, grove_tensor *v, grove_tensor *mask,
                                     int32_t heads, int32_t kv_heads, double scale, int64_t window, double softcap);
/* LayerNorm without affine over the last dimension of x (B, N, D), then
 * x·(1 + scale) + shift with shift, scale (B, D) broadcast over the tokens. */
grove_tensor *grove_norm_modulate(grove_tensor *x, grove_tensor *shift, grove_tensor *scale, double eps);
/* x + gate·y with x, y (B, N, D) and gate (B, D) broadcast over the tokens. */
grove_tensor *grove_gated_residual(grove_tensor *x, grove_tensor *gate, grove_tensor *y);
/* Splits the last dimension of h (..., 2C) into (a, gate) and returns a·SiLU(gate). */
grove_tensor *grove_glu_silu(grove_tensor *h);
/* Sinusoidal embedding [cos, sin] of t·exp(−ln(max_period)·i/half), i < half = dim/2:
 * t (B) → (B, dim). t is used as given (no gradient). */
grove_tensor *grove_timestep_embedding(grove_tensor *t, int32_t dim, double max_period);

/* ---- sampler arithmetic (core/sample/) -------------------------------------- */
/* Σ coeffs[i]·ts[i] over n ≤ 4 tensors of one shape: the update of every
 * flow sampler (Euler, DPM-Solver++, classifier-free guidance) in one pass. */
grove_tensor *grove_lincomb(int32_t n, grove_tensor *const *ts, const double *coeffs);
/* The same into dst (contiguous f32 of the terms' shape and device, not
 * requiring grad; not recorded on the tape). A term may be dst itself, but
 * no other view of its memory. */
grove_status grove_lincomb_into(grove_tensor *dst, int32_t n, grove_tensor *const *ts, const double *coeffs);

/* ---- JSON (core/io/json.c) ---------------------------------------------------- */
/* The strict parser behind safetensors headers, for the Lua layer's
 * grove.json.decode (configs and index files of diffusers folders). */
typedef enum grove_json_kind {
    GROVE_JSON_NULL = 0, GROVE_JSON_BOOL, GROVE_JSON_INT, GROVE_JSON_NUMBER,
    GROVE_JSON_STRING, GROVE_JSON_ARRAY, GROVE_JSON_OBJECT
} grove_json_kind;
/* One parsed value. Integers without fraction or exponent that fit int64
 * are INT, every other number NUMBER. Children are a linked list in
 * document order (duplicate object keys are kept: the caller decides). */
typedef struct grove_json grove_json;
struct grove_json {
    int32_t kind;               /* grove_json_kind */
    int32_t boolean;            /* BOOL: 0 or 1 */
    int64_t integer;            /* INT */
    double number;              /* NUMBER */
    const char *str;            /* STRING: UTF-8, NUL-terminated, no NUL inside */
    int64_t len;                /* STRING: bytes without the terminator */
    int64_t count;              /* ARRAY / OBJECT: number of children */
    grove_json *first;          /* first child */
    grove_json *next;           /* next sibling */
    const char *key;            /* member name when the parent is an object */
};
typedef struct grove_json_doc grove_json_doc;
/* Also accept Python's NaN, Infinity and -Infinity (json.dumps writes them). */
enum { GROVE_JSON_ALLOW_NAN = 1 };
/* RFC 8259 JSON of text[0..len): one value, valid UTF-8, nesting limited.
 * NULL on error, with "at byte N: what" as the last error. */
grove_json_doc *grove_json_parse(const char *text, int64_t len, int32_t flags);
/* The root value; nodes and strings live until grove_json_free. */
const grove_json *grove_json_root(const grove_json_doc *doc);
void grove_json_free(grove_json_doc *doc);

/* ---- safetensors (core/io/) --------------------------------------------------- */
typedef struct grove_safetensors grove_safetensors;
/* Maps the file and validates the whole header (JSON syntax, dtypes, shapes,
 * offsets in range, buffer fully covered without overlap, unique names). */
grove_safetensors *grove_safetensors_open(const char *path);
void grove_safetensors_close(grove_safetensors *f);
int64_t grove_safetensors_count(const grove_safetensors *f);
/* Tensor names in file order; NULL when i is out of range. */
const char *grove_safetensors_name(const grove_safetensors *f, int64_t i);
/* Shape and dtype of a named tensor; shape needs room for 8 entries. */
grove_status grove_safetensors_info(const grove_safetensors *f, const char *name, int32_t *dtype,
                                    int32_t *ndim, int64_t *shape);
/* A new tensor holding a copy of the named tensor's data. F64 data is
 * rounded to f32 and BOOL read as u8 (grove has neither dtype); info
 * reports the dtype get returns. */
grove_tensor *grove_safetensors_get(const grove_safetensors *f, const char *name);
/* The dtype as the file names it ("F64", "BF16", ...); NULL for no such tensor. */
const char *grove_safetensors_stored_dtype(const grove_safetensors *f, const char *name);
int64_t grove_safetensors_metadata_count(const grove_safetensors *f);
const char *grove_safetensors_metadata_key(const grove_safetensors *f, int64_t i);
/* NULL when the key is absent. */
const char *grove_safetensors_metadata(const grove_safetensors *f, const char *key);
/* Writes n tensors (any dtype, made contiguous) and string metadata to
 * path + ".tmp", syncs it, then renames it over path, so an interrupted save
 * never destroys an existing file. */
grove_status grove_safetensors_save(const char *path, int64_t n, const char *const *names,
                                    grove_tensor *const *tensors, int64_t nmeta,
                                    const char *const *meta_keys, const char *const *meta_values);
/* Streaming writes, for files larger than memory: the header (every name,
 * dtype and shape, and the metadata) is fixed at open, then each tensor's
 * data is written in header order, one at a time. shapes holds 8 entries per
 * tensor (ndims[i] of them used). Data goes to path + ".tmp"; finish syncs it
 * and renames it over path. finish and abort free the writer, and every
 * failure of finish, like abort, removes the temporary file. */
typedef struct grove_safetensors_writer grove_safetensors_writer;
grove_safetensors_writer *grove_safetensors_writer_open(const char *path, int64_t n, const char *const *names,
                                                        const int32_t *dtypes, const int32_t *ndims,
                                                        const int64_t *shapes, int64_t nmeta,
                                                        const char *const *meta_keys,
                                                        const char *const *meta_values);
/* name must be the next name of the header; t must match its dtype and shape. */
grove_status grove_safetensors_writer_write(grove_safetensors_writer *w, const char *name, grove_tensor *t);
grove_status grove_safetensors_writer_finish(grove_safetensors_writer *w);
void grove_safetensors_writer_abort(grove_safetensors_writer *w);

/* ---- optimizers (core/optim/) ------------------------------------------------ */
/* One update of one parameter from its gradient and state. The parameter is
 * a contiguous f32 CPU tensor updated in place (nothing is recorded on the
 * tape); state tensors are contiguous, of the parameter's element count
 * unless noted, and updated in place. step counts this parameter's updates
 * including this one (1 on the first). Names and meanings follow PyTorch
 * (torch.optim.SGD, torch.optim.AdamW) and the CAME paper's code. */
typedef struct grove_sgd_options {
    double lr, momentum, dampening, weight_decay;
    int32_t nesterov;               /* needs momentum > 0 and dampening 0 */
} grove_sgd_options;
/* weight_decay is added to the gradient (L2); momentum_buffer may be NULL
 * when momentum is 0, and is set to the gradient on step 1. */
grove_status grove_sgd_step(grove_tensor *param, grove_tensor *grad, grove_tensor *momentum_buffer,
                            const grove_sgd_options *o, int64_t step);

typedef struct grove_adamw_options {
    double lr, beta1, beta2, eps, weight_decay;
} grove_adamw_options;
/* Decoupled weight decay and bias correction; exp_avg, exp_avg_sq f32. */
grove_status grove_adamw_step(grove_tensor *param, grove_tensor *grad, grove_tensor *exp_avg,
                              grove_tensor *exp_avg_sq, const grove_adamw_options *o, int64_t step);
/* The step of count parameters of one device, each with its own step count,
 * in one kernel call (the same numbers as one grove_adamw_step each). All
 * are checked before any is updated; on a bad one, *failed (when given)
 * receives its index. */
grove_status grove_adamw_step_group(int32_t count, grove_tensor *const *params, grove_tensor *const *grads,
                                    grove_tensor *const *exp_avgs, grove_tensor *const *exp_avg_sqs,
                                    const grove_adamw_options *o, const int64_t *steps, int32_t *failed);

/* Blockwise 8-bit codes: DYNAMIC maps x/absmax of each block to the nearest
 * of 256 signed dynamic values (scales: one absmax per block); AFFINE maps
 * [min, max] of each block evenly onto 0..255 (scales: min and step per
 * block). */
typedef enum grove_quant_kind {
    GROVE_QUANT_DYNAMIC = 0,
    GROVE_QUANT_AFFINE = 1,
    GROVE_QUANT_COUNT = 2
} grove_quant_kind;

typedef struct grove_came_options {
    double lr, beta1, beta2, beta3, eps1, eps2, clip_threshold, weight_decay;
} grove_came_options;

/* CAME state. Factored (a matrix, or a 1×1 conv seen as one): exp_avg_sq is
 * NULL and the four row/column statistics are given; the matrix is
 * numel(exp_avg_sq_row) rows × numel(exp_avg_sq_col) columns. Full: only
 * exp_avg_sq. The first moment is exp_avg (f32), or, when exp_avg is NULL,
 * exp_avg_codes (u8) with exp_avg_scales (f32, per block: 1 for DYNAMIC, 2
 * for AFFINE), dequantized for the update and requantized after it. */
typedef struct grove_came_state {
    grove_tensor *exp_avg;
    grove_tensor *exp_avg_codes;
    grove_tensor *exp_avg_scales;
    int32_t quant;                  /* grove_quant_kind */
    int64_t block;                  /* elements per block */
    grove_tensor *exp_avg_sq;
    grove_tensor *exp_avg_sq_row, *exp_avg_sq_col;
    grove_tensor *exp_avg_res_row, *exp_avg_res_col;
} grove_came_state;
/* betas (beta1, beta2, beta3), eps (eps1, eps2), no bias correction,
 * update clipped to RMS clip_threshold, decoupled weight decay. */
grove_status grove_came_step(grove_tensor *param, grove_tensor *grad, const grove_came_state *state,
                             const grove_came_options *o);

/* Quantizes f32 x (all elements, row-major) in blocks of `block` into codes
 * (u8, numel(x) elements) and scales (f32, 1 or 2 per block by kind). */
grove_status grove_quantize_blockwise(grove_tensor *x, int32_t kind, int64_t block, grove_tensor *codes,
                                      grove_tensor *scales);
/* Writes the decoded values into out (f32, contiguous, numel(codes) elements). */
grove_status grove_dequantize_blockwise(grove_tensor *codes, grove_tensor *scales, int32_t kind, int64_t block,
                                        grove_tensor *out);
/* The 256 values of the signed dynamic code map, ascending. */
void grove_quant_dynamic_map(float *out);

/* The global L2 norm of the gradients of n tensors (those without one are
 * skipped) into *norm; when max_norm > 0 and the norm exceeds it, every
 * gradient is scaled by max_norm / (norm + 1e-6). */
grove_status grove_clip_grad_norm(int64_t n, grove_tensor *const *params, double max_norm, double *norm);

/* ---- images (core/io/image.c, font.c) ---- */
/* Images are (H, W, 3) u8 RGB tensors, rows top to bottom; models see them
 * as f32 in [-1, 1] (u8 v ↔ v / 127.5 − 1). */
enum { GROVE_IMAGE_MAX_PIXELS = 268435456 };    /* 16384 × 16384: larger images are refused */
/* Decodes a PNG (any colour type and bit depth; 16-bit channels keep their
 * high byte, alpha is composited over white) or a JPEG (greyscale, YCbCr or
 * CMYK; baseline or progressive), told apart by their first bytes, never by
 * the file name. A missing, empty, truncated or non-image file is an error
 * naming the path. */
grove_tensor *grove_image_read(const char *path);
/* The same, letting the JPEG decoder shrink the image by 2, 4 or 8 while
 * both sides stay at least min_side pixels (much faster for large photos that
 * are resized down afterwards); PNGs decode at full size. */
grove_tensor *grove_image_read_reduced(const char *path, int32_t min_side);
/* Decodes an image held in memory; name only labels error messages. */
grove_tensor *grove_image_decode(const void *data, int64_t size, const char *name);
/* Writes a PNG: u8 (H, W) or (H, W, 1) as greyscale, (H, W, 3) as RGB,
 * (H, W, 4) as RGBA; f32 in [-1, 1] is converted as grove_image_to_u8 does.
 * Goes to path + ".tmp", then is renamed over path. */
grove_status grove_image_write_png(const char *path, grove_tensor *image);
/* The same, with n text chunks keys[i] = values[i] (keywords of 1 to 79
 * bytes; an ASCII value goes into a tEXt chunk, any other UTF-8 into iTXt). */
grove_status grove_image_write_png_text(const char *path, grove_tensor *image, const char *const *keys,
                                        const char *const *values, int32_t n);
/* The text chunks (tEXt, zTXt, iTXt) of PNG bytes as "key\0value\0" pairs:
 * copied into buf when cap is large enough; returns the length they need,
 * or -1 (an error) when the bytes are not a readable PNG. */
int64_t grove_png_text(const void *data, int64_t size, char *buf, int64_t cap);
/* The centre square of a u8 (H, W, 3) image, scaled to (size, size, 3):
 * area averaging when shrinking, bilinear (pixel centres) when enlarging. */
grove_tensor *grove_image_resize_crop(grove_tensor *image, int32_t size);
/* f32 [-1, 1] (any shape) → u8, rounded to nearest and clamped. */
grove_tensor *grove_image_to_u8(grove_tensor *x);
/* u8 (any shape) → f32 in [-1, 1]. */
grove_tensor *grove_image_to_f32(grove_tensor *x);

/* Paths of the PNG and JPEG files (by extension: .png .jpg .jpeg, any case)
 * in a directory, optionally its subdirectories too, sorted bytewise. Names
 * starting with '.' are skipped, and symbolic links to directories are not
 * followed. */
typedef struct grove_file_list grove_file_list;
grove_file_list *grove_list_images(const char *dir, bool recursive);
/* The names (not paths) of every entry of one directory except "." and
 * "..", hidden ones included, sorted bytewise. */
grove_file_list *grove_list_dir(const char *dir);
int64_t grove_file_list_count(const grove_file_list *l);
/* NULL when i is out of range. */
const char *grove_file_list_get(const grove_file_list *l, int64_t i);
void grove_file_list_free(grove_file_list *l);

/* Writes n bytes to path + ".tmp", syncs it and renames it over path, so a
 * reader never sees half a file and a failed write leaves an existing file
 * as it was (the temporary is removed). */
grove_status grove_file_write_atomic(const char *path, const void *data, int64_t n);
/* What a path names, following symbolic links. */
enum { GROVE_PATH_NONE = 0, GROVE_PATH_FILE = 1, GROVE_PATH_DIR = 2, GROVE_PATH_OTHER = 3 };
int32_t grove_path_kind(const char *path);
/* The absolute path with every symbolic link, "." and ".." resolved (the
 * path must exist) into out, which holds cap bytes. */
grove_status grove_path_real(const char *path, char *out, int64_t cap);
/* Makes a directory and its missing parents (mkdir -p); an existing one is fine. */
grove_status grove_dir_make(const char *path);
/* Puts the folder `staged` at `dir` in one step: renamed there when dir does
 * not exist, else swapped with it (Linux's RENAME_EXCHANGE; two renames on
 * file systems without it), the old folder then renamed to `old` for the
 * caller to remove. A reader sees the old folder or the new one, whole. */
grove_status grove_dir_replace(const char *staged, const char *dir, const char *old);
/* Removes a file or a folder with everything in it (rm -rf), never following
 * symbolic links; a missing path is fine. */
grove_status grove_dir_remove(const char *path);
/* Makes dst a copy of the file or folder src that costs no space: files
 * hard-linked (copied where the file system cannot link them), folders
 * made anew and filled the same way, symbolic links recreated as they
 * read (never followed). dst must not exist. */
grove_status grove_path_link(const char *src, const char *dst);

/* The built-in 5×7 font in a 6×8 cell per character, times scale. */
enum { GROVE_FONT_WIDTH = 6, GROVE_FONT_HEIGHT = 8 };
/* Draws printable ASCII text into a u8 (H, W, 3) image (any strides) with the
 * top-left of the first cell at column x, row y (0-based), in colour
 * 0xRRGGBB, clipped at the edges; '\n' starts a new line, other characters
 * are drawn as '?', one per UTF-8 code point. */
grove_status grove_image_draw_text(grove_tensor *image, int64_t x, int64_t y, const char *text, int32_t scale,
                                   uint32_t rgb);
/* The width in pixels of the longest line of text at that scale. */
int64_t grove_text_width(const char *text, int32_t scale);

/* ---- SentencePiece tokenizers (core/io/sentencepiece.cc, text_case.c) ---- */
/* A SentencePiece model (tokenizer.model) loaded through Debian's
 * libsentencepiece. A missing, unreadable or corrupt file is an error naming
 * the path. Ids are the model's own; nothing is added (no BOS or EOS). */
typedef struct grove_spm grove_spm;
grove_spm *grove_spm_load(const char *path);
void grove_spm_free(grove_spm *m);
int32_t grove_spm_vocab_size(const grove_spm *m);
/* The id of <unk>, <bos>, <eos> or <pad> as the model defines them; -1
 * where the model has none (SentencePiece's own convention). */
int32_t grove_spm_unk_id(const grove_spm *m);
int32_t grove_spm_bos_id(const grove_spm *m);
int32_t grove_spm_eos_id(const grove_spm *m);
int32_t grove_spm_pad_id(const grove_spm *m);
/* The id of a piece (the <unk> id when the model lacks it), and the piece of
 * an id (NULL and an error when id is out of range; the string lives as long
 * as the model). */
int32_t grove_spm_piece_id(const grove_spm *m, const char *piece, int64_t len);
const char *grove_spm_id_piece(const grove_spm *m, int32_t id);
/* Encodes len bytes of UTF-8 text into ids[0 .. cap): returns the number of
 * ids the text has (when more than cap, only the first cap are written: call
 * again with room for all), or -1 after an error. */
int64_t grove_spm_encode(const grove_spm *m, const char *text, int64_t len, int32_t *ids, int64_t cap);
/* Python's str.lower().strip() on len bytes of UTF-8 (what diffusers does
 * to a prompt): Unicode lower case (U+0130 to "i\u0307", the final-sigma
 * rule), then Unicode white space cut from both ends. Writes at most cap
 * bytes to out and returns the length of the whole result (call again with
 * more room when it exceeds cap), or -1 when the text is not valid UTF-8. */
int64_t grove_text_lower_strip(const char *text, int64_t len, char *out, int64_t cap);

/* ---- shapes data set and evaluator (core/data/) ---- */
/* Procedural scenes of flat shapes on a plain background, each with the
 * GenEval-style caption it illustrates, and an analytic detector that finds
 * the shapes again. Shapes, colours, categories and relations are small codes
 * whose names grove_shapes_name gives (kinds below); docs/shapes.md has the
 * palette, the held-out pairs and the detector's method. */
typedef enum grove_shapes_kind {
    GROVE_SHAPES_SHAPE = 0,         /* circle, square, triangle, diamond */
    GROVE_SHAPES_COLOR = 1,         /* red, orange, yellow, green, blue, purple */
    GROVE_SHAPES_CATEGORY = 2,      /* single_object, two_object, counting, colors, position, color_attr */
    GROVE_SHAPES_RELATION = 3,      /* left of, right of, above, below */
    GROVE_SHAPES_KIND_COUNT = 4
} grove_shapes_kind;

enum { GROVE_SHAPES_MAX_OBJECTS = 8 };

/* One phrase of a caption: count objects of a shape, of one colour (or of
 * any colour: color = -1). */
typedef struct grove_shapes_item {
    int32_t shape, color, count;
} grove_shapes_item;

/* What a caption says: one or two phrases; relation (-1 when none) places
 * the objects of items[0] relative to those of items[1]. */
typedef struct grove_shapes_spec {
    int32_t category;
    int32_t relation;
    int32_t n_items;
    grove_shapes_item items[2];
} grove_shapes_spec;

/* One drawn object: its bounding box's centre and size as fractions of the
 * image side (the same scene renders at any resolution). */
typedef struct grove_shapes_object {
    int32_t shape, color;
    float cx, cy, w, h;
} grove_shapes_object;

typedef struct grove_shapes_scene {
    grove_shapes_spec spec;
    int32_t n_objects;
    grove_shapes_object objects[8];
} grove_shapes_scene;

/* One object found by the detector, in pixels (x right, y down, (0, 0) the
 * image's top-left corner): shape -1 when no shape template fits. */
typedef struct grove_shapes_detection {
    int32_t shape, color;
    float cx, cy;                   /* centroid */
    float x0, y0, x1, y1;           /* bounding box of its pixels */
    float area;                     /* coverage-weighted pixel count */
    float score;                    /* soft IoU with the best shape template */
} grove_shapes_detection;

int32_t grove_shapes_count(int32_t kind);
/* NULL when kind or i is out of range. */
const char *grove_shapes_name(int32_t kind, int32_t i);
/* The palette colour (8-bit sRGB); color = -1 gives the background. */
grove_status grove_shapes_rgb(int32_t color, uint8_t *rgb);
/* True for the (shape, colour) pairs the training split never draws. */
bool grove_shapes_heldout(int32_t shape, int32_t color);
/* Sample `index` of the stream (seed, split): split 0 (train) never draws a
 * held-out pair; split 1 (heldout) draws only captions naming one. categories
 * is a bit mask (bit c = category c; 0 = all the split allows). Positions
 * and sizes come from grove_shapes_layout(spec, seed, index, split == 0). */
grove_status grove_shapes_sample(uint64_t seed, uint64_t index, int32_t split, uint32_t categories,
                                 grove_shapes_scene *out);
/* Places the objects a spec asks for (sizes, positions, and colours where
 * the spec leaves them free, never a held-out pair when avoid_heldout) so
 * that objects do not overlap and a position spec's relation holds clearly;
 * deterministic in (spec, seed, index). */
grove_status grove_shapes_layout(const grove_shapes_spec *spec, uint64_t seed, uint64_t index,
                                 bool avoid_heldout, grove_shapes_scene *out);
/* Renders n scenes anti-aliased (4×4 samples per pixel) into a new
 * (n, size, size, 3) tensor: f32 in [-1, 1] or u8 in [0, 255]; size 16..128. */
grove_tensor *grove_shapes_render(int64_t n, const grove_shapes_scene *scenes, int32_t size, int32_t dtype);
/* Finds the objects of image `index` of images (B, H, W, 3), f32 in [-1, 1]
 * or u8, or of a single (H, W, 3) image (index 0). Writes at most max_out
 * detections, largest first, and returns how many it wrote, or -1. */
int32_t grove_shapes_detect(grove_tensor *images, int64_t index, grove_shapes_detection *out, int32_t max_out);

/* ---- autograd ------------------------------------------------------------- */
bool grove_grad_enabled(void);
/* Returns the previous setting. */
bool grove_set_grad_enabled(bool enabled);
grove_status grove_set_requires_grad(grove_tensor *t, bool requires_grad);
/* grad may be NULL when t has one element. */
grove_status grove_backward(grove_tensor *t, grove_tensor *grad, bool retain_graph);
grove_tensor *grove_detach(grove_tensor *t);
/* A new reference to the accumulated gradient, or NULL (no error) when none. */
grove_tensor *grove_tensor_grad(grove_tensor *t);
grove_status grove_tensor_set_grad(grove_tensor *t, grove_tensor *grad);
void grove_zero_grad(grove_tensor *t);
const char *grove_grad_fn_name(const grove_tensor *t);

/* ---- custom tape nodes (core/autograd_custom.c; docs/scale.md) ------------- */
/* A tape node whose backward is written outside C: Lua's activation
 * checkpointing (grove.checkpoint) records one per checkpointed block. The
 * backward callback gets the handle given when the node was recorded, the
 * tensors saved with it (borrowed; NULL where none was given), the gradient
 * of the output (borrowed) and one slot per input: it sets grad_in[i] to a
 * new reference of input i's shape where that input has a gradient (NULL:
 * none) and returns 0, or -1 after grove_set_error. It runs inside
 * grove_backward with grad mode off, and may itself call grove_backward on
 * a separate graph. */
typedef grove_status (*grove_custom_backward_fn)(int64_t handle, grove_tensor *const *saved, grove_tensor *grad_out,
                                                 grove_tensor **grad_in);
/* Sets the one backward callback of the process (NULL clears it); it must
 * stay valid while any custom node exists. */
void grove_custom_set_backward(grove_custom_backward_fn fn);
/* A new tensor sharing out's data whose grad_fn is a custom node called
 * name, over n_inputs inputs (at most 4; edges to those requiring grad),
 * keeping n_saved tensors (at most 4; entries may be NULL) for its
 * backward. With grad mode off, or when no input requires grad and force is
 * false, nothing is recorded and out itself (a new reference) comes back. */
grove_tensor *grove_custom_record(const char *name, grove_tensor *out, int32_t n_inputs, grove_tensor *const *inputs,
                                  int32_t n_saved, grove_tensor *const *saved, int64_t handle, bool force);
/* Writes the handles of custom nodes freed since the last call (at most
 * max) and returns how many: their owner drops what it kept for them. */
int32_t grove_custom_take_freed(int64_t *out, int32_t max);
/* Custom nodes alive. */
int64_t grove_custom_live(void);
/* Sets grove_last_error to message (for a callback that failed); returns -1. */
grove_status grove_set_error(const char *message);

/* ---- bf16 mixed precision (core/ops/matmul_bf16.c; docs/scale.md) ----------- */
/* a (m, k) @ b (k, n), f32 in and out, with both operands rounded to bf16
 * (round to nearest, ties to even) and the products summed in f32: the GEMM
 * of bf16 mixed precision. On the CPU it is the reference (rounded copies,
 * then the f32 GEMM); on CUDA cublasGemmEx with bf16 inputs and
 * CUBLAS_COMPUTE_32F. Recorded on the tape; the gradients are bf16 GEMMs
 * too (g·bᵀ and aᵀ·g), returned in f32. */
grove_tensor *grove_matmul_bf16(grove_tensor *a, grove_tensor *b);

/* ---- data parallel (core/dist.c; docs/scale.md) ------------------------------ */
/* One process per GPU. Until grove_dist_init the world is this process
 * alone (rank 0 of 1), where every collective is the identity. With
 * world_size > 1 (a CUDA build with libnccl): rank 0 writes an NCCL unique
 * id to id_file (atomically), the others wait for it (up to 300 s), then
 * all join one communicator on their CUDA device 0 (the launcher gives each
 * process one GPU through CUDA_VISIBLE_DEVICES). */
grove_status grove_dist_init(int32_t rank, int32_t world_size, const char *id_file);
int32_t grove_dist_rank(void);
int32_t grove_dist_world_size(void);
/* In place: each f32 tensor (contiguous) becomes the sum over the processes
 * divided by the world size. NULL entries are skipped. */
grove_status grove_dist_all_reduce_mean(int64_t n, grove_tensor *const *tensors);
/* In place: each tensor (contiguous) takes root's values. */
grove_status grove_dist_broadcast(int64_t n, grove_tensor *const *tensors, int32_t root);
/* Leaves the communicator; the world is this process alone again. */
grove_status grove_dist_finalize(void);

/* GROVE_FFI_END */

#ifdef __cplusplus
}
#endif

#endif /* GROVE_H */
