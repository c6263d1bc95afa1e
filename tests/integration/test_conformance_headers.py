"""
test_conformance_headers.py - the header options of message conformance,
and the trailing dot of an address's domain

RFC2822_Date_Header (ifneeded | pedantic | ignore), RFC2822_Messageid_Header
(ifneeded | always | ignore), RFC2822_Trace_Headers (true | false),
RFC2822_Missing_Headers (reject | allow), each value through the real
daemon to a real sink, the delivered message read by Python's `email`
package (the Date must be one email.utils.parsedate_to_datetime takes).
And "user@example.com." in MAIL FROM and RCPT TO: accepted, delivered to
example.com's route with the dot gone.
"""

import datetime
import os
import email
import email.policy
import email.utils
import time

import harness
from deliverykit import wait_gone_from_spool, wait_until
from harness import accepted_id, main
from test_conformance import SinkRelayCase

SENDER = "real@client.test"


def message(marker, date=False, msgid=False, return_path=None):
    """message - a small message carrying marker; Date and Message-ID only when asked."""
    lines = [b"From: sender@client.test", b"To: r@conf.test", b"Subject: headers"]
    if date:
        lines.append(b"Date: Mon, 13 Nov 2023 10:00:00 +0000")
    if msgid:
        lines.append(b"Message-ID: <own-%s@client.test>" % marker.encode())
    if return_path is not None:
        lines.insert(0, b"Return-Path: " + return_path.encode())
    lines += [b"X-Marker: " + marker.encode(), b"", b"body " + marker.encode(), b""]
    return b"\r\n".join(lines)


class ConformanceHeaders(SinkRelayCase):

    def data(self, d, payload, sender=SENDER, rcpt="r@conf.test"):
        """data - one DATA transaction (payload dot-terminated here); the final reply."""
        c = self.raw(daemon=d)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % sender), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(payload + b".\r\n")
        r = c.read_reply()
        self.assertReply(c.cmd("NOOP"), 250)
        c.cmd("QUIT")
        return r

    def delivered(self, marker, sender=SENDER):
        """delivered - (transaction, parsed message) the sink got for marker, once."""
        m = marker.encode()
        wait_until(lambda: self.sink.with_marker(m), what="delivery of " + marker)
        got = self.sink.with_marker(m)
        self.assertEqual(len(got), 1, "%s delivered %d times" % (marker, len(got)))
        self.assertEqual(got[0].mail, sender)
        return got[0], email.message_from_bytes(got[0].body, policy=email.policy.compat32)

    def mark(self, what):
        return "%s-%d" % (what, time.time_ns())

    # -- RFC2822_Date_Header ----------------------------------------------------

    def test_date_ifneeded_default(self):
        d = self.relay()
        m = self.mark("date-add")
        before = datetime.datetime.now(datetime.timezone.utc)
        qid = accepted_id(self.data(d, message(m)))
        _, msg = self.delivered(m)
        self.assertEqual(len(msg.get_all("Date", [])), 1, msg.get_all("Date"))
        when = email.utils.parsedate_to_datetime(msg["Date"])
        self.assertIsNotNone(when.tzinfo, "the added Date has no zone: %r" % msg["Date"])
        self.assertLess(abs((when - before).total_seconds()), 120, msg["Date"])
        # the client's own Date is left alone
        m = self.mark("date-own")
        self.data(d, message(m, date=True))
        _, msg = self.delivered(m)
        self.assertEqual(msg.get_all("Date"), ["Mon, 13 Nov 2023 10:00:00 +0000"])
        self.assertTrue(qid)

    def test_date_pedantic(self):
        d = self.relay("RFC2822_Date_Header = pedantic")
        before = d.live_count()
        self.assertReply(self.data(d, message(self.mark("date-ped"))), 554, "5.6.0", "Date")
        self.assertTrue(d.wait_log("rejectlog", lambda l: "Date" in l))
        m = self.mark("date-ped-ok")
        r = self.data(d, message(m, date=True))
        self.assertReply(r, 250, "2.0.0")
        _, msg = self.delivered(m)
        self.assertEqual(msg.get_all("Date"), ["Mon, 13 Nov 2023 10:00:00 +0000"])
        # The delivered one's outcome reaches the spool with the next batch or
        # the spool's flush timer (docs/spool.md): wait for it to go first.
        wait_gone_from_spool(self, d, accepted_id(r))
        self.assertSpoolDelta(d, before, 0, "the refused message must not be spooled")

    def test_date_ignore(self):
        d = self.relay("RFC2822_Date_Header = ignore")
        m = self.mark("date-ign")
        self.assertReply(self.data(d, message(m)), 250, "2.0.0")
        _, msg = self.delivered(m)
        self.assertIsNone(msg["Date"], "ignore added a Date")

    # -- RFC2822_Messageid_Header -----------------------------------------------

    def test_messageid_values(self):
        d = self.relay()
        m = self.mark("mid-add")
        qid = accepted_id(self.data(d, message(m)))
        _, msg = self.delivered(m)
        self.assertEqual(msg.get_all("Message-ID"), ["<%s@mx.test.example>" % qid])
        m = self.mark("mid-own")
        self.data(d, message(m, msgid=True))
        _, msg = self.delivered(m)
        self.assertEqual(msg.get_all("Message-ID"), ["<own-%s@client.test>" % m])

        d = self.relay("RFC2822_Messageid_Header = ignore")
        m = self.mark("mid-ign")
        self.data(d, message(m))
        _, msg = self.delivered(m)
        self.assertIsNone(msg["Message-ID"], "ignore added a Message-ID")

        d = self.relay("RFC2822_Messageid_Header = always")
        m = self.mark("mid-always")
        qid = accepted_id(self.data(d, message(m, msgid=True)))
        _, msg = self.delivered(m)
        self.assertEqual(sorted(msg.get_all("Message-ID")),
                         sorted(["<%s@mx.test.example>" % qid, "<own-%s@client.test>" % m]))

    # -- RFC2822_Trace_Headers --------------------------------------------------

    def test_trace_headers_true_default(self):
        d = self.relay()
        m = self.mark("trace")
        qid = accepted_id(self.data(d, message(m, return_path="<forged@elsewhere.test>")))
        t, msg = self.delivered(m)
        self.assertTrue(t.body.startswith(b"Return-Path: <%s>\r\nReceived: from " %
                                          SENDER.encode()), t.body[:200])
        self.assertEqual(msg.get_all("Return-Path"), ["<%s>" % SENDER],
                         "the client's Return-Path was not replaced")
        received = msg.get_all("Received")
        self.assertEqual(len(received), 1, received)
        self.assertIn("id " + qid, " ".join(received[0].split()))
        # the null sender
        m = self.mark("trace-null")
        self.data(d, message(m), sender="")
        _, msg = self.delivered(m, sender="")
        self.assertEqual(msg.get_all("Return-Path"), ["<>"])

    def test_trace_headers_false(self):
        d = self.relay("RFC2822_Trace_Headers = false")
        m = self.mark("notrace")
        self.data(d, message(m, return_path="<kept@client.test>"))
        t, msg = self.delivered(m)
        self.assertIsNone(msg["Received"], "a Received was added with trace headers off")
        self.assertEqual(msg.get_all("Return-Path"), ["<kept@client.test>"],
                         "the client's Return-Path was touched")
        # what is added is only what the other options add
        self.assertTrue(t.body.startswith(b"Message-ID: <"), t.body[:200])
        self.assertTrue(t.body.endswith(message(m, return_path="<kept@client.test>")))

    # -- RFC2822_Missing_Headers ------------------------------------------------

    def test_missing_headers_reject_default(self):
        d = self.relay()
        before = d.live_count()
        for name, payload in (("body only", b"just a body line\r\nand another\r\n"),
                              ("empty line first", b"\r\nbody after an empty line\r\n"),
                              ("empty message", b"")):
            with self.subTest(case=name):
                self.assertReply(self.data(d, payload), 554, "5.6.0", "header")
        self.assertSpoolDelta(d, before, 0, "a message without headers was spooled")

    def test_missing_headers_allow(self):
        d = self.relay("RFC2822_Missing_Headers = allow")
        m = self.mark("nohdr")
        body = b"just a body " + m.encode() + b"\r\nFrom: not a header here\r\n"
        self.assertReply(self.data(d, body), 250, "2.0.0")
        t, msg = self.delivered(m)
        self.assertEqual(msg.defects, [], msg.defects)
        self.assertEqual(msg.get_payload(), body.decode(),
                         "the client's text is not the body of the delivered message")
        self.assertEqual(len(msg.get_all("Received")), 1)
        self.assertIsNone(msg["From"], "a body line was taken for a header")
        self.assertIsNotNone(msg["Date"])
        # with nothing to add, the message stays as it came
        d = self.relay("RFC2822_Missing_Headers = allow\nRFC2822_Trace_Headers = false\n"
                       "RFC2822_Date_Header = ignore\nRFC2822_Messageid_Header = ignore")
        m = self.mark("nohdr-bare")
        body = b"only " + m.encode() + b"\r\n"
        self.data(d, body)
        t, _ = self.delivered(m)
        self.assertEqual(t.body, body)

    # -- the order: added before the sign hook, so a signature covers them ----

    def test_added_fields_before_signing(self):
        d = self.new_daemon(start=False, hold_delivery=False, relay_hosts=("127.0.0.0/8",))
        j = os.path.join(d.tmp, "journal")
        d.global_text = "\n".join([
            'Module_Path = ( "%s" )' % harness.modules_dir(),
            'Domain "conf.test" { Routes = ( "smtp://127.0.0.1:%d" ) }' % self.sink.port,
            'test_services "signer" { journal = "%s" sign_header = "X-Test-Signature: v=1" }' % j,
        ])
        d.write_config()
        d.start()
        m = self.mark("signed")
        self.assertReply(self.data(d, message(m)), 250, "2.0.0")
        t, msg = self.delivered(m)
        # the signer's field is on top of everything reception wrote
        self.assertTrue(t.body.startswith(b"X-Test-Signature: v=1\r\nReturn-Path: <"), t.body[:200])
        with open(j) as f:
            seen = [l.strip() for l in f if l.startswith("signing")]
        self.assertEqual(seen, ["signing date=1 message-id=1 return-path=1"],
                         "the sign hook ran before the fields were added")

    # -- a domain ending in a dot ---------------------------------------------------

    def test_trailing_dot_domain(self):
        d = self.relay()
        m = self.mark("dot")
        c = self.raw(daemon=d)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<real@client.test.>"), 250)
        self.assertReply(c.cmd("RCPT TO:<r@conf.test.>"), 250)
        self.assertReply(c.cmd("RCPT TO:<r@conf.test..>"), 501, "5.1.3")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(message(m) + b".\r\n")
        self.assertReply(c.read_reply(), 250, "2.0.0")
        c.cmd("QUIT")
        t, msg = self.delivered(m)
        self.assertEqual(t.rcpts, ["r@conf.test"])
        self.assertEqual(msg.get_all("Return-Path"), ["<real@client.test>"])


if __name__ == "__main__":
    main()
