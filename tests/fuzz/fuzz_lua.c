/*
 * fuzz_lua.c — the Lua-facing loaders end to end: one LuaJIT state with
 * grove loaded, and the script FUZZ_SCRIPT, which returns function(bytes)
 * that hands the bytes to a loader the way a downloaded file would reach
 * it. A Lua error with a message is the expected answer to bad input; an
 * error that says grove itself went wrong ("attempt to index a nil value",
 * "bad argument #1 to ...": input that reached code that never checked it)
 * counts as a crash, as does anything ASan or UBSan sees.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lua_position.h"

static lua_State *L;
static int fuzz_fn = LUA_NOREF;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_lua: %s: %s\n", what, lua_tostring(L, -1));
    abort();
}

/* Closing the state at exit runs the finalizers of what the script still
 * holds, before LeakSanitizer looks: LuaJIT's heap is not malloc's, so a
 * tensor only Lua refers to would otherwise look leaked. */
static void close_state(void)
{
    if (L) lua_close(L);
    L = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    L = luaL_newstate();
    if (!L) abort();
    luaL_openlibs(L);
    atexit(close_state);
    lua_getglobal(L, "package");
    lua_pushstring(L, GROVE_LUA_SOURCE_DIR "/?.lua;" GROVE_LUA_SOURCE_DIR "/?/init.lua;" GROVE_LUA_BUILD_DIR "/?.lua");
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    if (luaL_dostring(L, "grove = require 'grove'")) die("cannot load grove");
    if (luaL_loadfile(L, FUZZ_SCRIPT) || lua_pcall(L, 0, 1, 0)) die("cannot load " FUZZ_SCRIPT);
    if (!lua_isfunction(L, -1)) die(FUZZ_SCRIPT " must return a function");
    fuzz_fn = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* the folders this harness loads Lua from (lua_position.h) */
static const char *const lua_roots[] = {GROVE_LUA_SOURCE_DIR, GROVE_LUA_BUILD_DIR, FUZZ_SCRIPT};

static int after_position(const char *msg, const char *p)
{
    return lua_position_before(msg, p, lua_roots, sizeof lua_roots / sizeof *lua_roots);
}

/* Errors that only a bug in grove's Lua gives: Lua's runtime errors, at a
 * position; and the scripts' own invariants, whose assert messages start
 * with FUZZ-INVARIANT (a message that only quotes the word, from a file
 * name in the input, is grove refusing the input). */
static int internal_error(const char *msg)
{
    static const char *const marks[] = {"attempt to ", "bad argument #", "stack overflow", "table index is nil",
                                        "invalid key to 'next'"};
    static const char invariant[] = "FUZZ-INVARIANT";
    if (!strncmp(msg, invariant, sizeof invariant - 1)) return 1;
    for (const char *p = strstr(msg, invariant); p; p = strstr(p + 1, invariant))
        if (after_position(msg, p)) return 1;
    for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
        for (const char *p = strstr(msg, marks[i]); p; p = strstr(p + 1, marks[i]))
            if (after_position(msg, p)) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_fn);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0)) {
        const char *msg = lua_tostring(L, -1);
        if (!msg) die("an error without a message");
        if (internal_error(msg)) die("an internal error instead of a message about the input");
        if (getenv("FUZZ_LUA_VERBOSE")) fprintf(stderr, "refused: %s\n", msg);
        lua_pop(L, 1);
    }
    lua_gc(L, LUA_GCCOLLECT, 0); /* tensors and mappings go back at once */
    return 0;
}
