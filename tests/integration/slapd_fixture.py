#!/usr/bin/env python3
"""A real OpenLDAP slapd for the tests and the demo (Python 3 standard library).

Slapd runs from a plain slapd.conf (back_mdb) in a directory of its own, on a
free loopback port, as the current user, seeded with slapadd from
ldap/seed.ldif (users alice, bob, carol, two "dup" entries, the service
account cn=wwsf) and ldap/wwsf.schema (imsPublicIdentity, imsPrivateIdentity).
Passwords are stored hashed ({SSHA}, made with slappasswd). Group membership
is memberOf on each user, kept by the memberof overlay.

From Python:

    from slapd_fixture import Slapd, tools_missing
    if tools_missing():                 # slapd, slapadd, slappasswd, ldapsearch
        sys.exit(77)                    # skipped, under meson
    with Slapd() as ldap:               # a temporary directory, removed after
        ldap.uri, ldap.base_dn, ldap.bind_dn, ldap.password_file
        ldap.freeze(); ldap.thaw()      # SIGSTOP / SIGCONT
        ldap.stop(); ldap.start()       # same port, same data
        print(ldap.log())               # slapd's own log (-d stats)

From a shell (scripts/demo):

    python3 tests/integration/slapd_fixture.py serve DIR [--port N] [--tls]

prints the URI on one line, writes DIR/slapd.env (LDAP_URI, LDAP_BASE_DN,
LDAP_PEOPLE_DN, LDAP_BIND_DN, LDAP_BIND_PASSWORD_FILE, and with --tls
LDAP_LDAPS_URI and LDAP_CA_FILE; for `.`) and runs until SIGTERM or SIGINT.
DIR keeps the data: serving it again reuses it (on a new free port unless
--port is given).
"""

import atexit
import ctypes
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LDAP_DIR = os.path.join(HERE, "ldap")
SEED_LDIF = os.path.join(LDAP_DIR, "seed.ldif")
WWSF_SCHEMA = os.path.join(LDAP_DIR, "wwsf.schema")

BASE_DN = "dc=example,dc=com"
PEOPLE_DN = "ou=people," + BASE_DN
BIND_DN = "cn=wwsf," + BASE_DN
BIND_PASSWORD = "wwsf-service"
# The rootdn, for tests that change entries (Slapd.modify()).
ADMIN_DN = "cn=admin," + BASE_DN
ADMIN_PASSWORD = "admin-secret"

# The seeded users and their passwords (see ldap/seed.ldif).
USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret", "dup": "dup-secret"}

# Debian keeps the server tools in /usr/sbin, which is not on every user's PATH.
_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
SCHEMA_DIRS = ["/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema"]
MODULE_DIRS = ["/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap", "/usr/local/libexec/openldap"]

# How long slapd may take to answer after it starts (a loaded CI machine).
START_TIMEOUT = 30


def _which(name):
    return shutil.which(name, path=_PATH)


def tools_missing():
    """The programs this fixture needs that are not installed (Debian
    packages slapd and ldap-utils), as a list; empty when all are there."""
    missing = [t for t in ("slapd", "slapadd", "slappasswd", "ldapsearch", "ldapmodify") if not _which(t)]
    if not missing and not _schema_dir():
        missing.append("core.schema (slapd)")
    return missing


def _schema_dir():
    for d in SCHEMA_DIRS:
        if os.path.exists(os.path.join(d, "core.schema")):
            return d
    return None


def _module_dir():
    for d in MODULE_DIRS:
        if os.path.exists(os.path.join(d, "back_mdb.la")) or os.path.exists(os.path.join(d, "back_mdb.so")):
            return d
    return None


def tls_missing():
    """Whether the TLS option cannot work here (no openssl to make certificates)."""
    return _which("openssl") is None


def make_ca(d, server=False):
    """A CA of its own in d (ca.pem, ca.key) and, with server, a certificate
    for 127.0.0.1 and localhost signed by it (server.pem, server.key), valid
    for a few days. Returns the CA certificate's path."""
    os.makedirs(d, exist_ok=True)
    openssl = _which("openssl")

    def run(*args):
        p = subprocess.run([openssl] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           encoding="utf-8", errors="replace", cwd=d)
        if p.returncode != 0:
            raise SlapdError("openssl %s failed:\n%s" % (args[0], p.stdout))

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "7", "-subj", "/CN=WWSF test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    if server:
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "7", "-extfile", "server.ext")
    return os.path.join(d, "ca.pem")


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlapdError(Exception):
    pass


# Every slapd this process started and has not stopped: stopped at exit, so a
# test that dies half-way leaves no server behind.
_running = set()


@atexit.register
def _stop_all():
    for s in list(_running):
        s.stop()


def _die_with_parent():
    """In the child before exec: SIGKILL when the process that started it
    dies, even by SIGKILL (a test killed by its timeout). Linux only."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Slapd:
    """One slapd. workdir: where its configuration, data and log go (created
    if missing, kept); None: a temporary directory removed by cleanup().
    anonymous_read: let anonymous clients search (for configurations without
    a service account); by default only cn=wwsf and the rootdn may. tls:
    a certificate for 127.0.0.1 from a CA of its own (made with openssl;
    see tls_missing()), StartTLS on uri and ldaps:// on ldaps_uri; ca_file
    is the CA's certificate."""

    def __init__(self, workdir=None, port=None, anonymous_read=False, seed=SEED_LDIF, tls=False):
        missing = tools_missing()
        if missing:
            raise SlapdError("not installed: %s (Debian packages slapd, ldap-utils)" % ", ".join(missing))
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="wwsf-slapd-")
            workdir = self._tmp.name
        self.dir = os.path.abspath(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.tls = tls
        if tls and tls_missing():
            raise SlapdError("tls=True needs openssl")
        self.ldaps_port = free_port() if tls else None
        self.tls_dir = os.path.join(self.dir, "tls")
        self.ca_file = os.path.join(self.tls_dir, "ca.pem") if tls else None
        self.anonymous_read = anonymous_read
        self.seed = seed
        self.base_dn = BASE_DN
        self.people_dn = PEOPLE_DN
        self.bind_dn = BIND_DN
        self.bind_password = BIND_PASSWORD
        self.admin_dn = ADMIN_DN
        self.admin_password = ADMIN_PASSWORD
        self.users = dict(USERS)
        self.conf_path = os.path.join(self.dir, "slapd.conf")
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "slapd.log")
        self.password_file = os.path.join(self.dir, "bind.password")
        self.proc = None
        self.frozen = False
        self._hashes = {}

    @property
    def uri(self):
        return "ldap://127.0.0.1:%d/" % self.port

    @property
    def ldaps_uri(self):
        return "ldaps://127.0.0.1:%d/" % self.ldaps_port if self.tls else None

    # ---- setup ----------------------------------------------------------

    def _hash(self, password):
        if password not in self._hashes:
            out = subprocess.run([_which("slappasswd"), "-h", "{SSHA}", "-s", password], check=True,
                                 stdout=subprocess.PIPE, encoding="utf-8").stdout.strip()
            if not out.startswith("{SSHA}"):
                raise SlapdError("slappasswd gave %r" % out)
            self._hashes[password] = out
        return self._hashes[password]

    def _write_conf(self):
        schema = _schema_dir()
        modules = _module_dir()
        lines = ["# Written by slapd_fixture.py for the WWSF tests."]
        lines += ["include %s/%s.schema" % (schema, s) for s in ("core", "cosine", "inetorgperson")]
        lines += ["include %s" % WWSF_SCHEMA,
                  "pidfile %s" % os.path.join(self.dir, "slapd.pid"),
                  "argsfile %s" % os.path.join(self.dir, "slapd.args")]
        if modules:     # else built in
            lines += ["modulepath %s" % modules, "moduleload back_mdb"]
            if any(os.path.exists(os.path.join(modules, "memberof" + e)) for e in (".la", ".so")):
                lines.append("moduleload memberof")
        if self.tls:
            lines += ["TLSCACertificateFile %s" % self.ca_file,
                      "TLSCertificateFile %s" % os.path.join(self.tls_dir, "server.pem"),
                      "TLSCertificateKeyFile %s" % os.path.join(self.tls_dir, "server.key")]
        acl_anonymous = "  by anonymous read\n" if self.anonymous_read else ""
        lines += [
            "",
            "database mdb",
            "maxsize 67108864",
            'suffix "%s"' % BASE_DN,
            'rootdn "%s"' % ADMIN_DN,
            "rootpw %s" % self._hash(ADMIN_PASSWORD),
            "directory %s" % self.data_dir,
            "index objectClass eq",
            "index uid eq",
            "overlay memberof",
            "",
            "# Users bind with their passwords; nobody reads them.",
            "access to attrs=userPassword",
            "  by anonymous auth",
            "  by * none",
            "# The service account searches; users see their own entry.",
            "access to *",
            '  by dn.exact="%s" read' % BIND_DN,
            "  by self read",
            acl_anonymous + "  by * none",
            "",
        ]
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines))

    def _hashed_seed(self):
        """The seed LDIF with every userPassword replaced by its {SSHA} hash."""
        out = []
        with open(self.seed) as f:
            for line in f:
                if line.startswith("userPassword:") and not line.startswith("userPassword::"):
                    line = "userPassword: %s\n" % self._hash(line.split(":", 1)[1].strip())
                out.append(line)
        return "".join(out)

    def _seed(self):
        os.makedirs(self.data_dir, exist_ok=True)
        ldif = os.path.join(self.dir, "seed.ldif")
        with open(ldif, "w") as f:
            f.write(self._hashed_seed())
        p = subprocess.run([_which("slapadd"), "-q", "-f", self.conf_path, "-l", ldif], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, encoding="utf-8", errors="replace")
        if p.returncode != 0:
            raise SlapdError("slapadd failed (exit %d):\n%s" % (p.returncode, p.stdout))

    def _write_password_file(self):
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(BIND_PASSWORD + "\n")

    # ---- life cycle -----------------------------------------------------

    def start(self):
        """Starts slapd (seeding the data on first start) and waits until it
        answers a search. Raises SlapdError with slapd's log if it does not."""
        if self.proc is not None:
            return self
        self._write_conf()
        if not os.path.exists(os.path.join(self.data_dir, "data.mdb")):
            self._seed()
        self._write_password_file()
        if self.tls and not os.path.exists(os.path.join(self.tls_dir, "server.pem")):
            make_ca(self.tls_dir, server=True)
        listen = self.uri + (" " + self.ldaps_uri if self.tls else "")
        log = open(self.log_path, "a")
        log.write("---- slapd_fixture: starting on %s\n" % self.uri)
        log.flush()
        try:
            self.proc = subprocess.Popen([_which("slapd"), "-f", self.conf_path, "-h", listen, "-d", "stats"],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        finally:
            log.close()
        _running.add(self)
        self.frozen = False
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                _running.discard(self)
                raise SlapdError("slapd exited (%d) at start:\n%s" % (rc, self.log()))
            if self.answers():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise SlapdError("slapd did not answer within %ds:\n%s" % (START_TIMEOUT, self.log()))
            time.sleep(0.05)    # polling, not a guess at how long it takes

    def answers(self, timeout=5):
        """Whether slapd answers a search as the service account now."""
        try:
            p = subprocess.run([_which("ldapsearch"), "-x", "-LLL", "-H", self.uri, "-D", BIND_DN, "-w",
                                BIND_PASSWORD, "-o", "nettimeout=%d" % timeout, "-l", str(timeout), "-b",
                                BASE_DN, "-s", "base", "(objectClass=*)", "1.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout + 1)
        except subprocess.TimeoutExpired:
            return False
        return p.returncode == 0

    def stop(self):
        """Stops slapd (also when frozen); the data and the port stay for
        start()."""
        if self.proc is None:
            return
        try:
            if self.frozen:
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        except ProcessLookupError:
            pass
        self.proc = None
        self.frozen = False
        _running.discard(self)

    def freeze(self):
        """SIGSTOP: slapd keeps its socket (the kernel still accepts
        connections) but answers nothing."""
        if self.proc is None:
            raise SlapdError("slapd is not running")
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True
        # kill() returns before every thread has stopped: a request already
        # read could still be answered. Wait until all of them show 'T'.
        deadline = time.monotonic() + 10
        while not self._all_threads_stopped():
            if time.monotonic() > deadline:
                raise SlapdError("slapd did not stop within 10 s of SIGSTOP")
            time.sleep(0.005)

    def _all_threads_stopped(self):
        task_dir = "/proc/%d/task" % self.proc.pid
        try:
            for tid in os.listdir(task_dir):
                with open(os.path.join(task_dir, tid, "stat")) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                        return False
        except FileNotFoundError:
            return False
        return True

    def thaw(self):
        if self.proc is not None and self.frozen:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def cleanup(self):
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # ---- helpers ----------------------------------------------------------

    def log(self, tail=60):
        """The last lines of slapd's log (for failure messages)."""
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.readlines()
        except OSError:
            return "(no slapd log)"
        return "".join(lines[-tail:])

    def modify(self, ldif):
        """Applies LDIF change records as the rootdn (ldapmodify)."""
        p = subprocess.run([_which("ldapmodify"), "-x", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
                           input=ldif, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8",
                           timeout=30)
        if p.returncode != 0:
            raise SlapdError("ldapmodify failed (exit %d):\n%s" % (p.returncode, p.stdout))

    def env(self):
        """The values scripts need, as a dict."""
        env = {"LDAP_URI": self.uri, "LDAP_BASE_DN": self.base_dn, "LDAP_PEOPLE_DN": self.people_dn,
               "LDAP_BIND_DN": self.bind_dn, "LDAP_BIND_PASSWORD_FILE": self.password_file}
        if self.tls:
            env.update(LDAP_LDAPS_URI=self.ldaps_uri, LDAP_CA_FILE=self.ca_file)
        return env

    def wwsfd_ldap_section(self, uris=None, **keys):
        """An [ldap] section of wwsfd.ini for this server; keys override or
        add (timeout="1s", connections=2, bind_dn=None to leave it out)."""
        values = {"enabled": "yes", "uris": uris or self.uri, "bind_dn": self.bind_dn,
                  "bind_password_file": self.password_file, "base_dn": self.base_dn}
        values.update(keys)
        lines = ["[ldap]"] + ["%s = %s" % (k, v) for k, v in values.items() if v is not None]
        if values.get("bind_dn") is None:
            lines = [l for l in lines if not l.startswith("bind_password_file")]
        return "\n".join(lines) + "\n"


def _serve(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="slapd_fixture.py serve",
                                 description="Run the test slapd in DIR until SIGTERM or SIGINT.")
    ap.add_argument("dir")
    ap.add_argument("--port", type=int, default=0, help="default: a free port")
    ap.add_argument("--anonymous-read", action="store_true", help="let anonymous clients search")
    ap.add_argument("--tls", action="store_true", help="StartTLS and ldaps:// with a CA of its own (openssl)")
    args = ap.parse_args(argv)
    missing = tools_missing()
    if missing:
        sys.stderr.write("slapd_fixture: not installed: %s (Debian packages slapd, ldap-utils)\n" % ", ".join(missing))
        return 1
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    try:
        ldap = Slapd(args.dir, port=args.port or None, anonymous_read=args.anonymous_read, tls=args.tls)
        ldap.start()
    except SlapdError as e:
        sys.stderr.write("slapd_fixture: %s\n" % e)
        return 1
    try:
        with open(os.path.join(ldap.dir, "slapd.env"), "w") as f:
            for k, v in ldap.env().items():
                f.write("%s=%s\n" % (k, shlex.quote(v)))
        print(ldap.uri, flush=True)
        while not stop:
            if ldap.proc.poll() is not None:
                sys.stderr.write("slapd_fixture: slapd exited (%d):\n%s" % (ldap.proc.returncode, ldap.log(40)))
                return 1
            time.sleep(0.2)     # wakes for the signals too
    finally:
        ldap.stop()
    return 0


def main(argv):
    if len(argv) >= 1 and argv[0] == "serve":
        return _serve(argv[1:])
    sys.stderr.write("usage: slapd_fixture.py serve DIR [--port N] [--anonymous-read] [--tls]\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
