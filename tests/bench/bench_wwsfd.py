#!/usr/bin/env python3
"""wwsfd over HTTPS, under wrk, next to its raw limits measured in the same run.

    bench_wwsfd.py [--rounds N] [--duration S] [--only anonymous,login,memory]
                   [--perf DIR] ...            (--help lists every option)

1. Anonymous tokens per second: POST /api/v1/anonymous on keep-alive
   connections (wrk -t2 -c32), a range pool of 10^6, throttles off, durable
   leases (synchronous=FULL), the eligibility hook in C (fast_hook.c) and the
   shipped Python one (pool-config/hooks/personal-info); for context the C
   hook with 128 connections and with [store] sync = normal, and once (not
   per round) GET /healthz and the anonymous admission with a new TLS
   connection per request (Connection: close), and wwsfd's CPU while one
   client stays silent after its TLS ClientHello. Next to it, in
   the same round: GET /healthz on the same daemon with the same wrk
   settings (the HTTPS ceiling), tokens_sign() with ES256 on 1 and 2
   threads, and lease_acquire() with synchronous=FULL, one commit each and
   32 per commit as wwsfd's workers group them (wwsfd_limits, in C).
   --perf DIR also records `perf record -a -g` for 6 s of the last C/FULL
   run and prints where the CPU went, per thread role, in us per answer.
2. LDAP logins per second: POST /api/v1/login as alice (her own IMPU), wwsfd's
   LDAP pool of 8 connections, next to slapd's own simple-bind rate on as many
   connections (before and after), and the rate of the LDAP operations wwsfd
   does per login (search, bind as the user, bind back as the service
   account) without wwsfd, against the same slapd.
3. Resident memory of wwsfd (VmRSS, VmHWM) after start and after each tenth
   of 100,000 anonymous token requests.

Each wwsfd (a new one per measurement) and the slapd are real processes on
free loopback ports, started by tests/integration/wwsfd_fixture.py and
slapd_fixture.py in a temp dir (kept with WWSF_BENCH_KEEP=1). wrk counts the
answers by status with wrk_counts.lua; a success is a 200 whose body carries
a token. A run that is not all successes is reported with its error codes,
with its rate over the whole run and over the seconds before the first
refusal. Output: "result:" (a figure), "goal:" (goal met / goal missed,
never enforced) and "note:" lines, like the other benchmarks. Exit 1 only
when something does not work: a wrk run with more than a few answers that
are not successes (or socket errors), a limit program that fails, a daemon
that dies. Exit 77 (skipped) without wrk or openssl; without slapd the
logins are left out with a note. docs/BENCHMARKS.md has the method and the
figures.
"""

import argparse
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("WWSF_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "integration"))
import slapd_fixture as S  # noqa: E402
import wwsfd_fixture as F  # noqa: E402

BUILD = os.path.join(SOURCE_ROOT, "build", "tests", "bench")
LIMITS = os.environ.get("WWSFD_LIMITS") or os.path.join(BUILD, "wwsfd_limits")
FAST_HOOK = os.environ.get("WWSFD_FAST_HOOK") or os.path.join(BUILD, "bench_fast_hook")
WRK_SCRIPT = os.environ.get("WWSFD_WRK_SCRIPT") or os.path.join(HERE, "wrk_counts.lua")
PYTHON_HOOK = F.PERSONAL_INFO

POOL_SIZE = 1000000
ALICE_DN = "uid=alice," + S.PEOPLE_DN
SKIP = 77

# A run "fails" past this many answers that are not a 200 with a token, or
# socket errors: a few can be the last requests cut at the end of the run.
TOLERATED = 5

# Goals (issue: wwsfd benchmarks).
GOAL_TOKENS = 5000.0
GOAL_LOGIN_RATIO = 0.7
GOAL_RSS_MB = 50.0

failures = []


# ---- output ---------------------------------------------------------------------

def result(what, value, unit=""):
    print("result: %-64s %14.2f %s" % (what, value, unit), flush=True)


def goal(what, met, detail):
    print("goal:   %s: %s (%s)" % (what, "goal met" if met else "goal missed", detail), flush=True)


def note(fmt, *args):
    print("note:   " + (fmt % args if args else fmt), flush=True)


def fail(msg):
    failures.append(msg)
    sys.stdout.flush()
    sys.stderr.write("FAIL: %s\n" % msg)
    sys.stderr.flush()


def spread(values):
    """'min..max over N' of a list of rates, for the notes."""
    v = [x for x in values if x is not None]
    if not v:
        return "none"
    return "%.0f..%.0f over %d run%s" % (min(v), max(v), len(v), "s" if len(v) > 1 else "")


# ---- CPU and memory accounting from /proc ---------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """utime + stime of pid in seconds (0 if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return 0.0
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid):
    """VmRSS, VmHWM, ... of pid in kB, from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k.startswith(("Vm", "Rss")):
                out[k] = int(v.split()[0])
    return out


def system_cpu():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def tcp_opens():
    """TCP connections this machine has opened (ActiveOpens of /proc/net/snmp):
    over a wrk run, about wrk's connections when keep-alive holds."""
    with open("/proc/net/snmp") as f:
        lines = [l.split() for l in f if l.startswith("Tcp:")]
    return int(lines[1][lines[0].index("ActiveOpens")])


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class CpuWatch:
    """CPU seconds of wwsfd, its helpers, slapd, wrk (our children) and the
    whole machine over one measurement."""

    def __init__(self, wwsfd=None, slapd=None):
        self.wwsfd, self.slapd = wwsfd, slapd

    def _sample(self):
        helpers = F.children(self.wwsfd.pid) if self.wwsfd and self.wwsfd.running() else []
        self.helper_pids = helpers
        return {
            "wwsfd": proc_cpu(self.wwsfd.pid) if self.wwsfd and self.wwsfd.running() else 0.0,
            "helpers": sum(proc_cpu(p) for p in helpers),
            "slapd": proc_cpu(self.slapd.proc.pid) if self.slapd and self.slapd.proc else 0.0,
            "children": sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]),
            "system": system_cpu(),
            "tcp_opens": tcp_opens(),
            "t": time.monotonic(),
        }

    def __enter__(self):
        self.before = self._sample()
        return self

    def __exit__(self, *exc):
        self.after = self._sample()

    def seconds(self, key):
        return self.after[key] - self.before[key]

    def summary(self):
        """CPU used by each party, in cores (CPU seconds per wall second)."""
        wall = self.after["t"] - self.before["t"]
        busy = (self.after["system"][0] - self.before["system"][0]) / CLK_TCK
        parts = {k: self.seconds(k) / wall for k in ("wwsfd", "helpers", "slapd", "children")}
        parts["machine"] = busy / wall
        parts["others"] = max(0.0, parts["machine"] - sum(parts[k] for k in ("wwsfd", "helpers", "slapd",
                                                                              "children")))
        return parts


def cpu_note(label, cw, per=None, per_what=None):
    c = cw.summary()
    text = "%s: CPU in cores: wwsfd %.2f, hook helpers %.2f, slapd %.2f, load generator %.2f, " \
           "other processes %.2f; machine busy %.2f of %d" % (
               label, c["wwsfd"], c["helpers"], c["slapd"], c["children"], c["others"], c["machine"],
               os.cpu_count() or 0)
    if per:
        wall = cw.after["t"] - cw.before["t"]
        text += "; wwsfd %.0f us CPU per %s" % (c["wwsfd"] * wall / per * 1e6, per_what)
        text += "; TCP connections opened on the machine meanwhile: %d" % cw.seconds("tcp_opens")
    note(text)


# ---- wrk --------------------------------------------------------------------------

class WrkRun:
    def __init__(self, data, mode):
        self.mode = mode
        self.d = data
        self.seconds = data["duration_us"] / 1e6
        self.requests = data["requests"]
        self.good = data["good"]
        self.statuses = {int(k): v for k, v in data["statuses"].items()}
        self.errors = data["errors"]
        self.codes = data.get("codes", {})
        self.rate = self.good / self.seconds if self.seconds > 0 else 0.0
        self.answer_rate = self.requests / self.seconds if self.seconds > 0 else 0.0
        # Successes per whole second before the first second with another
        # answer (the first and last seconds of the run are partial).
        tl = sorted((int(k), v[0], v[1]) for k, v in data.get("timeline", {}).items())[1:-1]
        first_bad = next((i for i, (_, _, b) in enumerate(tl) if b > 0), None)
        window = tl if first_bad is None else tl[:first_bad]
        self.window_seconds = len(window)
        self.window_rate = sum(g for _, g, _ in window) / len(window) if window else None
        # The figure to report: over the whole run when it was all
        # successes, else over the seconds before the first refusal.
        self.clean = self.not_good <= TOLERATED and self.socket_errors <= TOLERATED and data["bad_body"] == 0
        self.steady = self.rate if self.clean else self.window_rate
        self.p50 = data["latency_us"]["p50"] / 1000.0
        self.p99 = data["latency_us"]["p99"] / 1000.0
        self.max = data["latency_us"]["max"] / 1000.0

    @property
    def not_good(self):
        return self.requests - self.good

    @property
    def socket_errors(self):
        e = self.errors
        return e["connect"] + e["read"] + e["write"] + e["timeout"]

    def describe(self):
        st = ", ".join("%d: %d" % (k, v) for k, v in sorted(self.statuses.items()))
        codes = ", ".join("%s: %d" % (k, v) for k, v in sorted(self.codes.items()))
        return "%d answers in %.2f s (status %s%s); socket errors %s" % (
            self.requests, self.seconds, st or "none", "; errors " + codes if codes else "",
            json.dumps(self.errors))


def run_wrk(url, mode, args, duration=None, stop_after=0, env=None, label="", connections=None, report=True):
    """wrk -tT -cC -dD on url with wrk_counts.lua in mode; with stop_after, the
    run ends when every thread has had that many answers (wrk itself only
    stops at -d, so the script marks each thread's end in a file and wrk gets
    SIGINT when all have). Returns a WrkRun; a run that is not all 200s with a
    token is reported as a failure."""
    duration = duration or args.duration
    done_dir = tempfile.mkdtemp(prefix="wrk-done-", dir=args.tmp)
    e = dict(os.environ)
    e.update(env or {})
    e["WRK_DONE_DIR"] = done_dir
    cmd = ["wrk", "-t%d" % args.wrk_threads, "-c%d" % (connections or args.wrk_connections), "-d%ds" % duration,
           "--timeout", "10s",
           "-s", WRK_SCRIPT, url, "--", mode, str(stop_after)]
    out_path = os.path.join(done_dir, "wrk.out")
    with open(out_path, "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=e)
        deadline = time.monotonic() + duration + 120
        while p.poll() is None:
            if stop_after and len([f for f in os.listdir(done_dir) if f.startswith("thread-")]) >= args.wrk_threads:
                p.send_signal(signal.SIGINT)
                stop_after = 0
            if time.monotonic() > deadline:
                p.kill()
            time.sleep(0.05)
    with open(out_path) as f:
        text = f.read()
    shutil.rmtree(done_dir, ignore_errors=True)
    line = next((l for l in text.splitlines() if l.startswith("WRK-JSON ")), None)
    if p.returncode != 0 or line is None:
        fail("%s: wrk exited %d:\n%s" % (label or mode, p.returncode, text[-2000:]))
        return None
    run = WrkRun(json.loads(line[len("WRK-JSON "):]), mode)
    if not report:
        pass
    elif not run.clean:
        fail("%s: not every answer was a success: %s" % (label or mode, run.describe()))
        note("%s: %s/s over the %d whole seconds before the first answer that was not a success", label or mode,
             "%.0f" % run.window_rate if run.window_rate is not None else "no rate", run.window_seconds)
    else:
        note("%s: %s", label or mode, run.describe())
    return run


# ---- the limits program ---------------------------------------------------------

def limit(*argv, label=None):
    """Runs wwsfd_limits; returns its rate (None after a failure)."""
    p = subprocess.run([LIMITS] + [str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       encoding="utf-8", errors="replace", timeout=600)
    line = next((l for l in p.stdout.splitlines() if l.startswith("limit: ")), None)
    if p.returncode != 0 or line is None:
        fail("wwsfd_limits %s exited %d:\n%s" % (" ".join(str(a) for a in argv[:1]), p.returncode, p.stdout[-2000:]))
        return None
    d = json.loads(line[len("limit: "):])
    note("limit %s: %d in %.2f s on %d thread(s): %.0f/s", label or d["what"], d["ops"], d["seconds"],
         d["threads"], d["rate"])
    return d["rate"]


# ---- daemons ----------------------------------------------------------------------

def write_secret(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return path


class Daemons:
    """Every wwsfd of the run: a new one (fresh directory, database, session
    table) for each measurement."""

    def __init__(self, args):
        self.args = args
        self.n = 0
        self.running = []

    def start(self, hook, sync="full", ldap=None, log_level="info"):
        self.n += 1
        a = self.args
        config = {
            "server": {"threads": str(a.threads), "max_connections_per_ip": "1024", "log_level": log_level},
            "store": {"sync": sync},
            "anonymous": {"hook_helpers": str(a.hook_helpers)},
            "throttle": {"anonymous_per_ip": "0", "refresh_per_session": "0", "login_per_ip": "0",
                         "login_per_user": "0"},
        }
        if ldap is not None:
            config["ldap"] = ldap
        s = F.Wwsfd(os.path.join(a.tmp, "wwsfd-%d" % self.n), pools=F.anonymous_pool(size=POOL_SIZE), hook=hook,
                    config=config)
        self.running.append(s)
        s.start()
        return s

    def stop(self, s, label):
        self.running.remove(s)
        try:
            s.finish()
        except AssertionError as e:
            fail("%s: wwsfd: %s\n%s" % (label, e, s.log_text()[-3000:]))

    def stop_all(self):
        """After an interruption: SIGKILL whatever still runs."""
        for s in self.running:
            if s.running():
                s.kill9()
        self.running = []


def url_of(s):
    return "https://127.0.0.1:%d" % s.port


# ---- perf (--perf DIR) -------------------------------------------------------------

def thread_roles(s, threads):
    """tid -> role of wwsfd's threads, and the pids of its hook helpers."""
    tids = []
    for t in sorted(int(x) for x in os.listdir("/proc/%d/task" % s.pid)):
        try:
            with open("/proc/%d/task/%d/comm" % (s.pid, t)) as f:
                tids.append((t, f.read().strip()))
        except OSError:
            pass
    roles = {s.pid: "wwsfd main thread"}
    plain = [t for t, c in tids if t != s.pid and c == "wwsfd"]
    # Started in this order by wwsfd_start(): the workers, then the hook thread.
    for t in plain[:threads]:
        roles[t] = "wwsfd workers (lease, commit, signing, reply)"
    for t in plain[threads:]:
        roles[t] = "wwsfd hook thread"
    for t, c in tids:
        if c.startswith("MHD"):
            roles[t] = "wwsfd HTTP threads (libmicrohttpd, TLS)"
    for p in F.children(s.pid):
        roles[p] = "hook helpers"
    return roles


def perf_samples(text_path):
    """(comm, tid, [(symbol, dso), ...] leaf first) of each sample of a
    `perf script -F comm,tid,ip,sym,dso` output."""
    frame_re = re.compile(r"\s*[0-9a-f]+ (.*) \((.*)\)$")
    with open(text_path, errors="replace") as f:
        head, frames = None, []
        for line in f:
            if not line.strip():
                if head:
                    yield head[0], head[1], frames
                head, frames = None, []
            elif head is None:
                parts = line.split()
                head = (" ".join(parts[:-1]), int(parts[-1]))
            else:
                m = frame_re.match(line.rstrip("\n"))
                if m:
                    frames.append((m.group(1), m.group(2)))
        if head:
            yield head[0], head[1], frames


def sample_category(frames):
    """The library a sample was in, or for the kernel the system call (or
    page fault, interrupt) that brought it there."""
    if not frames:
        return "unknown"
    sym, dso = frames[0]
    if not dso.startswith("[kernel"):
        return os.path.basename(dso)
    for name, _ in frames:
        if name.startswith(("__x64_sys_", "__do_sys_")):
            return "kernel: " + name.split("sys_", 1)[1]
    if any(name == "asm_exc_page_fault" for name, _ in frames):
        return "kernel: page faults"
    return "kernel: interrupts, scheduling, idle"


def perf_breakdown(data, roles, answers, text_path):
    """Where the samples of `perf record -a` went: by thread role, and within
    each by library or system call, as microseconds of CPU per answer (the
    samples are spread over every CPU, so a role's share of them times the
    CPUs times the seconds is its CPU time)."""
    with open(text_path, "w") as out:
        p = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,ip,sym,dso"], stdout=out,
                           stderr=subprocess.DEVNULL)
    if p.returncode != 0:
        note("perf script failed (exit %d)", p.returncode)
        return
    by_role, total = {}, 0
    for comm, tid, frames in perf_samples(text_path):
        total += 1
        role = roles.get(tid) or ("idle" if comm == "swapper" else "load generator (wrk)" if comm == "wrk"
                                  else "other processes")
        cats = by_role.setdefault(role, {})
        cat = sample_category(frames)
        cats[cat] = cats.get(cat, 0) + 1
    if not total or not answers:
        return
    cpu_seconds = (os.cpu_count() or 1) * roles["_seconds"]
    us = lambda n: n / total * cpu_seconds / answers * 1e6  # noqa: E731
    note("perf: %d samples over %d CPUs x %.0f s, %d answers in that time; CPU per answer by thread role:",
         total, os.cpu_count() or 1, roles["_seconds"], answers)
    for role, cats in sorted(by_role.items(), key=lambda kv: -sum(kv[1].values())):
        n = sum(cats.values())
        top = sorted(cats.items(), key=lambda kv: -kv[1])
        parts = ["%s %.0f" % (c, us(k)) for c, k in top if us(k) >= 2][:10]
        note("perf:   %-44s %5.1f%% of the samples, %6.1f us/answer: %s", role, 100.0 * n / total, us(n),
             ", ".join(parts))


def stalled_handshake_cpu(s, seconds=3):
    """wwsfd's CPU (in cores) while idle, then while one client that sent its
    TLS ClientHello stays silent (as a slow or hostile client may)."""
    def cores():
        c0, t0 = proc_cpu(s.pid), time.monotonic()
        time.sleep(seconds)
        return (proc_cpu(s.pid) - c0) / (time.monotonic() - t0)

    idle = cores()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    try:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(outgoing.read())   # the ClientHello, then nothing
        stalled = cores()
    finally:
        sock.close()
    note("wwsfd CPU: idle %.2f cores; with one client silent after its TLS ClientHello %.2f cores "
         "(for up to [server] connection_timeout)", idle, stalled)
    return stalled


# ---- 1. anonymous tokens --------------------------------------------------------------

def bench_anonymous(args, daemons, perf_dir):
    rounds = []
    for rnd in range(1, args.rounds + 1):
        print("\n== anonymous tokens, round %d of %d (load average %s) ==" % (rnd, args.rounds, loadavg()), flush=True)
        r = {}
        limits_dir = tempfile.mkdtemp(prefix="limits-", dir=args.tmp)
        # The C/FULL daemon first: its keys serve the signing limit too.
        s = daemons.start(FAST_HOOK, "full")
        r["sign1"] = limit("sign", s.keys_dir, 3, 1, label="ES256 tokens_sign, 1 thread")
        r["sign2"] = limit("sign", s.keys_dir, 3, 2, label="ES256 tokens_sign, 2 threads")
        r["lease_full1"] = limit("lease", limits_dir, 3, "full", 1, 1,
                                 label="lease_acquire FULL, a commit each")
        r["lease_fullB"] = limit("lease", limits_dir, 3, "full", 1, args.batch,
                                 label="lease_acquire FULL, %d per commit" % args.batch)
        with CpuWatch(s) as cw:
            w = run_wrk(url_of(s), "healthz", args, label="GET /healthz")
        if w:
            r["healthz"] = w
            cpu_note("GET /healthz", cw, w.requests, "request")
        perf = None
        if perf_dir and rnd == args.rounds:
            # From the 2nd second, for 6 s at most: before wwsfd's session table
            # fills (49,152 sessions, about 10 s at 5,000/s).
            roles = thread_roles(s, args.threads)
            roles["_seconds"] = min(6, max(1, args.duration - 3))
            perf_data = os.path.join(perf_dir, "anonymous-full.perf.data")
            perf_t0 = time.time() + 1
            perf = subprocess.Popen(["sh", "-c", 'sleep 1; exec perf record -a -g -F 499 -o "$0" -- sleep "$1"',
                                     perf_data, str(roles["_seconds"])],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with CpuWatch(s) as cw:
            w = run_wrk(url_of(s), "anonymous", args, label="anonymous, C hook, FULL")
        if perf:
            perf.wait()
        if w:
            r["anon_c_full"] = w
            cpu_note("anonymous, C hook, FULL", cw, w.requests, "answer")
        if perf and w and perf.returncode == 0:
            # Answers in the recorded seconds, from wrk's per-second counts.
            secs = {int(k): v[0] + v[1] for k, v in w.d.get("timeline", {}).items()}
            inside = [secs.get(t, 0) for t in range(int(perf_t0) + 1, int(perf_t0 + roles["_seconds"]))]
            answers = sum(inside) / len(inside) * roles["_seconds"] if inside else 0
            perf_breakdown(perf_data, roles, answers, os.path.join(perf_dir, "anonymous-full.perf.txt"))
            note("perf: data in %s (perf report -i ...), samples as text in anonymous-full.perf.txt", perf_dir)
        elif perf:
            note("perf record failed (exit %s): no breakdown", perf.returncode)
        daemons.stop(s, "anonymous, C hook, FULL")

        s = daemons.start(PYTHON_HOOK, "full")
        with CpuWatch(s) as cw:
            w = run_wrk(url_of(s), "anonymous", args, label="anonymous, Python hook, FULL")
        if w:
            r["anon_py_full"] = w
            cpu_note("anonymous, Python hook, FULL", cw, w.requests, "answer")
        daemons.stop(s, "anonymous, Python hook, FULL")
        if args.high_connections:
            s = daemons.start(FAST_HOOK, "full")
            label = "anonymous, C hook, FULL, %d connections" % args.high_connections
            with CpuWatch(s) as cw:
                w = run_wrk(url_of(s), "anonymous", args, label=label, connections=args.high_connections)
            if w:
                r["anon_c_full_high"] = w
                cpu_note(label, cw, w.requests, "answer")
            daemons.stop(s, label)

        r["lease_full1_after"] = limit("lease", limits_dir, 3, "full", 1, 1,
                                       label="lease_acquire FULL, a commit each")
        r["lease_fullB_after"] = limit("lease", limits_dir, 3, "full", 1, args.batch,
                                       label="lease_acquire FULL, %d per commit" % args.batch)
        r["lease_normalB"] = limit("lease", limits_dir, 2, "normal", 1, args.batch,
                                   label="lease_acquire NORMAL, %d per commit" % args.batch)
        s = daemons.start(FAST_HOOK, "normal")
        with CpuWatch(s) as cw:
            w = run_wrk(url_of(s), "anonymous", args, label="anonymous, C hook, NORMAL")
        if w:
            r["anon_c_normal"] = w
            cpu_note("anonymous, C hook, NORMAL", cw, w.requests, "answer")
        daemons.stop(s, "anonymous, C hook, NORMAL")
        shutil.rmtree(limits_dir, ignore_errors=True)
        rounds.append(r)

    # Once, for context (Keycloak's grant figure is dominated by a new TLS
    # connection per request): every request on a new connection.
    close = {}
    if args.close_run:
        print("\n== a new TLS connection per request (Connection: close), once (load average %s) ==" % loadavg(),
              flush=True)
        s = daemons.start(FAST_HOOK, "full")
        for mode, label in (("healthz", "GET /healthz, Connection: close"),
                            ("anonymous", "anonymous, C hook, FULL, Connection: close")):
            with CpuWatch(s) as cw:
                w = run_wrk(url_of(s), mode, args, env={"WRK_CLOSE": "1"}, label=label)
            if w:
                close[mode] = w
                cpu_note(label, cw, w.requests, "answer")
        close["stalled"] = stalled_handshake_cpu(s)
        daemons.stop(s, "Connection: close")

    # The latest round's figures, the spread over every round in the notes.
    last = rounds[-1]

    def rate(r, k):
        v = r.get(k)
        return v.steady if isinstance(v, WrkRun) else v

    def series(k):
        return [rate(r, k) for r in rounds]

    def mean(*keys):
        v = [last[k] for k in keys if last.get(k)]
        return sum(v) / len(v) if v else None

    lease_full_mean = mean("lease_full1", "lease_full1_after")
    lease_batch_mean = mean("lease_fullB", "lease_fullB_after")
    print("\n== anonymous tokens: round %d of %d (wrk -t%d -c%d -d%ds, keep-alive; wwsfd threads %d, "
          "hook helpers %d, range pool of %d) ==" % (len(rounds), args.rounds, args.wrk_threads,
                                                      args.wrk_connections, args.duration, args.threads,
                                                      args.hook_helpers, POOL_SIZE), flush=True)
    h = last.get("healthz")
    if h:
        result("HTTPS GET /healthz, requests/s", h.rate, "req/s")
        result("HTTPS GET /healthz, p50 latency", h.p50, "ms")
        result("HTTPS GET /healthz, p99 latency", h.p99, "ms")
    for key, what in (("sign1", "ES256 tokens_sign()/s, 1 thread"), ("sign2", "ES256 tokens_sign()/s, 2 threads"),
                      ("lease_full1", "durable lease_acquire()/s (FULL), a commit each, before"),
                      ("lease_full1_after", "durable lease_acquire()/s (FULL), a commit each, after"),
                      ("lease_fullB", "durable lease_acquire()/s (FULL), %d per commit, before" % args.batch),
                      ("lease_fullB_after", "durable lease_acquire()/s (FULL), %d per commit, after" % args.batch),
                      ("lease_normalB", "lease_acquire()/s (NORMAL), %d per commit" % args.batch)):
        if last.get(key) is not None:
            result(what, last[key], "/s")
    for key, what in (("anon_c_full", "anonymous tokens/s, C hook, FULL"),
                      ("anon_py_full", "anonymous tokens/s, Python hook, FULL"),
                      ("anon_c_full_high", "anonymous tokens/s, C hook, FULL, -c%d" % args.high_connections),
                      ("anon_c_normal", "anonymous tokens/s, C hook, NORMAL")):
        w = last.get(key)
        if not w:
            continue
        result(what, w.rate, "tokens/s")
        if not w.clean:
            if w.window_rate is not None:
                result(what + ", until refused (%d s)" % w.window_seconds, w.window_rate, "tokens/s")
            result(what.replace("tokens/s", "answers/s, any status"), w.answer_rate, "answers/s")
        result(what.replace("tokens/s", "p50 latency"), w.p50, "ms")
        result(what.replace("tokens/s", "p99 latency"), w.p99, "ms")
    if close.get("stalled") is not None:
        result("wwsfd CPU while one client stalls after its ClientHello", close["stalled"], "cores")
    for mode, what in (("healthz", "HTTPS GET /healthz, a new connection each, requests/s"),
                       ("anonymous", "anonymous tokens/s, C hook, FULL, a new connection each")):
        c = close.get(mode)
        if c:
            result(what, c.steady or 0, "/s")
    w = last.get("anon_c_full")
    t = w.steady if w else None
    if t and h:
        result("ratio anonymous (C, FULL) / GET /healthz", t / h.rate if h.rate else 0)
    if t and lease_full_mean:
        result("ratio anonymous (C, FULL) / durable lease_acquire, a commit each", t / lease_full_mean)
    if t and lease_batch_mean:
        result("ratio anonymous (C, FULL) / durable lease_acquire, %d per commit" % args.batch,
               t / lease_batch_mean)
    if t and last.get("sign2"):
        result("ratio anonymous (C, FULL) / ES256 signing, 2 threads", t / last["sign2"])
    for key, what in (("healthz", "GET /healthz"), ("sign2", "signing, 2 threads"),
                      ("lease_full1", "durable lease_acquire, a commit each (before)"),
                      ("lease_fullB", "durable lease_acquire, %d per commit (before)" % args.batch),
                      ("anon_c_full", "anonymous C FULL"), ("anon_py_full", "anonymous Python FULL"),
                      ("anon_c_full_high", "anonymous C FULL -c%d" % args.high_connections),
                      ("anon_c_normal", "anonymous C NORMAL")):
        if any(v is not None for v in series(key)):
            note("every round, %s: %s /s", what, spread(series(key)))
    if w:
        if w.clean:
            detail = "%.0f tokens/s in the latest round; %s" % (w.rate, spread(series("anon_c_full")))
        else:
            detail = ("%.0f tokens/s over the %d s run of the latest round, which failed; %s/s before its first "
                      "refusal; before it, every round: %s" % (
                          w.rate, args.duration, "%.0f" % t if t else "no rate", spread(series("anon_c_full"))))
        goal("anonymous tokens/s with durable leases (C hook, FULL) >= %.0f" % GOAL_TOKENS, w.rate >= GOAL_TOKENS,
             detail)
        limits = {"HTTPS (GET /healthz)": h.rate if h else None, "ES256 signing (2 threads)": last.get("sign2"),
                  "durable lease_acquire (%d per commit, as wwsfd groups them)" % args.batch: lease_batch_mean}
        limits = {k: v for k, v in limits.items() if v}
        if limits and t:
            lowest = min(limits, key=limits.get)
            note("lowest raw limit in the latest round: %s at %.0f/s (anonymous C FULL at %.0f/s is %.2f of it)",
                 lowest, limits[lowest], t, t / limits[lowest])
    return rounds


# ---- 2. LDAP logins --------------------------------------------------------------

def bench_login(args, daemons):
    missing = S.tools_missing()
    if missing:
        note("LDAP logins skipped: not installed: %s (Debian packages slapd, ldap-utils)", ", ".join(missing))
        return None
    ldap = S.Slapd(os.path.join(args.tmp, "slapd"))
    ldap.start()
    alice_pw = write_secret(os.path.join(args.tmp, "alice.password"), S.USERS["alice"])
    ldap_cfg = {"enabled": "yes", "uris": ldap.uri, "bind_dn": ldap.bind_dn,
                "bind_password_file": ldap.password_file, "base_dn": ldap.base_dn,
                "connections": str(args.ldap_connections)}
    n = args.ldap_connections
    raw_seconds = max(2, args.duration // 2)
    rounds = []
    try:
        for rnd in range(1, args.rounds + 1):
            print("\n== LDAP logins, round %d of %d (load average %s) ==" % (rnd, args.rounds, loadavg()), flush=True)
            r = {}
            with CpuWatch(slapd=ldap) as cw:
                r["bind_before"] = limit("ldap-bind", ldap.uri, ALICE_DN, alice_pw, raw_seconds, n,
                                         label="slapd simple binds, %d connections" % n)
            cpu_note("slapd simple binds", cw)
            with CpuWatch(slapd=ldap) as cw:
                r["sequence"] = limit("ldap-login", ldap.uri, ldap.bind_dn, ldap.password_file, ldap.base_dn,
                                      "alice", alice_pw, raw_seconds, n,
                                      label="search + user bind, %d connections" % n)
            cpu_note("wwsfd's LDAP operations per login, without wwsfd", cw)
            s = daemons.start(None, "full", ldap=ldap_cfg)
            with CpuWatch(s, ldap) as cw:
                w = run_wrk(url_of(s), "login", args, label="POST /api/v1/login (alice)")
            if w:
                r["login"] = w
                cpu_note("POST /api/v1/login", cw, w.requests, "answer")
            daemons.stop(s, "login")
            with CpuWatch(slapd=ldap) as cw:
                r["bind_after"] = limit("ldap-bind", ldap.uri, ALICE_DN, alice_pw, raw_seconds, n,
                                        label="slapd simple binds, %d connections" % n)
            cpu_note("slapd simple binds", cw)
            rounds.append(r)
    finally:
        ldap.stop()

    last = rounds[-1]
    binds = [v for v in (last.get("bind_before"), last.get("bind_after")) if v]
    bind = sum(binds) / len(binds) if binds else None
    w = last.get("login")
    print("\n== LDAP logins: round %d of %d (wrk -t%d -c%d -d%ds; wwsfd [ldap] connections = %d; raw rates "
          "on %d connections, %d s each) ==" % (len(rounds), args.rounds, args.wrk_threads, args.wrk_connections,
                                                args.duration, n, n, raw_seconds), flush=True)
    if bind:
        result("slapd simple binds/s (mean of before and after)", bind, "binds/s")
    if last.get("sequence"):
        result("slapd: search + user bind, logins/s", last["sequence"], "logins/s")
    if w:
        result("wwsfd POST /api/v1/login, logins/s", w.rate, "logins/s")
    if w and not w.clean and w.window_rate:
        result("wwsfd POST /api/v1/login, logins/s, until refused (%d s)" % w.window_seconds, w.window_rate, "logins/s")
    if w:
        result("wwsfd POST /api/v1/login, p50 latency", w.p50, "ms")
        result("wwsfd POST /api/v1/login, p99 latency", w.p99, "ms")
    if w and w.steady and bind:
        result("ratio wwsfd logins / slapd simple binds", w.steady / bind)
    if w and w.steady and last.get("sequence"):
        result("ratio wwsfd logins / the same LDAP operations without wwsfd", w.steady / last["sequence"])
    note("every round, slapd binds (before, after): %s /s",
         spread([r.get(k) for r in rounds for k in ("bind_before", "bind_after")]))
    note("every round, LDAP operations of a login without wwsfd: %s /s", spread([r.get("sequence") for r in rounds]))
    note("every round, wwsfd logins: %s /s", spread([r["login"].steady if r.get("login") else None for r in rounds]))
    if w and bind:
        detail = "%.2f in the latest round (%.0f logins/s, %.0f binds/s)" % (w.rate / bind, w.rate, bind)
        if not w.clean:
            detail += "; the run failed; until its first refusal %.2f (%.0f logins/s)" % (
                (w.steady or 0) / bind, w.steady or 0)
        goal("wwsfd logins/s >= %.1f x slapd's simple-bind rate" % GOAL_LOGIN_RATIO, w.rate >= GOAL_LOGIN_RATIO * bind,
             detail)
    return rounds


# ---- 3. memory -------------------------------------------------------------------

def bench_memory(args, daemons):
    """VmRSS after start and after each tenth of the requests (each tenth one
    wrk run on the same daemon), VmHWM at the end."""
    print("\n== resident memory of wwsfd over %d anonymous token requests (load average %s) ==" % (
        args.tokens, loadavg()), flush=True)
    s = daemons.start(FAST_HOOK, "full")
    before = proc_status(s.pid)
    steps = 10
    per_thread = int(math.ceil(args.tokens / steps / args.wrk_threads))
    good = answered = 0
    runs = []
    with CpuWatch(s) as cw:
        for i in range(steps):
            w = run_wrk(url_of(s), "anonymous", args, duration=600, stop_after=per_thread, report=False,
                        label="anonymous requests %d to %d" % (answered + 1, answered + per_thread * args.wrk_threads))
            if not w or not s.running():
                break
            runs.append(w)
            good += w.good
            answered += w.requests
            st = proc_status(s.pid)
            note("after %6d requests (%6d tokens): VmRSS %6.1f MB, VmHWM %6.1f MB (this tenth: %.0f answers/s, %s)",
                 answered, good, st["VmRSS"] / 1024.0, st["VmHWM"] / 1024.0, w.answer_rate,
                 ", ".join("%d x %s" % (v, k) for k, v in sorted(w.codes.items())) or "all 200 with a token")
    time.sleep(1)
    after = proc_status(s.pid) if s.running() else None
    daemons.stop(s, "memory")
    if not after:
        fail("memory: wwsfd is gone")
        return
    cpu_note("%d anonymous requests" % answered, cw, answered, "answer")
    result("wwsfd VmRSS after start", before["VmRSS"] / 1024.0, "MB")
    result("wwsfd VmRSS after the requests", after["VmRSS"] / 1024.0, "MB")
    result("wwsfd VmHWM (peak RSS) after the requests", after["VmHWM"] / 1024.0, "MB")
    result("wwsfd VmSize after the requests", after["VmSize"] / 1024.0, "MB")
    result("requests", answered, "requests")
    result("tokens issued (200 with a token)", good, "tokens")
    result("requests answered otherwise", answered - good, "answers")
    bad = [w for w in runs if not w.clean]
    if bad:
        codes = {}
        for w in bad:
            for k, v in w.codes.items():
                codes[k] = codes.get(k, 0) + v
        fail("memory: %d of %d requests were not answered with a token (%s)" % (
            answered - good, answered, ", ".join("%s: %d" % kv for kv in sorted(codes.items()))))
    goal("wwsfd resident memory after %d tokens < %.0f MB" % (args.tokens, GOAL_RSS_MB),
         after["VmRSS"] / 1024.0 < GOAL_RSS_MB and good >= args.tokens,
         "VmRSS %.1f MB, VmHWM %.1f MB after %d tokens of %d requests" % (
             after["VmRSS"] / 1024.0, after["VmHWM"] / 1024.0, good, answered))


# ---- main --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2, help="rounds of each rate measurement (default 2)")
    ap.add_argument("--duration", type=int, default=20, help="seconds of each wrk run (default 20)")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-connections", type=int, default=32)
    ap.add_argument("--high-connections", type=int, default=128,
                    help="also anonymous C/FULL with this many connections, for context (0: no)")
    ap.add_argument("--no-close-run", dest="close_run", action="store_false",
                    help="leave out the run with a new TLS connection per request")
    ap.add_argument("--threads", type=int, default=4, help="wwsfd [server] threads (default 4, its default)")
    ap.add_argument("--hook-helpers", type=int, default=4, help="[anonymous] hook_helpers (default 4)")
    ap.add_argument("--ldap-connections", type=int, default=8, help="[ldap] connections (default 8)")
    ap.add_argument("--batch", type=int, default=32,
                    help="acquisitions per commit of the grouped lease limit (default 32: wrk's connections)")
    ap.add_argument("--tokens", type=int, default=100000, help="requests of the memory measurement")
    ap.add_argument("--only", default="anonymous,login,memory", help="comma-separated: anonymous, login, memory")
    ap.add_argument("--perf", metavar="DIR", help="perf record -a -g during the last C/FULL anonymous run")
    args = ap.parse_args()
    only = set(args.only.split(","))

    for what, path in (("wwsfd", F.WWSFD), ("wwsfctl", F.WWSFCTL), ("wwsfd_limits", LIMITS),
                       ("bench_fast_hook", FAST_HOOK)):
        if not os.access(path, os.X_OK):
            sys.stderr.write("%s not found at %s\n" % (what, path))
            return 1
    missing = [p for p in ("wrk", "openssl") if not shutil.which(p)]
    if missing:
        print("SKIP: not installed: %s (scripts/install-deps installs them)" % ", ".join(missing))
        return SKIP

    # meson test sets MALLOC_PERTURB_ (glibc then fills every allocation and
    # every freed block): wwsfd would run slower and touch more memory than
    # it does in service. Its children get the environment without it.
    os.environ.pop("MALLOC_PERTURB_", None)
    base = os.environ.get("TMPDIR") or "/tmp"
    args.tmp = tempfile.mkdtemp(prefix="wwsf-bench-wwsfd-", dir=base)
    perf_dir = None
    if args.perf:
        perf_dir = os.path.abspath(args.perf)
        os.makedirs(perf_dir, exist_ok=True)
    print("bench_wwsfd: temp dir %s, %d CPUs, load average %s, wrk -t%d -c%d -d%ds, %d round(s)" % (
        args.tmp, os.cpu_count() or 0, loadavg(), args.wrk_threads, args.wrk_connections, args.duration,
        args.rounds), flush=True)
    daemons = Daemons(args)
    try:
        if "anonymous" in only:
            bench_anonymous(args, daemons, perf_dir)
        if "login" in only:
            bench_login(args, daemons)
        if "memory" in only:
            bench_memory(args, daemons)
    finally:
        daemons.stop_all()
        if os.environ.get("WWSF_BENCH_KEEP"):
            print("kept %s" % args.tmp)
        else:
            shutil.rmtree(args.tmp, ignore_errors=True)
    print("\nanchors (docs/DESIGN.md section 6): Keycloak 15 password logins/s and 120 client-credential grants/s "
          "per vCPU; ORY Hydra 407 client-credential grants/s on 2 CPUs", flush=True)
    print("load average at the end: %s" % loadavg(), flush=True)
    if failures:
        sys.stderr.write("\n%d failure(s):\n" % len(failures))
        for f in failures:
            sys.stderr.write("  - %s\n" % f.splitlines()[0])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
