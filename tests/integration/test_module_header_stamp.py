"""
test_module_header_stamp.py - modules/header_stamp against the real daemon

header_stamp adds a configured header, its value expanded with macros, to
every message in the data_spool phase (docs/modules/header_stamp.md). The
tests relay messages through impetusd to tests/integration/sink.py and
look at the bytes the receiver got: the field is there, with the message
id and the client's IP filled in, at the configured end of the header
block, once per instance in configuration order; a bad instance stops the
daemon at start-up with the module's reason.
"""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import inject, wait_records  # noqa: E402
from sink import Sink  # noqa: E402

DOMAIN = "stamp.test"


def header_block(body):
    """header_block - the header lines (unfolded) of a message's bytes, in order."""
    head = body.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += " " + line.strip()
        else:
            fields.append(line)
    return fields


class HeaderStamp(harness.DaemonTestCase):

    def daemon(self, sink, stanzas, start=True):
        d = self.new_daemon(
            start=False, relay_hosts=("127.0.0.0/8",), hold_delivery=False,
            global_text='Module_Path = ( "%s" )\n%s\nDomain "%s" { Routes = ( "smtp://127.0.0.1:%d" ) }'
                        % (harness.modules_dir(), stanzas, DOMAIN, sink.port))
        if start:
            d.start()
        return d

    def relay(self, d, sink, subject, count=1):
        msg = (b"From: a@client.test\r\nTo: b@stamp.test\r\nSubject: " + subject.encode() +
               b"\r\n\r\nbody of " + subject.encode() + b"\r\n")
        mid = inject(d, "a@client.test", ["b@" + DOMAIN], msg)
        wait_records(d, "D", mid)
        got = [t for t in sink.messages() if b"body of " + subject.encode() in t.body]
        self.assertEqual(len(got), 1, "the sink got %d copies of %s" % (len(got), subject))
        return mid, header_block(got[0].body)

    def test_append_with_macros(self):
        with Sink() as sink:
            d = self.daemon(sink, 'header_stamp "via" { header = "X-Stamp" '
                                  'value = "%{msg:id} from %{conn:ip} %{nosuch:macro}end" }')
            mid, fields = self.relay(d, sink, "macros")
            stamps = [f for f in fields if f.lower().startswith("x-stamp:")]
            self.assertEqual(stamps, ["X-Stamp: %s from 127.0.0.1 end" % mid], fields)
            # append: the last field of the header block, after the client's own.
            self.assertEqual(fields[-1], stamps[0], fields)
            self.assertLess(fields.index("Subject: macros"), fields.index(stamps[0]))

    def test_prepend_and_instances_in_order(self):
        with Sink() as sink:
            d = self.daemon(sink, "\n".join([
                'header_stamp "one" { header = "X-First" value = "1" }',
                'header_stamp "top" { header = "X-Top" value = "%{conn:helo}" position = prepend }',
                'header_stamp "two" { header = "X-Second" value = "2" }',
                'header_stamp "off" { header = "X-Off" value = "never" enabled = false }',
            ]))
            _, fields = self.relay(d, sink, "order")
            names = [f.split(":", 1)[0] for f in fields]
            # prepend puts the field above every field the client wrote.
            self.assertIn("X-Top: client.test", fields)
            self.assertLess(names.index("X-Top"), names.index("From"), fields)
            # the appended ones in configuration order, at the end.
            self.assertEqual(names[-2:], ["X-First", "X-Second"], fields)
            self.assertNotIn("X-Off", names)
            for n in ("X-First", "X-Top", "X-Second"):
                self.assertEqual(names.count(n), 1, fields)

    def test_every_message_gets_its_own_value(self):
        with Sink() as sink:
            d = self.daemon(sink, 'header_stamp "id" { header = "X-Id" value = "%{msg:id}" }')
            ids = []
            for i in range(3):
                mid, fields = self.relay(d, sink, "msg%d" % i)
                self.assertIn("X-Id: %s" % mid, fields)
                ids.append(mid)
            self.assertEqual(len(set(ids)), 3)

    def test_bad_instances_stop_startup(self):
        cases = [
            ('header_stamp "a" { header = "X Bad" value = "v" }', 'is not a header field name'),
            ('header_stamp "a" { header = "X-Ok:" value = "v" }', 'is not a header field name'),
            ('header_stamp "a" { header = "X-Ok" value = "v" position = middle }',
             'position "middle": expected append or prepend'),
            ('header_stamp "a" { header = "X-Ok" value = "%{msg:id" }', 'bad macro syntax'),
        ]
        with Sink() as sink:
            for stanza, why in cases:
                with self.subTest(stanza=stanza):
                    d = self.daemon(sink, stanza, start=False)
                    with self.assertRaises(AssertionError) as cm:
                        d.start()
                    self.assertIn('module header_stamp "a": init failed: ', str(cm.exception))
                    self.assertIn(why, str(cm.exception))
                    d.proc = None

    def test_check_required_options(self):
        with Sink() as sink:
            d = self.daemon(sink, 'header_stamp "a" { header = "X-Ok" }', start=False)
            r = subprocess.run([harness.impetusd_path(), "-t", "-c", d.conf_path],
                               capture_output=True, timeout=60)
            self.assertNotEqual(r.returncode, 0)
            err = r.stderr.decode(errors="replace")
            self.assertIn('needs option "value"', err)
            self.assertRegex(err, r"impetus\.conf:\d+:\d+: ")


if __name__ == "__main__":
    unittest.main()
