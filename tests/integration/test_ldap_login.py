#!/usr/bin/env python3
"""LDAP logins (src/wwsfd/ldap_auth.c) against a real slapd.

Each test starts slapd with slapd_fixture.py (a temporary directory, a free
loopback port, the users of ldap/seed.ldif) and drives the login pool through
ldap_login_probe, which keeps one pool, and so its connections, across the
logins of a test. Timing is asserted only where the subject is a time bound
(a hung server), and then loosely (a few times the configured timeout).
Skipped (exit 77) without the slapd and ldap-utils packages."""

import json
import os
import select
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from slapd_fixture import PEOPLE_DN, Slapd, free_port, make_ca, tls_missing, tools_missing  # noqa: E402

SOURCE_ROOT = os.environ.get("WWSF_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
PROBE = os.environ.get("LDAP_LOGIN_PROBE") or os.path.join(SOURCE_ROOT, "build", "tests", "integration",
                                                           "ldap_login_probe")

ALICE_DN = "uid=alice," + PEOPLE_DN
STAFF = "cn=staff,ou=groups,dc=example,dc=com"
WEB_USERS = "cn=web-users,ou=groups,dc=example,dc=com"

# The queue of the pool (LOGIN_QUEUE_MAX in ldap_auth.c).
QUEUE_MAX = 256

# What a hung server may cost, in configured timeouts, before the test
# fails: the design answers in about one; this only catches a hang.
HANG_BOUND = 5


def wwsfd_config(d, ldap_section):
    """A wwsfd.ini in d whose [ldap] section is ldap_section; the rest only
    has to pass validation (the probe reads nothing else)."""
    path = os.path.join(d, "wwsfd.ini")
    with open(path, "w") as f:
        f.write("\n".join([
            "[server]", "listen = 127.0.0.1:0", "tls_cert = cert.pem", "tls_key = key.pem",
            "public_url = https://wwsf.example.com", "web_root = web", "",
            "[store]", "db = wwsf.db", "pool_config = pools.ini", "",
            "[tokens]", "audience = ims.example.com", "",
            "[epcscf]", "uri = wss://epcscf.example.com", "",
            "[anonymous]", "enabled = no", "", ""]))
        f.write(ldap_section)
    return path


class Probe:
    """ldap_login_probe on one configuration: one login pool for its life."""

    def __init__(self, config, test):
        self.stderr_path = config + ".stderr"
        self.err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([PROBE, config], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err)
        self.buf = b""
        self.test = test

    def request(self, username, password, timeout=120, **extra):
        """Sends one request, returns (answer dict, seconds it took)."""
        req = dict(username=username, password=password, **extra)
        start = time.monotonic()
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        deadline = start + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.proc.kill()
                raise AssertionError("the probe did not answer %r within %ds\n%s" % (username, timeout,
                                                                                     self.stderr()))
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("the probe exited (%s)\n%s" % (self.proc.wait(), self.stderr()))
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        took = time.monotonic() - start
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError("the probe refused %r: %s" % (req, answer))
        return answer, took

    def login(self, username, password, **kw):
        return self.request(username, password, **kw)[0]

    def stderr(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            self.proc.stdin.close()
        self.proc.stdout.close()
        self.err.close()
        return self.proc.returncode


class LdapTestCase(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="wwsf-ldap-it-")
        self.dir = self._tmp.name
        self.servers = []
        self.probes = []

    def tearDown(self):
        failed = self._outcome_failed()
        bad_exits = []
        try:
            for p in self.probes:
                rc = p.close()
                if failed:
                    sys.stderr.write("---- probe stderr:\n%s" % p.stderr())
                if rc != 0:     # a crash, a leak under a sanitizer
                    bad_exits.append("the probe exited %s\n%s" % (rc, p.stderr()))
        finally:
            for s in self.servers:
                if failed or bad_exits:
                    sys.stderr.write("---- slapd log (%s):\n%s" % (s.uri, s.log()))
                s.cleanup()
            self._tmp.cleanup()
        self.assertEqual(bad_exits, [])

    def _outcome_failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        result = getattr(outcome, "result", None)
        if result is not None:      # Python 3.11+
            return any(t is self for t, _ in result.failures + result.errors)
        return any(exc for _, exc in getattr(outcome, "errors", []))

    def slapd(self, **kw):
        s = Slapd(os.path.join(self.dir, "slapd-%d" % len(self.servers)), **kw)
        self.servers.append(s)
        return s.start()

    def probe(self, server, **keys):
        d = os.path.join(self.dir, "probe-%d" % len(self.probes))
        os.makedirs(d)
        keys.setdefault("timeout", "2s")
        keys.setdefault("connections", 2)
        config = wwsfd_config(d, server.wwsfd_ldap_section(**keys))
        p = Probe(config, self)
        self.probes.append(p)
        return p

    def assertStatus(self, answer, status, what=""):
        self.assertEqual(answer["status"], status, "%s: %s" % (what, answer))

    def count_in_log(self, server, needle):
        with open(server.log_path, errors="replace") as f:
            return f.read().count(needle)


class Logins(LdapTestCase):
    """Answers against a healthy server."""

    def setUp(self):
        super().setUp()
        self.ldap = self.slapd()
        self.p = self.probe(self.ldap)

    def test_alice_has_her_own_identities(self):
        a = self.p.login("alice", "alice-secret")
        self.assertStatus(a, "ok")
        self.assertEqual(a["user"], {"uid": "alice", "dn": ALICE_DN, "impu": "sip:alice@ims.example.com",
                                     "impi": "alice@ims.example.com", "groups": []})

    def test_bob_has_groups_and_no_identity(self):
        a = self.p.login("bob", "bob-secret")
        self.assertStatus(a, "ok")
        u = a["user"]
        self.assertEqual((u["uid"], u["dn"], u["impu"], u["impi"]), ("bob", "uid=bob," + PEOPLE_DN, "", ""))
        self.assertEqual(sorted(u["groups"]), sorted([STAFF, WEB_USERS]))

    def test_carol_plain_user(self):
        a = self.p.login("carol", "carol-secret")
        self.assertStatus(a, "ok")
        self.assertEqual((a["user"]["impu"], a["user"]["impi"], a["user"]["groups"]), ("", "", []))

    def test_wrong_unknown_empty_are_one_answer(self):
        for user, password in [("alice", "bob-secret"), ("alice", "alice-secret "), ("alice", "ALICE-SECRET"),
                               ("mallory", "alice-secret"), ("alice", "")]:
            self.assertStatus(self.p.login(user, password), "invalid", "%s/%s" % (user, password))
        # The pool still works afterwards (the failed binds left its
        # connections usable, bound back to the service account).
        self.assertStatus(self.p.login("alice", "alice-secret"), "ok")

    def test_empty_password_never_binds(self):
        dn = 'BIND dn="uid=carol,%s" method=128' % PEOPLE_DN
        before = self.count_in_log(self.ldap, dn)
        self.assertStatus(self.p.login("carol", ""), "invalid")
        self.assertStatus(self.p.login("carol", "carol-secret"), "ok")   # one bind, so the log is current
        self.assertEqual(self.count_in_log(self.ldap, dn), before + 1)

    def test_filter_injection(self):
        # With the right password of a real user: an injection that widened
        # the filter to one entry would log in.
        for user in ["*", "al*", "*ice", "alice)(uid=*", "*)(|(uid=*", "alice)(|(objectClass=*",
                     "(uid=alice)", "alice)", "alice\\", "alice\\29", "*)(uid=alice))(|(uid=*"]:
            self.assertStatus(self.p.login(user, "alice-secret"), "invalid", repr(user))
        # The search slapd ran was for the literal value.
        with open(self.ldap.log_path, errors="replace") as f:
            log = f.read().lower()
        self.assertIn('filter="(uid=\\2a)"', log)
        self.assertIn('filter="(uid=al\\2a)"', log)
        self.assertIn('filter="(uid=alice\\29\\28uid=\\2a)"', log)
        self.assertStatus(self.p.login("alice", "alice-secret"), "ok")

    def test_username_rules(self):
        searches = self.count_in_log(self.ldap, "SRCH base=")
        for user in ["", "a" * 256, "ali\x01ce", "alice\n", "alice\r", "\talice", "alice\x7f", "\x1b[31m"]:
            self.assertStatus(self.p.login(user, "alice-secret"), "invalid", repr(user))
        self.assertStatus(self.p.login("bob", "bob-secret"), "ok")  # one search, so the log is current
        self.assertEqual(self.count_in_log(self.ldap, "SRCH base="), searches + 1,
                         "a refused username reached LDAP")
        # 255 bytes and non-ASCII are usernames: asked, not found.
        self.assertStatus(self.p.login("a" * 255, "x"), "invalid")
        self.assertStatus(self.p.login("\u00e5lice", "alice-secret"), "invalid")

    def test_several_entries_refused(self):
        a = self.p.login("dup", "dup-secret")
        self.assertStatus(a, "invalid")
        self.assertIn("several entries", self.p.stderr())

    def test_connections_are_reused(self):
        accepts = self.count_in_log(self.ldap, " ACCEPT from ")
        for i in range(10):
            self.assertStatus(self.p.login(["alice", "bob"][i % 2], ["alice-secret", "bob-secret"][i % 2]), "ok")
        # Alice may only read her own entry: the search for bob after her
        # login works only if searches stay on the service account. And two
        # workers (connections = 2), each with its search connection and its
        # users' bind connection, serve them all.
        self.assertLessEqual(self.count_in_log(self.ldap, " ACCEPT from ") - accepts, 4)
        # A login is one search and one bind: no rebind as the service
        # account after each user's bind.
        binds = self.count_in_log(self.ldap, " method=128")
        self.assertStatus(self.p.login("alice", "alice-secret"), "ok")
        self.assertStatus(self.p.login("bob", "bob-secret"), "ok")
        self.assertEqual(self.count_in_log(self.ldap, " method=128") - binds, 2)

    def test_parallel_logins(self):
        a = self.p.login("alice", "alice-secret", count=50)
        self.assertEqual(a["statuses"]["ok"], 50, a)


class Configurations(LdapTestCase):
    def test_anonymous_search(self):
        ldap = self.slapd(anonymous_read=True)
        p = self.probe(ldap, bind_dn=None)
        for _ in range(3):      # after each user bind, back to anonymous
            self.assertStatus(p.login("alice", "alice-secret"), "ok")
            self.assertStatus(p.login("bob", "wrong"), "invalid")
        self.assertEqual(len(p.login("bob", "bob-secret")["user"]["groups"]), 2)

    def test_wrong_service_password_is_unavailable(self):
        ldap = self.slapd()
        d = os.path.join(self.dir, "bad")
        os.makedirs(d)
        pw = os.path.join(d, "password")
        with open(pw, "w") as f:
            f.write("not-the-password\n")
        config = wwsfd_config(d, ldap.wwsfd_ldap_section(bind_password_file=pw, timeout="2s"))
        p = Probe(config, self)
        self.probes.append(p)
        self.assertStatus(p.login("alice", "alice-secret"), "unavailable")
        self.assertIn("service account", p.stderr())
        self.assertNotIn("not-the-password", p.stderr())

    def test_other_attribute_names(self):
        ldap = self.slapd()
        p = self.probe(ldap, user_attribute="mail", impu_attribute="cn", impi_attribute="sn",
                       group_attribute="objectClass")
        a = p.login("bob@example.com", "bob-secret")
        self.assertStatus(a, "ok")
        self.assertEqual((a["user"]["uid"], a["user"]["impu"], a["user"]["impi"]),
                         ("bob@example.com", "Bob Example", "Example"))
        self.assertIn("inetOrgPerson", a["user"]["groups"])

    def test_missing_password_file(self):
        ldap = self.slapd()
        d = os.path.join(self.dir, "nofile")
        os.makedirs(d)
        config = wwsfd_config(d, ldap.wwsfd_ldap_section(bind_password_file=os.path.join(d, "missing")))
        p = subprocess.run([PROBE, config], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, encoding="utf-8", timeout=60)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("bind_password_file", p.stderr)


class Failures(LdapTestCase):
    """Servers that go away, hang or never were."""

    def test_stopped_then_started_again(self):
        ldap = self.slapd()
        p = self.probe(ldap)
        self.assertStatus(p.login("alice", "alice-secret"), "ok")
        ldap.stop()
        a, took = p.request("alice", "alice-secret")
        self.assertStatus(a, "unavailable")
        ldap.start()
        self.assertStatus(p.login("alice", "alice-secret"), "ok")
        self.assertStatus(p.login("bob", "bob-secret"), "ok")

    def test_restart_between_logins(self):
        # The pooled connections are closed by the restart with no login in
        # between: the next login finds out and connects again.
        ldap = self.slapd()
        p = self.probe(ldap, connections=1)
        self.assertStatus(p.login("alice", "alice-secret"), "ok")
        ldap.stop()
        ldap.start()
        self.assertStatus(p.login("alice", "alice-secret"), "ok")

    def test_frozen_server_is_unavailable_in_bounded_time(self):
        ldap = self.slapd()
        timeout = 1
        p = self.probe(ldap, timeout="%ds" % timeout)
        self.assertStatus(p.login("alice", "alice-secret"), "ok")      # a pooled, bound connection
        ldap.freeze()
        try:
            a, took = p.request("alice", "alice-secret", timeout=60)
            self.assertStatus(a, "unavailable")
            self.assertLess(took, HANG_BOUND * timeout, "a hung server held a login for %.1fs" % took)
            # A fresh pool: the connect succeeds (the kernel accepts for
            # the stopped process), the bind never gets an answer.
            fresh = self.probe(ldap, timeout="%ds" % timeout)
            a, took = fresh.request("bob", "bob-secret", timeout=60)
            self.assertStatus(a, "unavailable")
            self.assertLess(took, HANG_BOUND * timeout)
            # Many at once: every one answered, none waits for the others'
            # timeouts in turn.
            a, took = p.request("alice", "alice-secret", count=20, timeout=60)
            self.assertEqual(a["statuses"]["unavailable"], 20, a)
            self.assertLess(took, HANG_BOUND * timeout)
        finally:
            ldap.thaw()
        self.assertStatus(p.login("alice", "alice-secret"), "ok")

    def test_failover_from_closed_port(self):
        ldap = self.slapd()
        closed = "ldap://127.0.0.1:%d/" % free_port()
        p = self.probe(ldap, uris="%s %s" % (closed, ldap.uri))
        for _ in range(3):
            self.assertStatus(p.login("alice", "alice-secret"), "ok")
        self.assertStatus(p.login("alice", "nope"), "invalid")

    def test_failover_from_frozen_server(self):
        hung, good = self.slapd(), self.slapd()
        timeout = 1
        hung.freeze()
        try:
            p = self.probe(hung, uris="%s %s" % (hung.uri, good.uri), timeout="%ds" % timeout)
            a, took = p.request("bob", "bob-secret", timeout=60)
            self.assertStatus(a, "ok")
            self.assertLess(took, HANG_BOUND * timeout)
        finally:
            hung.thaw()

    def test_no_server_at_all(self):
        ldap = self.slapd()
        uris = " ".join("ldap://127.0.0.1:%d/" % free_port() for _ in range(3))
        p = self.probe(ldap, uris=uris)
        self.assertStatus(p.login("alice", "alice-secret"), "unavailable")
        self.assertStatus(p.login("alice", ""), "invalid")      # still refused without asking

    def test_queue_full_is_busy(self):
        ldap = self.slapd()
        p = self.probe(ldap, connections=1, timeout="2s")
        ldap.freeze()
        try:
            a = p.login("alice", "alice-secret", count=QUEUE_MAX + 50)
        finally:
            ldap.thaw()
        s = a["statuses"]
        # One in the worker, QUEUE_MAX waiting (or all QUEUE_MAX + 1 waiting
        # if the worker had not taken the first yet), the rest busy.
        self.assertIn(s["busy"], (49, 50), a)
        self.assertEqual(s["busy"] + s["unavailable"], QUEUE_MAX + 50, a)
        self.assertStatus(p.login("alice", "alice-secret"), "ok")

    def test_free_answers_queued_logins(self):
        ldap = self.slapd()
        p = self.probe(ldap, connections=1, timeout="2s")
        ldap.freeze()
        try:
            a, took = p.request("alice", "alice-secret", count=5, free=True, timeout=60)
        finally:
            ldap.thaw()
        self.assertEqual(a["statuses"]["unavailable"], 5, a)
        self.assertStatus(p.login("alice", "alice-secret"), "ok")   # the probe's new pool


@unittest.skipIf(tls_missing(), "openssl is needed to make the test certificates")
class Tls(LdapTestCase):
    """StartTLS and ldaps://, with the server's certificate checked."""

    def setUp(self):
        super().setUp()
        self.ldap = self.slapd(tls=True)
        self.other_ca = make_ca(os.path.join(self.dir, "other-ca"))

    def test_starttls(self):
        p = self.probe(self.ldap, starttls="yes", ca_file=self.ldap.ca_file)
        self.assertStatus(p.login("alice", "alice-secret"), "ok")
        self.assertStatus(p.login("alice", "wrong"), "invalid")
        self.assertStatus(p.login("bob", "bob-secret"), "ok")

    def test_ldaps(self):
        p = self.probe(self.ldap, uris=self.ldap.ldaps_uri, ca_file=self.ldap.ca_file)
        self.assertStatus(p.login("alice", "alice-secret"), "ok")
        self.assertStatus(p.login("bob", "bob-secret"), "ok")

    def test_untrusted_certificate_is_unavailable(self):
        # Never a password to a server whose certificate does not check out.
        binds = self.count_in_log(self.ldap, "BIND dn=")
        for keys in [dict(starttls="yes"), dict(uris=self.ldap.ldaps_uri)]:
            for ca in [self.other_ca, os.path.join(self.dir, "no-such-ca.pem")]:
                p = self.probe(self.ldap, ca_file=ca, **keys)
                self.assertStatus(p.login("alice", "alice-secret"), "unavailable", (keys, ca))
        self.assertEqual(self.count_in_log(self.ldap, "BIND dn="), binds)

    def test_failover_from_untrusted_to_trusted(self):
        # The same server, first by a name its certificate does not carry.
        bad = "ldaps://127.0.0.2:%d/" % self.ldap.ldaps_port
        p = self.probe(self.ldap, uris="%s %s" % (bad, self.ldap.ldaps_uri), ca_file=self.ldap.ca_file)
        self.assertStatus(p.login("alice", "alice-secret"), "ok")

    def test_frozen_server_is_bounded(self):
        # ldaps://: the TLS handshake never completes (libldap 2.5 spins
        # forever there unless connecting asynchronously); StartTLS: the
        # extended operation gets no answer.
        timeout = 1
        for keys in [dict(uris=self.ldap.ldaps_uri), dict(starttls="yes")]:
            p = self.probe(self.ldap, ca_file=self.ldap.ca_file, timeout="%ds" % timeout, **keys)
            self.ldap.freeze()
            try:
                a, took = p.request("alice", "alice-secret", timeout=60)
            finally:
                self.ldap.thaw()
            self.assertStatus(a, "unavailable", keys)
            self.assertLess(took, HANG_BOUND * timeout, keys)
            self.assertStatus(p.login("alice", "alice-secret"), "ok", keys)


def main():
    missing = tools_missing()
    if missing:
        sys.stderr.write("skipped: not installed: %s (Debian packages slapd, ldap-utils)\n" % ", ".join(missing))
        sys.exit(77)
    if not os.access(PROBE, os.X_OK):
        sys.stderr.write("ldap_login_probe not found at %s (set LDAP_LOGIN_PROBE)\n" % PROBE)
        sys.exit(1)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
