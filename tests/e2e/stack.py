#!/usr/bin/env python3
"""The whole WWSF stack on loopback, for the end-to-end tests and scripts/demo.

    python3 tests/e2e/stack.py serve DIR [options]

starts, in DIR (created if missing):

  slapd    the demo directory of tests/integration/ldap/seed.ldif (alice with
           her own IMPU, bob in the staff group), through slapd_fixture.Slapd
  wwsfd    HTTPS on --wwsf-port, serving --web-root (the built WIC), [epcscf]
           uri = wss://localhost:WSS_PORT/, LDAP logins (pool customers; staff
           members lease from staff), anonymous visitors admitted by the
           personal-information hook into acme-visitors
  S-CSCF   pool-config/kamailio/scscf.cfg (UDP)
  eP-CSCF  pool-config/kamailio/epcscf.cfg with epcscf.lua: WSS on --wss-port
           with the same certificate as wwsfd; issuer = wwsfd's public URL,
           JWKS = a copy of wwsfd's /.well-known/jwks.json (fetched again every
           --jwks-refresh seconds, so `wwsfctl keys` + SIGHUP reach it),
           audience and realm = wwsfd's [tokens] audience, allowed Origin =
           wwsfd's origin

then writes DIR/stack.json (what a client needs: URLs, ports, kamcmd sockets,
the store, the log files), prints one line "stack: ready DIR/stack.json" and
runs until SIGTERM or SIGINT, when it stops the servers in reverse order. It
exits 1 if a server died on its own meanwhile. Unless --pool-config is given,
the pools are written into DIR/pools.ini with --lease-ttl: staff (desk-1..3),
customers (a range) and acme-visitors (a wildcard), the names of the shipped
pool-config/operator.ini and portal-acme.ini.

Binaries: $WWSFD, $WWSFCTL and $WICTOKEN_LUA_DIR (meson sets them), else
under --build-dir (default build/). The Kamailio configurations come from
$KAMAILIO_CONFIG_DIR, else pool-config/kamailio.
"""

import argparse
import ctypes
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request

# The fixtures it imports stay free of __pycache__ folders in the source tree.
sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
INTEGRATION = os.path.join(SOURCE_ROOT, "tests", "integration")

AUDIENCE = "ims.example.com"
START_TIMEOUT = 30


def _set_binary_defaults(build_dir):
    """The fixtures read their binaries from the environment at import."""
    os.environ.setdefault("WWSF_SOURCE_ROOT", SOURCE_ROOT)
    os.environ.setdefault("WWSFD", os.path.join(build_dir, "src", "wwsfd", "wwsfd"))
    os.environ.setdefault("WWSFCTL", os.path.join(build_dir, "src", "wwsfctl", "wwsfctl"))
    os.environ.setdefault("WICTOKEN_LUA_DIR", os.path.join(build_dir, "src", "wictoken-lua"))
    os.environ.setdefault("KAMAILIO_CONFIG_DIR", os.path.join(SOURCE_ROOT, "pool-config", "kamailio"))


def missing_tools():
    """What this machine lacks for the stack (Debian package names), or []."""
    sys.path.insert(0, INTEGRATION)
    import kamailio_fixture
    import slapd_fixture
    missing = kamailio_fixture.missing_tools()
    if slapd_fixture.tools_missing():
        missing.append("slapd, ldap-utils")
    return missing


def _die_with_parent():
    """SIGTERM when the process that started this one dies (a test runner
    killed by its timeout): the servers are stopped all the same."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def generated_pools(lease_ttl, quarantine):
    """Pools with the shipped files' names, on one subscription, with the
    lease TTL of the run."""
    def pool(name, kind, lines):
        return ["", "[pool %s]" % name, "subscription = operator-web" if name != "acme-visitors" else
                "subscription = acme-web", "kind = %s" % kind, "lease_ttl = %s" % lease_ttl,
                "quarantine = %s" % quarantine] + lines
    return (["; Written by tests/e2e/stack.py.",
             "[subscription operator-web]", "owner = none", "domain = %s" % AUDIENCE, "impi_mode = per-entry",
             "", "[subscription acme-web]", "owner = acme", "domain = %s" % AUDIENCE, "impi_mode = shared"]
            + pool("staff", "authenticated",
                   ["max_per_holder = 2"] + ["entry = sip:desk-%d@%s desk-%d@%s" % (i, AUDIENCE, i, AUDIENCE)
                                             for i in (1, 2, 3)])
            + pool("customers", "authenticated",
                   ["impu_range = sip:+1555010{0000..9999}@%s" % AUDIENCE,
                    "impi_range = +1555010{0000..9999}@%s" % AUDIENCE])
            + pool("acme-visitors", "anonymous",
                   ["impu_wildcard = sip:web-!.*!@%s" % AUDIENCE, "size = 100000", "token_length = 12",
                    "impi = acme-visitors@%s" % AUDIENCE])
            + [""])


def ini(sections):
    lines = ["; Written by tests/e2e/stack.py; every key is explained in pool-config/wwsfd.ini."]
    for name, kv in sections.items():
        lines.append("[%s]" % name)
        lines += ["%s = %s" % (k, v) for k, v in kv.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


class Stack:
    def __init__(self, args):
        sys.path.insert(0, INTEGRATION)
        import kamailio_fixture
        import slapd_fixture
        import wwsf_testlib
        self.kf, self.sf, self.tl = kamailio_fixture, slapd_fixture, wwsf_testlib
        self.args = args
        self.dir = os.path.abspath(args.dir)
        self.servers = []           # (name, stop function, is-running function), in start order
        self.wwsfd = None
        self.jwks_body = None
        os.makedirs(self.dir, exist_ok=True)

    def log(self, text):
        sys.stderr.write("stack: %s\n" % text)
        sys.stderr.flush()

    # -- pieces --

    def tls(self):
        a = self.args
        if a.tls_cert:
            return os.path.abspath(a.tls_cert), os.path.abspath(a.tls_key)
        cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        if not os.path.exists(cert):
            self.kf.run_openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                                 "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
                                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            os.chmod(key, 0o600)
        return cert, key

    def keys_dir(self):
        d = os.path.abspath(self.args.keys_dir or os.path.join(self.dir, "keys"))
        os.makedirs(d, mode=0o700, exist_ok=True)
        r = self.tl.run_wwsfctl(["--json", "keys", "list", "--keys-dir", d])
        if r.rc != 0 or not any(k.get("state") == "active" for k in (r.json() if r.out.strip() else [])):
            r = self.tl.run_wwsfctl(["keys", "generate", "--keys-dir", d, "--json"])
            if r.rc != 0:
                raise RuntimeError(str(r))
            kid = r.json()["kid"]
            r = self.tl.run_wwsfctl(["keys", "activate", kid, "--keys-dir", d])
            if r.rc != 0:
                raise RuntimeError(str(r))
            self.log("signing key %s made and activated in %s" % (kid, d))
        return d

    def start_slapd(self):
        ldap = self.sf.Slapd(os.path.join(self.dir, "ldap"))
        ldap.start()
        self.servers.append(("slapd", ldap.stop, lambda: ldap.proc is not None and ldap.proc.poll() is None))
        return ldap

    def start_wwsfd(self, ldap, cert, key, keys_dir, wss_port):
        a = self.args
        if a.pool_config:
            pool_config = " ".join(os.path.abspath(p) for p in a.pool_config)
        else:
            pool_config = os.path.join(self.dir, "pools.ini")
            with open(pool_config, "w") as f:
                f.write("\n".join(generated_pools(a.lease_ttl, a.quarantine or a.lease_ttl)))
        self.public_url = "https://localhost:%d" % self.wwsf_port
        sections = {
            "server": {"listen": "127.0.0.1:%d" % self.wwsf_port, "tls_cert": cert, "tls_key": key,
                       "web_root": os.path.abspath(a.web_root), "public_url": self.public_url, "threads": "2",
                       "log_level": "info"},
            "store": {"db": os.path.abspath(a.db or os.path.join(self.dir, "wwsf.db")), "pool_config": pool_config,
                      "reclaim_interval": "2s"},
            "tokens": {"keys_dir": keys_dir, "audience": AUDIENCE, "token_ttl": a.token_ttl},
            "epcscf": {"uri": "wss://localhost:%d/" % wss_port},
            "session": {"ttl": "8h"},
            "anonymous": {"hook": os.path.join(SOURCE_ROOT, "pool-config", "hooks", "personal-info"),
                          "hook_helpers": "2", "pool": "acme-visitors"},
            "ldap": {"enabled": "yes", "uris": ldap.uri, "bind_dn": ldap.bind_dn,
                     "bind_password_file": ldap.password_file, "base_dn": ldap.base_dn, "pool": "customers",
                     "group_pool": "cn=staff,ou=groups,dc=example,dc=com staff"},
        }
        if a.no_throttle:
            sections["throttle"] = {"login_per_ip": "0", "login_per_user": "0", "anonymous_per_ip": "0",
                                    "refresh_per_session": "0"}
        self.db = sections["store"]["db"]
        self.wwsfd_config = os.path.join(self.dir, "wwsfd.ini")
        with open(self.wwsfd_config, "w") as f:
            f.write(ini(sections))
        self.wwsfd_log = os.path.join(self.dir, "wwsfd.log")
        log = open(self.wwsfd_log, "ab")
        try:
            proc = subprocess.Popen([os.environ["WWSFD"], "--config", self.wwsfd_config], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, cwd=self.dir, start_new_session=True)
        finally:
            log.close()
        self.wwsfd = proc

        def stop():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.servers.append(("wwsfd", stop, lambda: proc.poll() is None))
        self.ssl_context = ssl.create_default_context(cafile=cert)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError("wwsfd exited at start (%s); its log, %s:\n%s"
                                   % (self.tl.describe_status(proc.returncode), self.wwsfd_log,
                                      open(self.wwsfd_log, errors="replace").read()[-4000:]))
            try:
                self.fetch("/healthz")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("wwsfd did not answer within %ds (log: %s)" % (START_TIMEOUT, self.wwsfd_log))
                time.sleep(0.05)

    def fetch(self, path):
        with urllib.request.urlopen("https://127.0.0.1:%d%s" % (self.wwsf_port, path), timeout=10,
                                    context=self.ssl_context) as r:
            return r.read()

    def refresh_jwks(self):
        """Copies wwsfd's published keys for the eP-CSCF (atomically, and
        only when they changed). True when the file was written."""
        body = self.fetch("/.well-known/jwks.json")
        if not json.loads(body).get("keys"):
            raise RuntimeError("wwsfd publishes no keys")
        if body == self.jwks_body:
            return False
        tmp = self.jwks_path + ".new"
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, self.jwks_path)
        self.jwks_body = body
        return True

    def start_kamailio(self, name, cfg, defines, env=None, udp_ports=(), tcp_ports=()):
        k = self.kf.Kamailio(name, os.path.join(self.dir, name), os.path.join(self.kf.CONFIG_DIR, cfg), defines,
                             env=env, udp_ports=udp_ports, tcp_ports=tcp_ports)
        self.servers.append((name, k.stop, k.running))
        k.start()
        return k

    # -- the whole --

    def start(self):
        a = self.args
        cert, key = self.tls()
        keys_dir = self.keys_dir()
        ldap = self.start_slapd()
        self.log("slapd on %s" % ldap.uri)
        self.core_port, self.scscf_port = self.kf.free_ports(2)
        self.wwsf_port = a.wwsf_port or self.kf.free_port()
        self.wss_port = a.wss_port or self.kf.free_port()
        self.start_wwsfd(ldap, cert, key, keys_dir, self.wss_port)
        self.log("wwsfd on %s" % self.public_url)
        self.jwks_path = os.path.join(self.dir, "jwks.json")
        self.refresh_jwks()
        scscf = self.start_kamailio(
            "scscf", "scscf.cfg",
            ["SIP_PORT=%d" % self.scscf_port, "EPCSCF_IP=127.0.0.1", "EPCSCF_PORT=%d" % self.core_port,
             'IMS_REALM="%s"' % AUDIENCE, "MIN_EXPIRES=%d" % a.min_expires],
            udp_ports=[self.scscf_port])
        self.log("S-CSCF on udp:127.0.0.1:%d" % self.scscf_port)
        epcscf = self.start_kamailio(
            "epcscf", "epcscf.cfg",
            ["WSS_PORT=%d" % self.wss_port, "CORE_PORT=%d" % self.core_port, 'TLS_CERT="%s"' % cert,
             'TLS_KEY="%s"' % key, 'LUA_SCRIPT="%s"' % os.path.join(self.kf.CONFIG_DIR, "epcscf.lua")]
            + (["REGISTER_RATE=%d" % a.register_rate] if a.register_rate else [])
            + (["RATE_UNIT=%d" % a.rate_unit] if a.rate_unit else []),
            env={"LUA_CPATH": os.path.join(self.kf.WICTOKEN_LUA_DIR, "?.so") + ";;",
                 "EPCSCF_SCSCF_URI": "sip:127.0.0.1:%d" % self.scscf_port,
                 "EPCSCF_JWKS_FILE": self.jwks_path,
                 "EPCSCF_JWKS_RELOAD": str(a.jwks_refresh),
                 "EPCSCF_WWSF_ISSUER": self.public_url,
                 "EPCSCF_TOKEN_AUDIENCE": AUDIENCE,
                 "EPCSCF_IMS_REALM": AUDIENCE,
                 "EPCSCF_TOKEN_LEEWAY": str(a.token_leeway),
                 "EPCSCF_ALLOWED_ORIGINS": self.public_url},
            udp_ports=[self.core_port], tcp_ports=[self.wss_port])
        self.log("eP-CSCF on wss://localhost:%d/" % self.wss_port)
        self.info = {
            "dir": self.dir,
            "wwsf_url": self.public_url + "/",
            "origin": self.public_url,
            "epcscf_uri": "wss://localhost:%d/" % self.wss_port,
            "wss_port": self.wss_port,
            "core_port": self.core_port,
            "scscf_port": self.scscf_port,
            "audience": AUDIENCE,
            "ldap_uri": ldap.uri,
            "db": self.db,
            "wwsfctl": os.path.abspath(os.environ["WWSFCTL"]),
            "kamcmd": self.kf.KAMCMD,
            "scscf_ctl": scscf.ctl_socket,
            "epcscf_ctl": epcscf.ctl_socket,
            "cert": cert,
            "key": key,
            "token_ttl": a.token_ttl,
            "lease_ttl": a.lease_ttl,
            "min_expires": a.min_expires,
            "token_leeway": a.token_leeway,
            "register_rate": a.register_rate,
            "rate_unit": a.rate_unit,
            "logs": {"wwsfd": self.wwsfd_log, "slapd": ldap.log_path, "scscf": scscf.log_path,
                     "epcscf": epcscf.log_path},
        }
        path = os.path.join(self.dir, "stack.json")
        with open(path + ".new", "w") as f:
            json.dump(self.info, f, indent=2)
        os.replace(path + ".new", path)
        return path

    def stop(self):
        for name, stop, _ in reversed(self.servers):
            try:
                stop()
            except Exception as e:      # stop the others all the same
                self.log("stopping %s: %s" % (name, e))
        self.servers = []

    def dead(self):
        return [name for name, _, running in self.servers if not running()]


def serve(argv):
    ap = argparse.ArgumentParser(prog="stack.py serve", description="Run the WWSF stack in DIR until SIGTERM/SIGINT.")
    ap.add_argument("dir")
    ap.add_argument("--build-dir", default=os.path.join(SOURCE_ROOT, "build"),
                    help="where wwsfd, wwsfctl and wictoken.so are, unless $WWSFD, $WWSFCTL, $WICTOKEN_LUA_DIR")
    ap.add_argument("--web-root", default=os.environ.get("WWSF_WEB_ROOT") or os.path.join(SOURCE_ROOT, "web", "dist"),
                    help="the WIC's files (default $WWSF_WEB_ROOT, else web/dist)")
    ap.add_argument("--wwsf-port", type=int, default=0, help="wwsfd's HTTPS port (default: a free one)")
    ap.add_argument("--wss-port", type=int, default=0, help="the eP-CSCF's WSS port (default: a free one)")
    ap.add_argument("--tls-cert", help="PEM certificate for wwsfd and the eP-CSCF (default: made in DIR)")
    ap.add_argument("--tls-key")
    ap.add_argument("--keys-dir", help="wwsfd's signing keys (default DIR/keys; a key is made if none is active)")
    ap.add_argument("--db", help="the lease store (default DIR/wwsf.db)")
    ap.add_argument("--pool-config", nargs="+", help="pool files (default: generated, with --lease-ttl)")
    ap.add_argument("--token-ttl", default="300s", help="[tokens] token_ttl (default 300s)")
    ap.add_argument("--lease-ttl", default="10m", help="lease_ttl of the generated pools (default 10m)")
    ap.add_argument("--quarantine", help="quarantine of the generated pools (default: the lease TTL)")
    ap.add_argument("--min-expires", type=int, default=60, help="the S-CSCF's shortest registration (default 60 s)")
    ap.add_argument("--token-leeway", type=int, default=60,
                    help="the eP-CSCF's clock leeway on token times, seconds (default 60)")
    ap.add_argument("--jwks-refresh", type=int, default=30,
                    help="seconds between copies of wwsfd's JWKS for the eP-CSCF, and its re-reads (default 30)")
    ap.add_argument("--register-rate", type=int, default=0,
                    help="the eP-CSCF's REGISTER_RATE, REGISTERs per address per RATE_UNIT (default: epcscf.cfg's)")
    ap.add_argument("--rate-unit", type=int, default=0,
                    help="the eP-CSCF's RATE_UNIT in seconds (default: epcscf.cfg's, 2)")
    ap.add_argument("--no-throttle", action="store_true", help="no rate limits in wwsfd (tests: one client address)")
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    _set_binary_defaults(os.path.abspath(args.build_dir))
    _die_with_parent()

    stopping = []
    signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *a: stopping.append(1))
    missing = missing_tools()
    if missing:
        sys.stderr.write("stack: missing %s\n" % ", ".join(missing))
        return 77
    for what in ("WWSFD", "WWSFCTL"):
        if not os.access(os.environ[what], os.X_OK):
            sys.stderr.write("stack: %s not found at %s (build first, or set %s)\n" % (what.lower(), os.environ[what],
                                                                                        what))
            return 2
    if not os.path.isfile(os.path.join(args.web_root, "index.html")):
        sys.stderr.write("stack: no index.html in the web root %s (scripts/build-web makes the WIC)\n" % args.web_root)
        return 2
    stack = Stack(args)
    status = 0
    try:
        path = stack.start()
        print("stack: ready %s" % path, flush=True)
        next_jwks = time.monotonic() + args.jwks_refresh
        reported = set()
        while not stopping:
            for name in stack.dead():
                if name not in reported:
                    stack.log("%s exited on its own; see its log in %s" % (name, stack.dir))
                    reported.add(name)
                    status = 1
            if time.monotonic() >= next_jwks:
                next_jwks = time.monotonic() + args.jwks_refresh
                try:
                    if stack.refresh_jwks():
                        stack.log("wwsfd's keys changed: JWKS copied for the eP-CSCF")
                except (OSError, ValueError, RuntimeError) as e:
                    stack.log("JWKS not refreshed: %s" % e)
            time.sleep(0.2)     # wakes for the signals too
    except Exception as e:
        stack.log("start failed: %s" % e)
        status = 1
    finally:
        stack.stop()
    return status


def main(argv):
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    if argv[:1] == ["missing"]:
        # Used by the test runner: prints what is missing, exit 0 when nothing is.
        m = missing_tools()
        if m:
            print(", ".join(m))
        return 1 if m else 0
    sys.stderr.write("usage: stack.py serve DIR [options]   (--help for them)\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
