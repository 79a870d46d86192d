"""The README's worked example of the portal API (between the markers
<!-- portal example --> and <!-- /portal example -->), run as it is written
with bash and curl against a real wwsfd that has the demo's acme
subscription (pool-config/portal-acme.ini) and the personal-information hook
with WWSF_HOOK_POOL_PREFIX=acme-, as scripts/demo has them. Only the first
three lines (where wwsfd is, its store, curl's trust) are pointed at the
test's daemon; the example's wwsfctl path resolves inside a scratch
directory that links it to the build's."""

import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import wwsf_testlib as t  # noqa: E402
import wwsfd_fixture as f  # noqa: E402

README = os.path.join(t.SOURCE_ROOT, "README.md")


def example():
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    m = re.search(r"<!-- portal example -->\s*```sh\n(.*?)```\s*<!-- /portal example -->", text, re.S)
    if not m:
        raise AssertionError("README.md has no portal example between its markers")
    return m.group(1)


class ReadmeExample(f.WwsfdTestCase):
    def test_the_example_runs_as_written(self):
        if not shutil.which("curl"):
            self.fail("curl is not installed (scripts/install-deps installs it)")
        with open(os.path.join(t.POOL_CONFIG_DIR, "portal-acme.ini")) as fh:
            pools = fh.read().splitlines()
        s = self.start_server(pools=pools, hook=f.PERSONAL_INFO, env={"WWSF_HOOK_POOL_PREFIX": "acme-"},
                              anon_pool="acme-visitors")
        script = example()
        settings = {
            "WWSF": "https://localhost:%d" % s.port,
            "DB": s.db,
            "CURL": "curl -sS --fail-with-body --cacert %s" % s.cert,
        }
        lines = script.splitlines()
        for i, name in enumerate(("WWSF", "DB", "CURL")):
            self.assertTrue(lines[i].startswith(name + "="), "the example's line %d sets %s: %r" % (i + 1, name, lines[i]))
            lines[i] = "%s=%s" % (name, json.dumps(settings[name]))
        scratch = self.path("readme")
        os.makedirs(os.path.join(scratch, "build", "src", "wwsfctl"))
        os.symlink(f.WWSFCTL, os.path.join(scratch, "build", "src", "wwsfctl", "wwsfctl"))
        for attempt in ("first run: portal add", "second run: portal rotate"):
            with self.subTest(attempt):
                p = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], cwd=scratch,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8", timeout=120)
                self.assertEqual(p.returncode, 0, "the example failed:\n--- stdout:\n%s--- stderr:\n%s\n%s"
                                 % (p.stdout, p.stderr, s.log_text()[-3000:]))
                out = p.stdout
                self.assertIn('"name":"acme-web"', out)
                # The visitor's token carries an IMPU of the new pool, and the
                # portal sees its lease.
                m = re.search(r'"impu":"(sip:shop-[123]@ims\.example\.com)"', out)
                self.assertTrue(m, out)
                self.assertIn('"state":"leased"', out)
                self.assertRegex(out, r'"leased":[12],')
                # The key was printed once, to the example's variable only.
                self.assertNotIn("wwsfk_", out)
        self.assertNotIn("wwsfk_", s.log_text())


if __name__ == "__main__":
    f.main()
