"""
test_module_bounce_override.py - the bounce_override module (modules/bounce_override)

A daemon relays a.test and b.test to one sink, whose replies are scripted
by the recipient's local part:

  user-*    550 5.1.1 <addr>: No Such User here   (built-in rules: 10 Invalid Recipient)
  custom-*  550 5.7.1 refused by the custom filter (built-in rules: 50 Mail Block)
  plain-*   550 5.1.1 mailbox unavailable         (built-in: 10; no override matches)

bounce_override "ovr" reads a rules file mapping "no such user" to 51 (Spam
Block; matched case-insensitively) and "custom filter" to 120, a class the
`classes` option declares as "Custom", for a.test only (`domains`). The
bouncelog's class field shows the decision; json_log, loaded alongside,
shows the registered name of 120. Then the errors that refuse start-up,
each naming the file and line.
"""

import json
import os
import time

import harness
from harness import DaemonTestCase, main, make_message
from deliverykit import inject, wait_records, wait_until
from sink import Sink

HOSTNAME = "mx.test.example"

RULES = """\
# class  regex (POSIX extended, case-insensitive by default)
51  no such user
120 custom[[:space:]]+filter
"""


def reply_for(addr):
    local = addr.split("@", 1)[0]
    if local.startswith("user-"):
        return "550 5.1.1 <%s>: No Such User here" % addr
    if local.startswith("custom-"):
        return "550 5.7.1 refused by the custom filter"
    if local.startswith("plain-"):
        return "550 5.1.1 mailbox unavailable"
    return "250 2.1.5 OK"


def modules_line():
    return 'Module_Path = ( "%s" )' % harness.modules_dir()


class BounceOverrideTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.sink = Sink(rcpt_reply=reply_for)
        cls.sink.start()
        cls.d = None
        try:
            cls.d = harness.Daemon(hostname=HOSTNAME, relay_domains=("a.test", "b.test"),
                                   hold_delivery=False, start=False)
            rules = os.path.join(cls.d.tmp, "overrides")
            with open(rules, "w") as f:
                f.write(RULES)
            cls.json_path = os.path.join(cls.d.tmp, "events.jsonl")
            route = 'Routes = ( "smtp://127.0.0.1:%d" )' % cls.sink.port
            cls.d.global_text = "\n".join([
                'Gateway = "127.0.0.1:%d"' % cls.d.dead_port,
                'Domain "a.test" { %s }' % route,
                'Domain "b.test" { %s }' % route,
                modules_line(),
                'bounce_override "ovr" { file = "%s" classes = ( "120 Custom: refused by '
                'our own filter" ) domains = ( "A.test" ) debug_level = 2 }' % rules,
                'json_log { path = "%s" types = "B" }' % cls.json_path,
            ])
            cls.d.write_config()
            cls.d.start()
        except BaseException:
            cls.sink.stop()
            if cls.d:
                cls.d.cleanup(check=False)
                cls.d = None
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.sink.stop()

    def bounce_class(self, rcpt):
        """bounce_class - the class field of rcpt's bouncelog line."""
        m = "bo%d" % (time.time_ns() % 10**9)
        mid = inject(self.d, "s@client.test", [rcpt % m], make_message(marker=m))
        recs = wait_records(self.d, "B", mid, count=1)
        return int(recs[0]["cls"]), rcpt % m

    def json_event(self, rcpt):
        def find():
            try:
                with open(self.json_path) as f:
                    evs = [json.loads(l) for l in f if l.strip()]
            except FileNotFoundError:
                return None
            return [e for e in evs if e["recipient"] == rcpt]
        return wait_until(find, what="the B event of %s in the JSON log" % rcpt)[0]

    def test_override_beats_builtin(self):
        """built-in rules say 10 (5.1.1); the override file says 51"""
        cls, rcpt = self.bounce_class("user-%s@a.test")
        self.assertEqual(cls, 51)
        ev = self.json_event(rcpt)
        self.assertEqual((ev["bounce_class"], ev["bounce_class_name"]), (51, "Spam Block"))
        panic = "\n".join(self.d.paniclog())
        self.assertRegex(panic, r'bounce_override\[ovr\]: class=51 rule=\S+overrides:2 '
                         r'domain=a\.test code=550')

    def test_new_class_is_named(self):
        """a class the module declares (120 Custom) is the bouncelog's class, with its name"""
        cls, rcpt = self.bounce_class("custom-%s@a.test")
        self.assertEqual(cls, 120)
        ev = self.json_event(rcpt)
        self.assertEqual((ev["bounce_class"], ev["bounce_class_name"]), (120, "Custom"))

    def test_no_match_keeps_builtin(self):
        """a reply no expression matches is classified by the built-in rules"""
        cls, _ = self.bounce_class("plain-%s@a.test")
        self.assertEqual(cls, 10)

    def test_other_domain_untouched(self):
        """domains = ( "A.test" ): b.test keeps the built-in classes"""
        self.assertEqual(self.bounce_class("user-%s@b.test")[0], 10)
        self.assertEqual(self.bounce_class("custom-%s@b.test")[0], 50)


class BounceOverrideErrorsTest(DaemonTestCase):
    """Errors found at start-up: the generation is refused with file and line."""

    def refused(self, rules, extra="", fragments=()):
        d = self.new_daemon(start=False)
        path = os.path.join(d.tmp, "rules")
        with open(path, "wb") as f:
            f.write(rules)
        d.global_text = modules_line() + '\nbounce_override "x" { file = "%s" %s }' % (path,
                                                                                     extra)
        d.write_config()
        with self.assertRaises(AssertionError) as cm:
            d.start()
        d.proc = None
        msg = str(cm.exception)
        self.assertIn('module bounce_override "x": init failed: ', msg)
        for f in fragments:
            self.assertIn(f.replace("PATH", path), msg)
        return msg

    def test_errors(self):
        cases = [
            (b"# ok\n51 fine\n52 bad(regex\n", "", ["PATH: line 3: bad regular expression"]),
            (b"51\n", "", ["PATH: line 1: expected white space after the class code"]),
            (b"x51 abc\n", "", ["PATH: line 1: expected a class code"]),
            (b"51 a{300}\n", "", ["PATH: line 1: repetition bound above 255"]),
            (b"51 ab\x00c\n", "", ["PATH: line 1: NUL byte"]),
            (b"51 u++++z\n", "", ["PATH: line 1: a quantifier right after another"]),
            (b"\n\n130 abc\n", "", ["PATH:3: class 130 is neither built in nor declared"]),
            (b"51 abc\n", 'classes = ( "10 Mine" )',
             ['classes: class 10 "Mine": the code is taken by "Invalid Recipient"']),
            (b"51 abc\n", 'classes = ( "abc" )', ['classes "abc": expected a class code']),
            (b"51 abc\n", 'classes_file = "/nonexistent/classes"',
             ["cannot open /nonexistent/classes"]),
        ]
        for rules, extra, frags in cases:
            with self.subTest(rules=rules, extra=extra):
                self.refused(rules, extra, frags)

    def test_missing_file(self):
        d = self.new_daemon(start=False)
        d.global_text = modules_line() + '\nbounce_override "x" { file = "%s/nope" }' % d.tmp
        d.write_config()
        with self.assertRaises(AssertionError) as cm:
            d.start()
        d.proc = None
        self.assertIn("cannot open %s/nope: No such file or directory" % d.tmp,
                      str(cm.exception))

    def test_classes_file(self):
        """classes_file declares classes; its errors name its line"""
        d = self.new_daemon(start=False)
        classes = os.path.join(d.tmp, "classes")
        rules = os.path.join(d.tmp, "rules")
        with open(classes, "w") as f:
            f.write("# code name: description\n121 Other: another one\n122\n")
        with open(rules, "w") as f:
            f.write("121 other\n")
        d.global_text = modules_line() + (
            '\nbounce_override "x" { file = "%s" classes_file = "%s" }' % (rules, classes))
        d.write_config()
        with self.assertRaises(AssertionError) as cm:
            d.start()
        d.proc = None
        self.assertIn("%s: line 3: expected white space and a name after class 122" % classes,
                      str(cm.exception))
        with open(classes, "w") as f:
            f.write("121 Other: another one\n")
        d.start()
        d.stop()


if __name__ == "__main__":
    main()
