#!/usr/bin/python3
"""wictoken-check, the command-line contract other tools rely on: flags, the
one JSON object it prints (verdict, status, reason, impu, impi, forward) and
its exit codes (0 accept, 1 reject, 2 usage or configuration error, a bad
JWKS included). Keys, tokens and REGISTERs come from wictoken-mint (the test
kit of libwictoken, signing with GnuTLS)."""

import json
import os
import subprocess
import tempfile
import time
import unittest

CHECK = os.environ["WICTOKEN_CHECK"]
MINT = os.environ["WICTOKEN_MINT"]
ISSUER = "https://wwsf.example.com"
REALM = "ims.example.com"
IMPU = "sip:+15550001234@ims.example.com"
IMPI = "+15550001234@ims.example.com"


class WictokenCheck(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="wictoken-check-")
        cls.dir = cls.tmp.name
        subprocess.run([MINT, "keys", cls.dir], check=True)
        cls.jwks = os.path.join(cls.dir, "jwks.json")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def mint(self, *args, kind="register"):
        return subprocess.run([MINT, kind, self.dir] + list(args), check=True, stdout=subprocess.PIPE).stdout

    def check(self, message, *args, jwks=None, base=True):
        argv = [CHECK]
        if base:
            argv += ["--issuer", ISSUER, "--jwks", jwks or self.jwks, "--audience", REALM, "--realm", REALM]
        argv += list(args) + ["-"]
        p = subprocess.run(argv, input=message, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        out = None
        if p.returncode in (0, 1):
            lines = p.stdout.decode().splitlines()
            self.assertEqual(len(lines), 1, p.stdout)
            out = json.loads(lines[0])
        return p.returncode, out, p.stderr.decode()

    def assertVerdict(self, result, code, verdict, status):
        rc, out, err = result
        self.assertEqual(rc, code, (out, err))
        self.assertEqual(out["verdict"], verdict, out)
        self.assertEqual(out["status"], status, out)
        for key in ("verdict", "status", "reason", "impu", "impi"):
            self.assertIn(key, out)
        return out

    def test_accept(self):
        for alg in ("ES256", "RS256"):
            out = self.assertVerdict(self.check(self.mint("--alg", alg)), 0, "accept", 200)
            self.assertEqual(out["impu"], IMPU)
            self.assertEqual(out["impi"], IMPI)
            self.assertEqual(out["reason"], "ok")
            self.assertNotIn("forward", out)

    def test_forward(self):
        msg = self.mint()
        token = self.mint(kind="token").decode().strip()
        out = self.assertVerdict(self.check(msg, "--forward", "--path", "<sip:edge.ims.example.com;lr;ob>"), 0,
                                 "accept", 200)
        fwd = out["forward"]
        self.assertNotIn("Bearer", fwd)
        self.assertNotIn(token.split(".")[2], fwd)
        self.assertIn('\r\nAuthorization: Digest username="%s", realm="%s", uri="sip:%s", nonce="", response="", '
                      'integrity-protected="auth-done"\r\n' % (IMPI, REALM, REALM), fwd)
        self.assertIn("\r\nPath: <sip:edge.ims.example.com;lr;ob>\r\n", fwd)
        self.assertTrue(fwd.startswith("REGISTER sip:%s SIP/2.0\r\n" % REALM))
        self.assertTrue(fwd.endswith("\r\n\r\n"))

    def test_message_from_a_file(self):
        path = os.path.join(self.dir, "register.sip")
        with open(path, "wb") as f:
            f.write(self.mint())
        p = subprocess.run([CHECK, "--issuer", ISSUER, "--jwks", self.jwks, "--audience", REALM, "--realm", REALM,
                            path], stdout=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(json.loads(p.stdout)["verdict"], "accept")

    def test_rejects(self):
        out = self.assertVerdict(self.check(self.mint("--tamper")), 1, "reject", 401)
        self.assertIn('error="invalid_token"', out["www_authenticate"])
        self.assertIsNone(out["impu"])
        self.assertNotIn("forward", out)
        self.assertVerdict(self.check(self.mint("--now", str(int(time.time()) - 3600))), 1, "reject", 401)
        self.assertVerdict(self.check(self.mint("--omit", "impi")), 1, "reject", 401)
        out = self.assertVerdict(self.check(self.mint("--to", "<sip:mallory@ims.example.com>")), 1, "reject", 403)
        self.assertNotIn("www_authenticate", out)
        self.assertVerdict(self.check(b"REGISTER sip:x SIP/2.0\n\n"), 1, "reject", 400)
        # --forward prints no forward on a reject.
        out = self.assertVerdict(self.check(self.mint("--tamper"), "--forward"), 1, "reject", 401)
        self.assertNotIn("forward", out)

    def test_now_and_leeway(self):
        t = int(time.time())
        msg = self.mint("--now", str(t))
        self.assertVerdict(self.check(msg, "--now", str(t + 300 + 30)), 0, "accept", 200)    # within 60 s
        self.assertVerdict(self.check(msg, "--now", str(t + 300 + 30), "--leeway", "10"), 1, "reject", 401)
        self.assertVerdict(self.check(msg, "--now", str(t + 300 + 61)), 1, "reject", 401)

    def test_origin(self):
        msg = self.mint()
        allow = ["--allow-origin", "https://wwsf.example.com"]
        self.assertVerdict(self.check(msg, *allow, "--origin", "https://wwsf.example.com"), 0, "accept", 200)
        out = self.assertVerdict(self.check(msg, *allow, "--origin", "https://evil.example.org"), 1, "reject", 403)
        self.assertIn("Origin", out["reason"])

    def test_token_binding(self):
        msg = self.mint()
        self.assertVerdict(self.check(msg, "--connection-id", "ws-1", "--connection-id", "ws-1"), 0, "accept", 200)
        self.assertVerdict(self.check(msg, "--connection-id", "ws-1", "--connection-id", "ws-2"), 1, "reject", 401)

    def test_other_requests_lose_their_bearer(self):
        token = self.mint(kind="token").decode().strip()
        invite = ("INVITE sip:bob@%s SIP/2.0\r\nVia: SIP/2.0/WSS h.invalid;branch=z9hG4bK1\r\nTo: <sip:bob@%s>\r\n"
                  "From: <%s>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nAuthorization: Bearer %s\r\n"
                  "Content-Length: 0\r\n\r\n" % (REALM, REALM, IMPU, token)).encode()
        out = self.assertVerdict(self.check(invite, "--forward"), 0, "accept", 200)
        self.assertNotIn("Bearer", out["forward"])
        self.assertIn("\r\nCSeq: 1 INVITE\r\n", out["forward"])

    def test_configuration_errors(self):
        msg = self.mint()
        bad = os.path.join(self.dir, "bad-jwks.json")
        with open(self.jwks) as f:
            jwks = json.load(f)
        jwks["keys"][0]["d"] = "AAAA"       # a private member
        with open(bad, "w") as f:
            json.dump(jwks, f)
        rc, out, err = self.check(msg, jwks=bad)
        self.assertEqual(rc, 2)
        self.assertIn("private member", err)
        self.assertEqual(self.check(msg, jwks=os.path.join(self.dir, "missing.json"))[0], 2)
        self.assertEqual(self.check(msg, base=False)[0], 2)
        self.assertEqual(self.check(msg, "--leeway", "1000")[0], 2)
        self.assertEqual(self.check(msg, "--bogus")[0], 2)
        p = subprocess.run([CHECK, "--jwks", self.jwks], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([CHECK, "--help"], stdout=subprocess.PIPE)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"--allow-origin", p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
