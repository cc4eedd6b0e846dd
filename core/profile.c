/*
 * profile.c — where the time goes, per op. Each op marks its start
 * (gv_kernels_for calls gv_profile_op); the time from one mark to the next
 * on the same device is the earlier op's. On the CPU kernels run as they
 * are called, so the clock says it. On CUDA kernels queue on the one
 * stream, so each mark records an event there and the times are the gaps
 * between events, read when the table closes (or when too many events are
 * pending): while the host keeps the stream busy that is the GPU's time for
 * the op's kernels, and idle GPU time lands on the op before the gap.
 *
 * A backward node marks once (autograd.c): everything it calls is its
 * time, so the table shows the backward of linear_attention, not the
 * matmuls inside it. Profiling is for one thread at a time, the one that
 * started it.
 */
#include "gpu.h"
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { MAX_ROWS = 512, MAX_PENDING = 2048 };

typedef struct row {
    char name[64];
    int32_t backward;
    int64_t calls;
    double ms;
} row;

static row rows[MAX_ROWS];
static int32_t nrows;
static bool on;
static pthread_t owner;
static _Thread_local int backward_depth;

/* The CPU: the open row and when it started. */
static int32_t cpu_open = -1;
static double cpu_since;
/* CUDA: marks whose times are not read yet (row, event); the last one is the open row. */
static int32_t gpu_row[MAX_PENDING];
static void *gpu_event[MAX_PENDING];
static int32_t gpu_pending;
static bool gpu_failed;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int32_t row_of(const char *name, int32_t backward)
{
    for (int32_t i = 0; i < nrows; i++)
        if (rows[i].backward == backward && strncmp(rows[i].name, name, sizeof rows[i].name - 1) == 0) return i;
    if (nrows == MAX_ROWS) return -1; /* full: further names go uncounted */
    row *r = &rows[nrows];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->backward = backward;
    r->calls = 0;
    r->ms = 0;
    return nrows++;
}

/* Adds the gaps between pending events to their rows; keeps the last event
 * (the open row's start) unless `all`. Waits for the GPU. */
static void gpu_settle(bool all)
{
    for (int32_t i = 0; i + 1 < gpu_pending; i++) {
        double ms = gpu_failed ? -1 : gv_gpu_event_ms(gpu_event[i], gpu_event[i + 1]);
        if (ms < 0) gpu_failed = true;
        else if (gpu_row[i] >= 0) rows[gpu_row[i]].ms += ms;
        gv_gpu_event_free(gpu_event[i]);
    }
    if (gpu_pending == 0) return;
    if (all) {
        gv_gpu_event_free(gpu_event[gpu_pending - 1]);
        gpu_pending = 0;
    } else {
        gpu_row[0] = gpu_row[gpu_pending - 1];
        gpu_event[0] = gpu_event[gpu_pending - 1];
        gpu_pending = 1;
    }
}

static void mark(int32_t r, int32_t device)
{
    if (r >= 0) rows[r].calls++;
    if (device == GROVE_CUDA) {
        if (gpu_failed) return;
        if (gpu_pending == MAX_PENDING) gpu_settle(false);
        void *ev = gv_gpu_event_record();
        if (!ev) {
            gpu_failed = true;
            return;
        }
        gpu_row[gpu_pending] = r;
        gpu_event[gpu_pending++] = ev;
    } else {
        double t = now_ms();
        if (cpu_open >= 0) rows[cpu_open].ms += t - cpu_since;
        cpu_open = r;
        cpu_since = t;
    }
}

static bool counting(void) { return on && pthread_equal(pthread_self(), owner); }

void gv_profile_op(const char *op, int32_t device)
{
    if (!counting() || backward_depth > 0) return;
    mark(row_of(op ? op : "?", 0), device);
}

int32_t gv_profile_open_row(int32_t device)
{
    if (!counting() || backward_depth > 0) return -1;
    if (device == GROVE_CUDA) return gpu_pending > 0 ? gpu_row[gpu_pending - 1] : -1;
    return cpu_open;
}

void gv_profile_reopen(int32_t row, int32_t device)
{
    if (row < 0 || !counting() || backward_depth > 0) return;
    mark(row, device);
    rows[row].calls--; /* a resumed op, not another dispatch */
}

void gv_profile_backward_begin(const char *node, int32_t device)
{
    if (counting() && backward_depth == 0) mark(row_of(node ? node : "?", 1), device);
    backward_depth++;
}

void gv_profile_backward_end(void)
{
    if (backward_depth > 0) backward_depth--;
}

grove_status grove_profile_start(void)
{
    if (on) grove_profile_stop();
    nrows = 0;
    cpu_open = -1;
    gpu_pending = 0;
    gpu_failed = false;
    owner = pthread_self();
    on = true;
    return 0;
}

grove_status grove_profile_stop(void)
{
    if (!on) return 0;
    on = false;
    mark(-1, GROVE_CPU); /* closes the CPU's open row */
    if (gpu_pending > 0) {
        void *end = gv_gpu_event_record();
        if (end) {
            gpu_row[gpu_pending] = -1;
            gpu_event[gpu_pending++] = end;
        } else gpu_failed = true;
        gpu_settle(true);
    }
    if (gpu_failed) return gv_fail("profile: reading the CUDA events failed: %s", grove_last_error());
    return 0;
}

int32_t grove_profile_rows(void) { return nrows; }

grove_status grove_profile_row(int32_t i, const char **name, int32_t *backward, int64_t *calls, double *ms)
{
    if (i < 0 || i >= nrows) return gv_fail("profile: no row %d (%d rows)", i, nrows);
    if (name) *name = rows[i].name;
    if (backward) *backward = rows[i].backward;
    if (calls) *calls = rows[i].calls;
    if (ms) *ms = rows[i].ms;
    return 0;
}
