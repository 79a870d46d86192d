#!/usr/bin/python3
"""What a hostile or broken client can send a real wwsfd: malformed JSON
(400), a wrong content type (415), bodies over 16 KiB (413, announced or
chunked: 411, answered without reading the rest), unknown paths (404), wrong
methods (405), "..", encoded and symbolic-link escapes from the web root
(404, never a file outside it); the static files' types, ETag, 304 and
caching headers; the security headers; slow and idle clients that must not
keep others out; TLS 1.0 and 1.1 refused, TLS 1.2 and 1.3 accepted."""

import http.client
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wwsfd_fixture as f  # noqa: E402

BODY_MAX = 16 * 1024
SECRET = b"TOP-SECRET: outside the web root\n"

WEB_FILES = {
    "index.html": f.DEFAULT_INDEX,
    "app.js": b"console.log('wic');\n",
    "style.css": b"body { color: black; }\n",
    "data.json": b'{"a": 1}\n',
    "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>\n',
    "blob.bin": b"\x00\x01\x02",
    "sub/index.html": b"<!doctype html><title>sub</title>\n",
    "sub/page.txt": b"plain text\n",
}

TYPES = {
    "/": "text/html; charset=utf-8",
    "/index.html": "text/html; charset=utf-8",
    "/app.js": "text/javascript; charset=utf-8",
    "/style.css": "text/css; charset=utf-8",
    "/data.json": "application/json",
    "/logo.svg": "image/svg+xml",
    "/blob.bin": "application/octet-stream",
    "/sub/": "text/html; charset=utf-8",
    "/sub/page.txt": "text/plain; charset=utf-8",
}


def no_leak(test, r):
    test.assertNotIn(b"TOP-SECRET", r.body, "a file outside the web root was served")
    test.assertNotIn(b"root:", r.body, "/etc/passwd was served")


def closed_by_peer(sock, wait=0.2):
    """True once the server has closed the connection (EOF or reset), None
    while it is open (after waiting up to `wait` seconds for a sign)."""
    pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
    if not pending and not select.select([sock], [], [], wait)[0]:
        return None
    try:
        sock.settimeout(0.2)
        data = sock.recv(4096)
        return data == b"" or None      # data: an answer; keep waiting for the close
    except (socket.timeout, ssl.SSLWantReadError):
        return None
    except (ConnectionError, ssl.SSLError, OSError):
        return True


def cpu_seconds(pid):
    """User + system CPU time of a process, in seconds (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as fp:
        fields = fp.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server(f.WwsfdTestCase):

    def start(self, **config):
        cfg = {"server": {"connection_timeout": "2s", "max_connections_per_ip": "50"}}
        for sec, kv in config.items():
            cfg.setdefault(sec, {}).update(kv)
        server = self.make_server(web_files=WEB_FILES, config=cfg)
        # A file next to the web root, and links to the outside inside it.
        secret = os.path.join(server.dir, "secret.txt")
        with open(secret, "wb") as fp:
            fp.write(SECRET)
        os.symlink("../secret.txt", os.path.join(server.web_root, "leak.txt"))
        os.symlink("..", os.path.join(server.web_root, "up"))
        os.symlink("/etc/passwd", os.path.join(server.web_root, "passwd.txt"))
        os.symlink(server.dir, os.path.join(server.web_root, "sub", "abs"))
        return server.start()

    def post(self, server, body, content_type="application/json", **kw):
        headers = {"Content-Type": content_type} if content_type else {}
        return server.request("POST", "/api/v1/anonymous", body=body, headers=headers, **kw)


class Bodies(Server):

    def test_malformed_json(self):
        server = self.start()
        for body in (b"{", b"not json", b"[]", b'"evidence"', b"null", b'{"evidence": {"name": "Ann"',
                     b'{"evidence": {}, "evidence": {}}', b'{"evidence": {"name": "\xff\xfe"}}', b"",
                     b'{"evidence": {"name": "Ann"}} trailing', b"\x00" * 10):
            with self.subTest(body=body[:40]):
                r = self.post(server, body)
                self.assertStatus(r, 400, "bad_request")
                self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(server.ctl.leases("--state", "leased"), [])
        self.assertServes(server)

    def test_wrong_content_type(self):
        server = self.start()
        body = json.dumps({"evidence": f.EVIDENCE_OK}).encode()
        for ct in (None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                   "application/jsonp", "application/json-patch+json", "text/json"):
            with self.subTest(content_type=ct):
                self.assertStatus(self.post(server, body, ct), 415, "unsupported_media_type")
        for ct in ("application/json", "application/json; charset=utf-8", "Application/JSON"):
            with self.subTest(content_type=ct):
                self.assertStatus(self.post(server, body, ct), 200)

    def test_body_over_limit_content_length(self):
        server = self.start()
        for n in (BODY_MAX + 1, 64 * 1024, 1024 * 1024):
            with self.subTest(size=n):
                body = b'{"evidence": {"pad": "' + b"x" * (n - 25) + b'"}}'
                self.assertEqual(len(body), n)
                r, _ = server.upload(b"POST /api/v1/anonymous HTTP/1.1\r\nHost: localhost\r\n"
                                           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % n,
                                   [body[i:i + 4096] for i in range(0, n, 4096)])
                self.assertIsNotNone(r, "no answer")
                self.assertStatus(r, 413, "payload_too_large")
        # Also where a session request carries a body.
        r, _ = server.upload(b"POST /api/v1/refresh HTTP/1.1\r\nHost: localhost\r\n"
                                   b"Content-Type: application/json\r\nX-WWSF-Request: 1\r\n"
                                   b"Content-Length: %d\r\n\r\n" % (BODY_MAX + 1), [b"x" * (BODY_MAX + 1)])
        self.assertIsNotNone(r, "no answer")
        self.assertStatus(r, 413)
        self.assertServes(server)

    def test_body_chunked_needs_length(self):
        """A body of unannounced length (chunked) is refused before it is
        read, whatever its size: 411, the API takes Content-Length only."""
        server = self.start()
        for n in (200, BODY_MAX + 1, 100 * 1024):
            with self.subTest(size=n):
                body = b'{"evidence": {"pad": "' + b"x" * (n - 25) + b'"}}'
                data = f.chunked(body, 1000)
                r, _ = server.upload(b"POST /api/v1/anonymous HTTP/1.1\r\nHost: localhost\r\n"
                                           b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                                   [data[i:i + 4096] for i in range(0, len(data), 4096)])
                self.assertIsNotNone(r, "no answer")
                self.assertStatus(r, 411, "length_required")
        self.assertServes(server)

    def test_body_at_limit_is_not_a_server_error(self):
        """A body the server accepts (up to 16 KiB) is answered for what it is:
        a token or a client error, never 5xx "try again later"."""
        server = self.start()
        empty = json.dumps({"evidence": {"name": "Ann", "email": "ann@example.com", "pad": ""}})
        for n in (BODY_MAX - 200, BODY_MAX):
            with self.subTest(size=n):
                body = json.dumps({"evidence": {"name": "Ann", "email": "ann@example.com",
                                                "pad": "x" * (n - len(empty))}}).encode()
                self.assertEqual(len(body), n)
                r = self.post(server, body)
                self.assertLess(r.status, 500, "a %d-byte body (within the %d-byte limit) got:\n%s"
                                % (n, BODY_MAX, r))
                self.assertNotEqual(r.status, 413)
        # A long User-Agent (the request head may hold 32 KiB) is no reason
        # for "try again later" either.
        body = json.dumps({"evidence": f.EVIDENCE_OK}).encode()
        for n in (8000, 20000):
            with self.subTest(user_agent=n):
                r = server.request("POST", "/api/v1/anonymous", body=body,
                                   headers={"Content-Type": "application/json", "User-Agent": "U" * n})
                self.assertLess(r.status, 500, "a %d-byte User-Agent got:\n%s" % (n, r))

    def test_oversized_body_answered_without_reading_it(self):
        """A body announced (or streamed) far over the limit is refused with
        413 without waiting for all of it: the client controls that size."""
        server = self.start()
        r, sent = server.upload(
            b"POST /api/v1/anonymous HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000000000\r\n\r\n", (b"x" * 65536 for _ in range(128)))
        self.assertIsNotNone(r, "no answer to a 1 GB Content-Length after %d bytes of it" % sent)
        self.assertStatus(r, 413)
        r, sent = server.upload(
            b"POST /api/v1/anonymous HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n", (b"10000\r\n" + b"x" * 65536 + b"\r\n" for _ in range(128)))
        self.assertIsNotNone(r, "no answer to an endless chunked body after %d bytes of it" % sent)
        self.assertStatus(r, 411)
        self.assertServes(server)


class Routes(Server):

    def test_unknown_path(self):
        server = self.start()
        for method, path in (("GET", "/nope"), ("GET", "/api/v1/nope"), ("POST", "/api/v1/nope"),
                             ("POST", "/api/v2/anonymous"), ("GET", "/api/v1/anonymous/extra"),
                             ("GET", "/.well-known/jwks.json.bak"), ("GET", "/sub/nope.html")):
            with self.subTest(method=method, path=path):
                r = server.request(method, path, body=b"{}" if method == "POST" else None,
                                   headers={"Content-Type": "application/json"})
                self.assertStatus(r, 404, "not_found")

    def test_request_head_over_limit(self):
        """A request head over header_limit (32 KiB) is refused (431) and
        costs nothing else."""
        server = self.start()
        for n in (40000, 200000):
            with self.subTest(size=n):
                big = b"X-Big: " + b"a" * n + b"\r\nConnection: close\r\n\r\n"
                r, _ = server.upload(b"GET / HTTP/1.1\r\nHost: localhost\r\n",
                                   [big[i:i + 4096] for i in range(0, len(big), 4096)])
                self.assertIsNotNone(r, "no answer")
                self.assertIn(r.status, (413, 431), str(r))
        self.assertServes(server)
        self.assertStatus(server.anonymous(), 200)

    def test_wrong_method(self):
        server = self.start()
        for method, path in (("GET", "/api/v1/anonymous"), ("GET", "/api/v1/refresh"), ("GET", "/api/v1/logout"),
                             ("GET", "/api/v1/login"), ("PUT", "/api/v1/anonymous"), ("DELETE", "/api/v1/anonymous"),
                             ("POST", "/.well-known/jwks.json"), ("POST", "/healthz"), ("DELETE", "/metrics")):
            with self.subTest(method=method, path=path):
                self.assertStatus(server.request(method, path), 405, "method_not_allowed")

    def test_405_names_the_allowed_method(self):
        """RFC 9110 section 15.5.6: a 405 response MUST carry Allow."""
        server = self.start()
        for method, path, allowed in (("GET", "/api/v1/anonymous", "POST"),
                                      ("POST", "/.well-known/jwks.json", "GET")):
            with self.subTest(method=method, path=path):
                r = self.assertStatus(server.request(method, path), 405)
                allow = r.header("Allow")
                self.assertIsNotNone(allow, "405 without Allow:\n%s" % r)
                self.assertIn(allowed, [m.strip() for m in allow.split(",")])


class Paths(Server):

    RAW_ESCAPES = [
        "/../../etc/passwd", "/../secret.txt", "/../../../../../../etc/passwd", "/sub/../../secret.txt",
        "/%2e%2e/secret.txt", "/%2E%2E/%2E%2E/etc/passwd", "/%2e%2e%2fsecret.txt", "/..%2fsecret.txt",
        "/.%2e/secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/sub/..%2f..%2fsecret.txt", "//etc/passwd",
        "/%2fetc%2fpasswd", "/..\\secret.txt", "/%5c..%5csecret.txt", "/sub/..", "/sub/../index.html",
        "/./index.html", "/index.html/..", "/%252e%252e/secret.txt", "/%c0%ae%c0%ae/secret.txt",
    ]

    def test_dotdot_paths(self):
        server = self.start()
        for path in self.RAW_ESCAPES:
            with self.subTest(path=path):
                r = server.raw_request(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                                       b"Connection: close\r\n\r\n")
                no_leak(self, r)
                self.assertStatus(r, 404)
        # Through http.client too (it sends the path as given).
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/sub/%2e%2e/%2e%2e/etc/passwd"):
            with self.subTest(client="http.client", path=path):
                r = server.get(path)
                no_leak(self, r)
                self.assertStatus(r, 404)
        # An absolute-form request target does not escape either.
        r = server.raw_request(b"GET https://localhost/../secret.txt HTTP/1.1\r\nHost: localhost\r\n"
                               b"Connection: close\r\n\r\n")
        no_leak(self, r)
        self.assertIn(r.status, (400, 404), str(r))
        self.assertServes(server)

    def test_nul_byte_in_path(self):
        """%00 decodes to a byte the C string of the path cannot carry: such a
        path must be refused (control bytes are), not served as the part
        before it (/index.html%00.txt as /index.html)."""
        server = self.start()
        for path in ("/index.html%00.txt", "/sub/%00/../../secret.txt", "/%00"):
            with self.subTest(path=path):
                r = server.raw_request(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                                       b"Connection: close\r\n\r\n")
                no_leak(self, r)
                self.assertIn(r.status, (400, 404), str(r))

    def test_symlinks_out_of_the_web_root(self):
        server = self.start()
        with open(os.path.join(server.web_root, "leak.txt"), "rb") as fp:
            self.assertEqual(fp.read(), SECRET, "the link itself works")
        for path in ("/leak.txt", "/up/secret.txt", "/passwd.txt", "/sub/abs/secret.txt", "/up/web/index.html"):
            with self.subTest(path=path):
                r = server.get(path)
                no_leak(self, r)
                self.assertStatus(r, 404)


class Static(Server):

    def test_types_etag_cache(self):
        server = self.start()
        for path, ctype in TYPES.items():
            with self.subTest(path=path):
                r = self.assertStatus(server.get(path), 200)
                name = path.lstrip("/") + ("index.html" if path.endswith("/") else "")
                self.assertEqual(r.body, WEB_FILES[name])
                self.assertEqual(r.header("Content-Type"), ctype)
                etag = r.header("ETag")
                self.assertRegex(etag or "", r'^"[^"]+"$', "a strong, quoted ETag")
                cache = r.header("Cache-Control") or ""
                if ctype.startswith("text/html"):
                    self.assertEqual(cache, "no-cache", "pages revalidate")
                else:
                    self.assertRegex(cache, r"max-age=\d+")
                # Revalidation.
                r2 = server.get(path, headers={"If-None-Match": etag})
                self.assertStatus(r2, 304)
                self.assertEqual(r2.body, b"")
                self.assertEqual(r2.header("ETag"), etag)
                self.assertStatus(server.get(path, headers={"If-None-Match": '"other"'}), 200)
                # HEAD: the same headers, no body.
                r3 = server.request("HEAD", path)
                self.assertStatus(r3, 200)
                self.assertEqual((r3.body, r3.header("ETag"), r3.header("Content-Type")), (b"", etag, ctype))
        # A changed file gets a new ETag.
        etag = server.get("/app.js").header("ETag")
        with open(os.path.join(server.web_root, "app.js"), "wb") as fp:
            fp.write(b"console.log('wic v2');\n")
        r = server.get("/app.js", headers={"If-None-Match": etag})
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"console.log('wic v2');\n")
        self.assertNotEqual(r.header("ETag"), etag)

    def test_if_none_match_lists_and_weak_tags(self):
        """RFC 9110 section 13.1.2: If-None-Match takes a list and compares
        weakly; a listed or W/ tag that matches, or *, means 304."""
        server = self.start()
        etag = server.get("/app.js").header("ETag")
        for inm in ('"x", %s' % etag, "W/" + etag, "*"):
            with self.subTest(if_none_match=inm):
                self.assertStatus(server.get("/app.js", headers={"If-None-Match": inm}), 304)

    def test_epcscf_uri_cannot_bend_the_csp(self):
        """The eP-CSCF's origin goes into the pages' Content-Security-Policy:
        wwsfctl config check refuses a uri that could add a directive."""
        root = os.environ["WWSF_SOURCE_ROOT"]
        with open(os.path.join(root, "pool-config", "wwsfd.ini")) as fp:
            example = fp.read()
        self.assertIn("\nuri = wss://localhost:8444/\n", example)
        for uri, ok in (("wss://epcscf.example.net:8444/ws", True), ("wss://x;script-src *", False),
                        ("wss://x 'unsafe-inline'", False), ("wss:///path", False), ("ws://x", False)):
            with self.subTest(uri=uri):
                path = os.path.join(root, "pool-config", ".test-%d-wwsfd.ini" % os.getpid())
                with open(path, "w") as fp:
                    fp.write(example.replace("\nuri = wss://localhost:8444/\n", "\nuri = %s\n" % uri))
                try:
                    p = subprocess.run([os.environ["WWSFCTL"], "config", "check", path], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, encoding="utf-8", timeout=60)
                finally:
                    os.unlink(path)
                self.assertEqual(p.returncode, 0 if ok else 1, p.stderr)
                if not ok:
                    self.assertIn("uri:", p.stderr)

    def test_security_headers(self):
        server = self.start()
        r = self.assertStatus(server.get("/"), 200)
        self.assertRegex(r.header("Strict-Transport-Security") or "", r"max-age=\d{7,}")
        csp = r.header("Content-Security-Policy") or ""
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertIn("default-src", csp)
        # The page may open a WebSocket to the configured eP-CSCF only.
        self.assertIn("connect-src 'self' wss://epcscf.example.net:8444;", csp)
        self.assertNotIn("wss: ", csp)
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
        # On everything else too.
        for r in (server.get("/app.js"), server.get("/nope"), server.get("/.well-known/jwks.json"),
                  server.anonymous(), self.post(server, b"{")):
            with self.subTest(status=r.status):
                self.assertTrue(r.header("Strict-Transport-Security"), str(r))
                self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", str(r))
                self.assertIn("frame-ancestors", r.header("Content-Security-Policy") or "", str(r))


class SlowClients(Server):

    def test_slow_client_does_not_stall_others(self):
        server = self.start()
        stalled = []
        try:
            # Half a request line and headers; headers but half the body; a
            # TCP connection that never starts TLS; TLS with nothing sent.
            s = server.tls_socket()
            s.sendall(b"POST /api/v1/anonymous HTTP/1.1\r\nHost: localhost\r\nContent-Ty")
            stalled.append(s)
            s = server.tls_socket()
            s.sendall(b"POST /api/v1/anonymous HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{\"evidence\"")
            stalled.append(s)
            for _ in range(4):
                stalled.append(server.tcp_socket())
                stalled.append(server.tls_socket())
            # Meanwhile, with every one of them open, others are served.
            for _ in range(6):
                self.assertServes(server)
            self.assertStatus(server.anonymous(), 200)
            self.assertStatus(server.get("/"), 200)
            # And the stalled ones are let go after the connection timeout (2 s).
            for i, s in enumerate(stalled):
                f.wait_until(lambda: closed_by_peer(s), 60, "stalled connection %d to be closed" % i, interval=0)
        finally:
            for s in stalled:
                s.close()
        self.assertServes(server)

    def test_stalled_handshake_does_not_spin(self):
        """A client that sends its TLS ClientHello and then nothing costs
        wwsfd no CPU while it waits (libmicrohttpd's epoll loop spun a core
        on it). CPU time, not wall time, so a busy machine cannot fail it:
        spinning for 3 s costs about 3 s, waiting costs next to nothing."""
        server = self.start(server={"connection_timeout": "30s"})
        self.assertServes(server)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        socks = []
        try:
            for _ in range(2):
                sock = server.tcp_socket(timeout=10)
                socks.append(sock)
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
                with self.assertRaises(ssl.SSLWantReadError):
                    tls.do_handshake()
                sock.sendall(outgoing.read())   # the ClientHello, then nothing
            time.sleep(0.5)
            before = cpu_seconds(server.pid)
            time.sleep(3)
            used = cpu_seconds(server.pid) - before
            self.assertLess(used, 1.0, "wwsfd used %.2f s of CPU in 3 s with two stalled handshakes" % used)
            self.assertServes(server)
        finally:
            for sock in socks:
                sock.close()

    def open_idle(self, server, n, source, tls_every=2):
        """n idle connections from source: every tls_every-th finishes the TLS
        handshake, the others only connect. Returns (sockets, refused count)."""
        socks, refused = [], 0
        for i in range(n):
            try:
                if i % tls_every == 0:
                    socks.append(server.tls_socket(timeout=10, source=source))
                else:
                    socks.append(server.tcp_socket(timeout=10, source=source))
            except (OSError, ssl.SSLError):
                refused += 1
        return socks, refused

    def test_idle_connections_within_the_limits(self):
        """200 idle connections, within max_connections and the per-address
        limit: a new client is served while they are all open."""
        server = self.start(server={"connection_timeout": "120s", "max_connections_per_ip": "64",
                                    "max_connections": "1024"})
        socks = []
        try:
            for k in range(4):
                got, refused = self.open_idle(server, 50, "127.0.0.%d" % (2 + k))
                socks += got
                self.assertEqual(refused, 0, "connections refused within the limits")
            for _ in range(3):
                self.assertServes(server)
            self.assertStatus(server.anonymous(), 200)
            alive = sum(1 for s in socks if not closed_by_peer(s, wait=0))
            self.assertEqual(alive, 200, "idle connections closed before the connection timeout")
        finally:
            for s in socks:
                s.close()

    def test_idle_connections_over_the_per_address_limit(self):
        """200 idle connections from one address, over its limit of 50: other
        addresses are served at once, that address after the idle ones time
        out (connection_timeout = 2 s)."""
        server = self.start(server={"connection_timeout": "2s", "max_connections_per_ip": "50"})
        socks = []
        try:
            got, _ = self.open_idle(server, 200, "127.0.0.2", tls_every=1000)    # plain TCP: quick to open
            socks += got
            # Others are not affected.
            self.assertServes(server, source="127.0.0.1")
            self.assertStatus(server.anonymous(source="127.0.0.3"), 200)

            # The crowded address gets through once the idle ones time out.
            def served():
                try:
                    r = server.request("GET", "/.well-known/jwks.json", source="127.0.0.2", timeout=10)
                    return r.status == 200
                except (OSError, ssl.SSLError, http.client.HTTPException):
                    return False
            f.wait_until(served, 60, "a client of the crowded address to be served", interval=0.2)
            for i, s in enumerate(socks):
                f.wait_until(lambda: closed_by_peer(s), 60, "idle connection %d to be closed" % i, interval=0)
        finally:
            for s in socks:
                s.close()


    def test_idle_connections_over_the_connection_limit(self):
        """More idle connections than max_connections, from several
        addresses: a new client is served once they time out
        (connection_timeout = 2 s)."""
        server = self.start(server={"connection_timeout": "2s", "max_connections": "100",
                                    "max_connections_per_ip": "64"})
        socks = []
        try:
            for k in range(4):
                got, _ = self.open_idle(server, 50, "127.0.0.%d" % (2 + k), tls_every=1000)
                socks += got

            def served():
                try:
                    return server.request("GET", "/.well-known/jwks.json", timeout=10).status == 200
                except (OSError, ssl.SSLError, http.client.HTTPException):
                    return False
            f.wait_until(served, 60, "a new client to be served", interval=0.2)
            self.assertStatus(server.anonymous(), 200)
        finally:
            for s in socks:
                s.close()


class Tls(Server):

    def context(self, server, version):
        ctx = server.ssl_context()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = version
            ctx.maximum_version = version
        if version < ssl.TLSVersion.TLSv1_2:
            # Debian's OpenSSL allows TLS 1.0/1.1 only at security level 0.
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        return ctx

    def handshake(self, server, port, version):
        """The negotiated version, or the exception of a failed handshake."""
        ctx = self.context(server, version)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    return s.version()
        except (OSError, ssl.SSLError) as e:
            return e

    def control_server(self, server):
        """openssl s_server accepting TLS 1.0 and 1.1, to show the client side
        of this machine can speak them; None if it cannot be started."""
        port = f.free_port()
        p = subprocess.Popen([f.OPENSSL, "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", server.cert,
                              "-key", server.key, "-cipher", "DEFAULT:@SECLEVEL=0", "-www", "-quiet"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (p.kill(), p.wait()))

        def up():
            if p.poll() is not None:
                return "exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return "up"
            except OSError:
                return None
        return port if f.wait_until(up, 30, "openssl s_server") == "up" else None

    def test_old_versions_refused(self):
        server = self.start()
        control = self.control_server(server)
        for version, name in ((ssl.TLSVersion.TLSv1, "TLSv1"), (ssl.TLSVersion.TLSv1_1, "TLSv1.1")):
            with self.subTest(version=name):
                try:
                    self.context(server, version)
                except (ValueError, ssl.SSLError) as e:
                    self.skipTest("this Python cannot even configure a %s client: %s" % (name, e))
                if control is not None:
                    got = self.handshake(server, control, version)
                    if got != name:
                        self.skipTest("this machine's OpenSSL cannot speak %s even to openssl s_server: %r"
                                      % (name, got))
                got = self.handshake(server, server.port, version)
                self.assertIsInstance(got, Exception, "wwsfd accepted %s" % name)
                # And with the openssl command line.
                flag = {"TLSv1": "-tls1", "TLSv1.1": "-tls1_1"}[name]
                p = subprocess.run([f.OPENSSL, "s_client", flag, "-cipher", "DEFAULT:@SECLEVEL=0", "-connect",
                                    "127.0.0.1:%d" % server.port, "-CAfile", server.cert],
                                   input="", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8",
                                   errors="replace", timeout=60)
                self.assertNotEqual(p.returncode, 0, "openssl s_client %s got through:\n%s" % (flag, p.stdout))
                self.assertIn("Cipher is (NONE)", p.stdout)
        self.assertServes(server)

    def test_current_versions_accepted(self):
        server = self.start()
        for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            with self.subTest(version=name):
                self.assertEqual(self.handshake(server, server.port, version), name)
                ctx = self.context(server, version)
                c = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=30)
                try:
                    c.request("GET", "/")
                    r = c.getresponse()
                    self.assertEqual(r.status, 200)
                    self.assertEqual(r.read(), f.DEFAULT_INDEX)
                    self.assertEqual(c.sock.version(), name)
                finally:
                    c.close()


if __name__ == "__main__":
    f.main()
