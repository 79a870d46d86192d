"""A real wwsfd for integration tests.

Wwsfd(dir, ...) prepares everything a daemon needs in a temporary directory
(a self-signed EC P-256 certificate made with the openssl command line, a
keys directory with an active key made with `wwsfctl keys`, a web root, the
pool configuration the test writes, the daemon's INI file), picks a free
loopback port at run time, starts wwsfd, and waits until it answers an HTTPS
request (polling the port, never sleeping a fixed time). It stops it with
SIGTERM, can kill it with SIGKILL and start it again on the same database,
and keeps its standard error in a log file that WwsfdTestCase prints when a
test fails.

It also holds the client side the tests share: HTTPS requests with a context
that trusts only the test's own certificate, raw requests over TLS, a
session that keeps the session cookie, the eligibility helpers found as
children of the daemon in /proc, and an independent check of the tokens'
signatures with the openssl command line from the JWKS alone.

Meson passes the binaries in $WWSFD and $WWSFCTL. Set WWSF_KEEP_TMP=1 to keep
the temporary directories of a run.
"""

import base64
import http.client
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import wwsf_testlib as t  # noqa: E402

WWSFD = os.path.abspath(os.environ.get("WWSFD") or os.path.join(t.SOURCE_ROOT, "build", "src", "wwsfd", "wwsfd"))
WWSFCTL = t.WWSFCTL = os.path.abspath(t.WWSFCTL)
OPENSSL = shutil.which("openssl")
HOOKS_DIR = os.path.join(HERE, "hooks")
PERSONAL_INFO = os.path.join(t.POOL_CONFIG_DIR, "hooks", "personal-info")
TEST_HOOK = os.path.join(HOOKS_DIR, "test-hook")

DOMAIN = t.DOMAIN
AUDIENCE = "ims.example.com"
EPCSCF_URI = "wss://epcscf.example.net:8444/"
EVIDENCE_OK = {"name": "Ann", "email": "ann@example.com"}

# Generous bounds for "does not hang"; nothing asserts that anything is fast.
START_TIMEOUT = 30
STOP_TIMEOUT = 30
REQUEST_TIMEOUT = 30


def describe_status(rc):
    return t.describe_status(rc) if rc is not None else "still running"


free_port = t.free_port
wait_until = t.wait_until


def anonymous_pool(name="visitors", size=100, lease_ttl="10m", quarantine="20m", subscription="web",
                   kind="anonymous", prefix="+1555"):
    """Lines of one subscription (per-entry IMPIs) with one pool: a list of
    `size` entries when size <= 10 (sip:NAME-1@...), else a range of numbers
    sip:PREFIX0000...@..."""
    if size <= 10:
        source = t.list_entries(name, size)
    else:
        width = max(4, len(str(size - 1)))
        source = ["impu_range = sip:%s{%s..%s}@%s" % (prefix, "0" * width, str(size - 1).zfill(width), DOMAIN),
                  "impi_range = %s-{%s..%s}@%s" % (name, "0" * width, str(size - 1).zfill(width), DOMAIN)]
    return (t.subscription_ini(subscription)
            + t.pool_ini(name, source, subscription=subscription, kind=kind, lease_ttl=lease_ttl,
                         quarantine=quarantine))


# ---- HTTP --------------------------------------------------------------------

class Response:
    """A whole HTTP response: status, headers, body."""

    def __init__(self, status, reason, headers, body, elapsed=None):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body
        self.elapsed = elapsed

    def header(self, name):
        return self.headers.get(name)

    def header_all(self, name):
        return self.headers.get_all(name) or []

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError("the body is not JSON (%s): %r" % (e, self.body[:500]))

    def error(self):
        """The error code of an error reply ({"error": ..., "detail": ...})."""
        j = self.json()
        if not isinstance(j, dict) or not isinstance(j.get("error"), str) or not isinstance(j.get("detail"), str):
            raise AssertionError("not an error reply of the one error shape: %r" % self.body[:500])
        return j["error"]

    def retry_after(self):
        """Retry-After as a number of seconds (AssertionError if absent or not one)."""
        v = self.header("Retry-After")
        if v is None or not v.strip().isdigit():
            raise AssertionError("expected Retry-After: <seconds>, got %r\n%s" % (v, self))
        return int(v)

    def __str__(self):
        return "HTTP %d %s\n%s\n%s" % (self.status, self.reason, str(self.headers).strip(),
                                       self.body[:2000].decode("utf-8", "replace"))


def read_response(sock, method="GET"):
    """Reads one response from a connected socket with http.client's parser."""
    r = http.client.HTTPResponse(sock, method=method)
    r.begin()
    body = r.read()
    return Response(r.status, r.reason, r.headers, body)


def _response_complete(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value)
    return False        # chunked or until close: wait for the end of the stream


class _BufferSocket:
    """What http.client.HTTPResponse needs of a socket, over bytes read already."""

    def __init__(self, data):
        self.data = data

    def makefile(self, *args, **kw):
        return io.BytesIO(self.data)


def exchange(sock, head, chunks, method="POST", timeout=REQUEST_TIMEOUT):
    """Sends head, then chunks while the server has not answered, and reads
    the answer, all from one thread (an SSL socket is not to be used by two
    at once). Sending stops at the first answer, error or 5 s of the server
    not reading. Returns (Response or None if none came in time, bytes of
    chunks sent)."""
    deadline = time.monotonic() + timeout
    buf, sent, writing, eof = b"", 0, True, False
    sock.settimeout(10)
    sock.sendall(head)
    chunks = iter(chunks)
    while time.monotonic() < deadline and not eof and not _response_complete(buf):
        sock.settimeout(0 if writing else 0.5)
        try:
            data = sock.recv(65536)
            buf += data
            eof = not data
        except (ssl.SSLWantReadError, BlockingIOError, socket.timeout):
            pass
        except (OSError, ssl.SSLError):
            eof = True
        if writing and not buf:
            c = next(chunks, None)
            if c is None:
                writing = False
                continue
            sock.settimeout(5)
            try:
                sock.sendall(c)
                sent += len(c)
            except (OSError, ssl.SSLError):
                writing = False
        else:
            writing = False
    if b"\r\n\r\n" not in buf:
        return None, sent
    r = http.client.HTTPResponse(_BufferSocket(buf), method=method)
    try:
        r.begin()
        body = r.read()
    except http.client.IncompleteRead as e:
        body = e.partial
    return Response(r.status, r.reason, r.headers, body), sent


def chunked(body, chunk=1024):
    out = b""
    for i in range(0, len(body), chunk):
        part = body[i:i + chunk]
        out += b"%x\r\n%s\r\n" % (len(part), part)
    return out + b"0\r\n\r\n"


class Session:
    """A browser's view of the API: keeps the session cookie and sends the
    X-WWSF-Request header that refresh and logout need."""

    COOKIE = "wwsf_session"

    def __init__(self, server, source=None):
        self.server = server
        self.source = source
        self.cookie = None

    def _take_cookie(self, r):
        for sc in r.header_all("Set-Cookie"):
            first = sc.split(";", 1)[0]
            name, _, value = first.partition("=")
            if name.strip() == self.COOKIE:
                self.cookie = value.strip() or None
        return r

    def anonymous(self, evidence=None, **kw):
        body = {"evidence": EVIDENCE_OK if evidence is None else evidence}
        return self._take_cookie(self.server.post_json("/api/v1/anonymous", body, source=self.source, **kw))

    def _session_post(self, path, csrf=True, origin=None, cookie=None, body=b"{}"):
        headers = {"Content-Type": "application/json"}
        if csrf:
            headers["X-WWSF-Request"] = "1"
        if origin:
            headers["Origin"] = origin
        c = self.cookie if cookie is None else cookie
        if c:
            headers["Cookie"] = "%s=%s" % (self.COOKIE, c)
        return self._take_cookie(self.server.request("POST", path, body=body, headers=headers, source=self.source))

    def refresh(self, **kw):
        return self._session_post("/api/v1/refresh", **kw)

    def logout(self, **kw):
        return self._session_post("/api/v1/logout", **kw)


# ---- tokens, checked with the openssl command line ----------------------------------

def b64url_decode(s):
    if isinstance(s, str):
        s = s.encode("ascii")
    if b"=" in s:
        raise AssertionError("base64url with padding: %r" % s)
    return base64.urlsafe_b64decode(s + b"=" * (-len(s) % 4))


def b64url_json(s):
    try:
        return json.loads(b64url_decode(s))
    except ValueError as e:
        raise AssertionError("not base64url JSON (%s): %r" % (e, s))


def jwt_parts(token):
    """(header, claims, signing input, signature bytes) of a compact JWS."""
    parts = token.split(".")
    if len(parts) != 3:
        raise AssertionError("not a compact JWS (%d parts): %r" % (len(parts), token))
    return b64url_json(parts[0]), b64url_json(parts[1]), (parts[0] + "." + parts[1]).encode("ascii"), \
        b64url_decode(parts[2])


def _der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der(tag, content):
    return bytes([tag]) + _der_len(len(content)) + content


def der_int(v):
    b = v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big")
    if b[0] & 0x80:
        b = b"\x00" + b
    return der(0x02, b)


# SubjectPublicKeyInfo of a P-256 key up to its BIT STRING: id-ecPublicKey,
# prime256v1, BIT STRING of 66 bytes (0 unused bits, then 04 || x || y).
EC_P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
# AlgorithmIdentifier rsaEncryption with NULL parameters.
RSA_ALGORITHM = der(0x30, der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")


def jwk_to_pem(jwk):
    """The PEM SubjectPublicKeyInfo of a public JWK (EC P-256 or RSA)."""
    if jwk.get("kty") == "EC":
        x, y = b64url_decode(jwk["x"]), b64url_decode(jwk["y"])
        if jwk.get("crv") != "P-256" or len(x) != 32 or len(y) != 32:
            raise AssertionError("not a P-256 JWK: %r" % jwk)
        spki = EC_P256_SPKI_PREFIX + b"\x04" + x + y
    elif jwk.get("kty") == "RSA":
        n = int.from_bytes(b64url_decode(jwk["n"]), "big")
        e = int.from_bytes(b64url_decode(jwk["e"]), "big")
        spki = der(0x30, RSA_ALGORITHM + der(0x03, b"\x00" + der(0x30, der_int(n) + der_int(e))))
    else:
        raise AssertionError("unexpected key type: %r" % jwk)
    b64 = base64.b64encode(spki).decode("ascii")
    return "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n" % "\n".join(
        b64[i:i + 64] for i in range(0, len(b64), 64))


def ecdsa_raw_to_der(sig):
    """A JWS ES256 signature (R || S, 32 bytes each) as an ECDSA-Sig-Value."""
    if len(sig) != 64:
        raise AssertionError("an ES256 signature is 64 bytes, this one %d" % len(sig))
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    return der(0x30, der_int(r) + der_int(s))


def openssl_verify(token, jwks, workdir, signing_input=None):
    """Checks the token's signature with `openssl dgst -sha256 -verify`, using
    the key the JWKS publishes under the token's kid. Returns (ok, output).
    signing_input replaces "header.payload" (to show a tampered token fails)."""
    header, _, data, sig = jwt_parts(token)
    keys = [k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")]
    if len(keys) != 1:
        raise AssertionError("the JWKS has %d keys with kid %r: %r" % (len(keys), header.get("kid"), jwks))
    jwk = keys[0]
    if jwk.get("alg") != header.get("alg"):
        raise AssertionError("token alg %r, JWKS alg %r" % (header.get("alg"), jwk.get("alg")))
    if header["alg"] == "ES256":
        sig = ecdsa_raw_to_der(sig)
    elif header["alg"] != "RS256":
        raise AssertionError("unexpected alg %r" % header["alg"])
    d = tempfile.mkdtemp(prefix="verify-", dir=workdir)
    paths = {n: os.path.join(d, n) for n in ("pub.pem", "sig.der", "data")}
    with open(paths["pub.pem"], "w") as f:
        f.write(jwk_to_pem(jwk))
    with open(paths["sig.der"], "wb") as f:
        f.write(sig)
    with open(paths["data"], "wb") as f:
        f.write(signing_input if signing_input is not None else data)
    p = subprocess.run([OPENSSL, "dgst", "-sha256", "-verify", paths["pub.pem"], "-signature", paths["sig.der"],
                        paths["data"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8",
                       errors="replace", timeout=60)
    shutil.rmtree(d, ignore_errors=True)
    return p.returncode == 0 and "Verified OK" in p.stdout, p.stdout


def libjwt_verify(token, jwks, workdir):
    """Checks the token with libjwt (tests/integration/libjwt_verify.c), with
    the key the JWKS publishes under the token's kid. Returns (ok, {"alg",
    "claims"} or libjwt's complaint)."""
    tool = os.environ.get("WWSF_LIBJWT_VERIFY")
    if not tool:
        raise AssertionError("WWSF_LIBJWT_VERIFY is not set: run the test through meson")
    header = jwt_parts(token)[0]
    keys = [k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")]
    if len(keys) != 1:
        raise AssertionError("the JWKS has %d keys with kid %r: %r" % (len(keys), header.get("kid"), jwks))
    d = tempfile.mkdtemp(prefix="libjwt-", dir=workdir)
    pem = os.path.join(d, "pub.pem")
    with open(pem, "w") as f:
        f.write(jwk_to_pem(keys[0]))
    p = subprocess.run([tool, pem, token], stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8",
                       errors="replace", timeout=60)
    shutil.rmtree(d, ignore_errors=True)
    if p.returncode == 0:
        return True, json.loads(p.stdout)
    if p.returncode != 1:
        raise AssertionError("libjwt_verify failed (%d): %s" % (p.returncode, p.stderr))
    return False, p.stderr


# ---- processes -------------------------------------------------------------------

def proc_stat(pid):
    """(state, ppid) of a process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = s[s.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def children(pid):
    """Live (not zombie) children of pid, from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(int(name))
        if st and st[1] == pid and st[0] != "Z":
            out.append(int(name))
    return sorted(out)


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


# ---- the daemon ------------------------------------------------------------------------

DEFAULT_INDEX = b"<!doctype html>\n<title>WIC</title>\n<p>web root of a test wwsfd</p>\n"


class Wwsfd:
    """One wwsfd in its own directory. `pools` are the lines of the pool
    configuration; `config` maps sections to {key: value} laid over the
    defaults below (a value of None removes a key); `hook` is the eligibility
    helper (a path, or the name of a script in tests/integration/hooks/);
    `env` is added to the daemon's environment (the helpers inherit it)."""

    def __init__(self, workdir, pools=None, config=None, hook=PERSONAL_INFO, env=None, key_alg="ES256",
                 anon_pool="visitors", web_files=None):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.cert = os.path.join(workdir, "cert.pem")
        self.key = os.path.join(workdir, "key.pem")
        self.web_root = os.path.join(workdir, "web")
        self.keys_dir = os.path.join(workdir, "keys")
        self.db = os.path.join(workdir, "wwsf.db")
        self.pool_file = os.path.join(workdir, "pools.ini")
        self.config_file = os.path.join(workdir, "wwsfd.ini")
        self.log_path = os.path.join(workdir, "wwsfd.log")
        self.hook_dir = os.path.join(workdir, "hook-files")   # where test hooks leave marks
        os.makedirs(self.hook_dir, exist_ok=True)
        self.ctl = t.Ctl(self.db)
        # The helpers inherit this; settings of the shipped hooks from the
        # caller's environment stay out.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("WWSF_HOOK_", "WWSF_ADVERT_"))}
        self.env.update(WWSF_TEST_HOOK_DIR=self.hook_dir, **(env or {}))
        self.proc = None
        self.port = None
        self.starts = 0
        self.expected_exit = False
        self.saved_log = None

        self._make_cert()
        self.kid = self.generate_key(key_alg)
        self.activate_key(self.kid)
        os.makedirs(self.web_root, exist_ok=True)
        files = {"index.html": DEFAULT_INDEX} if web_files is None else web_files
        for name, data in files.items():
            path = os.path.join(self.web_root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        self.write_pools(pools if pools is not None else anonymous_pool())
        if hook and not os.path.isabs(hook):
            hook = os.path.join(HOOKS_DIR, hook)
        if hook and os.path.dirname(hook) == HOOKS_DIR:
            # A copy with the execute bit, whatever the checkout did to it.
            copy = os.path.join(workdir, os.path.basename(hook))
            shutil.copyfile(hook, copy)
            os.chmod(copy, 0o755)
            hook = copy
        self.hook = hook
        self.anon_pool = anon_pool
        self.overrides = config or {}

    # -- preparation --

    def _make_cert(self):
        p = subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8", errors="replace",
                           timeout=60)
        if p.returncode != 0:
            raise AssertionError("openssl req failed:\n%s" % p.stdout)

    def wwsfctl_keys(self, *args):
        r = t.run_wwsfctl(["keys"] + list(args) + ["--keys-dir", self.keys_dir])
        if r.rc != 0:
            raise AssertionError("expected exit 0:\n%s" % r)
        return r

    def generate_key(self, alg="ES256"):
        """A new key in state next; returns its kid."""
        return self.wwsfctl_keys("generate", "--alg", alg, "--json").json()["kid"]

    def activate_key(self, kid):
        self.wwsfctl_keys("activate", kid)

    def keys_list(self):
        return self.wwsfctl_keys("list", "--json").json()

    def write_pools(self, lines):
        t.write_lines(self.pool_file, lines)

    def config_sections(self):
        sections = {
            "server": {
                "listen": "127.0.0.1:%d" % self.port,
                "tls_cert": self.cert,
                "tls_key": self.key,
                "web_root": self.web_root,
                "public_url": self.public_url,
                "threads": "2",
                "log_level": "info",
            },
            "store": {"db": self.db, "pool_config": self.pool_file},
            "tokens": {"keys_dir": self.keys_dir, "audience": AUDIENCE},
            "epcscf": {"uri": EPCSCF_URI},
            "anonymous": {"hook": self.hook, "hook_helpers": "2", "pool": self.anon_pool},
            "ldap": {"enabled": "no"},
            # No rate limits unless a test sets them: every test client
            # comes from 127.0.0.1.
            "throttle": {"anonymous_per_ip": "0", "refresh_per_session": "0"},
        }
        if not self.hook:
            sections["anonymous"] = {"enabled": "no"}
        for sec, kv in self.overrides.items():
            for k, v in kv.items():
                if v is None:
                    sections.setdefault(sec, {}).pop(k, None)
                else:
                    sections.setdefault(sec, {})[k] = str(v)
        return sections

    def write_config(self):
        lines = []
        for sec, kv in self.config_sections().items():
            lines.append("[%s]" % sec)
            lines += ["%s = %s" % (k, v) for k, v in kv.items()]
            lines.append("")
        t.write_lines(self.config_file, lines)

    @property
    def public_url(self):
        return "https://localhost:%d" % self.port

    # -- life cycle --

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _log_mark(self, text):
        with open(self.log_path, "a") as f:
            f.write("---- test: %s %s\n" % (time.strftime("%H:%M:%S"), text))

    def start(self, timeout=START_TIMEOUT, new_port=False):
        """Starts wwsfd (again, on the same database and port unless the port
        was taken meanwhile) and waits until it answers HTTPS."""
        if self.running():
            raise AssertionError("wwsfd is already running")
        for attempt in range(5):
            if self.port is None or new_port or attempt > 0:
                self.port = free_port()
            self.write_config()
            self.starts += 1
            self._log_mark("start #%d on port %d" % (self.starts, self.port))
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen([WWSFD, "--config", self.config_file], stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=log, cwd=self.dir, env=self.env)
            finally:
                log.close()
            self.expected_exit = False
            if self._wait_ready(timeout):
                return self
            if self.proc.poll() is None:
                self.kill9()
                raise AssertionError("wwsfd did not answer within %ds:\n%s" % (timeout, self.log_text()))
            self.expected_exit = True
            if "cannot listen" not in self.log_text().rsplit("---- test:", 1)[-1]:
                raise AssertionError("wwsfd exited at start (%s):\n%s" % (describe_status(self.proc.returncode),
                                                                          self.log_text()))
        raise AssertionError("wwsfd found no free port in 5 attempts:\n%s" % self.log_text())

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                self.request("GET", "/healthz", timeout=5)
                return True
            except (OSError, ssl.SSLError, http.client.HTTPException):
                time.sleep(0.05)
        return False

    def _wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def terminate(self):
        """Sends SIGTERM without waiting; wait() collects the exit status."""
        self._stopping_helpers = self.helpers()
        self.expected_exit = True
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout=STOP_TIMEOUT):
        """The exit status after terminate() (AssertionError if the daemon
        does not exit in time; it is killed then)."""
        rc = self._wait_exit(timeout)
        if rc is None:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("wwsfd did not exit within %ds of SIGTERM" % timeout)
        self._reap_helpers(getattr(self, "_stopping_helpers", []))
        return rc

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; returns the exit status (AssertionError if it does not exit)."""
        self.terminate()
        return self.wait(timeout)

    def kill9(self):
        """SIGKILL, as a crash or a power cut would stop it. Its helpers see
        end of file on their stdin and exit by themselves."""
        helpers = self.helpers()
        self.expected_exit = True
        self.proc.kill()
        self.proc.wait()
        self._reap_helpers(helpers)

    def restart(self, **kw):
        if self.running():
            self.stop()
        return self.start(**kw)

    def _reap_helpers(self, helpers, timeout=10):
        """Helpers must not outlive the daemon; ones still running after
        timeout are killed and reported."""
        deadline = time.monotonic() + timeout
        left = [p for p in helpers if alive(p)]
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [p for p in left if alive(p)]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if left:
            raise AssertionError("eligibility helpers %s outlived wwsfd by %ds" % (left, timeout))

    def finish(self):
        """Cleanup of a test: stops the daemon if it runs (it must exit 0),
        complains if it died when nobody asked, keeps the log."""
        problems = []
        try:
            if self.proc is not None:
                if self.running():
                    rc = self.stop()
                    if rc != 0:
                        problems.append("wwsfd exited with %s after SIGTERM" % describe_status(rc))
                elif not self.expected_exit:
                    problems.append("wwsfd died during the test: %s" % describe_status(self.proc.returncode))
        except AssertionError as e:
            problems.append(str(e))
        finally:
            self.saved_log = self.log_text()
        if problems:
            raise AssertionError("; ".join(problems))

    def log_text(self):
        if self.saved_log is not None and not os.path.exists(self.log_path):
            return self.saved_log
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def helpers(self):
        """Pids of the eligibility helpers (the daemon's children)."""
        return children(self.pid) if self.running() else []

    def wait_helpers(self, n, timeout=30, exclude=()):
        """Waits until n helpers run, none of them in exclude; returns them."""
        def ready():
            h = self.helpers()
            return h if len(h) == n and not set(h) & set(exclude) else None
        return wait_until(ready, timeout, "%d eligibility helpers" % n)

    def hook_mark(self, name):
        """Contents of a mark the test hook left (its pid), or None."""
        try:
            with open(os.path.join(self.hook_dir, name)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    # -- client side --

    def ssl_context(self):
        """Trusts the test's certificate and nothing else."""
        return ssl.create_default_context(cafile=self.cert)

    def connection(self, timeout=REQUEST_TIMEOUT, source=None):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl_context(), timeout=timeout,
                                           source_address=(source, 0) if source else None)

    def request(self, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT, source=None):
        c = self.connection(timeout, source)
        try:
            start = time.monotonic()
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return Response(r.status, r.reason, r.headers, data, time.monotonic() - start)
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post_json(self, path, obj, headers=None, **kw):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return self.request("POST", path, body=json.dumps(obj).encode(), headers=h, **kw)

    def anonymous(self, evidence=None, source=None, **kw):
        return Session(self, source).anonymous(evidence, **kw)

    def jwks(self):
        r = self.get("/.well-known/jwks.json")
        if r.status != 200:
            raise AssertionError("GET /.well-known/jwks.json:\n%s" % r)
        return r.json()

    def tcp_socket(self, timeout=REQUEST_TIMEOUT, source=None):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout,
                                        source_address=(source, 0) if source else None)

    def tls_socket(self, timeout=REQUEST_TIMEOUT, source=None, context=None):
        s = self.tcp_socket(timeout, source)
        try:
            return (context or self.ssl_context()).wrap_socket(s, server_hostname="127.0.0.1")
        except BaseException:
            s.close()
            raise

    def raw_request(self, data, method="GET", timeout=REQUEST_TIMEOUT):
        """Sends bytes as they are (a request line http.client would not
        write) and reads the one response."""
        with self.tls_socket(timeout) as s:
            s.sendall(data)
            return read_response(s, method)

    def upload(self, head, chunks, method="POST", timeout=REQUEST_TIMEOUT):
        """exchange() on a new TLS connection."""
        with self.tls_socket(timeout) as s:
            return exchange(s, head, chunks, method, timeout)

    def verify(self, token, jwks=None):
        """(ok, openssl output) for the token against the served JWKS."""
        return openssl_verify(token, jwks if jwks is not None else self.jwks(), self.dir)

    def verify_libjwt(self, token, jwks=None):
        """(ok, {"alg", "claims"} or libjwt's complaint) for the token against
        the served JWKS."""
        return libjwt_verify(token, jwks if jwks is not None else self.jwks(), self.dir)


class WwsfdTestCase(unittest.TestCase):
    """Each test gets a temporary directory; start_server() starts a wwsfd in
    it that is stopped (and must exit 0) when the test ends. The logs of the
    test's daemons are printed when it fails."""

    def setUp(self):
        self._tmp = tempfile.mkdtemp(prefix="wwsfd-it-")
        self.addCleanup(self._remove_tmp)
        self.servers = []

    def _remove_tmp(self):
        if os.environ.get("WWSF_KEEP_TMP"):
            sys.stderr.write("kept %s\n" % self._tmp)
        else:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self._tmp, name)

    def make_server(self, **kw):
        s = Wwsfd(self.path("wwsfd%d" % len(self.servers)), **kw)
        self.servers.append(s)
        self.addCleanup(s.finish)
        return s

    def start_server(self, **kw):
        return self.make_server(**kw).start()

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        self.servers = []
        try:
            return super().run(result)
        finally:
            if len(result.failures) + len(result.errors) > before:
                for i, s in enumerate(self.servers):
                    sys.stderr.write("\n==== wwsfd log of %s, server %d (%s) ====\n%s==== end of log ====\n"
                                     % (self.id(), i, s.dir, s.saved_log or s.log_text()))

    # Assertions the tests share.

    def assertStatus(self, r, status, error=None):
        if r.status != status:
            self.fail("expected HTTP %d, got:\n%s" % (status, r))
        if error is not None:
            self.assertEqual(r.error(), error, str(r))
        return r

    def assertServes(self, server, source=None):
        """The daemon still answers a JWKS request."""
        r = server.request("GET", "/.well-known/jwks.json", source=source)
        self.assertStatus(r, 200)
        self.assertTrue(r.json().get("keys"), str(r))
        return r


def main():
    for what, path in (("wwsfd", WWSFD), ("wwsfctl", WWSFCTL)):
        if not os.access(path, os.X_OK):
            sys.stderr.write("%s not found at %s (set %s)\n" % (what, path, what.upper()))
            sys.exit(1)
    if not OPENSSL:
        sys.stderr.write("SKIP: the openssl command line is not installed\n")
        sys.exit(77)
    unittest.main(verbosity=2)
