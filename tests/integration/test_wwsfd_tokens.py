#!/usr/bin/python3
"""Tokens from a real wwsfd: the admission reply and its cookie, every claim
of the token profile (docs/DESIGN.md section 3), the signature checked with the
openssl command line and with libjwt from the served JWKS alone (ES256 and
RS256), the JWKS
holding public members only, refresh (same IMPU, lease renewed), logout
(IMPU in quarantine, kept from other visitors, session gone)."""

import base64
import ipaddress
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsfd_fixture as f  # noqa: E402

# The validators' clock leeway (docs/DESIGN.md section 4).
LEEWAY = 60

HEADER_MEMBERS = {"alg", "kid", "typ"}
REQUIRED_CLAIMS = {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "impu", "impi", "3gpp-wwsf", "anon", "lease_exp"}
EC_MEMBERS = {"kty", "crv", "x", "y", "kid", "use", "alg"}
RSA_MEMBERS = {"kty", "n", "e", "kid", "use", "alg"}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def cookie_attributes(set_cookie):
    """{lower-case attribute: value} of a Set-Cookie value, and its name=value."""
    parts = [p.strip() for p in set_cookie.split(";")]
    attrs = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip()
    return parts[0], attrs


def wait_for_clock_after(epoch):
    """Waits until the wall clock is past epoch (so that a renewal made now
    lands on a later second); a wait on the clock, not on the server."""
    f.wait_until(lambda: time.time() >= epoch + 1.2, 10, "the clock to pass %d" % epoch)


class Tokens(f.WwsfdTestCase):

    def admit(self, server, session=None, evidence=None):
        s = session or f.Session(server)
        r = s.anonymous(evidence)
        self.assertStatus(r, 200)
        return s, r, r.json()

    def check_token(self, server, reply, token_ttl, wwsf_id, alg, t_before, t_after, clamped=False):
        """Every claim of docs/DESIGN.md section 3 against the reply, the store and
        the clock of this machine; returns the claims."""
        header, claims, _, sig = f.jwt_parts(reply["token"])
        active = [k["kid"] for k in server.keys_list() if k["state"] == "active"]
        self.assertEqual(header, {"alg": alg, "kid": active[0], "typ": "JWT"}, "header")
        self.assertLessEqual(set(header), HEADER_MEMBERS)
        if alg == "ES256":
            self.assertEqual(len(sig), 64, "ES256 signatures are R || S, 64 bytes")
        self.assertLessEqual(REQUIRED_CLAIMS, set(claims), "missing claims: %s" % (REQUIRED_CLAIMS - set(claims)))
        self.assertEqual(claims["iss"], server.public_url)
        self.assertEqual(claims["aud"], f.AUDIENCE)
        self.assertEqual(claims["3gpp-wwsf"], wwsf_id)
        self.assertIs(claims["anon"], True)
        for k in ("iat", "nbf", "exp", "lease_exp"):
            self.assertIsInstance(claims[k], int, "%s is a NumericDate" % k)
        # sub: an opaque random handle, nothing the visitor said or where from.
        sub = claims["sub"]
        self.assertIsInstance(sub, str)
        self.assertGreaterEqual(len(sub), 16, "too short to be a random handle: %r" % sub)
        with self.assertRaises(ValueError, msg="sub is an IP address: %r" % sub):
            ipaddress.ip_address(sub)
        for leak in ("Ann", "ann@example.com", "example.com", "127.0.0.1"):
            self.assertNotIn(leak, sub)
        # Times.
        self.assertLessEqual(t_before - 1, claims["iat"])
        self.assertLessEqual(claims["iat"], t_after + 1)
        self.assertLessEqual(claims["iat"], claims["nbf"])
        self.assertLessEqual(claims["nbf"], time.time() + LEEWAY)
        self.assertLessEqual(claims["exp"], claims["lease_exp"], "a token outlives its lease")
        if clamped:
            self.assertEqual(claims["exp"], claims["lease_exp"], "exp should be clamped to the lease")
            self.assertLess(claims["exp"] - claims["iat"], token_ttl)
        else:
            self.assertEqual(claims["exp"] - claims["iat"], token_ttl, "exp - iat is the token TTL")
        self.assertIsInstance(claims["jti"], str)
        self.assertGreaterEqual(len(claims["jti"]), 16)
        # The reply says the same.
        self.assertEqual(claims["impu"], reply["impu"])
        self.assertEqual(claims["impi"], reply["impi"])
        self.assertEqual(claims["exp"], reply["expires_at"])
        self.assertEqual(claims["lease_exp"], reply["lease_expires_at"])
        self.assertEqual(reply["epcscf_uri"], f.EPCSCF_URI)
        # And so does the store.
        lease = server.ctl.show(claims["impu"])
        self.assertEqual(lease["state"], "leased", lease)
        self.assertEqual(lease["impi"], claims["impi"], lease)
        self.assertEqual(lease["pool"], "visitors", lease)
        self.assertEqual(lease["expires_at"], claims["lease_exp"], lease)
        self.assertEqual(lease["client_addr"], "127.0.0.1", lease)
        self.assertTrue(lease["holder"], lease)
        self.assertNotEqual(lease["holder"], "127.0.0.1")
        self.assertLessEqual(lease["leased_at"], claims["iat"], lease)
        # The signature, checked by openssl with nothing but the JWKS.
        ok, out = server.verify(reply["token"])
        self.assertTrue(ok, "openssl did not verify the token:\n%s" % out)
        # And by libjwt, which reads the same algorithm and claims.
        ok, out = server.verify_libjwt(reply["token"])
        self.assertTrue(ok, "libjwt did not verify the token: %s" % out)
        self.assertEqual(out, {"alg": alg, "claims": claims})
        return claims

    def test_admission_reply_and_cookie(self):
        server = self.start_server(pools=f.anonymous_pool(size=50))
        s, r, reply = self.admit(server)
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertIn("no-store", r.header("Cache-Control") or "")
        for k, typ in (("token", str), ("impu", str), ("impi", str), ("expires_at", int),
                       ("lease_expires_at", int), ("epcscf_uri", str)):
            self.assertIsInstance(reply.get(k), typ, "%s in %s" % (k, reply))
        self.assertEqual(reply["epcscf_uri"], f.EPCSCF_URI)
        self.assertTrue(reply["impu"].startswith("sip:+1555") and reply["impu"].endswith("@" + f.DOMAIN), reply)
        cookies = r.header_all("Set-Cookie")
        self.assertEqual(len(cookies), 1, cookies)
        nv, attrs = cookie_attributes(cookies[0])
        name, _, value = nv.partition("=")
        self.assertEqual(name, "wwsf_session")
        self.assertGreaterEqual(len(value), 32, "a session id should be long and random: %r" % value)
        self.assertIn("httponly", attrs, cookies[0])
        self.assertIn("secure", attrs, cookies[0])
        self.assertEqual(attrs.get("samesite", "").lower(), "strict", cookies[0])
        self.assertNotIn(value, reply["token"])
        self.assertNotEqual(value, f.jwt_parts(reply["token"])[1]["sub"])
        self.assertEqual(s.cookie, value)

    def test_claims_es256(self):
        server = self.start_server(pools=f.anonymous_pool(size=200, lease_ttl="2m", quarantine="4m"),
                                   config={"tokens": {"token_ttl": "45s", "wwsf_id": "wwsf.test.example"}})
        seen_jti, seen_sub, seen_impu = set(), set(), set()
        for i in range(12):
            t0 = time.time()
            _, _, reply = self.admit(server)
            claims = self.check_token(server, reply, 45, "wwsf.test.example", "ES256", int(t0), time.time())
            self.assertNotIn(claims["jti"], seen_jti, "jti repeated")
            self.assertNotIn(claims["sub"], seen_sub, "two visitors with one sub")
            self.assertNotIn(claims["impu"], seen_impu, "one IMPU leased to two visitors")
            seen_jti.add(claims["jti"])
            seen_sub.add(claims["sub"])
            seen_impu.add(claims["impu"])

    def test_tampered_token_fails_openssl(self):
        """The openssl check is real: a changed payload does not verify."""
        server = self.start_server()
        _, _, reply = self.admit(server)
        h, p, _ = reply["token"].split(".")
        claims = f.jwt_parts(reply["token"])[1]
        claims["impu"] = "sip:someone-else@" + f.DOMAIN
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        ok, out = f.openssl_verify(reply["token"], server.jwks(), server.dir,
                                   signing_input=(h + "." + forged).encode())
        self.assertFalse(ok, "openssl accepted a forged payload:\n%s" % out)
        ok, out = server.verify(reply["token"])
        self.assertTrue(ok, out)
        # libjwt too refuses the forged payload and a changed signature.
        sig = reply["token"].split(".")[2]
        for bad in (h + "." + forged + "." + sig, h + "." + p + "." + ("A" if sig[0] != "A" else "B") + sig[1:]):
            ok, out = server.verify_libjwt(bad)
            self.assertFalse(ok, "libjwt accepted a forged token: %s" % out)

    def test_exp_clamped_to_lease(self):
        server = self.start_server(pools=f.anonymous_pool(size=20, lease_ttl="60s", quarantine="2m"),
                                   config={"tokens": {"token_ttl": "300s"}})
        t0 = time.time()
        _, _, reply = self.admit(server)
        claims = self.check_token(server, reply, 300, "localhost:%d" % server.port, "ES256", int(t0), time.time(),
                                  clamped=True)
        # The lease is taken, then the token signed (a second boundary can fall between the
        # two): lease_exp is 60 s after the lease was taken, iat when the token was signed.
        t1 = time.time()
        self.assertEqual(claims["lease_exp"], reply["lease_expires_at"])
        self.assertGreaterEqual(claims["lease_exp"], int(t0) + 60)
        self.assertLessEqual(claims["lease_exp"], int(t1) + 60)

    def test_claims_rs256(self):
        server = self.start_server(key_alg="RS256", pools=f.anonymous_pool(size=20),
                                   config={"tokens": {"token_ttl": "30s"}})
        t0 = time.time()
        _, _, reply = self.admit(server)
        # 3gpp-wwsf defaults to the public URL's host and port.
        self.check_token(server, reply, 30, server.public_url[len("https://"):], "RS256", int(t0), time.time())
        keys = server.jwks()["keys"]
        self.assertEqual([k["kty"] for k in keys], ["RSA"])
        self.assertEqual(len(f.b64url_decode(keys[0]["n"])), 256, "a 2048-bit modulus")

    def test_jwks_public_members_only(self):
        server = self.make_server()
        rsa_next = server.generate_key("RS256")      # published before it signs
        server.start()
        r = server.get("/.well-known/jwks.json")
        self.assertStatus(r, 200)
        self.assertEqual(r.header("Content-Type"), "application/json")
        jwks = r.json()
        self.assertEqual(set(jwks), {"keys"})
        by_kid = {k["kid"]: k for k in jwks["keys"]}
        self.assertEqual(set(by_kid), {server.kid, rsa_next})
        published = {k["kid"] for k in server.keys_list() if k["published"]}
        self.assertEqual(set(by_kid), published)
        ec, rsa = by_kid[server.kid], by_kid[rsa_next]
        self.assertEqual(set(ec), EC_MEMBERS, ec)
        self.assertEqual(set(rsa), RSA_MEMBERS, rsa)
        for k in (ec, rsa):
            self.assertFalse(set(k) & PRIVATE_MEMBERS, "private key material in the JWKS: %s" % k)
            self.assertEqual(k["use"], "sig")
        self.assertEqual((ec["kty"], ec["crv"], ec["alg"]), ("EC", "P-256", "ES256"))
        self.assertEqual((len(f.b64url_decode(ec["x"])), len(f.b64url_decode(ec["y"]))), (32, 32))
        self.assertEqual((rsa["kty"], rsa["alg"], rsa["e"]), ("RSA", "RS256", "AQAB"))
        # The served keys are well-formed public keys for openssl.
        for k in (ec, rsa):
            path = os.path.join(server.dir, "check.pem")
            with open(path, "w") as fp:
                fp.write(f.jwk_to_pem(k))
            p = subprocess.run([f.OPENSSL, "pkey", "-pubin", "-in", path, "-noout"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, encoding="utf-8", errors="replace")
            self.assertEqual(p.returncode, 0, "openssl refused the key %s:\n%s" % (k["kid"], p.stdout))

    def test_refresh_keeps_impu_and_renews_lease(self):
        server = self.start_server(pools=f.anonymous_pool(size=10, lease_ttl="60s", quarantine="2m"),
                                   config={"tokens": {"token_ttl": "20s"}})
        s, _, first = self.admit(server)
        c1 = f.jwt_parts(first["token"])[1]
        lease1 = server.ctl.show(first["impu"])
        wait_for_clock_after(c1["iat"])
        t0 = time.time()
        r = s.refresh()
        self.assertStatus(r, 200)
        second = r.json()
        c2 = self.check_token(server, second, 20, "localhost:%d" % server.port, "ES256", int(t0), time.time())
        self.assertEqual(second["impu"], first["impu"], "refresh must keep the IMPU")
        self.assertEqual(c2["sub"], c1["sub"])
        self.assertNotEqual(c2["jti"], c1["jti"])
        self.assertGreater(c2["lease_exp"], c1["lease_exp"], "the lease was not renewed")
        lease2 = server.ctl.show(first["impu"])
        self.assertEqual(lease2["state"], "leased")
        self.assertEqual(lease2["holder"], lease1["holder"])
        self.assertGreater(lease2["expires_at"], lease1["expires_at"], "lease expires_at did not move forward")
        self.assertEqual(lease2["expires_at"], c2["lease_exp"])
        # Still one lease, open, in the audit.
        audit = server.ctl.audit(first["impu"])
        self.assertEqual([a["open"] for a in audit], [True], audit)
        # Refresh needs the header, this origin and a live session.
        self.assertStatus(s.refresh(csrf=False), 403)
        self.assertStatus(s.refresh(origin="https://evil.example"), 403)
        self.assertStatus(s.refresh(origin=server.public_url), 200)
        self.assertStatus(f.Session(server).refresh(), 401)
        self.assertStatus(s.refresh(cookie="A" * 43), 401)
        self.assertStatus(server.get("/api/v1/refresh"), 405)

    def test_refresh_after_revoke(self):
        """An operator revokes the lease (wwsfctl lease revoke): the next
        refresh is 401 lease_lost and the session is over."""
        server = self.start_server()
        s, _, reply = self.admit(server)
        server.ctl.ok("lease", "revoke", reply["impu"])
        self.assertStatus(s.refresh(), 401, "lease_lost")
        self.assertStatus(s.refresh(), 401, "no_session")
        self.assertNotEqual(server.ctl.show(reply["impu"])["state"], "leased")

    def test_logout_quarantine(self):
        server = self.start_server(pools=f.anonymous_pool(size=2, lease_ttl="60s", quarantine="10m"))
        a, _, ra = self.admit(server)
        session_id = a.cookie
        self.assertStatus(a.logout(csrf=False), 403)
        self.assertEqual(server.ctl.show(ra["impu"])["state"], "leased", "a refused logout released the lease")
        t0 = time.time()
        r = a.logout()
        self.assertStatus(r, 200)
        self.assertEqual(r.json(), {"ok": True})
        cleared = [c for c in r.header_all("Set-Cookie") if c.startswith("wwsf_session=")]
        self.assertEqual(len(cleared), 1, r.header_all("Set-Cookie"))
        _, attrs = cookie_attributes(cleared[0])
        self.assertEqual(attrs.get("max-age"), "0", cleared[0])
        self.assertIsNone(a.cookie, "logout should clear the cookie")
        lease = server.ctl.show(ra["impu"])
        self.assertEqual(lease["state"], "quarantine", lease)
        self.assertGreaterEqual(lease["quarantine_until"], int(t0) + 600 - 1, lease)
        # Another visitor gets the other IMPU, the next none: the released
        # one is held for the quarantine.
        _, _, rb = self.admit(server)
        self.assertNotEqual(rb["impu"], ra["impu"])
        r = server.anonymous()
        self.assertStatus(r, 503, "pool_exhausted")
        self.assertGreater(r.retry_after(), 0)
        self.assertEqual(server.ctl.show(ra["impu"])["state"], "quarantine")
        # The session is gone: refresh and logout with the old cookie.
        self.assertStatus(a.refresh(cookie=session_id), 401, "no_session")
        self.assertStatus(a.logout(cookie=session_id), 401, "no_session")
        self.assertEqual(server.ctl.show(ra["impu"])["state"], "quarantine")

    def test_two_tabs_of_one_browser(self):
        """One browser, one cookie jar, two tabs admitted one after the other:
        the cookie holds both sessions, each tab names its own with the
        session_tag of its admission, and a logout in one tab leaves the
        other's session in the cookie."""
        server = self.start_server(pools=f.anonymous_pool(size=4))
        jar = {}

        def post(path, body, tag=None):
            headers = {"Content-Type": "application/json"}
            if tag:
                headers["X-WWSF-Request"] = tag
            if jar.get("wwsf_session"):
                headers["Cookie"] = "wwsf_session=" + jar["wwsf_session"]
            r = server.request("POST", path, body=json.dumps(body).encode(), headers=headers)
            for sc in r.header_all("Set-Cookie"):
                name, _, value = sc.split(";", 1)[0].partition("=")
                jar[name.strip()] = value.strip()
            return r

        evidence = {"evidence": {"name": "Ann", "email": "ann@example.com"}}
        one = self.assertStatus(post("/api/v1/anonymous", evidence), 200).json()
        two = self.assertStatus(post("/api/v1/anonymous", evidence), 200).json()
        self.assertNotEqual(one["impu"], two["impu"])
        self.assertNotEqual(one["session_tag"], two["session_tag"])
        self.assertRegex(one["session_tag"], r"^[A-Za-z0-9_-]{12}$")
        self.assertEqual(len(jar["wwsf_session"].split(".")), 2, jar)
        # Each tab refreshes its own session, whichever came last.
        for reply in (one, two, one):
            r = self.assertStatus(post("/api/v1/refresh", {}, tag=reply["session_tag"]), 200)
            self.assertEqual(r.json()["impu"], reply["impu"])
            self.assertEqual(r.json()["session_tag"], reply["session_tag"])
        # "1" means the newest; an unknown tag finds no session.
        self.assertEqual(self.assertStatus(post("/api/v1/refresh", {}, tag="1"), 200).json()["impu"], two["impu"])
        self.assertStatus(post("/api/v1/refresh", {}, tag="AAAAAAAAAAAA"), 401, "no_session")
        self.assertStatus(post("/api/v1/refresh", {}, tag="2"), 403)
        # Tab one logs out: tab two goes on.
        self.assertStatus(post("/api/v1/logout", {}, tag=one["session_tag"]), 200)
        self.assertEqual(len(jar["wwsf_session"].split(".")), 1, jar)
        self.assertEqual(server.ctl.show(one["impu"])["state"], "quarantine")
        self.assertStatus(post("/api/v1/refresh", {}, tag=one["session_tag"]), 401, "no_session")
        r = self.assertStatus(post("/api/v1/refresh", {}, tag=two["session_tag"]), 200)
        self.assertEqual(r.json()["impu"], two["impu"])
        # A third admission keeps the live session and drops the ended one.
        three = self.assertStatus(post("/api/v1/anonymous", evidence), 200).json()
        self.assertEqual(len(jar["wwsf_session"].split(".")), 2, jar)
        self.assertEqual(self.assertStatus(post("/api/v1/refresh", {}, tag=two["session_tag"]), 200).json()["impu"],
                         two["impu"])
        self.assertEqual(self.assertStatus(post("/api/v1/refresh", {}, tag=three["session_tag"]), 200).json()["impu"],
                         three["impu"])


if __name__ == "__main__":
    f.main()
