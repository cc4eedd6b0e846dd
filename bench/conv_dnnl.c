/*
 * conv_dnnl.c — oneDNN's forward convolution (what PyTorch runs for CPU
 * convolutions) against grove's conv2d (im2col + OpenBLAS sgemm) on the
 * DC-AE shapes of bench/conv.lua, at grove's thread count, interleaved.
 * Built only when CMake finds oneDNN (Debian's libdnnl-dev).
 *
 * oneDNN runs on the same NHWC activations grove has, the weight described
 * in PyTorch's (g)oihw layout; the primitive picks its own weight format
 * ("any"). Two oneDNN figures: "prepacked" with the weight reordered once
 * outside the timing (what a cached weight would give), and "+reorder"
 * with the reorder from PyTorch's layout in every call (what a kernel
 * given grove's weight each call would pay).
 *
 * The grove column is always im2col + sgemm (grove_conv_set_dnnl(0)).
 *
 * Usage: bench_conv_dnnl [min_seconds] [rounds]   (defaults 0.5, 2)
 * Prints one table; asserts nothing.
 */
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grove.h"

#define CHECK(call)                                                                         \
    do {                                                                                    \
        dnnl_status_t st_ = (call);                                                         \
        if (st_ != dnnl_success) {                                                          \
            fprintf(stderr, "conv_dnnl: %s failed with status %d\n", #call, (int)st_);    \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

typedef struct {
    const char *name;
    int b, h, w, cin, cout, kh, kw, stride, pad, groups;
} conv_case;

static const conv_case cases[] = {
    {"3x3_128@256", 1, 256, 256, 128, 128, 3, 3, 1, 1, 1},
    {"3x3_256@128", 1, 128, 128, 256, 256, 3, 3, 1, 1, 1},
    {"3x3_512@64", 1, 64, 64, 512, 512, 3, 3, 1, 1, 1},
    {"3x3s2_128@256", 1, 256, 256, 128, 256, 3, 3, 2, 1, 1},
    {"dw5x5_1536@32", 1, 32, 32, 1536, 1536, 5, 5, 1, 2, 1536},
    {"dw3x3_1536@32", 1, 32, 32, 1536, 1536, 3, 3, 1, 1, 1536},
    {"g1x1_1536@32", 1, 32, 32, 1536, 1536, 1, 1, 1, 0, 48},
    {"1x1_512@64", 1, 64, 64, 512, 512, 1, 1, 1, 0, 1},
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef void (*run_fn)(void *ctx);

/* bench/benchlib.lua's rule: up to 10 warm-up calls (1 s), then single
 * timed calls until 5 of them and min_time seconds; the best counts. */
static double best_time(run_fn fn, void *ctx, double min_time)
{
    double w0 = now();
    for (int i = 0; i < 10 && now() - w0 < 1.0; i++) fn(ctx);
    double best = 1e30, total = 0;
    for (int runs = 0; runs < 5 || total < min_time; runs++) {
        double t0 = now();
        fn(ctx);
        double t = now() - t0;
        total += t;
        if (t < best) best = t;
    }
    return best;
}

typedef struct {
    dnnl_stream_t stream;
    dnnl_primitive_t conv, reorder;
    dnnl_memory_t src, wt_user, wt, bias, dst;
} dnnl_run;

static void run_dnnl(void *p)
{
    dnnl_run *r = p;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, r->src}, {DNNL_ARG_WEIGHTS, r->wt}, {DNNL_ARG_BIAS, r->bias},
                               {DNNL_ARG_DST, r->dst}};
    CHECK(dnnl_primitive_execute(r->conv, r->stream, 4, args));
    CHECK(dnnl_stream_wait(r->stream));
}

static void run_dnnl_reorder(void *p)
{
    dnnl_run *r = p;
    if (r->reorder) {
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, r->wt_user}, {DNNL_ARG_TO, r->wt}};
        CHECK(dnnl_primitive_execute(r->reorder, r->stream, 2, ra));
    }
    run_dnnl(p);
}

typedef struct {
    grove_tensor *x, *w, *b;
    const conv_case *c;
} grove_run;

static void run_grove(void *p)
{
    grove_run *r = p;
    grove_tensor *y = grove_conv2d(r->x, r->w, r->b, r->c->stride, r->c->pad, r->c->groups);
    if (!y) {
        fprintf(stderr, "conv_dnnl: grove_conv2d: %s\n", grove_last_error());
        exit(1);
    }
    grove_tensor_release(y);
}

/* Times case c on both sides; best[0..2] keep the minimum over rounds. */
static void time_case(dnnl_engine_t eng, dnnl_stream_t stream, const conv_case *c, double min_time, double best[3])
{
    int ho = (c->h + 2 * c->pad - c->kh) / c->stride + 1, wo = (c->w + 2 * c->pad - c->kw) / c->stride + 1;
    int g = c->groups;
    dnnl_dims_t src_dims = {c->b, c->cin, c->h, c->w}, dst_dims = {c->b, c->cout, ho, wo};
    dnnl_dims_t bias_dims = {c->cout}, strides = {c->stride, c->stride}, pad = {c->pad, c->pad};
    dnnl_dims_t w_dims = {g, c->cout / g, c->cin / g, c->kh, c->kw};
    dnnl_memory_desc_t src_md, dst_md, bias_md, wuser_md, wany_md;
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, dnnl_f32, dnnl_nhwc));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc));
    CHECK(dnnl_memory_desc_init_by_tag(&bias_md, 1, bias_dims, dnnl_f32, dnnl_x));
    CHECK(dnnl_memory_desc_init_by_tag(&wuser_md, 5, w_dims, dnnl_f32, dnnl_goihw));
    CHECK(dnnl_memory_desc_init_by_tag(&wany_md, 5, w_dims, dnnl_f32, dnnl_format_tag_any));
    dnnl_convolution_desc_t cd;
    CHECK(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &src_md, &wany_md,
                                             &bias_md, &dst_md, strides, pad, pad));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL));
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_run r = {.stream = stream};
    CHECK(dnnl_primitive_create(&r.conv, pd));
    CHECK(dnnl_memory_create(&r.src, &src_md, eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&r.dst, &dst_md, eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&r.bias, &bias_md, eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&r.wt_user, &wuser_md, eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&r.wt, wmd, eng, DNNL_MEMORY_ALLOCATE));
    /* random data through grove, copied into oneDNN's buffers */
    grove_run gr = {.c = c};
    int64_t xs[4] = {c->b, c->h, c->w, c->cin}, wsh[4] = {c->cout, c->cin / g, c->kh, c->kw}, bs[1] = {c->cout};
    gr.x = grove_randn(4, xs, NULL);
    gr.w = grove_randn(4, wsh, NULL);
    gr.b = grove_randn(1, bs, NULL);
    if (!gr.x || !gr.w || !gr.b) {
        fprintf(stderr, "conv_dnnl: %s\n", grove_last_error());
        exit(1);
    }
    void *h;
    CHECK(dnnl_memory_get_data_handle(r.src, &h));
    memcpy(h, gr.x->data, (size_t)grove_tensor_numel(gr.x) * 4);
    CHECK(dnnl_memory_get_data_handle(r.wt_user, &h));
    memcpy(h, gr.w->data, (size_t)grove_tensor_numel(gr.w) * 4);
    CHECK(dnnl_memory_get_data_handle(r.bias, &h));
    memcpy(h, gr.b->data, (size_t)grove_tensor_numel(gr.b) * 4);
    if (!dnnl_memory_desc_equal(wmd, &wuser_md)) {
        dnnl_primitive_desc_t rpd;
        CHECK(dnnl_reorder_primitive_desc_create(&rpd, &wuser_md, eng, wmd, eng, NULL));
        CHECK(dnnl_primitive_create(&r.reorder, rpd));
        dnnl_primitive_desc_destroy(rpd);
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, r.wt_user}, {DNNL_ARG_TO, r.wt}};
        CHECK(dnnl_primitive_execute(r.reorder, stream, 2, ra));
        CHECK(dnnl_stream_wait(stream));
    } else {
        void *dst;
        CHECK(dnnl_memory_get_data_handle(r.wt, &dst));
        CHECK(dnnl_memory_get_data_handle(r.wt_user, &h));
        memcpy(dst, h, (size_t)grove_tensor_numel(gr.w) * 4);
    }
    double t;
    if ((t = best_time(run_grove, &gr, min_time)) < best[0]) best[0] = t;
    if ((t = best_time(run_dnnl, &r, min_time)) < best[1]) best[1] = t;
    if ((t = best_time(run_dnnl_reorder, &r, min_time)) < best[2]) best[2] = t;
    /* check the two agree (a wrong oneDNN setup would time the wrong thing) */
    run_dnnl(&r);
    grove_tensor *y = grove_conv2d(gr.x, gr.w, gr.b, c->stride, c->pad, c->groups);
    CHECK(dnnl_memory_get_data_handle(r.dst, &h));
    const float *a = y->data, *d = h;
    double num = 0, den = 0;
    for (int64_t i = 0; i < grove_tensor_numel(y); i++) {
        num += (double)(a[i] - d[i]) * (a[i] - d[i]);
        den += (double)a[i] * a[i];
    }
    if (num > 1e-8 * den) fprintf(stderr, "conv_dnnl: %s: grove and oneDNN differ (relative %.3g)\n", c->name,
                                  den > 0 ? num / den : num);
    grove_tensor_release(y);
    grove_tensor_release(gr.x);
    grove_tensor_release(gr.w);
    grove_tensor_release(gr.b);
    if (r.reorder) dnnl_primitive_destroy(r.reorder);
    dnnl_primitive_destroy(r.conv);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(r.src);
    dnnl_memory_destroy(r.dst);
    dnnl_memory_destroy(r.bias);
    dnnl_memory_destroy(r.wt_user);
    dnnl_memory_destroy(r.wt);
}

int main(int argc, char **argv)
{
    double min_time = argc > 1 ? atof(argv[1]) : 0.5;
    int rounds = argc > 2 ? atoi(argv[2]) : 2;
    int threads = grove_num_threads();
    omp_set_num_threads(threads);
    /* grove's own path: where the build routes conv2d through oneDNN, off */
    grove_conv_set_dnnl(0);
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    const dnnl_version_t *v = dnnl_version();
    enum { N = sizeof cases / sizeof cases[0] };
    double best[N][3];
    for (int i = 0; i < N; i++) best[i][0] = best[i][1] = best[i][2] = 1e30;
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < N; i++) time_case(eng, stream, &cases[i], min_time, best[i]);
    printf("conv_dnnl: forward ms per call, %d threads, oneDNN %d.%d.%d (%s), %d interleaved rounds; %s\n", threads,
           v->major, v->minor, v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other runtime", rounds,
           grove_blas_info());
    printf("%-14s  %9s  %14s  %14s  %13s  %13s\n", "case", "grove ms", "oneDNN ms", "oneDNN+reorder", "grove/oneDNN",
           "grove/+reorder");
    for (int i = 0; i < N; i++)
        printf("%-14s  %9.2f  %14.2f  %14.2f  %13.2f  %13.2f\n", cases[i].name, best[i][0] * 1e3, best[i][1] * 1e3,
               best[i][2] * 1e3, best[i][0] / best[i][1], best[i][0] / best[i][2]);
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return 0;
}
