/* signal.c — Ctrl-C as a flag that long loops poll between steps. */
#include "internal.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t pending;

static void on_sigint(int sig)
{
    pending = 1;
    signal(sig, SIG_DFL); /* a second Ctrl-C ends the process */
}

grove_status grove_interrupt_arm(bool armed)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = armed ? on_sigint : SIG_DFL;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL)) return gv_fail("interrupt: cannot install the SIGINT handler");
    if (!armed) pending = 0;
    return 0;
}

bool grove_interrupt_pending(void)
{
    if (!pending) return false;
    pending = 0;
    /* re-arm, so the next Ctrl-C is again a request */
    grove_interrupt_arm(true);
    return true;
}
