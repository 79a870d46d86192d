#!/usr/bin/python3
"""wictoken.so, the Lua 5.1 binding of libwictoken, in the lua5.1
interpreter (no Kamailio): wt.new{} and its argument checks, check_origin,
check_register's verdict tables (accepted, forged, not a REGISTER),
strip_bearer, reload (all or nothing), the log callback, close and the
garbage collector. Keys and tokens come from kamailio_fixture (openssl).

Meson passes $WICTOKEN_LUA_DIR (the folder of wictoken.so). Exit 77
(skipped) without the lua5.1 interpreter."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kamailio_fixture as f  # noqa: E402

LUA = shutil.which("lua5.1")
VALGRIND = shutil.which("valgrind")

PRELUDE = r"""
package.cpath = %(cpath)s .. ";" .. package.cpath
local wt = require "wictoken"
local JWKS, ISSUER = %(jwks)s, %(issuer)s
local function new(extra)
        local o = { issuers = { [ISSUER] = JWKS }, audience = %(audience)s, realm = %(realm)s,
                    origins = { %(origin)s } }
        for k, v in pairs(extra or {}) do o[k] = v end
        return wt.new(o)
end
local function out(...)
        local t = {}
        for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
        io.write(table.concat(t, "|"), "\n")
end
"""


def lua_string(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")


class LuaBinding(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="wictoken-lua-")
        cls.key = f.SigningKey(cls.tmp)
        cls.jwks = f.write_jwks(os.path.join(cls.tmp, "jwks.json"), [cls.key])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def lua(self, body, jwks=None, wrapper=()):
        """Runs PRELUDE + body (under `wrapper`, a command prefix); returns
        the lines it printed."""
        script = os.path.join(self.tmp, "t.lua")
        with open(script, "w") as fp:
            fp.write(PRELUDE % {"cpath": lua_string(os.path.join(f.WICTOKEN_LUA_DIR, "?.so")),
                                "jwks": lua_string(jwks or self.jwks), "issuer": lua_string(f.ISSUER),
                                "audience": lua_string(f.AUDIENCE), "realm": lua_string(f.DOMAIN),
                                "origin": lua_string(f.ALLOWED_ORIGIN)})
            fp.write(body)
        p = subprocess.run(list(wrapper) + [LUA, script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8",
                           errors="replace", timeout=60)
        if p.returncode != 0:
            self.fail("lua5.1 exited %d:\n%s\n--- script:\n%s" % (p.returncode, p.stderr, body))
        return p.stdout.splitlines()

    def register(self, impu, token=None, to=None):
        return lua_string(f.register_request(impu, token, to=to))

    def test_new_checks_its_options(self):
        lines = self.lua(r"""
out(pcall(wt.new, { issuers = { [ISSUER] = JWKS }, audience = "a", realm = "r", origin = {} }))
out(pcall(wt.new, { audience = "a", realm = "r" }))
out(pcall(wt.new, { issuers = {}, audience = "a", realm = "r" }))
out(pcall(wt.new, { issuers = { [ISSUER] = JWKS }, realm = "r" }))
out(pcall(wt.new, "not a table"))
out(pcall(new, { leeway = "60" }))
local ctx, err, code = new({ issuers = { [ISSUER] = "/nonexistent/jwks.json" } })
out(ctx, err, code)
ctx, err, code = new({ leeway = 100000 })
out(ctx, err, code)
out(type(wt.version), wt.LOG_ERR, wt.LOG_DEBUG)
local fp = assert(io.open(JWKS)); local text = fp:read("*a"); fp:close()
out(assert(new({ issuers = { [ISSUER] = { jwks = text } } })):key_count())
out(pcall(new, { issuers = { [ISSUER] = { jwks = 42 } } }))
""")
        self.assertEqual(lines[0], "false|wictoken.new: unknown option 'origin'")
        self.assertIn("option 'issuers' must be a table", lines[1])
        self.assertIn("lists no issuer", lines[2])
        self.assertIn("option 'audience' must be a string", lines[3])
        self.assertTrue(lines[4].startswith("false|") and "table expected" in lines[4], lines[4])
        self.assertIn("option 'leeway' must be a number", lines[5])
        ctx, err, code = lines[6].split("|")
        self.assertEqual(ctx, "nil")
        self.assertIn("issuer %s" % f.ISSUER, err)
        self.assertIn("/nonexistent/jwks.json", err)
        self.assertLess(int(code), 0)
        self.assertTrue(lines[7].startswith("nil|leeway: "), lines[7])
        self.assertEqual(lines[8], "string|3|7")
        self.assertEqual(lines[9], "1")
        self.assertIn('{ jwks = "<JSON>" } expected', lines[10])

    def test_check_origin(self):
        lines = self.lua(r"""
local ctx = assert(new())
out(ctx:check_origin(%s))
out(ctx:check_origin("https://evil.example.net"))
out(ctx:check_origin(nil))
out(tostring(ctx))
""" % lua_string(f.ALLOWED_ORIGIN))
        self.assertEqual(lines[0], "true")
        self.assertTrue(lines[1].startswith("false|") and len(lines[1]) > len("false|"), lines[1])
        self.assertTrue(lines[2].startswith("false|"), lines[2])
        self.assertEqual(lines[3], "wictoken.ctx (1 keys)")

    def test_check_register_verdicts(self):
        who = "sip:lua-%s@%s" % (f.random_token(6), f.DOMAIN)
        token = self.key.sign(f.claims_for(who))
        lines = self.lua(r"""
local ctx = assert(new())
local v = assert(ctx:check_register(%(ok)s, 42))
out(v.accepted, v.status, v.phrase, v.reason, v.impu, v.impi, v.jti ~= nil, type(v.exp), v.www_authenticate)
out(v.tna_authorization)
out(v.path)
out(v.forward:find("Bearer", 1, true), v.forward:find("auth-done", 1, true) ~= nil)
v = assert(ctx:check_register(%(forged)s, "42"))
out(v.accepted, v.status, v.impu, v.tna_authorization, v.forward, v.exp)
out(v.www_authenticate)
v = assert(ctx:check_register(%(other)s))
out(v.accepted, v.status)
out(ctx:check_register("OPTIONS sip:x SIP/2.0\r\n\r\n"))
out(pcall(ctx.check_register, ctx))
""" % {"ok": self.register(who, token), "forged": self.register(who, f.flip_signature_bit(token)),
       "other": self.register(who, self.key.sign(f.claims_for(who)), to="sip:someone-else@%s" % f.DOMAIN)})
        accepted = lines[0].split("|")
        self.assertEqual(accepted[:3], ["true", "200", "OK"], lines[0])
        self.assertEqual(accepted[4:8], [who, who.split(":", 1)[1], "true", "number"], lines[0])
        self.assertEqual(accepted[8], "nil")
        self.assertTrue(lines[1].startswith("Digest ") and 'integrity-protected="auth-done"' in lines[1], lines[1])
        self.assertIn(";lr", lines[2])
        self.assertEqual(lines[3], "nil|true")
        forged = lines[4].split("|")
        self.assertEqual(forged, ["false", "401", "nil", "nil", "nil", "nil"], lines[4])
        self.assertIn('error="invalid_token"', lines[5])
        self.assertEqual(lines[6], "false|403")
        nil, err, code = lines[7].split("|")
        self.assertEqual(nil, "nil")
        self.assertIn("check_register", err)
        self.assertLess(int(code), 0)
        self.assertTrue(lines[8].startswith("false|") and "string expected" in lines[8], lines[8])

    def test_strip_bearer(self):
        msg = f.request("MESSAGE", "sip:b@%s" % f.DOMAIN, "sip:a@%s" % f.DOMAIN, "sip:b@%s" % f.DOMAIN,
                        "SIP/2.0/WSS x.invalid", extra=["Authorization: Bearer abc.def.ghi"], body="hi")
        lines = self.lua(r"""
local ctx = assert(new())
local m, n = ctx:strip_bearer(%s)
out(n, m:find("Bearer", 1, true), m:sub(1, 7), #m)
out(ctx:strip_bearer("not SIP"))
""" % lua_string(msg))
        n, found, start, length = lines[0].split("|")
        self.assertEqual((n, found, start), ("1", "nil", "MESSAGE"))
        self.assertEqual(int(length), len(msg) - len("Authorization: Bearer abc.def.ghi\r\n"))
        self.assertTrue(lines[1].startswith("nil|"), lines[1])

    def test_reload_is_all_or_nothing(self):
        path = os.path.join(self.tmp, "reload-jwks.json")
        f.write_jwks(path, [self.key])
        second = f.SigningKey(self.tmp)
        lines = self.lua(r"""
local ctx = assert(new())
out(ctx:key_count())
local p = %(path)s
local function write(text) local fp = assert(io.open(p, "w")); fp:write(text); fp:close() end
write(%(two)s)
out(ctx:reload())
write("{\"keys\": [ broken")
out(ctx:reload())
out(ctx:key_count())
""" % {"path": lua_string(path), "two": lua_string('{"keys":[%s,%s]}' % tuple(
            __import__("json").dumps(k.jwk) for k in (self.key, second)))}, jwks=path)
        self.assertEqual(lines[0], "1")
        self.assertEqual(lines[1], "2")
        nil, err, code = lines[2].split("|")
        self.assertEqual(nil, "nil")
        self.assertIn("reload", err)
        self.assertLess(int(code), 0)
        self.assertEqual(lines[3], "2")

    def test_log_callback(self):
        lines = self.lua(r"""
local heard = {}
local ctx = assert(new({ log = function(level, line) heard[#heard + 1] = level .. " " .. line end }))
out(#heard > 0, heard[1])
-- An error in the log function is dropped, not raised through the library.
local ctx2 = assert(new({ log = function() error("boom") end }))
out(ctx2:reload())
out(pcall(new, { log = 42 }))
""")
        ok, first = lines[0].split("|", 1)
        self.assertEqual(ok, "true")
        self.assertRegex(first, r"^\d ")
        self.assertEqual(lines[1], "1")
        self.assertIn("option 'log' must be a function", lines[2])

    def test_close_and_garbage_collection(self):
        lines = self.lua(r"""
local ctx = assert(new())
ctx:close()
ctx:close()
out(tostring(ctx), pcall(ctx.check_origin, ctx, "x"))
out(getmetatable(ctx))
for i = 1, 200 do
        local c = assert(new({ log = function() end }))
        if i % 2 == 0 then c:close() end
end
collectgarbage("collect")
out("collected", collectgarbage("count") < 10000)
""")
        self.assertEqual(lines[0], "wictoken.ctx (closed)|false|wictoken: the context is closed")
        self.assertEqual(lines[1], "wictoken.ctx")
        self.assertEqual(lines[2], "collected|true")

    @unittest.skipUnless(VALGRIND, "valgrind is not installed")
    def test_no_leak_under_valgrind(self):
        """Contexts, verdicts, stripped messages and log references, made and
        collected: valgrind finds nothing definitely lost and no error."""
        who = "sip:vg-%s@%s" % (f.random_token(6), f.DOMAIN)
        token = self.key.sign(f.claims_for(who))
        lines = self.lua(r"""
for i = 1, 20 do
        local ctx = assert(new({ log = function() end, token_binding = true }))
        local v = assert(ctx:check_register(%(ok)s, tostring(i)))
        assert(v.accepted and v.forward)
        v = assert(ctx:check_register(%(forged)s, tostring(i)))
        assert(not v.accepted)
        assert(ctx:strip_bearer(%(ok)s))
        assert(ctx:reload())
        assert(not ctx:check_origin("https://evil.example.net"))
        assert(not new({ issuers = { [ISSUER] = "/nonexistent" } }))
        if i %% 2 == 0 then ctx:close() end
end
collectgarbage("collect")
out("done")
""" % {"ok": self.register(who, token), "forged": self.register(who, f.flip_signature_bit(token))},
            wrapper=[VALGRIND, "-q", "--leak-check=full", "--errors-for-leak-kinds=definite",
                     "--error-exitcode=99"])
        self.assertEqual(lines, ["done"])


def main():
    if not LUA:
        sys.stderr.write("skipped: missing lua5.1\n")
        sys.exit(77)
    if not f.OPENSSL:
        sys.stderr.write("skipped: missing openssl\n")
        sys.exit(77)
    if not os.path.exists(os.path.join(f.WICTOKEN_LUA_DIR, "wictoken.so")):
        sys.stderr.write("wictoken.so not found in %s (set WICTOKEN_LUA_DIR)\n" % f.WICTOKEN_LUA_DIR)
        sys.exit(1)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
