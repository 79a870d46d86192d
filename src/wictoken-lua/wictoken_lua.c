/* wictoken.so: libwictoken for Lua 5.1, as Kamailio's app_lua (KEMI) loads
 * it with `require "wictoken"`. README.md beside this file documents the Lua
 * API; include/wictoken/wictoken.h the library's.
 *
 * A context is a full userdata holding the library's handle: the garbage
 * collector frees it (__gc), and so does ctx:close(). The userdata is made
 * before the library's context, so a Lua error raised half-way through
 * wt.new{} leaves nothing behind that the collector does not free.
 *
 * Conventions: a wrong argument type or an unknown option is a programming
 * error and raises a Lua error; what depends on the outside world (a JWKS file
 * that is missing or malformed, a message that is not a REGISTER) returns
 * nil, message (and the library's negative code), as io.open does. */
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wictoken/wictoken.h>

#define CTX_METATABLE "wictoken.ctx"

/* The one symbol the module exports (the build hides every other). */
__attribute__((visibility("default"))) int luaopen_wictoken(lua_State *L);

struct lua_wictoken {
        struct wictoken_ctx *ctx;       /* NULL once closed */
        int log_ref;                    /* registry reference of opts.log, or LUA_NOREF */
        lua_State *L;                   /* the state of the call in progress, for the log callback */
};

static struct lua_wictoken *check_ctx(lua_State *L) {
        struct lua_wictoken *w = luaL_checkudata(L, 1, CTX_METATABLE);
        if (!w->ctx)
                luaL_error(L, "wictoken: the context is closed");
        return w;
}

/* Pushes nil, "<what>: <name of code>: <detail>", code; returns 3. */
static int push_failure(lua_State *L, struct lua_wictoken *w, const char *what, int code) {
        const char *detail = w && w->ctx ? wictoken_ctx_detail(w->ctx) : "";
        lua_pushnil(L);
        if (detail[0])
                lua_pushfstring(L, "%s: %s: %s", what, wictoken_strerror(code), detail);
        else
                lua_pushfstring(L, "%s: %s", what, wictoken_strerror(code));
        lua_pushinteger(L, code);
        return 3;
}

/* The library's log callback: calls opts.log(level, line) in protected mode.
 * An error in that function is dropped: it must not unwind through the
 * library's frames (a longjmp there would leak or leave a lock held). */
static void log_to_lua(void *userdata, int level, const char *msg) {
        struct lua_wictoken *w = userdata;
        lua_State *L = w->L;
        if (!L || w->log_ref == LUA_NOREF)
                return;
        lua_rawgeti(L, LUA_REGISTRYINDEX, w->log_ref);
        lua_pushinteger(L, level);
        lua_pushstring(L, msg);
        if (lua_pcall(L, 2, 0, 0) != 0)
                lua_pop(L, 1);
}

/* Brackets each library call, so that the log callback knows which state to
 * call into (a context may be used from coroutines of one state). */
#define CALL(w, L, expr) ((w)->L = (L), (expr))

static int ctx_gc(lua_State *L) {
        struct lua_wictoken *w = luaL_checkudata(L, 1, CTX_METATABLE);
        /* Whatever the library says while it frees stays unheard: the state
         * of the last call may be a coroutine that is gone. */
        w->L = NULL;
        if (w->ctx)
                wictoken_set_log(w->ctx, NULL, NULL);
        wictoken_ctx_free(w->ctx);
        w->ctx = NULL;
        if (w->log_ref != LUA_NOREF) {
                luaL_unref(L, LUA_REGISTRYINDEX, w->log_ref);
                w->log_ref = LUA_NOREF;
        }
        return 0;
}

static int ctx_tostring(lua_State *L) {
        struct lua_wictoken *w = luaL_checkudata(L, 1, CTX_METATABLE);
        if (w->ctx)
                lua_pushfstring(L, "wictoken.ctx (%d keys)", wictoken_key_count(w->ctx));
        else
                lua_pushstring(L, "wictoken.ctx (closed)");
        return 1;
}

/* ---- wt.new{...} --------------------------------------------------------- */

static const char *const OPTIONS[] = {
        "issuers", "audience", "realm", "origins", "leeway", "path", "token_binding", "log", NULL,
};

/* Raises for a key of opts that is not an option: a typo ("origin") would
 * otherwise silently leave the default (every Origin refused). */
static void check_option_names(lua_State *L, int opts) {
        lua_pushnil(L);
        while (lua_next(L, opts) != 0) {
                lua_pop(L, 1);
                if (lua_type(L, -1) != LUA_TSTRING)
                        luaL_error(L, "wictoken.new: option names are strings");
                const char *name = lua_tostring(L, -1);
                int known = 0;
                for (const char *const *o = OPTIONS; *o; o++)
                        known |= strcmp(name, *o) == 0;
                if (!known)
                        luaL_error(L, "wictoken.new: unknown option '%s'", name);
        }
}

/* opts[name] as a string; NULL when absent and not required. */
static const char *opt_string(lua_State *L, int opts, const char *name, int required) {
        lua_getfield(L, opts, name);
        const char *s = NULL;
        if (lua_type(L, -1) == LUA_TSTRING)
                s = lua_tostring(L, -1);
        else if (!lua_isnil(L, -1) || required)
                luaL_error(L, "wictoken.new: option '%s' must be a string", name);
        lua_pop(L, 1);          /* the string stays alive in opts */
        return s;
}

/* issuers = { [iss] = "/path/jwks.json" or { jwks = "<JSON text>" } }.
 * Returns the number of library results pushed (3) on a failure, else 0. */
static int add_issuers(lua_State *L, struct lua_wictoken *w, int opts) {
        int n = 0;
        lua_getfield(L, opts, "issuers");
        if (lua_type(L, -1) != LUA_TTABLE)
                luaL_error(L, "wictoken.new: option 'issuers' must be a table { [issuer] = jwks_file }");
        int issuers = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, issuers) != 0) {
                if (lua_type(L, -2) != LUA_TSTRING)
                        luaL_error(L, "wictoken.new: issuers are keyed by their \"iss\" string");
                const char *iss = lua_tostring(L, -2);
                int r;
                if (lua_type(L, -1) == LUA_TSTRING) {
                        r = CALL(w, L, wictoken_add_issuer(w->ctx, iss, lua_tostring(L, -1)));
                } else if (lua_type(L, -1) == LUA_TTABLE) {
                        size_t len;
                        lua_getfield(L, -1, "jwks");
                        if (lua_type(L, -1) != LUA_TSTRING)
                                luaL_error(L, "wictoken.new: issuer '%s': { jwks = \"<JSON>\" } expected", iss);
                        const char *json = lua_tolstring(L, -1, &len);
                        r = CALL(w, L, wictoken_add_issuer_jwks(w->ctx, iss, json, len));
                        lua_pop(L, 1);
                } else {
                        return luaL_error(L, "wictoken.new: issuer '%s': a JWKS file name expected", iss);
                }
                if (r < 0) {
                        lua_pushfstring(L, "issuer %s", iss);
                        return push_failure(L, w, lua_tostring(L, -1), r);
                }
                n++;
                lua_pop(L, 1);
        }
        if (n == 0)
                luaL_error(L, "wictoken.new: option 'issuers' lists no issuer");
        lua_pop(L, 1);
        return 0;
}

static int add_origins(lua_State *L, struct lua_wictoken *w, int opts) {
        lua_getfield(L, opts, "origins");
        if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                return 0;
        }
        if (lua_type(L, -1) != LUA_TTABLE)
                luaL_error(L, "wictoken.new: option 'origins' must be a list of strings");
        int origins = lua_gettop(L);
        size_t n = lua_objlen(L, origins);
        for (size_t i = 1; i <= n; i++) {
                lua_rawgeti(L, origins, (int) i);
                if (lua_type(L, -1) != LUA_TSTRING)
                        luaL_error(L, "wictoken.new: origins[%d] is not a string", (int) i);
                int r = CALL(w, L, wictoken_allow_origin(w->ctx, lua_tostring(L, -1)));
                if (r < 0)
                        return push_failure(L, w, "origins", r);
                lua_pop(L, 1);
        }
        lua_pop(L, 1);
        return 0;
}

static int wt_new(lua_State *L) {
        luaL_checktype(L, 1, LUA_TTABLE);
        check_option_names(L, 1);

        struct lua_wictoken *w = lua_newuserdata(L, sizeof(*w));
        w->ctx = NULL;
        w->log_ref = LUA_NOREF;
        w->L = L;
        luaL_getmetatable(L, CTX_METATABLE);
        lua_setmetatable(L, -2);
        int ud = lua_gettop(L);

        int r = wictoken_ctx_new(&w->ctx);
        if (r < 0)
                return push_failure(L, NULL, "wictoken.new", r);

        lua_getfield(L, 1, "log");
        if (lua_isfunction(L, -1)) {
                w->log_ref = luaL_ref(L, LUA_REGISTRYINDEX);
                CALL(w, L, wictoken_set_log(w->ctx, log_to_lua, w));
        } else if (!lua_isnil(L, -1)) {
                return luaL_error(L, "wictoken.new: option 'log' must be a function(level, line)");
        } else {
                lua_pop(L, 1);
        }

        const char *audience = opt_string(L, 1, "audience", 1);
        const char *realm = opt_string(L, 1, "realm", 1);
        const char *path = opt_string(L, 1, "path", 0);
        if ((r = CALL(w, L, wictoken_set_audience(w->ctx, audience))) < 0)
                return push_failure(L, w, "audience", r);
        if ((r = CALL(w, L, wictoken_set_realm(w->ctx, realm))) < 0)
                return push_failure(L, w, "realm", r);
        if (path && (r = CALL(w, L, wictoken_set_path(w->ctx, path))) < 0)
                return push_failure(L, w, "path", r);

        lua_getfield(L, 1, "leeway");
        if (!lua_isnil(L, -1)) {
                if (lua_type(L, -1) != LUA_TNUMBER)
                        return luaL_error(L, "wictoken.new: option 'leeway' must be a number of seconds");
                if ((r = CALL(w, L, wictoken_set_leeway(w->ctx, (int64_t) lua_tonumber(L, -1)))) < 0)
                        return push_failure(L, w, "leeway", r);
        }
        lua_pop(L, 1);

        lua_getfield(L, 1, "token_binding");
        if (!lua_isnil(L, -1)) {
                if (!lua_isboolean(L, -1))
                        return luaL_error(L, "wictoken.new: option 'token_binding' must be a boolean");
                if ((r = CALL(w, L, wictoken_set_token_binding(w->ctx, lua_toboolean(L, -1)))) < 0)
                        return push_failure(L, w, "token_binding", r);
        }
        lua_pop(L, 1);

        if ((r = add_origins(L, w, 1)) != 0)
                return r;
        if ((r = add_issuers(L, w, 1)) != 0)
                return r;

        w->L = NULL;
        lua_pushvalue(L, ud);
        return 1;
}

/* ---- methods ------------------------------------------------------------- */

/* ctx:check_origin(origin) -> true | false, reason. A nil Origin (the header
 * is absent) is refused: browsers always send one. */
static int ctx_check_origin(lua_State *L) {
        struct lua_wictoken *w = check_ctx(L);
        const char *origin = luaL_optstring(L, 2, NULL);
        int r = CALL(w, L, wictoken_check_origin(w->ctx, origin));
        w->L = NULL;
        if (r == 0) {
                lua_pushboolean(L, 1);
                return 1;
        }
        lua_pushboolean(L, 0);
        const char *detail = wictoken_ctx_detail(w->ctx);
        lua_pushstring(L, detail[0] ? detail : wictoken_strerror(r));
        return 2;
}

static void set_string(lua_State *L, const char *name, const char *value) {
        if (!value)
                return;
        lua_pushstring(L, value);
        lua_setfield(L, -2, name);
}

/* ctx:check_register(msg [, connection_id]) -> verdict table, or nil, message,
 * code when no verdict could be made (another method, a broken context). */
static int ctx_check_register(lua_State *L) {
        struct lua_wictoken *w = check_ctx(L);
        size_t len;
        const char *msg = luaL_checklstring(L, 2, &len);
        const char *conn = luaL_optstring(L, 3, NULL);     /* numbers ($conid) become strings */
        struct wictoken_verdict *v = NULL;
        int r = CALL(w, L, wictoken_check_register(w->ctx, msg, len, conn, &v));
        w->L = NULL;
        if (r < 0)
                return push_failure(L, w, "check_register", r);

        /* Everything is copied into Lua strings before the verdict is freed;
         * nothing below raises except for memory (then the verdict leaks
         * once, as any allocation failure inside a Lua API call would). */
        lua_createtable(L, 0, 12);
        lua_pushboolean(L, wictoken_verdict_accepted(v));
        lua_setfield(L, -2, "accepted");
        lua_pushinteger(L, wictoken_verdict_status(v));
        lua_setfield(L, -2, "status");
        set_string(L, "phrase", wictoken_verdict_phrase(v));
        set_string(L, "reason", wictoken_verdict_reason(v));
        set_string(L, "www_authenticate", wictoken_verdict_www_authenticate(v));
        set_string(L, "impu", wictoken_verdict_impu(v));
        set_string(L, "impi", wictoken_verdict_impi(v));
        set_string(L, "jti", wictoken_verdict_jti(v));
        set_string(L, "tna_authorization", wictoken_verdict_tna_authorization(v));
        set_string(L, "path", wictoken_verdict_path(v));
        if (wictoken_verdict_accepted(v)) {
                /* Seconds since the epoch fit a Lua 5.1 number (a double) exactly. */
                lua_pushnumber(L, (lua_Number) wictoken_verdict_exp(v));
                lua_setfield(L, -2, "exp");
                size_t flen = 0;
                const char *fwd = wictoken_verdict_forward(v, &flen);
                if (fwd) {
                        lua_pushlstring(L, fwd, flen);
                        lua_setfield(L, -2, "forward");
                }
        }
        wictoken_verdict_free(v);
        return 1;
}

/* ctx:strip_bearer(msg) -> message without Bearer Authorization, number
 * removed; or nil, message, code. */
static int ctx_strip_bearer(lua_State *L) {
        struct lua_wictoken *w = check_ctx(L);
        size_t len, out_len = 0;
        const char *msg = luaL_checklstring(L, 2, &len);
        char *out = NULL;
        int r = CALL(w, L, wictoken_strip_bearer(w->ctx, msg, len, &out, &out_len));
        w->L = NULL;
        if (r < 0) {
                free(out);
                return push_failure(L, w, "strip_bearer", r);
        }
        /* lua_pushlstring copies; it raises only without memory, and then
         * this one buffer leaks. */
        lua_pushlstring(L, out, out_len);
        free(out);
        lua_pushinteger(L, r);
        return 2;
}

/* ctx:reload() -> number of keys; or nil, message, code (the old keys stay). */
static int ctx_reload(lua_State *L) {
        struct lua_wictoken *w = check_ctx(L);
        int r = CALL(w, L, wictoken_reload(w->ctx));
        w->L = NULL;
        if (r < 0)
                return push_failure(L, w, "reload", r);
        lua_pushinteger(L, r);
        return 1;
}

static int ctx_key_count(lua_State *L) {
        struct lua_wictoken *w = check_ctx(L);
        lua_pushinteger(L, wictoken_key_count(w->ctx));
        return 1;
}

/* ctx:close(): frees the context now (idempotent); later calls raise. */
static int ctx_close(lua_State *L) {
        return ctx_gc(L);
}

static const luaL_Reg ctx_methods[] = {
        {"check_origin", ctx_check_origin},
        {"check_register", ctx_check_register},
        {"strip_bearer", ctx_strip_bearer},
        {"reload", ctx_reload},
        {"key_count", ctx_key_count},
        {"close", ctx_close},
        {NULL, NULL},
};

static const luaL_Reg module_functions[] = {
        {"new", wt_new},
        {NULL, NULL},
};

int luaopen_wictoken(lua_State *L) {
        luaL_newmetatable(L, CTX_METATABLE);
        lua_newtable(L);
        luaL_register(L, NULL, ctx_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, ctx_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, ctx_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "wictoken.ctx");
        lua_setfield(L, -2, "__metatable");     /* getmetatable() cannot swap __gc */
        lua_pop(L, 1);

        luaL_register(L, "wictoken", module_functions);
        lua_pushstring(L, wictoken_version());
        lua_setfield(L, -2, "version");
        /* The log levels opts.log receives (syslog's numbers). */
        lua_pushinteger(L, WICTOKEN_LOG_ERR);
        lua_setfield(L, -2, "LOG_ERR");
        lua_pushinteger(L, WICTOKEN_LOG_WARNING);
        lua_setfield(L, -2, "LOG_WARNING");
        lua_pushinteger(L, WICTOKEN_LOG_INFO);
        lua_setfield(L, -2, "LOG_INFO");
        lua_pushinteger(L, WICTOKEN_LOG_DEBUG);
        lua_setfield(L, -2, "LOG_DEBUG");
        return 1;
}
