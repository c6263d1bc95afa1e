"""
test_validate.py - the inbound validation phases against the real daemon

The module is tests/modules/test_validate.c (built by CMake, loaded from
Module_Path): each phase acts on a word in its subject ("rcptto-reject"
in a recipient, "ehlo-tempfail" in the EHLO name...), so one daemon
serves most cases. What is checked comes from include/impetus/hooks.h
and docs/api.md ("Inbound validation"): the replies of each verdict,
the rejectlog, the built-in relay control as a subscriber a module's
ACCEPT overrides, suspension with pipelined commands waiting in order, a
client leaving while suspended, header edits and the message vctx as the
downstream sink and the spool see them.
"""

import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from sink import Sink  # noqa: E402

BODY = (b"From: a@client.test\r\nTo: b@example.com\r\nSubject: hello\r\n"
        b"Message-ID: <m1@client.test>\r\n\r\nbody line\r\n")


def module_text(journal, connect="continue", sign=True):
    return ('Module_Path = ( "%s" )\n'
            'test_validate { journal = "%s" connect = "%s" sign = %s }'
            % (harness.modules_dir(), journal, connect, "true" if sign else "false"))


def new_daemon(connect="continue", hold=False, sink=None, sign=True, extra=""):
    d = harness.Daemon(start=False, hold_delivery=hold)
    d.journal = os.path.join(d.tmp, "journal")
    text = module_text(d.journal, connect, sign)
    if sink is not None:
        text += '\nGateway = "127.0.0.1:%d"' % sink.port
    if extra:
        text += "\n" + extra
    d.global_text = text
    d.write_config()
    d.start()
    return d


def wait_until(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


class Phases(unittest.TestCase):
    """One daemon with the module; delivery goes to a sink."""

    @classmethod
    def setUpClass(cls):
        cls.sink = Sink()
        cls.sink.start()
        cls.d = new_daemon(sink=cls.sink)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.sink.stop()

    def client(self):
        c = self.d.raw()
        self.assertEqual(c.banner.code, 220, c.banner)
        return c

    def greeted(self):
        c = self.client()
        self.assertEqual(c.ehlo().code, 250)
        return c

    def assert_rejectlog(self, fragment):
        self.d.wait_log("rejectlog", lambda l: fragment in l)

    # -- ehlo ------------------------------------------------------------

    def test_ehlo_verdicts(self):
        with self.client() as c:
            r = c.ehlo("ehlo-reject.test")
            self.assertEqual((r.code, r.first), (550, "5.7.9 test ehlo reject"))
            # Refused EHLO means no greeting: MAIL needs one.
            self.assertEqual(c.cmd("MAIL FROM:<a@client.test>").code, 503)
            r = c.ehlo("ehlo-tempfail.test")
            self.assertEqual((r.code, r.first), (452, "4.7.9 test ehlo tempfail"))
            r = c.ehlo("ehlo-accept.test")
            self.assertEqual(r.code, 250)
            self.assertIn("PIPELINING", r.lines)
            r = c.ehlo("ehlo-disconnect.test")
            self.assertEqual((r.code, r.first), (421, "4.7.0 closing"))
            self.assertTrue(c.wait_closed())
        self.assert_rejectlog("test ehlo reject")

    def test_wrong_class_code_uses_default(self):
        with self.client() as c:
            r = c.ehlo("ehlo-badcode.test")
            self.assertEqual((r.code, r.first), (550, "5.7.1 rejected by policy"))
        self.d.wait_log("paniclog", lambda l: "bad reply" in l and "test_validate" in l
                        and "code=450" in l)

    # -- mailfrom ----------------------------------------------------------

    def test_mailfrom_verdicts(self):
        with self.greeted() as c:
            r = c.cmd("MAIL FROM:<mailfrom-reject@client.test>")
            self.assertEqual((r.code, r.first), (550, "5.7.9 test mailfrom reject"))
            # The refused MAIL left no transaction behind.
            self.assertEqual(c.cmd("RCPT TO:<x@example.com>").code, 503)
            r = c.cmd("MAIL FROM:<mailfrom-tempfail@client.test>")
            self.assertEqual(r.code, 452)
            self.assertEqual(c.cmd("MAIL FROM:<ok@client.test>").code, 250)
            c.cmd("RSET")
            r = c.cmd("MAIL FROM:<mailfrom-disconnect@client.test>")
            self.assertEqual(r.code, 421)
            self.assertTrue(c.wait_closed())
        self.assert_rejectlog("test mailfrom reject")

    # -- rcptto and relay control ------------------------------------------

    def test_rcptto_verdicts_and_relay(self):
        with self.greeted() as c:
            self.assertEqual(c.cmd("MAIL FROM:<a@client.test>").code, 250)
            r = c.cmd("RCPT TO:<rcptto-reject@example.com>")
            self.assertEqual((r.code, r.first), (550, "5.7.9 test rcptto reject"))
            r = c.cmd("RCPT TO:<rcptto-tempfail@example.com>")
            self.assertEqual(r.code, 452)
            # The built-in relay control still denies other domains...
            r = c.cmd("RCPT TO:<plain@elsewhere.test>")
            self.assertEqual((r.code, r.first), (550, "5.7.1 Relaying denied"))
            # ...unless the module accepted first: the built-in never runs.
            r = c.cmd("RCPT TO:<rcptto-accept@elsewhere.test>")
            self.assertEqual(r.code, 250, r)
            r = c.cmd("RCPT TO:<rcptto-disconnect@example.com>")
            self.assertEqual(r.code, 421)
            self.assertTrue(c.wait_closed())
        self.assert_rejectlog("test rcptto reject")
        self.assert_rejectlog("Relaying denied")

    # -- data ----------------------------------------------------------------

    def test_data_reject_and_bdat(self):
        with self.greeted() as c:
            self.assertEqual(c.cmd("MAIL FROM:<data-reject@client.test>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<r@example.com>").code, 250)
            r = c.cmd("DATA")
            self.assertEqual((r.code, r.first), (550, "5.7.9 test data reject"))
            # BDAT: the refused chunk is read and answered at its end.
            self.assertEqual(c.cmd("MAIL FROM:<data-reject@client.test>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<r@example.com>").code, 250)
            c.send(b"BDAT %d LAST\r\n" % len(BODY) + BODY)
            r = c.read_reply()
            self.assertEqual((r.code, r.first), (550, "5.7.9 test data reject"))
            # In sync: the session goes on.
            self.assertEqual(c.cmd("NOOP").code, 250)
            r = c.cmd("MAIL FROM:<data-tempfail@client.test>")
            self.assertEqual(c.cmd("RCPT TO:<r@example.com>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 452)

    def test_data_spool_phases(self):
        with self.greeted() as c:
            for sender, code in (("dataspool-reject@client.test", 550),
                                 ("dataspool-tempfail@client.test", 452),
                                 ("setbinding-reject@client.test", 550)):
                self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender).code, 250)
                self.assertEqual(c.cmd("RCPT TO:<r@example.com>").code, 250)
                self.assertEqual(c.cmd("DATA").code, 354)
                c.send(harness.data_payload(BODY))
                r = c.read_reply()
                self.assertEqual(r.code, code, "%s: %s" % (sender, r))
            # Every recipient refused one by one: the message is refused.
            self.assertEqual(c.cmd("MAIL FROM:<s@client.test>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<eachrcpt-reject.1@example.com>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<eachrcpt-reject.2@example.com>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(harness.data_payload(BODY))
            r = c.read_reply()
            self.assertEqual((r.code, r.first), (550, "5.7.9 test eachrcpt reject"))
        self.assert_rejectlog("recipient <eachrcpt-reject.1@example.com>")
        self.assertEqual([t for t in self.sink.messages()
                          if t.mail and ("dataspool-" in t.mail or "setbinding-" in t.mail)], [])

    def test_each_rcpt_drops_one(self):
        marker = "each-%d" % time.time_ns()
        body = BODY.replace(b"Subject: hello", b"Subject: " + marker.encode())
        mid = self.d.send_mail(sender="s@client.test",
                               rcpts=("eachrcpt-reject@example.com", "kept@example.com"),
                               body=body)
        self.assertTrue(mid)
        t = wait_until(lambda: [t for t in self.sink.messages() if marker.encode() in t.body],
                       timeout=20, what="delivery")[0]
        self.assertEqual(t.rcpts, ["kept@example.com"])

    # -- headers, vctx, signing ------------------------------------------------

    def test_header_edits_seen_downstream(self):
        marker = "hdr-%d" % time.time_ns()
        body = BODY.replace(b"body line", marker.encode())
        self.d.send_mail(sender="hdr-add.hdr-prepend.hdr-delete@client.test",
                         rcpts=("first@example.com", "second@example.com"), body=body)
        t = wait_until(lambda: [t for t in self.sink.messages() if marker.encode() in t.body],
                       timeout=20, what="delivery")[0]
        head, _, rest = t.body.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"X-Test-Signed: "), lines[:3])
        self.assertTrue(lines[1].startswith(b"X-Test-Top: prepended by test_validate"), lines[:3])
        self.assertIn(b"X-Test-Vctx: first@example.com", lines)
        self.assertIn(b"X-Test-Conn: seen", lines)
        self.assertEqual(lines[-1], b"X-Test-Added: added by test_validate")
        self.assertFalse([l for l in lines if l.lower().startswith(b"subject:")], lines)
        self.assertIn(b"From: a@client.test", lines)
        self.assertIn(marker.encode(), rest)

    # -- suspension --------------------------------------------------------------

    def test_suspend_with_pipelined_commands(self):
        with self.greeted() as c:
            t0 = time.monotonic()
            c.send(b"MAIL FROM:<s@client.test>\r\n"
                   b"RCPT TO:<x.rcptto-suspend@example.com>\r\n"
                   b"RCPT TO:<y.rcptto-suspendreject@example.com>\r\n"
                   b"RCPT TO:<z@example.com>\r\n"
                   b"DATA\r\n")
            codes = [c.read_reply() for _ in range(5)]
            elapsed = time.monotonic() - t0
            self.assertEqual([r.code for r in codes], [250, 250, 550, 250, 354], codes)
            self.assertEqual(codes[2].first, "5.7.9 test rcptto suspendreject")
            self.assertGreaterEqual(elapsed, 0.55, "two suspensions of 300 ms each")
            c.send(harness.data_payload(BODY))
            r = c.read_reply()
            self.assertEqual(r.code, 250, r)

    def test_suspend_in_every_later_phase(self):
        with self.client() as c:
            self.assertEqual(c.ehlo("ehlo-suspend.test").code, 250)
            # A local part is at most 64 octets: two transactions.
            for sender in ("mailfrom-suspend.data-suspend@client.test",
                           "dataspool-suspend.setbinding-suspend@client.test"):
                self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender).code, 250)
                self.assertEqual(c.cmd("RCPT TO:<eachrcpt-suspend@example.com>").code, 250)
                self.assertEqual(c.cmd("DATA").code, 354)
                c.send(harness.data_payload(BODY))
                r = c.read_reply()
                self.assertEqual(r.code, 250, r)

    def resumes(self, phase):
        try:
            with open(self.d.journal) as f:
                return f.read().count("resumed " + phase)
        except FileNotFoundError:
            return 0

    def test_client_leaves_while_suspended(self):
        before = self.resumes("rcptto")
        c = self.greeted()
        c.send(b"MAIL FROM:<s@client.test>\r\nRCPT TO:<rcptto-suspendlong@example.com>\r\n")
        self.assertEqual(c.read_reply().code, 250)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        # The late resume finds no session; the daemon goes on, sanitizer clean.
        wait_until(lambda: self.resumes("rcptto") > before, timeout=15, what="resume")
        time.sleep(0.2)
        self.d.assert_alive()
        with self.greeted() as c2:
            self.assertEqual(c2.cmd("NOOP").code, 250)


class Connect(unittest.TestCase):

    def test_connect_reject_after_reload(self):
        # Started accepting (the harness waits for a 220), then reloaded:
        # the new generation's instance refuses connections.
        d = new_daemon(connect="continue")
        try:
            d.global_text = module_text(d.journal, "reject")
            d.write_config()
            d.signal(signal.SIGHUP)
            d.wait_log("paniclog", lambda l: "reload configuration" in l)
            with d.raw(banner=False) as c:
                r = c.read_reply()
                self.assertEqual((r.code, r.first), (550, "5.7.9 test connect reject"))
                self.assertTrue(c.wait_closed())
            d.wait_log("rejectlog", lambda l: "test connect reject" in l)
        finally:
            d.cleanup()

    def test_connect_suspend_then_banner(self):
        # The banner waits for the resume; the daemon's own start-up check
        # already waited for one banner.
        d = new_daemon(connect="suspend")
        try:
            with d.raw(banner=False) as c:
                t0 = time.monotonic()
                r = c.read_reply()
                self.assertEqual(r.code, 220)
                self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        finally:
            d.cleanup()


class Restart(unittest.TestCase):

    def test_message_vctx_survives_restart(self):
        d = new_daemon(hold=True)
        try:
            mid = d.send_mail(sender="s@client.test", rcpts=("a@example.com", "b@example.com"))
            d.stop()
            want = {"test.rcpt.0": "a@example.com", "test.rcpt.1": "b@example.com"}
            self.assertEqual(d.spool_msg(mid).get("vctx"), want)
            # Recovered by a restarted daemon, and written again by it intact.
            d.start()
            d.stop()
            self.assertEqual(d.spool_msg(mid).get("vctx"), want)
        finally:
            d.cleanup()

    def test_shutdown_while_suspended(self):
        # A session suspended mid-transaction holds the shutdown for the
        # grace (Shutdown_Grace, 2 s here), and no longer.
        d = new_daemon(hold=True, extra="Shutdown_Grace = 2")
        try:
            c = d.raw()
            self.assertEqual(c.ehlo().code, 250)
            c.send(b"MAIL FROM:<s@client.test>\r\nRCPT TO:<rcptto-suspendlong@example.com>\r\n")
            self.assertEqual(c.read_reply().code, 250)
            time.sleep(0.1)
            t0 = time.monotonic()
            d.stop()
            took = time.monotonic() - t0
            self.assertGreater(took, 1.5, "the suspended session did not get its grace")
            self.assertLess(took, 15, "the shutdown outlasted Shutdown_Grace = 2")
            self.assertTrue(any("shutdown grace period over" in l for l in d.paniclog()),
                            "no paniclog line for the grace running out")
            c.close()
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
