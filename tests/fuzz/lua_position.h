/*
 * lua_position.h — whether a Lua error message holds, at a given point, the
 * "<chunk>:<line>: " position that Lua puts before its own runtime errors
 * (the fuzz harness's test for "grove's Lua went wrong", fuzz_lua.c).
 *
 * grove's messages about input carry no position but may quote the input,
 * which can hold any words, positions included: the fuzzer learns ".lua:"
 * and "bad argument #" from the harness's own comparisons. It cannot learn
 * the path of a file of this machine, which no comparison shows it, so a
 * position counts only when its chunk is a file that exists. LuaJIT cuts a
 * chunk name of 60 characters or more to "..." and its last 56: such a
 * position counts when the 56 characters complete to an existing file with
 * a leading part of one of the roots (the folders the harness loads Lua
 * from), wherever in the message it stands (grove's loaders quote a
 * caught error after their own words).
 */
#ifndef GROVE_FUZZ_LUA_POSITION_H
#define GROVE_FUZZ_LUA_POSITION_H

#include <limits.h>
#include <string.h>
#include <sys/stat.h>

/* LuaJIT's LUA_IDSIZE less the "..." and the terminating byte */
enum { LUA_POSITION_CUT_TAIL = 56 };

static int lua_position_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* whether tail is the end of an existing file's path whose start is a
 * leading part of one of the roots */
static int lua_position_cut_exists(const char *tail, size_t n, const char *const *roots, size_t nroots)
{
    char path[PATH_MAX];
    for (size_t r = 0; r < nroots; r++) {
        size_t len = strlen(roots[r]);
        for (size_t k = 0; k <= len; k++) {
            if (k + n >= sizeof path) break;
            memcpy(path, roots[r], k);
            memcpy(path + k, tail, n);
            path[k + n] = 0;
            if (lua_position_is_file(path)) return 1;
        }
    }
    return 0;
}

/* Whether msg has "<file>.lua:<line>: " right before p. */
static int lua_position_before(const char *msg, const char *p, const char *const *roots, size_t nroots)
{
    if (p - msg < 2 || p[-1] != ' ' || p[-2] != ':') return 0;
    const char *q = p - 2;
    const char *digits_end = q;
    while (q > msg && q[-1] >= '0' && q[-1] <= '9') q--;
    if (q == digits_end) return 0;
    if (q - msg < 5 || strncmp(q - 5, ".lua:", 5)) return 0;
    const char *end = q - 1, *start = end;
    while (start > msg && !strchr(" \t\n'\"", start[-1])) start--;
    size_t n = (size_t)(end - start);
    if (n == 0 || n >= PATH_MAX) return 0;
    /* a cut chunk name: "..." and exactly its last 56 characters (the
     * scan back stops at a space, so look for the dots just before) */
    const char *tail = end - LUA_POSITION_CUT_TAIL;
    if (tail - 3 >= msg && !strncmp(tail - 3, "...", 3))
        return lua_position_cut_exists(tail, LUA_POSITION_CUT_TAIL, roots, nroots);
    char path[PATH_MAX];
    memcpy(path, start, n);
    path[n] = 0;
    return lua_position_is_file(path);
}

#endif
