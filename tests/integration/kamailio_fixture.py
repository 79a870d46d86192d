"""Kamailio as eP-CSCF and S-CSCF for integration tests, and the WIC's side.

Kamailio(name, workdir, cfg, defines, env) runs one Kamailio 5.6 in the
foreground (-DD -E) as the invoking user, with its own runtime directory
(-Y, where its kamcmd socket is), small memory (-m 64 -M 16), the given
`-A` defines and environment, its standard error in a log file; it waits
until the ctl socket answers and each SIP socket replies (never a fixed
sleep) and stops it with SIGTERM.

The client side, with the Python standard library only: an ES256 key, its
JWKS in the project's format and tokens signed with the openssl command line
(docs/DESIGN.md section 3); a WebSocket client (RFC 6455) with TLS; SIP messages
built and parsed as text.

Meson passes $KAMAILIO_CONFIG_DIR (pool-config/kamailio) and
$WICTOKEN_LUA_DIR (the folder of the built wictoken.so). Set
WWSF_KEEP_TMP=1 to keep the temporary directory of a run.
"""

import base64
import glob
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import wwsf_testlib as t  # noqa: E402

KAMAILIO = os.environ.get("KAMAILIO") or shutil.which("kamailio") or "/usr/sbin/kamailio"
KAMCMD = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
OPENSSL = shutil.which("openssl")
CONFIG_DIR = os.path.abspath(os.environ.get("KAMAILIO_CONFIG_DIR")
                             or os.path.join(t.SOURCE_ROOT, "pool-config", "kamailio"))
WICTOKEN_LUA_DIR = os.path.abspath(os.environ.get("WICTOKEN_LUA_DIR")
                                   or os.path.join(t.SOURCE_ROOT, "build", "src", "wictoken-lua"))

# The Debian packages each needed module comes in.
MODULE_PACKAGES = {"app_lua": "kamailio-lua-modules", "websocket": "kamailio-websocket-modules",
                   "tls": "kamailio-tls-modules", "tm": "kamailio", "usrloc": "kamailio"}

DOMAIN = t.DOMAIN
ISSUER = "https://wwsf.example.com"
ALLOWED_ORIGIN = "https://wwsf.example.com"
AUDIENCE = "ims.example.com"

START_TIMEOUT = 30
STOP_TIMEOUT = 30
SIP_TIMEOUT = 10


def missing_tools():
    """What this machine lacks to run Kamailio tests (package names), or []."""
    missing = []
    if not os.access(KAMAILIO, os.X_OK):
        missing.append("kamailio")
    if not os.access(KAMCMD, os.X_OK) and "kamailio" not in missing:
        missing.append("kamailio (kamcmd)")
    for module, package in MODULE_PACKAGES.items():
        found = glob.glob("/usr/lib/*/kamailio/modules/%s.so" % module) + \
            glob.glob("/usr/lib/kamailio/modules/%s.so" % module) + \
            glob.glob("/usr/local/lib*/kamailio/modules/%s.so" % module)
        if not found and package not in missing:
            missing.append(package)
    if not OPENSSL:
        missing.append("openssl")
    return missing


free_port = t.free_port


def free_ports(n):
    """n distinct ports free for both TCP and UDP right now."""
    ports = set()
    while len(ports) < n:
        p = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", p))
        except OSError:
            continue
        ports.add(p)
    return sorted(ports)


wait_until = t.wait_until


def random_token(n=10):
    return "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


# ---- keys and tokens (openssl command line) ---------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _der_read(data, pos, tag):
    if data[pos] != tag:
        raise ValueError("DER tag %#x expected at %d, got %#x" % (tag, pos, data[pos]))
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7f
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    return data[pos:pos + n], pos + n


def ecdsa_der_to_raw(der, half=32):
    """An ECDSA-Sig-Value (SEQUENCE of INTEGER r, s) as JWS's R||S."""
    seq, _ = _der_read(der, 0, 0x30)
    r, pos = _der_read(seq, 0, 0x02)
    s, _ = _der_read(seq, pos, 0x02)
    return int.from_bytes(r, "big").to_bytes(half, "big") + int.from_bytes(s, "big").to_bytes(half, "big")


def run_openssl(args, data=None):
    p = subprocess.run([OPENSSL] + args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed: %s" % (" ".join(args), p.stderr.decode("utf-8", "replace")))
    return p.stdout


class SigningKey:
    """An EC P-256 key made with openssl, its public JWK and ES256 tokens."""

    def __init__(self, workdir, kid=None):
        self.kid = kid or "k-" + random_token(16)
        self.pem = os.path.join(workdir, "%s.pem" % self.kid)
        run_openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.pem])
        spki = run_openssl(["pkey", "-in", self.pem, "-pubout", "-outform", "DER"])
        point = spki[-65:]          # the uncompressed point 04 || X || Y ends the SubjectPublicKeyInfo
        if point[0] != 4:
            raise AssertionError("unexpected public key encoding")
        self.jwk = {"kty": "EC", "crv": "P-256", "x": b64url(point[1:33]), "y": b64url(point[33:]),
                    "kid": self.kid, "use": "sig", "alg": "ES256"}

    def sign(self, claims, header=None):
        h = {"alg": "ES256", "kid": self.kid, "typ": "JWT"}
        h.update(header or {})
        signing_input = (b64url(json.dumps(h, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode()))
        der = run_openssl(["dgst", "-sha256", "-sign", self.pem], signing_input.encode())
        return signing_input + "." + b64url(ecdsa_der_to_raw(der))


def write_jwks(path, keys):
    with open(path, "w") as f:
        json.dump({"keys": [k.jwk for k in keys]}, f)
    return path


def claims_for(impu, impi=None, ttl=300, now=None, **over):
    """The claims of a token of docs/DESIGN.md section 3 for one IMPU."""
    now = int(time.time()) if now is None else now
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-" + random_token(), "iat": now, "nbf": now,
         "exp": now + ttl, "jti": "j-" + random_token(16), "impu": impu,
         "impi": impi or impu.split(":", 1)[1], "3gpp-wwsf": "wwsf.example.com", "anon": True,
         "lease_exp": now + ttl + 600}
    c.update(over)
    return c


def flip_signature_bit(token):
    """The token with one bit of its signature changed (still valid base64url)."""
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[10] ^= 0x01
    return "%s.%s.%s" % (head, payload, b64url(bytes(raw)))


def make_tls_cert(workdir):
    """A self-signed EC certificate for localhost / 127.0.0.1: (cert, key)."""
    cert, key = os.path.join(workdir, "tls-cert.pem"), os.path.join(workdir, "tls-key.pem")
    run_openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
    return cert, key


# ---- WebSocket client (RFC 6455) ------------------------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeRefused(Exception):
    def __init__(self, status, reason, headers, body):
        super().__init__("WebSocket handshake answered %d %s" % (status, reason))
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class ConnectionClosed(Exception):
    pass


class WebSocket:
    """One client connection. connect() raises HandshakeRefused when the
    server does not answer 101."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    @classmethod
    def connect(cls, port, tls_ca=None, origin=ALLOWED_ORIGIN, protocols="sip", host="127.0.0.1",
                timeout=SIP_TIMEOUT, source=None):
        """source: the local address to connect from (another client
        address on loopback: 127.0.0.2...)."""
        sock = socket.create_connection((host, port), timeout=timeout,
                                        source_address=(source, 0) if source else None)
        if tls_ca:
            ctx = ssl.create_default_context(cafile=tls_ca)
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        ws = cls(sock)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET / HTTP/1.1", "Host: localhost:%d" % port, "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        if origin is not None:
            lines.append("Origin: " + origin)
        if protocols is not None:
            lines.append("Sec-WebSocket-Protocol: " + protocols)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, reason, headers, body = ws._read_http_response()
        if status != 101:
            sock.close()
            raise HandshakeRefused(status, reason, headers, body)
        got = {k.lower(): v for k, v in headers}
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if got.get("sec-websocket-accept") != want:
            raise AssertionError("bad Sec-WebSocket-Accept in %r" % headers)
        if (got.get("sec-websocket-protocol") or "").lower() != "sip":
            raise AssertionError("subprotocol sip not selected: %r" % headers)
        return ws

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionClosed("the server closed the connection")
        self.buf += data

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_http_response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        _, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:] if ":" in l]
        body = b""
        for k, v in headers:
            if k.lower() == "content-length" and v.isdigit() and int(v) > 0:
                body = self._read_exact(int(v))
        return int(status), reason, headers, body

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_text(self, text):
        self._send_frame(0x1, text.encode("utf-8"))

    def recv_text(self, timeout=SIP_TIMEOUT):
        """The next text message (answering pings); socket.timeout if none."""
        self.sock.settimeout(timeout)
        while True:
            b0, b1 = self._read_exact(2)
            n = b1 & 0x7f
            if n == 126:
                n = struct.unpack("!H", self._read_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read_exact(8))[0]
            mask = self._read_exact(4) if b1 & 0x80 else None
            payload = self._read_exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0f
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                raise ConnectionClosed("close frame %r" % payload)
            elif opcode in (0x1, 0x2):
                return payload.decode("utf-8", "replace")

    def close(self):
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


# ---- SIP as text ------------------------------------------------------------------------

class SipMessage:
    def __init__(self, text):
        self.text = text
        head, _, self.body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.first_line = lines[0]
        self.headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:] if ":" in l]
        parts = self.first_line.split(" ", 2)
        if parts[0].startswith("SIP/"):
            self.status, self.reason, self.method = int(parts[1]), parts[2] if len(parts) > 2 else "", None
        else:
            self.status, self.reason, self.method = None, None, parts[0]

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name):
        v = self.header_all(name)
        return v[0] if v else None

    @property
    def call_id(self):
        return self.header("Call-ID") or self.header("i")

    def __str__(self):
        return self.text


def wic_contact():
    """A WIC's Contact address and instance, as JsSIP makes them up."""
    return "sip:%s@%s.invalid;transport=ws" % (random_token(8), random_token(12)), random_token(8)


def register_request(impu, token=None, call_id=None, cseq=1, expires=600, to=None, via=None, authorization=None,
                     contact=None):
    """A REGISTER as JsSIP sends it over a WebSocket (`via` without branch:
    "SIP/2.0/WSS <random>.invalid" unless given; `contact` from
    wic_contact(), a new one unless given)."""
    host = random_token(12) + ".invalid"
    address, instance = contact or wic_contact()
    lines = ["REGISTER sip:%s SIP/2.0" % DOMAIN,
             "Via: %s;branch=z9hG4bK%s" % (via or "SIP/2.0/WSS " + host, random_token(12)),
             "Max-Forwards: 69",
             "To: <%s>" % (to or impu),
             "From: <%s>;tag=%s" % (to or impu, random_token()),
             "Call-ID: %s" % (call_id or random_token(20)),
             "CSeq: %d REGISTER" % cseq,
             'Contact: <%s>;+sip.ice;reg-id=1;+sip.instance="<urn:uuid:%s>";expires=%d' % (address, instance, expires),
             "Expires: %d" % expires,
             "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY",
             "Supported: path,gruu,outbound",
             "User-Agent: wwsf-integration-test"]
    if authorization is not None:
        lines.append("Authorization: " + authorization)
    elif token is not None:
        lines.append("Authorization: Bearer " + token)
    return "\r\n".join(lines + ["Content-Length: 0", "", ""])


def request(method, ruri, from_uri, to_uri, via, call_id=None, extra=(), body=""):
    lines = ["%s %s SIP/2.0" % (method, ruri), "Via: %s;branch=z9hG4bK%s" % (via, random_token(12)),
             "Max-Forwards: 70", "To: <%s>" % to_uri, "From: <%s>;tag=%s" % (from_uri, random_token()),
             "Call-ID: %s" % (call_id or random_token(20)), "CSeq: 1 %s" % method] + list(extra)
    if body:
        lines.append("Content-Type: text/plain")
    return "\r\n".join(lines + ["Content-Length: %d" % len(body.encode()), "", body])


def response_to(req, status, reason, extra=()):
    """A response to a parsed request (Via, From, To, Call-ID, CSeq copied)."""
    lines = ["SIP/2.0 %d %s" % (status, reason)]
    for k, v in req.headers:
        if k.lower() in ("via", "v", "record-route"):
            lines.append("%s: %s" % (k, v))
    to = req.header("To")
    lines += ["From: " + req.header("From"), "To: " + (to if ";tag=" in to else to + ";tag=" + random_token()),
              "Call-ID: " + req.call_id, "CSeq: " + req.header("CSeq")] + list(extra)
    return "\r\n".join(lines + ["Content-Length: 0", "", ""])


class WicClient:
    """A WIC: a WebSocket to the eP-CSCF speaking SIP."""

    def __init__(self, ws):
        self.ws = ws

    def send(self, text):
        self.ws.send_text(text)

    def receive(self, timeout=SIP_TIMEOUT):
        return SipMessage(self.ws.recv_text(timeout))

    def transaction(self, text, timeout=SIP_TIMEOUT):
        """Sends a request; returns its final response (provisional ones and
        other messages are skipped)."""
        call_id = SipMessage(text).call_id
        self.ws.send_text(text)
        return next_message(self, lambda m: final_response_of(m, call_id), timeout,
                            "no final response to:\n%s" % text)

    def close(self):
        self.ws.close()


# ---- calls between WICs (RFC 3261 dialogs, as JsSIP makes them) -----------------------

def webrtc_sdp():
    """An offer or answer as a browser makes it: ICE, DTLS, host candidates,
    audio and video; every call gets its own values."""
    sess = random.randint(10 ** 17, 10 ** 18)
    ufrag, pwd = random_token(4), random_token(24)
    fp = ":".join("%02X" % random.randint(0, 255) for _ in range(32))
    port = random.randint(40000, 60000)
    lines = ["v=0", "o=- %d 2 IN IP4 127.0.0.1" % sess, "s=-", "t=0 0", "a=group:BUNDLE 0 1",
             "a=extmap-allow-mixed", "a=msid-semantic: WMS %s" % random_token(16)]
    for mid, (kind, pts) in enumerate((("audio", "111 63 9 0 8 13 110 126"), ("video", "96 97 102 103"))):
        lines += ["m=%s %d UDP/TLS/RTP/SAVPF %s" % (kind, port, pts), "c=IN IP4 127.0.0.1",
                  "a=rtcp:9 IN IP4 0.0.0.0",
                  "a=candidate:%d 1 udp 2122260223 127.0.0.1 %d typ host generation 0 network-id 1"
                  % (random.randint(10 ** 8, 10 ** 9), port),
                  "a=ice-ufrag:" + ufrag, "a=ice-pwd:" + pwd, "a=ice-options:trickle",
                  "a=fingerprint:sha-256 " + fp, "a=setup:actpass", "a=mid:%d" % mid, "a=sendrecv",
                  "a=msid:- %s" % random_token(16), "a=rtcp-mux"]
        if kind == "audio":
            lines += ["a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1"]
        else:
            lines += ["a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack pli"]
    return "\r\n".join(lines) + "\r\n"


def route_entries(values):
    """The URIs of Record-Route or Route header values, in order."""
    out = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if part:
                out.append(part)
    return out


def next_message(client, matches, timeout, what):
    """The next message the client (WebSocket or UDP) receives for which
    matches(m) is true, others skipped; AssertionError(what) after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(what)
        m = client.receive(left)
        if matches(m):
            return m


def final_response_of(m, call_id):
    return m.status is not None and m.status >= 200 and m.call_id == call_id


def wait_for_request(client, method, timeout=SIP_TIMEOUT):
    """The next request of `method` the client receives (others skipped)."""
    return next_message(client, lambda m: m.method == method, timeout, "no %s came" % method)


def wait_for_response(client, call_id, final=True, method=None, timeout=SIP_TIMEOUT):
    """The next response of the call (final, or with final=False any but
    100), optionally to `method`; other messages skipped."""
    def matches(m):
        if m.status is None or m.call_id != call_id:
            return False
        if method and not (m.header("CSeq") or "").endswith(" " + method):
            return False
        return (final and m.status >= 200) or (not final and m.status > 100)
    return next_message(client, matches, timeout,
                        "no %sresponse came in call %s" % ("final " if final else "", call_id))


def _uri_of(value):
    """The URI inside a name-addr (<...>) or the bare value."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def _tag_of(value):
    for param in value.split(">")[-1].split(";"):
        if param.strip().startswith("tag="):
            return param.strip()[4:]
    return None


class Call:
    """One side of a dialog between WICs: builds its requests and answers
    (Via, tags, CSeq, Contact, route set)."""

    def __init__(self, client, local_uri, remote_uri):
        self.client, self.local_uri, self.remote_uri = client, local_uri, remote_uri
        self.call_id = random_token(20)
        self.local_tag = random_token()
        self.remote_tag = None
        self.cseq = 0
        self.host = random_token(12) + ".invalid"
        self.contact = "sip:%s@%s;transport=ws" % (random_token(8), self.host)
        self.remote_target = remote_uri
        self.route_set = []
        self.invite_cseq = None
        self.invite_branch = None

    @classmethod
    def answering(cls, client, local_uri, invite):
        """The callee's side of the dialog an INVITE opens."""
        c = cls(client, local_uri, _uri_of(invite.header("From")))
        c.call_id = invite.call_id
        c.remote_tag = _tag_of(invite.header("From"))
        c.remote_target = _uri_of(invite.header("Contact"))
        c.route_set = route_entries(invite.header_all("Record-Route"))
        c.cseq = 1000
        return c

    def _via(self, branch):
        return "Via: SIP/2.0/WSS %s;branch=%s" % (self.host, branch)

    def _request(self, method, ruri, cseq, branch, routes, sdp=None, to_tag=None):
        to = "<%s>" % self.remote_uri + (";tag=" + to_tag if to_tag else "")
        lines = ["%s %s SIP/2.0" % (method, ruri), self._via(branch), "Max-Forwards: 69",
                 "To: " + to, "From: <%s>;tag=%s" % (self.local_uri, self.local_tag),
                 "Call-ID: " + self.call_id, "CSeq: %d %s" % (cseq, method)]
        lines += ["Route: " + r for r in routes]
        if method in ("INVITE",):
            lines.append("Contact: <%s;ob>" % self.contact)
            lines.append("Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY")
        body = sdp or ""
        if body:
            lines.append("Content-Type: application/sdp")
        return "\r\n".join(lines + ["Content-Length: %d" % len(body.encode()), "", body])

    def invite(self, sdp):
        self.cseq += 1
        self.invite_cseq = self.cseq
        self.invite_branch = "z9hG4bK" + random_token(12)
        return self._request("INVITE", self.remote_uri, self.cseq, self.invite_branch, [], sdp)

    def cancel(self):
        return self._request("CANCEL", self.remote_uri, self.invite_cseq, self.invite_branch, [])

    def ack_failure(self, response):
        """The ACK of a non-2xx final answer to the INVITE (same branch, hop by hop)."""
        return self._request("ACK", self.remote_uri, self.invite_cseq, self.invite_branch, [],
                             to_tag=_tag_of(response.header("To")))

    def established(self, ok):
        """The caller's dialog from the 200 OK to its INVITE."""
        self.remote_tag = _tag_of(ok.header("To"))
        self.remote_target = _uri_of(ok.header("Contact"))
        self.route_set = list(reversed(route_entries(ok.header_all("Record-Route"))))

    def request(self, method, sdp=None):
        """An in-dialog request (ACK answers the last INVITE sent)."""
        if method == "ACK":
            cseq = self.invite_cseq
        else:
            self.cseq += 1
            cseq = self.cseq
        if method == "INVITE":
            self.invite_cseq = cseq
        return self._request(method, self.remote_target, cseq, "z9hG4bK" + random_token(12), self.route_set, sdp,
                             to_tag=self.remote_tag)

    def ack(self):
        return self.request("ACK")

    def respond(self, req, status, reason, sdp=None):
        """An answer to a request of the dialog (Via, Record-Route, From,
        To with this side's tag, Call-ID, CSeq copied; Contact on INVITE)."""
        lines = ["SIP/2.0 %d %s" % (status, reason)]
        lines += ["Via: " + v for v in req.header_all("Via")]
        if req.method == "INVITE" and status > 100:
            lines += ["Record-Route: " + r for r in req.header_all("Record-Route")]
        to = req.header("To")
        if _tag_of(to) is None:
            to += ";tag=" + self.local_tag
        lines += ["From: " + req.header("From"), "To: " + to, "Call-ID: " + req.call_id,
                  "CSeq: " + req.header("CSeq")]
        if req.method == "INVITE" and status < 300:
            lines.append("Contact: <%s>" % self.contact)
        body = sdp or ""
        if body:
            lines.append("Content-Type: application/sdp")
        return "\r\n".join(lines + ["Content-Length: %d" % len(body.encode()), "", body])


class UdpSip:
    """A SIP endpoint on a UDP socket of its own (a peer in the core)."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.via = "SIP/2.0/UDP %s:%d;rport" % (host, self.port)

    def send(self, text, port):
        self.sock.sendto(text.encode(), ("127.0.0.1", port))

    def receive(self, timeout=SIP_TIMEOUT):
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65536)
        return SipMessage(data.decode("utf-8", "replace"))

    def transaction(self, text, port, timeout=SIP_TIMEOUT):
        call_id = SipMessage(text).call_id
        self.send(text, port)
        return next_message(self, lambda m: final_response_of(m, call_id), timeout,
                            "no final response on UDP to:\n%s" % text)

    def close(self):
        self.sock.close()


# ---- Kamailio -----------------------------------------------------------------------

class Kamailio:
    """One Kamailio in `workdir`. `udp_ports`/`tcp_ports` are the SIP sockets
    to wait for at start."""

    def __init__(self, name, workdir, cfg, defines, env=None, udp_ports=(), tcp_ports=()):
        self.name, self.dir, self.cfg = name, workdir, cfg
        self.defines = list(defines)
        self.env = dict(os.environ, **(env or {}))
        self.udp_ports, self.tcp_ports = list(udp_ports), list(tcp_ports)
        self.run_dir = os.path.join(workdir, "run")
        self.log_path = os.path.join(workdir, name + ".log")
        self.ctl_socket = "unixs:" + os.path.join(self.run_dir, "kamailio_ctl")
        self.proc = None
        os.makedirs(self.run_dir, exist_ok=True)

    def command(self):
        cmd = [KAMAILIO, "-f", self.cfg, "-DD", "-E", "-m", "64", "-M", "16", "-Y", self.run_dir,
               "-w", self.run_dir]
        for d in self.defines:
            cmd += ["-A", d]
        return cmd

    def start(self, timeout=START_TIMEOUT, wait=True):
        """Starts Kamailio and (with wait) waits until it answers."""
        log = open(self.log_path, "ab")
        try:
            # A session of its own: stop() can end the whole group it started.
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=self.env, cwd=self.run_dir, start_new_session=True)
        finally:
            log.close()
        if wait:
            wait_until(self._ready, timeout, "%s to answer (log: %s)" % (self.name, self.log_path), interval=0.1)
        return self

    def wait_exit(self, timeout=START_TIMEOUT):
        """The exit status of a Kamailio expected to stop by itself."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s still running after %ds" % (self.name, timeout))

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited at start (%s):\n%s" % (self.name, t.describe_status(self.proc.returncode),
                                                                 self.log_text()[-6000:]))
        if "uptime" not in self.kamcmd("core.uptime", check=False):
            return False
        for port in self.tcp_ports:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
        for port in self.udp_ports:
            probe = UdpSip()
            try:
                probe.send(request("OPTIONS", "sip:127.0.0.1:%d" % port, "sip:probe@test.invalid",
                                   "sip:127.0.0.1:%d" % port, probe.via), port)
                probe.receive(0.5)
            except (socket.timeout, OSError):
                return False
            finally:
                probe.close()
        return True

    def kamcmd(self, *args, check=True):
        p = subprocess.run([KAMCMD, "-s", self.ctl_socket] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, encoding="utf-8", errors="replace", timeout=30)
        if check and (p.returncode != 0 or p.stdout.startswith("error")):
            raise AssertionError("kamcmd %s: %s" % (" ".join(args), p.stdout))
        return p.stdout

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def mark(self, text):
        with open(self.log_path, "a") as f:
            f.write("==== %s ====\n" % text)

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_since(self, mark):
        text = self.log_text()
        i = text.rfind("==== %s ====" % mark)
        return text[i:] if i >= 0 else text

    def stop(self, timeout=STOP_TIMEOUT):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        # Children that outlived the main process (they should not).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.proc.returncode


class KamailioTestCase(unittest.TestCase):
    """Servers shared by the tests of a class (setUpClass starts them into
    cls.servers); each test marks their logs, and a failing test prints what
    they logged since its mark. The temporary directory is kept when a test
    failed (or with WWSF_KEEP_TMP=1)."""

    servers = []
    failed = False

    @classmethod
    def make_tmp(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kamailio-it-")
        cls.servers = []
        cls.failed = False
        return cls.tmp

    @classmethod
    def stop_servers(cls):
        for s in cls.servers:
            s.stop()
        if cls.failed or os.environ.get("WWSF_KEEP_TMP"):
            sys.stderr.write("kept %s (Kamailio logs: %s)\n" % (cls.tmp, ", ".join(s.log_path for s in cls.servers)))
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        mark = "test %s" % self.id()
        for s in self.servers:
            s.mark(mark)
        try:
            return super().run(result)
        finally:
            if len(result.failures) + len(result.errors) > before:
                type(self).failed = True
                for s in self.servers:
                    sys.stderr.write("\n==== %s log since %s ====\n%s==== end of %s log ====\n"
                                     % (s.name, self.id(), s.log_since(mark)[-20000:], s.name))


def main():
    missing = missing_tools()
    if missing:
        sys.stderr.write("skipped: missing %s\n" % ", ".join(missing))
        sys.exit(77)
    if not os.path.exists(os.path.join(WICTOKEN_LUA_DIR, "wictoken.so")):
        sys.stderr.write("wictoken.so not found in %s (set WICTOKEN_LUA_DIR)\n" % WICTOKEN_LUA_DIR)
        sys.exit(1)
    unittest.main(verbosity=2)
