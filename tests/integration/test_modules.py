"""
test_modules.py - loading modules: Module_Path, stanzas, options, API version, generations

The modules are tests/modules/*.c, built by CMake against include/impetus/
only. test_loader writes "init <instance> <options>" and "fini <instance>"
to its journal file, which is how these tests see which instances of which
configuration generation started and ended.
"""

import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def api_version():
    """api_version - (major, minor) of include/impetus/module.h, which impetusd reports."""
    src = os.environ.get("IMPETUS_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
    with open(os.path.join(src, "include", "impetus", "module.h")) as f:
        text = f.read()
    return (int(re.search(r"#define IMP_API_MAJOR (\d+)", text).group(1)),
            int(re.search(r"#define IMP_API_MINOR (\d+)", text).group(1)))


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
            ('test_loader "a" { journal = %s Binding "x" { } }' % j,
             'unknown sub-stanza "Binding" for module test_loader (it takes: domain "name" { },'
             ' defaults { })'),
            # sub-stanzas (API 1.1)
            ('test_loader "a" { journal = %s domian "x" { weight = 1 } }' % j,
             'unknown sub-stanza "domian" for module test_loader (it takes: domain "name" { },'
             ' defaults { })'),
            ('test_loader "a" { journal = %s domain { weight = 1 } }' % j,
             'sub-stanza domain of module test_loader needs a name: domain "name" { ... }'),
            ('test_loader "a" { journal = %s defaults "x" { } }' % j,
             "sub-stanza defaults of module test_loader takes no name: write defaults { ... }"),
            ('test_loader "a" { journal = %s domain "x" { } }' % j,
             'sub-stanza domain of module test_loader needs option "weight"'),
            ('test_loader "a" { journal = %s domain "x" { weight = 11 } }' % j,
             "value 11 out of range for weight (1..10)"),
            ('test_loader "a" { journal = %s domain "x" { weight = 1 count = 2 } }' % j,
             'unknown option "count" for sub-stanza domain of module test_loader (it takes: weight'
             ' tags strict)'),
            ('test_loader "a" { journal = %s domain "x" { weight = 1 strict = maybe } }' % j,
             '"maybe" is not a valid boolean for strict'),
            ('test_loader "a" { journal = %s defaults { wait = 2h } }' % j,
             "value 2h out of range for wait (0..3600)"),
            ('test_loader "a" { journal = %s domain "x" { weight = 1 weight = 2 } }' % j,
             'duplicate option "weight"'),
            ('test_loader "a" { journal = %s domain "x" { weight = 1 } domain "x" { weight = 2 } }' % j,
             'duplicate sub-stanza domain "x" in test_loader'),
            ('test_loader "a" { journal = %s domain "x" { weight = 1 deeper { } } }' % j,
             'stanza "deeper" inside sub-stanza "domain" of test_loader: module stanzas nest one'
             ' level deep only'),
            ('test_api10 "a" { journal = %s opts { } }' % j,
             'module test_api10 takes no sub-stanzas ("opts" is one); it was built for module API 1.0'),
            # A Momentum scope impetus lacks, holding a stanza: the loader names it.
            ('Cluster_Listener { Listen "/tmp/x.sock" { } }',
             'unknown scope or module "Cluster_Listener": no cluster_listener.so in Module_Path'),
            ('Momentum_Thing { Something "x" { a = 1 } }',
             'unknown scope or module "Momentum_Thing": no momentum_thing.so in Module_Path'),
            ('no_such_module "x" { }', 'no no_such_module.so in Module_Path (/nonexistent '),
            ('test_not_a_module { }', "is not an impetus module"),
        ]
        for text, frag in cases:
            with self.subTest(text=text):
                err = self.expect_error(text, frag)
                # file:line:col: at the start of the message
                self.assertRegex(err, r"impetus\.conf:\d+:\d+: ")

    def test_refuses_other_api_version(self):
        err = self.expect_error("test_future_api { }", "API 99.0", "API %d.%d" % api_version())
        self.assertIn("test_future_api.so", err)

    def test_check_locations_exact(self):
        # The error points at the item at fault: line and column.
        j = '"/dev/null"'
        err = self.expect_error('test_loader "a" {\n  journal = %s\n  domain "x" {\n'
                                '    weight = 12\n  }\n}' % j, "out of range for weight")
        line = self.conf_line_of(err, '  domain "x"') + 1
        self.assertIn("impetus.conf:%d:14: value 12 out of range for weight" % line, err)
        err = self.expect_error('test_loader "a" {\n  journal = %s\n  domain "x" {\n'
                                '    weight = 1\n  }\n  domain {\n  }\n}' % j, "needs a name")
        line = self.conf_line_of(err, "  domain {")
        self.assertIn("impetus.conf:%d:3: sub-stanza domain" % line, err)

    def conf_line_of(self, err, text):
        path = err.split(":")[0]
        with open(path) as f:
            for n, l in enumerate(f.read().splitlines(), 1):
                if l.startswith(text):
                    return n
        self.fail("%r not in %s" % (text, path))

    # -- start-up and generations ---------------------------------------------

    def test_substanzas_reach_init(self):
        self.make(lambda: self.stanza(
            "one", 'count = 5 domain "example.com" { weight = 3 tags = ( x "y z" ) strict = yes }'
            ' Defaults { wait = 5m limit = 1M } domain "b.example" { weight = 10 }'
            ' domain "B.example" { weight = 1 strict = false }') + "\n" + self.stanza("two"))
        with open(self.journal) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines, [
            "init one count=5 wait=120 limit=1024 debug=0 words=a,b count_set=1"
            " domain=example.com:3:x,y z:1:1 domain=b.example:10:t:0:0 domain=B.example:1:t:0:1"
            " defaults=300:1048576",
            "init two count=7 wait=120 limit=1024 debug=0 words=a,b count_set=0"])

    def test_api10_module_loads(self):
        self.make(lambda: 'test_api10 "old" { journal = "%s" tag = "v1" }\n' %
                  os.path.join(self.tmp_journal_dir, "journal") + self.stanza("new", 'defaults { }'))
        with open(self.journal) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines, ["init10 old v1",
                                 "init new count=7 wait=120 limit=1024 debug=0 words=a,b count_set=0"
                                 " defaults=60:2048"])

    def test_accessor_misuse_aborts(self):
        for misuse, frag in (("name", 'BUG: sub-stanza "no_such_substanza" is not in its sub-stanza table'),
                             ("index", 'BUG: sub-stanza "domain" asked for past its count'),
                             ("type", 'BUG: option "weight" of sub-stanza domain asked for with the wrong type')):
            with self.subTest(misuse=misuse):
                d = self.make(lambda: self.stanza("m", 'misuse = %s domain "x" { weight = 1 }' % misuse),
                              start=False)
                with self.assertRaises(AssertionError):
                    d.start()
                d.proc = None
                self.assertNotEqual(d.returncode, 0)
                self.assertIn("module test_loader: " + frag, "\n".join(d.paniclog()))

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
