"""
test_out_of_tree.py - a module built from the installed headers alone

What a newcomer does with docs/api.md ("Your first module"): install
impetus (`cmake --install`), copy one example module's source into an
empty directory, build it with `cc` and `pkg-config --cflags --libs
impetus` only, and load it into a daemon. The test then checks the
module's effect end to end: header_stamp's header arrives at a real SMTP
receiver. Nothing of the source tree is on the compiler's include path.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import deliverykit  # noqa: E402
from sink import Sink  # noqa: E402

EXAMPLE = "header_stamp"


def build_dir():
    d = os.environ.get("IMPETUS_BUILD_DIR")
    if not d:
        d = os.path.dirname(harness.impetusd_path())
    return d


class OutOfTree(harness.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.work = tempfile.mkdtemp(prefix="impetus-oot-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def run_ok(self, argv, **kw):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)
        self.assertEqual(r.returncode, 0, "%s failed:\n%s\n%s" % (" ".join(argv), r.stdout, r.stderr))
        return r.stdout

    def test_build_and_load(self):
        src = os.path.join(harness.SOURCE_DIR, "modules", EXAMPLE, EXAMPLE + ".c")
        if not os.path.exists(src):
            harness.missing_feature("example module %s is not in the tree" % src)
        prefix = os.path.join(self.work, "prefix")
        self.run_ok(["cmake", "--install", build_dir(), "--prefix", prefix])
        pcs = glob.glob(os.path.join(prefix, "**", "pkgconfig", "impetus.pc"), recursive=True)
        self.assertEqual(len(pcs), 1, "impetus.pc installed once under %s" % prefix)
        headers = sorted(os.listdir(os.path.join(prefix, "include", "impetus")))
        self.assertIn("impetus.h", headers)
        for h in headers:
            self.assertTrue(h.endswith(".h"), "only headers under include/impetus: %s" % h)

        # A fresh directory with nothing but the module's source.
        mod_dir = os.path.join(self.work, "mymodule")
        os.mkdir(mod_dir)
        shutil.copy(src, mod_dir)
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]))
        flags = self.run_ok(["pkg-config", "--cflags", "--libs", "impetus"], env=env).split()
        self.assertTrue(any(f.startswith("-I" + prefix) for f in flags), flags)
        self.assertFalse(any(harness.SOURCE_DIR in f for f in flags), flags)
        api = self.run_ok(["pkg-config", "--variable=api_major", "impetus"], env=env).strip()
        self.assertEqual(api, "1")
        self.run_ok(["cc", "-std=c17", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                     "-fvisibility=hidden", "-o", EXAMPLE + ".so", EXAMPLE + ".c"] + flags,
                    cwd=mod_dir)

        with Sink() as sink:
            d = self.new_daemon(start=False, hold_delivery=False, global_text="\n".join([
                'Module_Path = ( "%s" )' % mod_dir,
                '%s "oot" { header = "X-Out-Of-Tree" value = "built by hand" }' % EXAMPLE,
                'Domain "example.com" { Routes = ( "smtp://127.0.0.1:%d" ) }' % sink.port,
            ]))
            d.start()
            deliverykit.inject(d, "a@sender.test", ["b@example.com"],
                               harness.make_message(subject="oot"))
            sink.wait_for(1)
            body = sink.messages()[0].body
            self.assertIn(b"X-Out-Of-Tree: built by hand\r\n", body)
            d.stop()


if __name__ == "__main__":
    unittest.main()
