/* error.c — the thread-local last error and the shape strings used in messages. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

const char *grove_last_error(void) { return last_error[0] ? last_error : "no error"; }

void grove_clear_error(void) { last_error[0] = 0; }

static void set_error(const char *fmt, va_list ap)
{
    vsnprintf(last_error, sizeof last_error, fmt, ap);
}

grove_status gv_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(fmt, ap);
    va_end(ap);
    return -1;
}

void *gv_fail_null(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(fmt, ap);
    va_end(ap);
    return NULL;
}

void gv_name_oom(const char *op)
{
    static const char oom[] = "out of memory";
    if (!op || strncmp(last_error, oom, sizeof oom - 1) != 0) return;
    size_t lo = strlen(op) + 2; /* "op: " */
    if (lo >= sizeof last_error / 2) return;
    size_t lm = strnlen(last_error, sizeof last_error - 1);
    if (lm > sizeof last_error - 1 - lo) lm = sizeof last_error - 1 - lo;
    memmove(last_error + lo, last_error, lm);
    memcpy(last_error, op, lo - 2);
    last_error[lo - 2] = ':';
    last_error[lo - 1] = ' ';
    last_error[lo + lm] = 0;
}

const char *gv_dims_str(int32_t ndim, const int64_t *shape)
{
    /* Rotating buffers: one message may name up to four shapes. */
    static _Thread_local char bufs[4][160];
    static _Thread_local int next;
    char *b = bufs[next];
    next = (next + 1) % 4;
    size_t n = 0;
    b[n++] = '[';
    for (int32_t i = 0; i < ndim && ndim <= GROVE_MAX_DIMS; i++)
        n += (size_t)snprintf(b + n, sizeof bufs[0] - n, i ? ",%lld" : "%lld", (long long)shape[i]);
    snprintf(b + n, sizeof bufs[0] - n, "]");
    return b;
}

const char *gv_shape_str(const grove_tensor *t)
{
    if (!t) return "(nil)";
    return gv_dims_str(t->ndim, t->shape);
}
