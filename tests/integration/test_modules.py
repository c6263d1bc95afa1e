"""
test_modules.py - loading modules: Module_Path, stanzas, options, API version, generations

The modules are tests/modules/*.c, built by CMake against include/impetus/
only. test_loader writes "init <instance> <options>" and "fini <instance>"
to its journal file, which is how these tests see which instances of which
configuration generation started and ended.
"""

import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def check(path):
    return subprocess.run([harness.impetusd_path(), "-t", "-c", path], capture_output=True,
                          timeout=60)


class Modules(harness.DaemonTestCase):

    def daemon_with(self, stanzas, start=True):
        mods = harness.modules_dir()
        d = self.new_daemon(start=False,
                            global_text='Module_Path = ( "/nonexistent" "%s" )\n%s' % (mods, stanzas))
        self.journal = os.path.join(d.tmp, "journal")
        if start:
            d.start()
        return d

    def journal_lines(self):
        try:
            with open(self.journal) as f:
                return [l.split(" count")[0] for l in f.read().splitlines()]
        except FileNotFoundError:
            return []

    def wait_journal(self, want, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.journal_lines() == want:
                return
            time.sleep(0.05)
        self.assertEqual(self.journal_lines(), want)

    def stanza(self, inst, extra=""):
        j = os.path.join(self.tmp_journal_dir, "journal")
        return 'test_loader "%s" { journal = "%s" %s }' % (inst, j, extra)

    def setUp(self):
        super().setUp()
        self.tmp_journal_dir = None

    def make(self, stanza_fn, start=True):
        # The journal lives in the daemon's own directory, known once it exists.
        d = self.daemon_with("", start=False)
        self.tmp_journal_dir = d.tmp
        d.global_text = 'Module_Path = ( "/nonexistent" "%s" )\n%s' % (harness.modules_dir(),
                                                                     stanza_fn())
        d.write_config()
        if start:
            d.start()
        return d

    # -- impetusd -t --------------------------------------------------------

    def expect_error(self, stanza_text, *fragments):
        d = self.make(lambda: stanza_text, start=False)
        r = check(d.conf_path)
        err = r.stderr.decode(errors="replace")
        self.assertNotEqual(r.returncode, 0, "impetusd -t accepted:\n%s" % d.config())
        for f in fragments:
            self.assertIn(f, err)
        self.assertIn(os.path.basename(d.conf_path) if False else d.conf_path, err)
        return err

    def test_check_good(self):
        d = self.make(lambda: self.stanza("one", "count = 5 words = ( x y )"), start=False)
        r = check(d.conf_path)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertEqual(self.journal_lines(), [], "-t must not run init")

    def test_check_errors_have_locations(self):
        j = '"/dev/null"'
        cases = [
            ('test_loader "a" { journal = %s count = 500 }' % j, "out of range for count (1..100)"),
            ('test_loader "a" { journal = %s cnt = 1 }' % j, 'unknown option "cnt" for module test_loader'),
            ('test_loader "a" { journal = %s fail_init = maybe }' % j, '"maybe" is not a valid boolean'),
            ('test_loader "a" { journal = %s count = ( 1 2 ) }' % j, "takes a single value"),
            ('test_loader "a" { journal = %s debug_level = 12 }' % j, "debug_level takes a number"),
            ('test_loader "a" { }', 'needs option "journal"'),
            ('test_loader "a" { journal = %s journal = %s }' % (j, j), 'duplicate option "journal"'),
            ('test_loader "a" { journal = %s }\ntest_loader "a" { journal = %s }' % (j, j),
             "duplicate stanza"),
            ('test_loader "a" { journal = %s Domain "x" { } }' % j, "those hold options only"),
            ('no_such_module "x" { }', 'no no_such_module.so in Module_Path (/nonexistent '),
            ('test_not_a_module { }', "is not an impetus module"),
        ]
        for text, frag in cases:
            with self.subTest(text=text):
                err = self.expect_error(text, frag)
                # file:line:col: at the start of the message
                self.assertRegex(err, r"impetus\.conf:\d+:\d+: ")

    def test_refuses_other_api_version(self):
        err = self.expect_error("test_future_api { }", "API 99.0", "API 1.0")
        self.assertIn("test_future_api.so", err)

    # -- start-up and generations ---------------------------------------------

    def test_init_and_fini(self):
        d = self.make(lambda: self.stanza("one", "count = 5 debug_level = 2") + "\n" +
                      self.stanza("two") + "\n" + self.stanza("off", "enabled = false"))
        with open(self.journal) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines, ["init one count=5 wait=120 limit=1024 debug=2 words=a,b count_set=1",
                                 "init two count=7 wait=120 limit=1024 debug=0 words=a,b count_set=0"])
        d.stop()
        self.assertEqual(self.journal_lines(), ["init one", "init two", "fini two", "fini one"])

    def test_init_failure_stops_startup(self):
        d = self.make(lambda: self.stanza("one") + "\n" + self.stanza("bad", "fail_init = true"),
                      start=False)
        with self.assertRaises(AssertionError) as cm:
            d.start()
        self.assertIn('module test_loader "bad": init failed: told to fail', str(cm.exception))
        self.assertNotEqual(d.returncode, 0)
        d.proc = None	# it exited as it should: nothing to stop at teardown
        # The instance that did start was finalised again.
        self.assertEqual(self.journal_lines(), ["init one", "fini one"])

    def test_reload_new_generation_and_failed_reload(self):
        d = self.make(lambda: self.stanza("one"))
        self.wait_journal(["init one"])
        # A reload that fails keeps the running generation: nothing of it ends.
        d.global_text += "\n" + self.stanza("bad", "fail_init = true")
        d.write_config()
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reload failed" not in "\n".join(d.paniclog()) and time.monotonic() < deadline:
            time.sleep(0.05)
        panic = "\n".join(d.paniclog())
        self.assertIn('reload failed, keeping the running configuration: ', panic)
        self.assertIn('init failed: told to fail', panic)
        # The new generation's "one" started and was finalised; the old one runs on.
        self.wait_journal(["init one", "init one", "fini one"])
        # A good reload: the new generation starts, then the old one ends.
        d.global_text = d.global_text.replace(self.stanza("bad", "fail_init = true"),
                                              self.stanza("three"))
        d.write_config()
        d.signal(signal.SIGHUP)
        self.wait_journal(["init one", "init one", "fini one", "init one", "init three", "fini one"])
        with harness.RawClient(d.port) as c:
            self.assertEqual(c.cmd("EHLO x").code, 250)
        d.stop()
        self.assertEqual(self.journal_lines()[-2:], ["fini three", "fini one"])


if __name__ == "__main__":
    unittest.main()
