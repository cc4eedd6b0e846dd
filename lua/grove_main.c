/*
 * grove_main.c — the grove executable: LuaJIT with the grove module loaded
 * as the global `grove`.
 *
 *   grove script.lua args…   runs a script (args in `arg`)
 *   grove -e 'code'          runs a chunk
 *   grove -i script.lua      runs a script, then the REPL with its globals
 *   grove                    the interactive REPL (lua/grove/repl.lua)
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where the Lua modules are, relative to the installed executable's
 * directory (CMake sets it from GNUInstallDirs). */
#ifndef GROVE_LUA_INSTALL_REL
#define GROVE_LUA_INSTALL_REL "../share/grove/lua"
#endif

/* Ctrl-C while a REPL command runs raises "interrupted!" at the next hook, as
 * lua.c does, so a long computation stops without killing the REPL. */
static lua_State *interrupt_state;

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

static void on_sigint(int sig)
{
    signal(sig, SIG_DFL); /* a second Ctrl-C ends the process */
    lua_sethook(interrupt_state, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static int arm_interrupt(lua_State *L)
{
    interrupt_state = L;
    signal(SIGINT, on_sigint);
    return 0;
}

/* At the prompt Ctrl-C only abandons the line being typed. The handler notes
 * it, and without SA_RESTART the blocked read returns, so the REPL sees it as
 * end of input plus prompt_interrupted() == true. */
static volatile sig_atomic_t prompt_sigint;

static void on_prompt_sigint(int sig)
{
    (void)sig;
    prompt_sigint = 1;
}

static int arm_prompt(lua_State *L)
{
    /* a Ctrl-C that came as the last command ended must not hit the REPL itself */
    lua_sethook(L, NULL, 0, 0);
    prompt_sigint = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_prompt_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    return 0;
}

static int prompt_interrupted(lua_State *L)
{
    lua_pushboolean(L, prompt_sigint);
    prompt_sigint = 0;
    return 1;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = "(error object is not a string)";
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Runs the function on top of the stack with nargs arguments under a traceback handler. */
static int call(lua_State *L, int nargs)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int st = lua_pcall(L, nargs, 0, base);
    lua_remove(L, base);
    if (st) {
        fprintf(stderr, "grove: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return st;
}

/* The Lua module directory of an installed grove, found from the
 * executable's own location (<prefix>/bin/grove -> <prefix>/share/grove/lua),
 * so an installed tree works from any prefix and after being moved. Returns 0
 * when this executable is not installed (it runs from the build tree). */
static int installed_lua_dir(char *out, size_t len)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return 0;
    *slash = 0;
    int w = snprintf(out, len, "%s/%s", exe, GROVE_LUA_INSTALL_REL);
    if (w < 0 || (size_t)w >= len) return 0;
    char probe[4096 + 64];
    snprintf(probe, sizeof probe, "%s/grove/init.lua", out);
    return access(probe, R_OK) == 0;
}

static void set_path(lua_State *L)
{
    /* GROVE_LUA_PATH (a package.path fragment) comes first, for trying out
     * modules without reinstalling. */
    const char *env = getenv("GROVE_LUA_PATH");
    char path[4096 * 3], dir[4096];
    if (installed_lua_dir(dir, sizeof dir))
        snprintf(path, sizeof path, "%s;%s/?.lua;%s/?/init.lua;", env ? env : "", dir, dir);
    else
        snprintf(path, sizeof path, "%s;%s/?.lua;%s/?/init.lua;%s/?.lua;", env ? env : "", GROVE_LUA_SOURCE_DIR,
                 GROVE_LUA_SOURCE_DIR, GROVE_LUA_BUILD_DIR);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s%s", path, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

static void set_arg(lua_State *L, int argc, char **argv, int script)
{
    lua_createtable(L, argc, 2);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int run_repl(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, "grove.repl");
    if (lua_pcall(L, 1, 1, 0)) {
        fprintf(stderr, "grove: cannot load the REPL: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        return 1;
    }
    lua_pushcfunction(L, arm_interrupt);
    lua_setfield(L, -2, "arm_interrupt");
    lua_pushcfunction(L, arm_prompt);
    lua_setfield(L, -2, "arm_prompt");
    lua_pushcfunction(L, prompt_interrupted);
    lua_setfield(L, -2, "prompt_interrupted");
    lua_getfield(L, -1, "run");
    lua_remove(L, -2);
#ifdef GROVE_LIBEDIT_SONAME
    lua_pushstring(L, GROVE_LIBEDIT_SONAME);
#else
    lua_pushnil(L);
#endif
    return call(L, 1);
}

/* A bare word (no dot, no slash) names a command rather than a script. */
static int is_command(const char *a)
{
    if (!*a || *a == '-') return 0;
    for (const char *p = a; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '_')) return 0;
    return 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: grove [script.lua [args…]] | -e 'code' | -i script.lua [args…] | COMMAND [options] | -h\n"
                    "commands: sample, eval, info, grow, prune, search, cache (grove COMMAND --help)\n");
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "grove: cannot create a Lua state\n");
        return 1;
    }
    luaL_openlibs(L);
    set_path(L);
    lua_getglobal(L, "require");
    lua_pushstring(L, "grove");
    int st = 0;
    lua_pushcfunction(L, traceback);
    lua_insert(L, -3);
    if (lua_pcall(L, 1, 1, -3)) {
        fprintf(stderr, "grove: cannot load the grove module: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    lua_setglobal(L, "grove");
    lua_pop(L, 1);

    if (argc == 1) {
        set_arg(L, argc, argv, 0);
        st = run_repl(L);
    } else if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage();
    } else if (!strcmp(argv[1], "-e")) {
        if (argc < 3) {
            usage();
            st = 1;
        } else {
            set_arg(L, argc, argv, 2);
            st = luaL_loadbuffer(L, argv[2], strlen(argv[2]), "=(command line)");
            if (st) fprintf(stderr, "grove: %s\n", lua_tostring(L, -1));
            else st = call(L, 0);
        }
    } else if (is_command(argv[1])) {
        /* grove sample …, grove eval …: lua/grove/cli/<command>.lua */
        set_arg(L, argc, argv, 1);
        lua_getglobal(L, "require");
        lua_pushstring(L, "grove.cli");
        if (lua_pcall(L, 1, 1, 0)) {
            fprintf(stderr, "grove: %s\n", lua_tostring(L, -1));
            st = 1;
        } else {
            lua_getfield(L, -1, "run");
            lua_remove(L, -2);
            lua_pushstring(L, argv[1]);
            lua_getglobal(L, "arg");
            /* a command reports its own errors: the message, no traceback */
            st = lua_pcall(L, 2, 0, 0);
            if (st) {
                fprintf(stderr, "grove %s: %s\n", argv[1], lua_tostring(L, -1));
                lua_pop(L, 1);
            }
        }
    } else {
        int interactive = !strcmp(argv[1], "-i");
        int script = interactive ? 2 : 1;
        if (script >= argc) {
            usage();
            st = 1;
        } else {
            set_arg(L, argc, argv, script);
            st = luaL_loadfile(L, argv[script]);
            if (st) fprintf(stderr, "grove: %s\n", lua_tostring(L, -1));
            else {
                int nargs = argc - script - 1;
                for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
                st = call(L, nargs);
            }
            if (interactive) st = run_repl(L);
        }
    }
    lua_close(L);
    return st ? 1 : 0;
}
