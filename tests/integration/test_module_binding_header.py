"""
test_module_binding_header.py - modules/binding_header against the real daemon

binding_header (a singleton set_binding subscriber) sends a message from
the Binding its X-Binding header names (docs/modules/binding_header.md).
The configuration has two bindings, each with a binding::domain stanza
that routes the test domain to a sink of its own, and a top-level Domain
routing it to a third sink, which the default binding uses. So where a
message arrives says which binding it left from; the mainlog's D line
names it too. Checked: the header's binding wins (names without regard
to case), the header is stripped (or kept with strip = false), an
unknown name is logged and ignored, a message without the header keeps
the default binding.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import inject, wait_records  # noqa: E402
from sink import Sink  # noqa: E402

DOMAIN = "bind.test"


class BindingHeader(harness.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.sinks = {}
        for name in ("default", "b1", "b2"):
            s = Sink()
            s.__enter__()
            self.addCleanup(s.__exit__, None, None, None)
            self.sinks[name] = s

    def daemon(self, stanza="binding_header { }", assign=None):
        route = 'Domain "%s" { Routes = ( "smtp://127.0.0.1:%d" ) }'
        top = route % (DOMAIN, self.sinks["default"].port)
        if assign:
            top = top[:-1] + 'Assign_Binding = "%s" }' % assign
        g = "\n".join([
            'Module_Path = ( "%s" )' % harness.modules_dir(),
            stanza,
            top,
            'Binding "b1" { %s }' % (route % (DOMAIN, self.sinks["b1"].port)),
            'Binding "b2" { %s }' % (route % (DOMAIN, self.sinks["b2"].port)),
        ])
        return self.new_daemon(relay_hosts=("127.0.0.0/8",), hold_delivery=False, global_text=g)

    def send(self, d, marker, headers=()):
        msg = "".join("%s\r\n" % h for h in headers)
        msg += "From: a@client.test\r\nSubject: %s\r\n\r\nbody %s\r\n" % (marker, marker)
        mid = inject(d, "a@client.test", ["r@" + DOMAIN], msg.encode())
        rec = wait_records(d, "D", mid)[0]
        return mid, rec

    def arrived_at(self, marker):
        where = {n: s.with_marker("body " + marker) for n, s in self.sinks.items()}
        hits = [(n, t) for n, ts in where.items() for t in ts]
        self.assertEqual(len(hits), 1, "message %s arrived at %r" %
                         (marker, {n: len(ts) for n, ts in where.items()}))
        return hits[0]

    def test_header_chooses_binding_and_is_stripped(self):
        d = self.daemon()
        cases = [
            ("m1", ["X-Binding: b1"], "b1"),
            ("m2", ["X-Binding:   B2  "], "b2"),		# case and white space
            ("m3", [], "default"),			# no header
            ("m4", ["x-binding: b2", "X-Binding: b1"], "b2"),	# the first field wins
        ]
        for marker, headers, want in cases:
            with self.subTest(marker=marker):
                mid, rec = self.send(d, marker, headers)
                sink, txn = self.arrived_at(marker)
                self.assertEqual(sink, want)
                self.assertEqual(rec["binding"].lower(), want, rec["raw"])
                self.assertNotIn(b"x-binding", txn.body.lower(),
                                 "the header reached the next hop")

    def test_unknown_binding_logged_and_ignored(self):
        d = self.daemon()
        mid, rec = self.send(d, "u1", ["X-Binding: nosuch"])
        sink, txn = self.arrived_at("u1")
        self.assertEqual(sink, "default")
        self.assertEqual(rec["binding"], "default", rec["raw"])
        self.assertNotIn(b"x-binding", txn.body.lower())
        lines = d.wait_log("paniclog", "names no configured Binding")
        self.assertIn("binding_header", lines[0])
        self.assertIn(mid, lines[0])
        self.assertIn("nosuch", lines[0])

    def test_header_wins_over_assign_binding(self):
        # Assign_Binding (the built-in set_binding subscriber) places mail
        # for the domain on b2; the header's choice ends the phase before it.
        d = self.daemon(assign="b2")
        for marker, headers, want in [("a1", ["X-Binding: b1"], "b1"),
                                      ("a2", [], "b2"),
                                      ("a3", ["X-Binding: nosuch"], "b2")]:
            with self.subTest(marker=marker):
                _, rec = self.send(d, marker, headers)
                sink, txn = self.arrived_at(marker)
                self.assertEqual(sink, want)
                self.assertEqual(rec["binding"].lower(), want, rec["raw"])
                self.assertNotIn(b"x-binding", txn.body.lower())

    def test_strip_false_and_other_header(self):
        d = self.daemon('binding_header { header = "X-Route-Via" strip = false }')
        _, rec = self.send(d, "k1", ["X-Route-Via: b1", "X-Binding: b2"])
        sink, txn = self.arrived_at("k1")
        self.assertEqual(sink, "b1")
        self.assertEqual(rec["binding"], "b1", rec["raw"])
        self.assertIn(b"X-Route-Via: b1\r\n", txn.body)
        self.assertIn(b"X-Binding: b2\r\n", txn.body)	# not the configured header: untouched

    def test_singleton_and_bad_header_option(self):
        d = self.new_daemon(start=False, global_text='Module_Path = ( "%s" )\n'
                            'binding_header "named" { }' % harness.modules_dir())
        import subprocess
        r = subprocess.run([harness.impetusd_path(), "-t", "-c", d.conf_path],
                           capture_output=True, timeout=60)
        self.assertNotEqual(r.returncode, 0, "a named instance of a singleton was accepted")
        self.assertRegex(r.stderr.decode(errors="replace"), r"impetus\.conf:\d+:\d+: ")

        d = self.new_daemon(start=False, global_text='Module_Path = ( "%s" )\n'
                            'binding_header { header = "X Binding" }' % harness.modules_dir())
        with self.assertRaises(AssertionError) as cm:
            d.start()
        self.assertIn("is not a header field name", str(cm.exception))
        d.proc = None


if __name__ == "__main__":
    unittest.main()
