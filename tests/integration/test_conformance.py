"""
test_conformance.py - the message conformance options, seen from both ends

RFC2822_Max_Line_Length (ignore | pedantic | fix | N) and
RFC2822_Lone_LF_In_Headers / RFC2822_Lone_LF_In_Body (fix | ignore |
pedantic), sent by a raw client (a 5,000-character line, bare LF in the
body and in the headers, bare CR, over DATA and BDAT) under each setting.
With fix, long lines are broken as each MIME part's
Content-Transfer-Encoding allows: the delivered parts, decoded by
Python's email package, give back exactly what was encoded
(quoted-printable soft breaks, base64 re-wrapped), text is folded.
Checked: the reply, what the spool holds (held daemons: the repairs happen
on reception), and what a downstream sink receives (relaying daemons):
whatever the setting, the next hop never gets a bare CR or LF nor a line
over 998 octets. And the smuggling rule: a bare LF or CR never ends DATA,
repaired or not; only CRLF "." CRLF does.
"""

import base64
import email
import email.policy
import random
import time

from deliverykit import wait_until
from harness import DaemonTestCase, accepted_id, main
from sink import Sink

PEDANTIC = ("RFC2822_Max_Line_Length = pedantic\nRFC2822_Lone_LF_In_Headers = pedantic\n"
            "RFC2822_Lone_LF_In_Body = pedantic")
IGNORE = ("RFC2822_Max_Line_Length = ignore\nRFC2822_Lone_LF_In_Headers = ignore\n"
          "RFC2822_Lone_LF_In_Body = ignore")
FIX = ("RFC2822_Max_Line_Length = fix\nRFC2822_Lone_LF_In_Headers = fix\n"
       "RFC2822_Lone_LF_In_Body = fix")

# 5,000 octets with no two 998-octet windows alike at a fold point
LONG = b"".join(b"%05d:" % i for i in range(834))[:5000]

SMUGGLED = b"MAIL FROM:<evil@x>\r\nRCPT TO:<v@conf.test>\r\nDATA\r\nsmuggled\r\n"
FAKE_ENDS = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r"]


def headers(marker, subject="conformance", sep=b"\r\n"):
    """headers - a small header section ending in the empty line, with sep as line end."""
    return sep.join([b"From: sender@client.test", b"To: r@conf.test",
                     b"Subject: " + subject.encode(), b"X-Marker: " + marker.encode(),
                     b"", b""])


def assert_clean(test, body, what):
    """assert_clean - no bare CR or LF, no line over 998 octets."""
    rest = body.replace(b"\r\n", b"")
    test.assertNotIn(b"\r", rest, "%s: bare CR reached the next hop: %r" % (what, body[:300]))
    test.assertNotIn(b"\n", rest, "%s: bare LF reached the next hop: %r" % (what, body[:300]))
    longest = max(len(l) for l in body.split(b"\r\n"))
    test.assertLessEqual(longest, 998, "%s: a %d-octet line reached the next hop"
                         % (what, longest))


def qp_line(text):
    """qp_line - text (str) quoted-printable encoded as ONE line, as a careless generator would."""
    out = []
    for b in text.encode("utf-8"):
        if (33 <= b <= 126 and b != 0x3D) or b == 0x20:
            out.append(chr(b))
        else:
            out.append("=%02X" % b)
    if out and out[-1] == " ":
        out[-1] = "=20"
    return "".join(out).encode("ascii")


TEXT = ("Grüße aus Köln, déjà vu = 100 %; naïve café " * 120).strip()     # ~5,500 octets QP
BLOB = random.Random(7).randbytes(6000)
PLAIN = ("plain 8bit text, läuft " * 200).strip()


def multipart(marker):
    """multipart - a message whose QP, base64 and 8bit parts each hold one very long line."""
    b64 = base64.b64encode(BLOB)
    return b"".join([
        headers(marker, "mime")[:-2],
        b"MIME-Version: 1.0\r\n",
        b'Content-Type: multipart/mixed; boundary="=-outer-="\r\n\r\n',
        b"preamble\r\n--=-outer-=\r\n",
        b"Content-Type: text/plain; charset=utf-8\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
        qp_line(TEXT), b"\r\n--=-outer-=\r\n",
        b"Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n",
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        b64, b"\r\n--inner\r\n",
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        PLAIN.encode("utf-8"), b"\r\n--inner--\r\n--=-outer-=--\r\n",
    ])


def longest_line(body):
    return max(len(l) for l in body.split(b"\r\n"))


class SinkRelayCase(DaemonTestCase):
    """SinkRelayCase - one sink for the class; relay() a daemon that delivers conf.test there."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sink = Sink()
        cls.sink.start()

    @classmethod
    def tearDownClass(cls):
        cls.sink.stop()
        super().tearDownClass()

    def relay(self, listen_text=""):
        """relay - a daemon that delivers conf.test to the sink at once."""
        return self.new_daemon(
            relay_hosts=("127.0.0.0/8",), hold_delivery=False, listen_text=listen_text,
            global_text='Domain "conf.test" { Routes = ( "smtp://127.0.0.1:%d" ) }'
                        % self.sink.port)


class Conformance(SinkRelayCase):

    def held(self, listen_text=""):
        """held - a daemon that keeps what it accepts in the spool."""
        return self.new_daemon(relay_hosts=("127.0.0.0/8",), listen_text=listen_text)

    def data(self, d, payload, sender="real@client.test"):
        """
        data - one DATA transaction with payload sent raw after the 354
        (terminator included); returns the reply, and checks that it was
        the only one (nothing smuggled got an answer) and NOOP comes next.
        """
        c = self.raw(daemon=d)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % sender), 250)
        self.assertReply(c.cmd("RCPT TO:<r@conf.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(payload)
        r = c.read_reply()
        self.assertEqual(c.pending(0.5), b"", "more than one reply to one DATA")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        c.cmd("QUIT")
        return r

    def bdat(self, d, chunks):
        """bdat - one BDAT transaction, the chunks as given; returns the last reply."""
        c = self.raw(daemon=d)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<real@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<r@conf.test>"), 250)
        for i, ch in enumerate(chunks):
            last = i == len(chunks) - 1
            c.send(b"BDAT %d%s\r\n" % (len(ch), b" LAST" if last else b"") + ch)
            r = c.read_reply()
            if not last:
                self.assertReply(r, 250)
        self.assertReply(c.cmd("NOOP"), 250)
        return r

    def delivered(self, marker):
        """delivered - the body the sink got for the message with marker."""
        m = marker.encode()
        wait_until(lambda: self.sink.with_marker(m), what="delivery of " + marker)
        got = self.sink.with_marker(m)
        self.assertEqual(len(got), 1, "%s delivered %d times" % (marker, len(got)))
        self.assertEqual(got[0].mail, "real@client.test")
        return got[0].body

    def mark(self, what):
        return "%s-%d" % (what, time.time_ns())

    # -- the defaults ---------------------------------------------------------

    def test_defaults_accept_and_normalise(self):
        d = self.relay()
        # a 5,000-character line: accepted, folded on the way out
        m = self.mark("long")
        self.assertReply(self.data(d, headers(m) + LONG + b"\r\nend\r\n.\r\n"), 250, "2.0.0")
        body = self.delivered(m)
        assert_clean(self, body, "long line")
        self.assertIn(LONG + b"\r\nend\r\n", body.replace(b"\r\n ", b""),
                      "the long line, unfolded, is not what was sent")

        # bare LF and bare CR in the body
        m = self.mark("lfbody")
        r = self.data(d, headers(m) + b"one\ntwo\rthree\r\n\n.\n\r\n.\r\n")
        self.assertReply(r, 250, "2.0.0")
        body = self.delivered(m)
        assert_clean(self, body, "bare LF/CR in the body")
        self.assertTrue(body.endswith(b"\r\n\r\none\r\ntwo\r\nthree\r\n\r\n.\r\n\r\n"), body)

        # bare LF in the headers: a script writing Unix line ends throughout
        m = self.mark("lfhdr")
        # (".\r\n" right after a bare LF would be data: the end needs CRLF first)
        r = self.data(d, headers(m, "unix", sep=b"\n") + b"body\nline\r\n.\r\n")
        self.assertReply(r, 250, "2.0.0")
        body = self.delivered(m)
        assert_clean(self, body, "bare LF in the headers")
        msg = email.message_from_bytes(body, policy=email.policy.compat32)
        self.assertEqual(msg["Subject"], "unix")
        self.assertEqual(msg["X-Marker"], m)
        self.assertEqual(msg.get_payload(), "body\r\nline\r\n")

        # the same over BDAT, one chunk ending between a CR and its LF
        m = self.mark("lfbdat")
        whole = headers(m, "bdat", sep=b"\n") + b"a\rb\nc\r\n" + LONG + b"\r\n"
        cut = whole.index(b"c\r\n") + 2
        self.assertReply(self.bdat(d, [whole[:20], whole[20:cut], whole[cut:]]), 250, "2.0.0")
        body = self.delivered(m)
        assert_clean(self, body, "BDAT")
        self.assertIn(b"\r\n\r\na\r\nb\r\nc\r\n", body)

    def test_defaults_smuggling(self):
        # A bare LF or CR never ends DATA: the fake end and the commands
        # after it are message text, delivered as text, never executed.
        d = self.relay()
        for fake in FAKE_ENDS:
            with self.subTest(fake=fake):
                m = self.mark("smuggle")
                r = self.data(d, headers(m) + b"hello" + fake + SMUGGLED + b".\r\n")
                self.assertReply(r, 250, "2.0.0")
                body = self.delivered(m)
                assert_clean(self, body, "smuggling %r" % fake)
                self.assertIn(b"\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@conf.test>\r\n", body)
        self.assertEqual([t for t in self.sink.all_transactions if t.mail == "evil@x"], [],
                         "a smuggled transaction reached the next hop")

    # -- pedantic -------------------------------------------------------------

    def test_pedantic_refuses(self):
        d = self.held(PEDANTIC)
        before = d.live_count()
        cases = [
            ("long line", headers("p1") + LONG + b"\r\n.\r\n", "line too long"),
            ("bare LF body", headers("p2") + b"one\ntwo\r\n.\r\n", "bare"),
            ("bare CR body", headers("p3") + b"one\rtwo\r\n.\r\n", "bare"),
            ("bare LF headers", headers("p4", sep=b"\n") + b"x\r\n.\r\n", "bare"),
            ("LF.LF", headers("p5") + b"x\n.\n" + SMUGGLED + b".\r\n", "bare"),
        ]
        for name, payload, text in cases:
            with self.subTest(case=name):
                self.assertReply(self.data(d, payload), 554, "5.6.0", text)
        r = self.bdat(d, [headers("p6") + b"x\n", b"y\r\n"])
        self.assertReply(r, 554, "5.6.0", "bare", msg="BDAT follows the same rule")
        # a line of exactly 998 is fine
        accepted_id(self.data(d, headers("p7") + LONG[:998] + b"\r\n.\r\n"))
        self.assertSpoolDelta(d, before, 1, "only the conforming message is spooled")

    def test_pedantic_per_section(self):
        # Headers pedantic, body repaired: the section decides.
        d = self.held("RFC2822_Lone_LF_In_Headers = pedantic")
        self.assertReply(self.data(d, headers("s1", sep=b"\n") + b"x\r\n.\r\n"), 554, "5.6.0")
        accepted_id(self.data(d, headers("s2") + b"one\ntwo\r\n.\r\n"))
        self.assertTrue(d.spool_grep(b"\r\n\r\none\r\ntwo\r\n"), "body LF not repaired")
        # and the other way round
        d = self.held("RFC2822_Lone_LF_In_Body = pedantic")
        self.assertReply(self.data(d, headers("s3") + b"one\ntwo\r\n.\r\n"), 554, "5.6.0")
        accepted_id(self.data(d, headers("s4", sep=b"\n") + b"x\r\n.\r\n"))
        self.assertTrue(d.spool_grep(b"\r\nX-Marker: s4\r\n\r\nx\r\n"), "header LF not repaired")

    # -- what the spool holds: fix repairs on reception, ignore does not ------

    def test_fix_and_ignore_in_the_spool(self):
        payload = headers("sp", sep=b"\n") + b"one\ntwo\rthree\r\n" + LONG + b"\r\n.\r\n"
        fixed = self.held(FIX)
        accepted_id(self.data(fixed, payload))
        self.assertTrue(fixed.spool_grep(b"\r\nX-Marker: sp\r\n\r\none\r\ntwo\r\nthree\r\n"),
                        "fix: bare LF/CR not made CRLF in the spool")
        self.assertTrue(fixed.spool_grep(LONG[:998] + b"\r\n " + LONG[998:1995] + b"\r\n "),
                        "fix: the 5,000-octet line not broken at 998 in the spool")
        self.assertEqual(fixed.spool_grep(LONG[:999]), [])

        kept = self.held(IGNORE)
        accepted_id(self.data(kept, payload))
        self.assertTrue(kept.spool_grep(b"\nX-Marker: sp\n\none\ntwo\rthree\r\n" + LONG + b"\r\n"),
                        "ignore: the message was changed on reception")

    def test_ignore_still_clean_downstream(self):
        # Kept as received, but the SMTP client sends CRLF and folds.
        d = self.relay(IGNORE)
        m = self.mark("ign")
        r = self.data(d, headers(m, sep=b"\n") + b"a\rb\nc\r\n" + LONG + b"\r\n.\r\n")
        self.assertReply(r, 250, "2.0.0")
        body = self.delivered(m)
        assert_clean(self, body, "ignore")
        self.assertIn(b"\r\n\r\na\r\nb\r\nc\r\n", body)
        self.assertIn(LONG, body.replace(b"\r\n ", b""))

    # -- fix, by Content-Transfer-Encoding ----------------------------------------

    def check_mime(self, body, what):
        """check_mime - the parts of multipart() decode to what was encoded."""
        assert_clean(self, body, what)
        msg = email.message_from_bytes(body, policy=email.policy.default)
        self.assertEqual(msg.defects, [], what)
        parts = [p for p in msg.walk() if not p.is_multipart()]
        self.assertEqual(len(parts), 3, "%s: parts %r" % (what, [p.get_content_type() for p in parts]))
        qp, blob, plain = parts
        self.assertTrue(qp.get_payload(decode=True).decode("utf-8") == TEXT,
                        "%s: the quoted-printable part does not decode to the original" % what)
        raw_qp = qp.get_payload(decode=False).encode("ascii")
        self.assertLessEqual(longest_line(raw_qp), 76, what)
        self.assertTrue(blob.get_payload(decode=True) == BLOB,
                        "%s: the base64 part does not decode to the original" % what)
        self.assertLessEqual(longest_line(blob.get_payload(decode=False).encode("ascii")), 76)
        # 8bit text: folded with CRLF SPACE, as Postfix does; unfolding gives it back
        raw_plain = plain.get_payload(decode=True)
        self.assertIn(b"\r\n ", raw_plain.replace(b"\n", b"\r\n").replace(b"\r\r", b"\r"))
        self.assertEqual(raw_plain.replace(b"\r\n ", b"").replace(b"\n ", b"").strip(),
                         PLAIN.encode("utf-8"), what)

    def test_fix_by_transfer_encoding(self):
        d = self.relay(FIX)
        m = self.mark("mime")
        self.assertReply(self.data(d, multipart(m) + b".\r\n"), 250, "2.0.0")
        self.check_mime(self.delivered(m), "DATA")

        # the same over BDAT, cut in the middle of the long lines
        m = self.mark("mimebdat")
        whole = multipart(m)
        cuts = [0, 700, 3001, 3002, len(whole) // 2, len(whole) - 5, len(whole)]
        self.assertReply(self.bdat(d, [whole[a:b] for a, b in zip(cuts, cuts[1:])]), 250)
        self.check_mime(self.delivered(m), "BDAT")

        # a single-part quoted-printable message: the top-level encoding counts
        m = self.mark("qptop")
        payload = (headers(m, "qp")[:-2] + b"Content-Transfer-Encoding: quoted-printable\r\n"
                   b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + qp_line(TEXT) + b"\r\n")
        self.assertReply(self.data(d, payload + b".\r\n"), 250, "2.0.0")
        body = self.delivered(m)
        assert_clean(self, body, "top-level QP")
        msg = email.message_from_bytes(body, policy=email.policy.default)
        got = msg.get_payload(decode=True).decode("utf-8")
        self.assertTrue(got == TEXT + "\r\n", "top-level QP does not decode to the original: "
                        "%d vs %d characters" % (len(got), len(TEXT) + 2))
        self.assertLessEqual(longest_line(body.split(b"\r\n\r\n", 1)[1]), 76,
                             "top-level QP not re-wrapped with soft breaks")

    def test_fix_in_the_spool_by_encoding(self):
        # The repair happens on reception: the spool holds soft breaks.
        d = self.held(FIX)
        accepted_id(self.data(d, multipart("spmime") + b".\r\n"))
        qp = qp_line(TEXT)
        self.assertTrue(d.spool_grep(b"\r\n" + qp[:72]), "QP line start not in the spool")
        self.assertEqual(d.spool_grep(qp[:100]), [], "the QP line was not broken at 76")

    def test_numeric_limit(self):
        d = self.held("RFC2822_Max_Line_Length = 100")
        accepted_id(self.data(d, headers("n1") + LONG[:100] + b"\r\n.\r\n"))
        self.assertReply(self.data(d, headers("n2") + LONG[:101] + b"\r\n.\r\n"), 554, "5.6.0",
                         "line too long")


if __name__ == "__main__":
    main()
