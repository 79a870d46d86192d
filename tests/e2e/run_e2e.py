#!/usr/bin/env python3
"""Runs end-to-end test files (Node, node:test + playwright-core) against
the whole stack, in Debian's headless Chromium.

    run_e2e.py FILE.test.js...

1. Skips (exit 77) when node, npm, chromium, Kamailio or slapd is missing.
2. The WIC: $WWSF_WEB_ROOT when set; else scripts/build-web (it installs
   web/'s npm packages once, then bundles in a second) and web/dist.
3. playwright-core, pinned in package-lock.json here, is installed with
   `npm ci` into $E2E_WORK_DIR/npm (the build dir; never the source tree)
   when that copy is missing or older than the lock file. Nothing downloads
   a browser: the tests drive /usr/bin/chromium ($CHROMIUM).
4. The tests run in a network namespace of their own with only a loopback
   interface (`unshare --net`, as root or with user namespaces): the
   browsers' WebRTC media (which Chromium sends on loopback only with
   --allow-loopback-in-peer-connection) cannot take any other interface.
   Without namespaces they run in the host's, and say so.

Environment (meson sets it): WWSFD, WWSFCTL, WICTOKEN_LUA_DIR,
KAMAILIO_CONFIG_DIR, E2E_WORK_DIR, E2E_ARTIFACTS (screenshots); optional
WWSF_WEB_ROOT, CHROMIUM, WWSF_KEEP_TMP=1 (keep each stack's folder).
"""

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("WWSF_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
SKIP = 77


def say(text):
    sys.stderr.write("run_e2e: %s\n" % text)
    sys.stderr.flush()


def missing_tools():
    missing = []
    for tool, package in (("node", "nodejs"), ("npm", "npm")):
        if not shutil.which(tool):
            missing.append(package)
    chromium = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
    if not os.access(chromium, os.X_OK):
        missing.append("chromium")
    p = subprocess.run([sys.executable, os.path.join(HERE, "stack.py"), "missing"], stdout=subprocess.PIPE,
                       encoding="utf-8")
    if p.returncode != 0:
        missing.append(p.stdout.strip() or "the stack's tools")
    return missing


def node_major():
    out = subprocess.run(["node", "--version"], stdout=subprocess.PIPE, encoding="utf-8").stdout.strip()
    try:
        return int(out.lstrip("v").split(".")[0])
    except ValueError:
        return 0


def web_root():
    root = os.environ.get("WWSF_WEB_ROOT")
    if root:
        return os.path.abspath(root)
    build_web = os.path.join(SOURCE_ROOT, "scripts", "build-web")
    if not os.access(build_web, os.X_OK):
        say("scripts/build-web is missing: the WIC cannot be built")
        sys.exit(1)
    p = subprocess.run([build_web], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8",
                       errors="replace")
    if p.returncode != 0:
        say("scripts/build-web failed:\n%s" % p.stdout)
        sys.exit(1)
    return os.path.join(SOURCE_ROOT, "web", "dist")


def install_playwright(work):
    """npm ci of package-lock.json into work/npm when it is stale; returns
    the node_modules folder."""
    npm_dir = os.path.join(work, "npm")
    os.makedirs(npm_dir, exist_ok=True)
    stamp = os.path.join(npm_dir, "node_modules", ".package-lock.json")
    stale = not os.path.exists(stamp)
    for name in ("package.json", "package-lock.json"):
        src, dst = os.path.join(HERE, name), os.path.join(npm_dir, name)
        with open(src, "rb") as f:
            data = f.read()
        old = None
        if os.path.exists(dst):
            with open(dst, "rb") as f:
                old = f.read()
        if old != data:
            with open(dst, "wb") as f:
                f.write(data)
            stale = True
    if stale:
        say("installing playwright-core (package-lock.json) into %s" % npm_dir)
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
        p = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=npm_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8",
                           errors="replace")
        if p.returncode != 0:
            say("npm ci failed:\n%s" % p.stdout)
            sys.exit(1)
    return os.path.join(npm_dir, "node_modules")


def loopback_up():
    """ifconfig lo up, in the new namespace (no iproute2 needed)."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack("16sH14x", ifr)[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def namespace_works():
    for args in (["unshare", "--net"], ["unshare", "--net", "--map-root-user"]):
        try:
            if subprocess.run(args + ["true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
                return args
        except FileNotFoundError:
            return None
    return None


def main(argv):
    if argv[:1] == ["--in-namespace"]:
        loopback_up()
        os.environ["E2E_NETNS"] = "1"
        os.execvp(argv[1], argv[1:])
    files = [os.path.abspath(a) for a in argv]
    if not files:
        say("usage: run_e2e.py FILE.test.js...")
        return 2
    missing = missing_tools()
    if missing:
        say("skipped: missing %s" % ", ".join(missing))
        return SKIP
    if node_major() < 20:
        say("skipped: playwright-core needs Node 20 or newer (node %s)" % node_major())
        return SKIP
    work = os.path.abspath(os.environ.get("E2E_WORK_DIR") or os.path.join(SOURCE_ROOT, "build", "tests", "e2e"))
    env = dict(os.environ)
    # The tests run from this folder: paths given relative to the caller's
    # must not change meaning.
    for name in ("WWSFD", "WWSFCTL", "WICTOKEN_LUA_DIR", "KAMAILIO_CONFIG_DIR", "E2E_ARTIFACTS", "CHROMIUM"):
        if env.get(name):
            env[name] = os.path.abspath(env[name])
    env["WWSF_WEB_ROOT"] = web_root()
    env["NODE_PATH"] = install_playwright(work)
    env.setdefault("E2E_ARTIFACTS", os.path.join(work, "artifacts"))
    env.setdefault("E2E_WORK_DIR", work)
    os.makedirs(env["E2E_ARTIFACTS"], exist_ok=True)
    # One file at a time: each starts a stack and a browser of its own, and
    # two browsers' media on two cores would make the timings of the
    # re-registration test depend on the other file.
    node = ["node", "--test", "--test-concurrency=1", "--test-reporter=spec"] + files
    namespace = namespace_works()
    if namespace:
        cmd = namespace + [sys.executable, os.path.abspath(__file__), "--in-namespace"] + node
    else:
        say("no network namespace here (unshare --net refused): running in the host's; "
            "WebRTC may use other interfaces than loopback")
        cmd = node
    return subprocess.run(cmd, env=env, cwd=HERE).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
