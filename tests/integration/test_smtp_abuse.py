"""
test_smtp_abuse.py - hostile and broken clients

SMTP smuggling (every bare CR / bare LF end-of-data variant, refused
here under the pedantic settings; accepted as data by default in
test_conformance.py), dot
unstuffing, the configured limits (command and text line length,
recipients, connections, timeouts), slow clients and plain garbage.
After each abuse the daemon must still serve a normal session and must
not have spooled anything the client did not properly finish.

Timeouts: Idle_Time is a deadline per command line (issue 11, finding 5):
a client that trickles a command one byte at a time is cut off with 421
4.4.2 when the line is not complete within Idle_Time of the previous
reply, and other clients are served meanwhile. More slowloris cases (DATA,
BDAT, the minimum data rate) are in test_abuse_limits.py.
"""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import accepted_id, data_payload, make_message  # noqa: E402

SMUGGLED = (b"MAIL FROM:<evil@x>\r\nRCPT TO:<v@example.com>\r\nDATA\r\nsmuggled\r\n")

# The refusals below are the pedantic settings (the defaults accept such
# messages and repair them: test_conformance.py, with the same fake ends).
PEDANTIC = ("RFC2822_Max_Line_Length = pedantic\nRFC2822_Lone_LF_In_Headers = pedantic\n"
            "RFC2822_Lone_LF_In_Body = pedantic")

# (name, fake end of data, expected reply code, enhanced code)
SMUGGLE_CASES = [
    ("LF.LF", b"\n.\n", 554, "5.6.0"),
    ("CR.CR", b"\r.\r", 554, "5.6.0"),
    ("LF.CRLF", b"\n.\r\n", 554, "5.6.0"),
    ("CRLF.LF", b"\r\n.\n", 554, "5.6.0"),
    ("CRLF.CR", b"\r\n.\r", 554, "5.6.0"),
    ("CRLF NUL.CRLF", b"\r\n\x00.\r\n", 250, "2.0.0"),
]


def senders(daemon):
    return [m.get("sender") for m in daemon.spool_ls()]


class Smuggling(harness.DaemonTestCase):
    shared = dict(listen_text=PEDANTIC)

    def session(self, **kw):
        c = self.raw(**kw)
        self.assertReply(c.ehlo(), 250)
        return c

    def check_normal_session(self):
        """check_normal_session - the daemon still takes a message."""
        self.d.assert_alive()
        return self.d.send_mail(sender="normal@client.test")

    def test_smuggling(self):
        for name, seq, code, ext in SMUGGLE_CASES:
            with self.subTest(sequence=name):
                before = self.d.live_count()
                c = self.session()
                self.assertReply(c.cmd("MAIL FROM:<real@client.test>"), 250)
                self.assertReply(c.cmd("RCPT TO:<r@example.com>"), 250)
                self.assertReply(c.cmd("DATA"), 354)
                # Sent raw, without dot-stuffing: the fake terminator's dot
                # must reach the server as the attacker wrote it.
                payload = (make_message("smuggle " + name) + b"hello" + seq + SMUGGLED
                           + b".\r\n")
                c.send(payload)
                r = c.read_reply()
                self.assertReply(r, code, ext, msg="reply to the whole DATA (%s)" % name)
                if code == 554:
                    self.assertIn("bare", r.text.lower(), "554 names bare CR/LF: %s" % (r,))
                extra = c.pending(1.0)
                self.assertEqual(extra, b"", "%s: replies to smuggled commands: %r"
                                 % (name, extra))
                r = c.cmd("NOOP")
                self.assertReply(r, 250, "2.0.0", msg="%s: next reply belongs to NOOP" % name)
                self.assertEqual(r.lines, ["2.0.0 OK"], "%s: next reply is NOOP's: %s"
                                 % (name, r))
                self.assertReply(c.cmd("QUIT"), 221)
                now = self.assertSpoolDelta(self.d, before, 1 if code == 250 else 0, name)
                self.assertNotIn("evil@x", [m.get("sender") for m in now],
                                 "%s: a smuggled message was spooled" % name)

    def test_smuggling_split_writes(self):
        # The fake terminator split across TCP segments must not matter.
        before = self.d.live_count()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<real@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<r@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_message("split") + b"hello\n")
        time.sleep(0.2)
        c.send(b".")
        time.sleep(0.2)
        c.send(b"\n" + SMUGGLED + b".\r\n")
        self.assertReply(c.read_reply(), 554, "5.6.0")
        self.assertEqual(c.pending(1.0), b"")
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertSpoolDelta(self.d, before, 0)

    def test_dot_unstuffing(self):
        mark = "dotmark%d" % time.time_ns()
        # On the wire: "..X" (stuffed ".X") and a lone ".." (stuffed ".").
        stuffed = make_message("dots", marker="plain-" + mark) + \
            (".%s\r\n.\r\nend\r\n" % mark).encode()
        # The same length once unstuffed, with no dots at all.
        plain = make_message("dots", marker="plain-" + mark) + \
            ("y%s\r\ny\r\nend\r\n" % mark).encode()
        c = self.session()
        a = accepted_id(c.transaction("dots@client.test", ["d@example.com"], stuffed,
                                      dot_stuff=True))
        b = accepted_id(c.transaction("dots@client.test", ["d@example.com"], plain,
                                      dot_stuff=True))
        # The R lines carry the stored size (the spool tool is not needed).
        sa = int(self.d.r_lines(a)[0][10])
        sb = int(self.d.r_lines(b)[0][10])
        self.assertEqual(sa, sb, "dot-stuffed message stored with %d bytes, the same "
                         "message without dots with %d: dots not unstuffed?" % (sa, sb))
        if self.d.spool_grep("plain-" + mark):
            # Bodies are stored verbatim: check the bytes themselves.
            self.assertTrue(self.d.spool_grep("\r\n.%s\r\n.\r\nend\r\n" % mark),
                            "unstuffed lines '.X' and '.' not found in the spool")
            self.assertEqual(self.d.spool_grep("\r\n..%s" % mark), [],
                             "stuffed line '..X' stored as sent")

    # -- garbage -----------------------------------------------------------------

    def test_random_bytes(self):
        before = self.d.live_count()
        rnd = __import__("random").Random(1234)
        for i in range(3):
            c = self.raw()
            data = bytes(rnd.getrandbits(8) for _ in range(20000))
            if i == 1:
                data = data.replace(b"\n", b"\r\n")
            try:
                c.send(data)
                c.pending(1.0)
            except OSError:
                pass
            c.close()
        self.check_normal_session()
        self.assertSpoolDelta(self.d, before, 1)

    def test_nul_bytes_in_commands(self):
        c = self.session()
        for line in (b"NO\x00OP", b"\x00", b"MAIL FROM:<a\x00b@client.test>", b"EHLO a\x00b"):
            r = c.cmd(line)
            self.assertTrue(500 <= r.code < 600, "%r: expected a 5xx reply, got %s" % (line, r))
        self.assertReply(c.cmd("NOOP"), 250, msg="session continues after NUL bytes")
        self.check_normal_session()

    def test_one_megabyte_command_line(self):
        c = self.session()
        try:
            c.send(b"NOOP " + b"x" * (1024 * 1024) + b"\r\n")
        except OSError:
            c = None	# the server may drop such a client; it must survive
        if c is not None:
            try:
                r = c.read_reply()
            except harness.ConnectionClosed:
                r = None
            if r is not None:
                self.assertIn(r.code, (500, 421), "reply to a 1 MB line: %s" % (r,))
                if r.code == 500:
                    self.assertReply(r, 500, "5.5.2", "line too long")
                    self.assertReply(c.cmd("NOOP"), 250,
                                     msg="exactly one reply to the long line; NOOP next")
        self.check_normal_session()

    def test_one_megabyte_text_line(self):
        before = self.d.live_count()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<long@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<r@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_message("long line") + b"y" * (1024 * 1024) + b"\r\n.\r\n")
        self.assertReply(c.read_reply(), 554, "5.6.0", "line too long")
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertSpoolDelta(self.d, before, 0)

    def test_disconnect_right_after_connect(self):
        for i in range(5):
            s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
            if i % 2:
                # RST instead of FIN.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        time.sleep(0.3)
        self.check_normal_session()

    def test_disconnect_in_data(self):
        before = self.d.live_count()
        mark = "halfdata%d" % time.time_ns()
        for rst in (False, True):
            c = self.session()
            self.assertReply(c.cmd("MAIL FROM:<half@client.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:<r@example.com>"), 250)
            self.assertReply(c.cmd("DATA"), 354)
            c.send(make_message("half", marker=mark) + b"no end in sight\r\n")
            time.sleep(0.2)
            if rst:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        time.sleep(0.5)
        self.check_normal_session()
        self.assertEqual(self.d.spool_grep(mark), [], "half message bytes in the spool")
        self.assertSpoolDelta(self.d, before, 1, "a half message was spooled")
        self.assertNotIn("half@client.test", senders(self.d))

    def test_disconnect_in_bdat(self):
        before = self.d.live_count()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<halfbdat@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<r@example.com>"), 250)
        c.send(b"BDAT 5000 LAST\r\n" + make_message("half bdat"))
        time.sleep(0.2)
        c.close()
        time.sleep(0.5)
        self.check_normal_session()
        self.assertSpoolDelta(self.d, before, 1)
        self.assertNotIn("halfbdat@client.test", senders(self.d))


class Limits(harness.DaemonTestCase):
    shared = dict(listen_text="Max_Command_Length = 512\nMax_Line_Length = 200\n"
                              "Max_Recipients_Per_Message = 3")

    def session(self, **kw):
        c = self.raw(**kw)
        self.assertReply(c.ehlo(), 250)
        return c

    def test_command_length(self):
        c = self.session()
        # Max_Command_Length counts the CRLF.
        self.assertReply(c.cmd("NOOP " + "x" * (512 - 2 - 5)), 250,
                         msg="a command of exactly Max_Command_Length bytes")
        r = c.cmd("NOOP " + "x" * (512 - 2 - 5 + 1))
        self.assertReply(r, 500, "5.5.2", "line too long", msg="one byte over")
        self.assertReply(c.cmd("NOOP"), 250, msg="session continues after a long line")
        r = c.cmd("MAIL FROM:<a@client.test> " + "X" * 2000)
        self.assertReply(r, 500, "5.5.2", "line too long")
        self.assertReply(c.cmd("RCPT TO:<r@example.com>"), 503,
                         msg="the over-long MAIL did not start a transaction")

    def test_text_line_length(self):
        before = self.d.live_count()
        c = self.session()
        ok = make_message("line ok") + b"a" * 200 + b"\r\n"
        accepted_id(c.transaction("len@client.test", ["r@example.com"], ok))
        bad = make_message("line long") + b"a" * 201 + b"\r\n"
        r = c.transaction("len@client.test", ["r@example.com"], bad)
        self.assertReply(r, 554, "5.6.0", "line too long")
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertSpoolDelta(self.d, before, 1)

    def test_recipient_limit(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<many@client.test>"), 250)
        for i in range(3):
            self.assertReply(c.cmd("RCPT TO:<r%d@example.com>" % i), 250, "2.1.5")
        for i in range(3, 6):
            self.assertReply(c.cmd("RCPT TO:<r%d@example.com>" % i), 452, "4.5.3",
                             "too many recipients", msg="recipient %d" % (i + 1))
        self.assertReply(c.cmd("DATA"), 354)
        c.send(data_payload(make_message("many")))
        mid = accepted_id(c.read_reply())
        m = self.d.spool_msg(mid)
        self.assertEqual([r["address"] for r in m["recipients"]],
                         ["r0@example.com", "r1@example.com", "r2@example.com"])
        self.d.r_lines(mid, count=3)

    def test_recipient_limit_is_per_transaction(self):
        c = self.session()
        for _ in range(2):
            self.assertReply(c.cmd("MAIL FROM:<many@client.test>"), 250)
            for i in range(3):
                self.assertReply(c.cmd("RCPT TO:<r%d@example.com>" % i), 250)
            self.assertReply(c.cmd("RSET"), 250)


def open_session(port, source=None, tries_for=6.0):
    """open_session - a RawClient that got 220, retrying 421s for a while (limits lag)."""
    deadline = time.monotonic() + tries_for
    while True:
        c = harness.RawClient(port, source=source)
        if c.banner.code == 220 or time.monotonic() > deadline:
            return c
        c.close()
        time.sleep(0.3)


class ConnectionLimits(harness.DaemonTestCase):

    def test_concurrency(self):
        d = self.new_daemon(listen_text="Concurrency = 2")
        held = []
        for _ in range(2):
            c = open_session(d.port)
            self.addCleanup(c.close)
            self.assertReply(c.banner, 220, msg="connection within Concurrency")
            held.append(c)
        third = self.raw(d)
        self.assertReply(third.banner, 421, "4.7.0", "too many connections")
        self.assertTrue(third.wait_closed(10), "closed after 421")
        self.assertReply(held[0].cmd("NOOP"), 250, msg="held sessions unaffected")
        held[0].cmd("QUIT")
        held[0].close()
        c = open_session(d.port)
        self.addCleanup(c.close)
        self.assertReply(c.banner, 220, msg="a slot is free again after a QUIT")

    def test_max_connections_per_ip(self):
        d = self.new_daemon(listen_text="Max_Connections_Per_IP = 2")
        for _ in range(2):
            c = open_session(d.port)
            self.addCleanup(c.close)
            self.assertReply(c.banner, 220)
        third = self.raw(d)
        self.assertReply(third.banner, 421, "4.7.0", "too many connections")
        self.assertTrue(third.wait_closed(10))
        other = self.raw(d, source="127.0.0.2")
        self.assertReply(other.banner, 220, msg="another client IP is not limited")


    def test_slot_free_as_soon_as_closed(self):
        # No retry: a client that saw its last session close gets the one
        # slot back at once, every time (the close is counted before the
        # socket closes, and before any refusal).
        d = self.new_daemon(listen_text="Max_Connections_Per_IP = 1")
        for i in range(30):
            c = self.raw(d)
            self.assertReply(c.banner, 220, msg="connection %d after a closed one" % i)
            self.assertReply(c.cmd("QUIT"), 221)
            self.assertTrue(c.wait_closed(10))
            c.close()


class Timeouts(harness.DaemonTestCase):

    def test_server_timeout(self):
        d = self.new_daemon(listen_text="Server_Timeout = 2\nData_Timeout = 30")
        c = self.raw(d)
        self.assertReply(c.ehlo(), 250)
        t0 = time.monotonic()
        r = c.read_reply(timeout=20)
        took = time.monotonic() - t0
        self.assertReply(r, 421, "4.4.2", "timeout exceeded")
        self.assertIn("mx.test.example", r.text)
        self.assertGreater(took, 1.5, "timed out after %.1f s, Server_Timeout is 2" % took)
        self.assertTrue(c.wait_closed(10), "connection not closed after 421 timeout")

        # In DATA, Data_Timeout (30 s) applies, not Server_Timeout.
        c = self.raw(d)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<slow@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<r@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_message("slow data"))
        time.sleep(4)
        c.send(b".\r\n")
        accepted_id(c.read_reply())

        # A trickling client: one byte every 0.6 s for longer than
        # Server_Timeout. The command line has a deadline (bytes do not
        # extend it): 421 4.4.2 about 2 s after the EHLO reply; others are
        # served meanwhile.
        c = self.raw(d)
        self.assertReply(c.ehlo(), 250)
        t0 = time.monotonic()
        result = {}

        def other():
            try:
                result["id"] = d.send_mail(sender="other@client.test")
            except BaseException as e:	# reported below
                result["err"] = e
        th = None
        got = b""
        for i, b in enumerate(b"NOOP slowly"):
            try:
                c.send(bytes([b]))
            except OSError:
                break
            if i == 2:
                th = threading.Thread(target=other)
                th.start()
            got += c.pending(wait=0.6)
            if b"421" in got:
                break
        took = time.monotonic() - t0
        th.join(30)
        self.assertNotIn("err", result, "another client failed while one trickled: %r"
                         % result.get("err"))
        self.assertIn("id", result)
        self.assertIn(b"421 4.4.2 ", got,
                      "a trickling client (one byte per 0.6 s, Server_Timeout 2) must meet "
                      "the per-command deadline")
        self.assertLess(took, 5, "cut off after %.1f s, Server_Timeout is 2" % took)

    def test_data_timeout(self):
        d = self.new_daemon(listen_text="Server_Timeout = 30\nData_Timeout = 2")
        mark = "stalled%d" % time.time_ns()
        c = self.raw(d)
        self.assertReply(c.ehlo(), 250)
        time.sleep(3)
        self.assertReply(c.cmd("NOOP"), 250, msg="Server_Timeout (30 s) governs commands")
        self.assertReply(c.cmd("MAIL FROM:<stall@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<r@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_message("stalled", marker=mark))
        t0 = time.monotonic()
        r = c.read_reply(timeout=20)
        took = time.monotonic() - t0
        self.assertReply(r, 421, "4.4.2", "timeout", msg="client stalled in DATA")
        self.assertGreater(took, 1.5)
        self.assertTrue(c.wait_closed(10))
        self.assertEqual(d.spool_grep(mark), [], "stalled message bytes in the spool")

        # BDAT waits are data waits too.
        c = self.raw(d)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<stall@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<r@example.com>"), 250)
        c.send(b"BDAT 1000 LAST\r\n" + make_message("stalled bdat", marker=mark))
        r = c.read_reply(timeout=20)
        self.assertReply(r, 421, "4.4.2", msg="client stalled in a BDAT chunk")
        self.assertTrue(c.wait_closed(10))
        self.assertEqual(d.spool_ls(), [], "a stalled message was spooled")


if __name__ == "__main__":
    harness.main()
