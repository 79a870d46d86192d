#!/usr/bin/python3
"""libwictoken as a library others build against: the public header compiles
alone as C99 (pedantic) and as C++; a program finds the library through the
generated pkg-config file, links the shared library only (nothing of the
internals) and gets a verdict; the shared library exports exactly the
functions of the version script, each declared in the header."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.environ["WWSF_SOURCE_ROOT"]
BUILD = os.environ["WWSF_BUILD_ROOT"]
LIB = os.environ["WICTOKEN_LIB"]
# project()'s version, passed in by the build.
VERSION = os.environ["WWSF_VERSION"]
HEADER = os.path.join(ROOT, "include", "wictoken", "wictoken.h")
MAP = os.path.join(ROOT, "src", "wictoken", "libwictoken.map")

PROGRAM = r"""
#include <wictoken/wictoken.h>
#include <stdio.h>
#include <string.h>
int main(void) {
        struct wictoken_ctx *ctx = NULL;
        struct wictoken_verdict *v = NULL;
        const char *msg = "REGISTER sip:ims.example.com SIP/2.0\r\nTo: <sip:a@ims.example.com>\r\n"
                          "From: <sip:a@ims.example.com>;tag=1\r\nContent-Length: 0\r\n\r\n";
        if (wictoken_ctx_new(&ctx) < 0) return 1;
        if (wictoken_add_issuer_jwks(ctx, "https://i", "{\"keys\":[]}", 11) < 0) return 2;
        if (wictoken_set_audience(ctx, "ims.example.com") < 0 || wictoken_set_realm(ctx, "ims.example.com") < 0) return 3;
        if (wictoken_check_register(ctx, msg, strlen(msg), NULL, &v) < 0) return 4;
        printf("%d %s|%s\n", wictoken_verdict_status(v), wictoken_verdict_www_authenticate(v), wictoken_version());
        wictoken_verdict_free(v);
        wictoken_ctx_free(ctx);
        return 0;
}
"""


def run(argv, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8", **kw)
    if p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s" % (" ".join(argv), p.returncode, p.stdout))
    return p.stdout


class Library(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wictoken-lib-")
        self.addCleanup(shutil.rmtree, self.tmp)

    def test_header_alone_c99_and_cxx(self):
        for compiler, flags, ext in (("cc", ["-std=c99", "-pedantic-errors"], "c"),
                                     ("c++", ["-std=c++11", "-pedantic-errors"], "cc")):
            src = os.path.join(self.tmp, "alone." + ext)
            with open(src, "w") as f:
                f.write('#include "wictoken/wictoken.h"\n#include "wictoken/wictoken.h"\n'
                        "int f(void); int f(void) { return WICTOKEN_E_INTERNAL; }\n")
            run([compiler] + flags + ["-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                                      "-I", os.path.join(ROOT, "include"), src])

    def test_pkg_config_and_link(self):
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(BUILD, "meson-uninstalled"))
        flags = run(["pkg-config", "--cflags", "--libs", "libwictoken-uninstalled"], env=env).split()
        self.assertIn("-lwictoken", flags)
        src = os.path.join(self.tmp, "prog.c")
        with open(src, "w") as f:
            f.write(PROGRAM)
        exe = os.path.join(self.tmp, "prog")
        # Only what pkg-config gives: no GnuTLS or jansson flags needed by
        # the program (they are Requires.private).
        # A sanitized build's library needs the sanitizer runtime linked in.
        sanitize = os.environ.get("WWSF_SANITIZE", "none")
        extra = ["-fsanitize=" + sanitize] if sanitize not in ("", "none") else []
        run(["cc", "-std=c99", "-Wall", "-Werror", src, "-o", exe] + flags + extra)
        out = run([exe], env=dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(LIB)))
        self.assertEqual(out.strip(), '401 Bearer realm="ims.example.com", authz_server="https://i"|' + VERSION)
        modversion = run(["pkg-config", "--modversion", "libwictoken-uninstalled"], env=env).strip()
        self.assertEqual(modversion, VERSION)
        self.assertEqual(os.path.basename(os.path.realpath(LIB)), "libwictoken.so." + VERSION)

    def test_exports_are_the_version_script(self):
        out = run(["nm", "-D", "--defined-only", LIB])
        exported = {m.group(1) for m in re.finditer(r"^\S+ [TDBR] (\w+)@@LIBWICTOKEN_0$", out, re.M)}
        others = [l for l in out.splitlines() if l.split()[-1] != "LIBWICTOKEN_0" and "@@LIBWICTOKEN_0" not in l]
        self.assertEqual(others, [], "symbols outside the version script")
        with open(MAP) as f:
            listed = set(re.findall(r"^\s+(wictoken_\w+);", f.read(), re.M))
        with open(HEADER) as f:
            declared = set(re.findall(r"WICTOKEN_EXPORT [^;(]*?\b(wictoken_\w+)\(", f.read()))
        self.assertEqual(exported, listed)
        self.assertEqual(listed, declared)
        self.assertGreater(len(exported), 30)


if __name__ == "__main__":
    unittest.main(verbosity=2)
