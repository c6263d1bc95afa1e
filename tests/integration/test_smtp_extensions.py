"""
test_smtp_extensions.py - the ESMTP extensions impetusd offers

PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, DSN,
CHUNKING (BDAT) and STARTTLS, each checked on the wire against
docs/smtp-server.md. One daemon (Max_Message_Size 100000, a self-signed
certificate made with the openssl CLI at start) serves the whole file.
"""

import os
import re
import ssl
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import accepted_id, data_payload, make_message  # noqa: E402

LIMIT = 100000
ENH_RE = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}( |$)")


def crlf_lines(n, width=70, fill=b"b"):
    """crlf_lines - exactly n bytes of CRLF-terminated lines (n >= 2)."""
    out = bytearray()
    while len(out) < n:
        room = n - len(out)
        if room <= width + 2:
            out += fill * (room - 2) + b"\r\n"
        else:
            out += fill * width + b"\r\n"
    assert len(out) == n
    return bytes(out)


class Extensions(harness.DaemonTestCase):
    shared = dict(listen_text="Max_Message_Size = %d" % LIMIT, tls=True)

    def session(self, **kw):
        c = self.raw(**kw)
        self.assertReply(c.ehlo(), 250)
        return c

    def test_ehlo_lists_size_and_starttls(self):
        c = self.raw()
        r = c.ehlo()
        self.assertReply(r, 250)
        self.assertIn("SIZE %d" % LIMIT, r.lines[1:], "EHLO announces the limit: %s" % (r,))
        self.assertIn("STARTTLS", r.lines[1:], "STARTTLS offered with a certificate: %s" % (r,))
        for cap in ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN",
                    "CHUNKING", "HELP"):
            self.assertIn(cap, r.lines[1:])

    # -- PIPELINING -----------------------------------------------------------

    def test_pipelining(self):
        c = self.session()
        c.send(b"MAIL FROM:<pipe@client.test>\r\nRCPT TO:<a@example.com>\r\n"
               b"RCPT TO:<b@example.com>\r\nDATA\r\n")
        self.assertReply(c.read_reply(), 250, "2.1.0", msg="pipelined MAIL")
        self.assertReply(c.read_reply(), 250, "2.1.5", msg="pipelined RCPT 1")
        self.assertReply(c.read_reply(), 250, "2.1.5", msg="pipelined RCPT 2")
        self.assertReply(c.read_reply(), 354, msg="pipelined DATA")
        c.send(data_payload(make_message("pipelined")) + b"QUIT\r\n")
        mid = accepted_id(c.read_reply())
        self.assertReply(c.read_reply(), 221, msg="pipelined QUIT after the body")
        self.assertTrue(c.wait_closed(10))
        m = self.d.spool_msg(mid)
        self.assertEqual(sorted(r["address"] for r in m["recipients"]),
                         ["a@example.com", "b@example.com"])

    def test_pipelining_with_refused_recipient(self):
        c = self.session()
        c.send(b"MAIL FROM:<pipe@client.test>\r\nRCPT TO:<x@elsewhere.example.org>\r\n"
               b"RCPT TO:<b@example.com>\r\nDATA\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assertReply(c.read_reply(), 550, "5.7.1")
        self.assertReply(c.read_reply(), 250)
        self.assertReply(c.read_reply(), 354)
        c.send(data_payload(make_message()))
        mid = accepted_id(c.read_reply())
        self.assertEqual([r["address"] for r in self.d.spool_msg(mid)["recipients"]],
                         ["b@example.com"])

    def test_pipelining_all_refused_then_data(self):
        c = self.session()
        c.send(b"MAIL FROM:<pipe@client.test>\r\nRCPT TO:<x@elsewhere.example.org>\r\n"
               b"DATA\r\nNOOP\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assertReply(c.read_reply(), 550)
        self.assertReply(c.read_reply(), 554, "5.5.1", msg="DATA with no valid recipients")
        self.assertReply(c.read_reply(), 250, "2.0.0", msg="NOOP after the refused DATA")

    # -- SIZE -----------------------------------------------------------------

    def test_size_param(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@client.test> SIZE=%d" % (LIMIT * 2)), 552, "5.3.4",
                         "Message size exceeds fixed limit")
        self.assertReply(c.cmd("MAIL FROM:<a@client.test> SIZE=%d" % (LIMIT // 2)), 250, "2.1.0",
                         msg="SIZE= under the limit")

    def test_message_over_limit_without_size(self):
        before = self.d.live_count()
        marker = "oversize-marker-%d" % time.time_ns()
        body = make_message("big", marker=marker, size=LIMIT + 50000)
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<big@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(data_payload(body))
        self.assertReply(c.read_reply(), 552, "5.3.4", msg="message over Max_Message_Size")
        self.assertReply(c.cmd("NOOP"), 250, msg="session continues after 552")
        self.assertEqual(self.d.spool_grep(marker), [], "oversized message bytes in the spool")
        self.assertSpoolDelta(self.d, before, 0, "an oversized message was spooled")

    def test_message_under_limit(self):
        c = self.session()
        mid = accepted_id(c.transaction("a@client.test", ["b@example.com"],
                                        make_message(size=LIMIT // 2), "SIZE=%d" % (LIMIT // 2)))
        self.assertGreaterEqual(int(self.d.spool_msg(mid)["size"]), LIMIT // 2)

    # -- 8BITMIME ---------------------------------------------------------------

    def test_8bitmime(self):
        c = self.session()
        body = (make_message("8bit")
                + "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\r\n".encode("latin-1")
                + "\u00fcber UTF-8 \u2713\r\n".encode("utf-8"))
        mid = accepted_id(c.transaction("a@client.test", ["b@example.com"], body,
                                        "BODY=8BITMIME"))
        self.d.spool_msg(mid)
        self.assertReply(c.cmd("MAIL FROM:<a@client.test> BODY=7BIT"), 250, msg="BODY=7BIT")
        self.assertReply(c.cmd("RSET"), 250)
        r = c.cmd("MAIL FROM:<a@client.test> BODY=BINARYMIME")
        self.assertIn(r.code, (501, 555), "BINARYMIME is not offered: %s" % (r,))
        r = c.cmd("MAIL FROM:<a@client.test> BODY=NONSENSE")
        self.assertIn(r.code, (501, 555), "unknown BODY value: %s" % (r,))

    # -- SMTPUTF8 ---------------------------------------------------------------

    def test_smtputf8_accepted(self):
        c = self.session()
        sender = "j\u00f6rg@client.test"
        rcpt = "\u7528\u6237@example.com"
        self.assertReply(c.cmd("MAIL FROM:<%s> SMTPUTF8" % sender), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        body = ("From: %s\r\nTo: %s\r\nSubject: \u00fcber\r\n\r\nhi\r\n" % (sender, rcpt)).encode()
        c.send(data_payload(body))
        mid = accepted_id(c.read_reply())
        m = self.d.spool_msg(mid)
        self.assertEqual(m["sender"], sender)
        self.assertEqual([r["address"] for r in m["recipients"]], [rcpt])

    def test_utf8_without_smtputf8(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<j\u00f6rg@client.test>"), 553, "5.6.7",
                         msg="UTF-8 sender without SMTPUTF8")
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<\u7528\u6237@example.com>"), 553, "5.6.7",
                         msg="UTF-8 recipient without SMTPUTF8")

    # -- ENHANCEDSTATUSCODES ------------------------------------------------------

    def test_enhanced_status_codes(self):
        c = self.session()
        cmds = ["NOOP", "MAIL FROM:<a@client.test>", "RCPT TO:<b@example.com>",
                "RCPT TO:<x@elsewhere.example.org>", "MAIL FROM:<a@client.test>", "RSET",
                "RCPT TO:<b@example.com>", "VRFY a", "HELP", "FOO", "EXPN x",
                "MAIL FROM:<a@client.test> FOO=1", "DATA"]
        for line in cmds:
            r = c.cmd(line)
            for l in r.lines:
                m = ENH_RE.match(l)
                self.assertTrue(m, "%r: reply line lacks an enhanced status code: %s" % (line, r))
                self.assertEqual(m.group(1), str(r.code)[0],
                                 "%r: enhanced class differs from the reply code: %s" % (line, r))
        r = c.cmd("QUIT")
        self.assertTrue(ENH_RE.match(r.lines[0]), "QUIT: %s" % (r,))

    # -- DSN ----------------------------------------------------------------------

    def test_dsn_parameters(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<dsn@client.test> RET=HDRS ENVID=QQ31+2B4159"), 250,
                         "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE "
                               "ORCPT=rfc822;b@example.com"), 250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<c@example.com> NOTIFY=NEVER"), 250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<d@example.com> NOTIFY=DELAY"), 250, "2.1.5")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(data_payload(make_message("dsn")))
        mid = accepted_id(c.read_reply())
        m = self.d.spool_msg(mid)
        # spool ls --json is only required to show id, size, received, sender,
        # recipients, client_ip, protocol and binding; check DSN fields if shown.
        if "envid" in m:
            self.assertEqual(m["envid"], "QQ31+4159", "ENVID is xtext-decoded")
        if "ret" in m:
            self.assertIn(str(m["ret"]).upper(), ("HDRS", "2"))
        r0 = m["recipients"][0]
        if "orcpt" in r0:
            self.assertEqual(r0["orcpt"], "rfc822;b@example.com")
        if "notify" in r0:
            self.assertTrue("SUCCESS" in str(r0["notify"]).upper() or r0["notify"] == 6,
                            "NOTIFY stored: %r" % r0)

    def test_dsn_bad_parameters(self):
        c = self.session()
        r = c.cmd("MAIL FROM:<a@client.test> RET=BOGUS")
        self.assertEqual(r.code, 501, "RET=BOGUS: %s" % (r,))
        r = c.cmd("MAIL FROM:<a@client.test> RET=FULL RET=HDRS")
        self.assertEqual(r.code, 501, "RET twice: %s" % (r,))
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        r = c.cmd("RCPT TO:<b@example.com> NOTIFY=NEVER,SUCCESS")
        self.assertEqual(r.code, 501, "NOTIFY=NEVER combined with others: %s" % (r,))
        r = c.cmd("RCPT TO:<b@example.com> NOTIFY=SOMETIMES")
        self.assertEqual(r.code, 501, "unknown NOTIFY value: %s" % (r,))
        r = c.cmd("RCPT TO:<b@example.com> ORCPT=nosemicolon")
        self.assertEqual(r.code, 501, "ORCPT without addr-type: %s" % (r,))
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)

    # -- CHUNKING / BDAT ------------------------------------------------------------

    def bdat(self, c, data, last=False):
        c.send(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)
        return c.read_reply()

    def test_bdat_chunks(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<chunk@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        msg = make_message("bdat", size=5000)
        parts = [msg[:1000], msg[1000:1001], msg[1001:3333], msg[3333:]]
        for p in parts[:-1]:
            r = self.bdat(c, p)
            self.assertReply(r, 250, "2.0.0")
            self.assertEqual(r.lines, ["2.0.0 %d octets received" % len(p)],
                             "BDAT reply: %s" % (r,))
        mid = accepted_id(self.bdat(c, parts[-1], last=True))
        size = int(self.d.spool_msg(mid)["size"])
        self.assertGreaterEqual(size, len(msg))
        self.assertLess(size, len(msg) + 4096)

    def test_bdat_zero_last(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<chunk@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        msg = make_message("bdat zero last")
        self.assertReply(self.bdat(c, msg), 250, "2.0.0")
        mid = accepted_id(self.bdat(c, b"", last=True))
        self.assertGreaterEqual(int(self.d.spool_msg(mid)["size"]), len(msg))

    def test_bdat_pipelined(self):
        c = self.session()
        msg = make_message("bdat pipelined")
        a, b = msg[:100], msg[100:]
        c.send(b"MAIL FROM:<chunk@client.test>\r\nRCPT TO:<b@example.com>\r\n"
               + b"BDAT %d\r\n" % len(a) + a + b"BDAT %d LAST\r\n" % len(b) + b + b"NOOP\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assertReply(c.read_reply(), 250)
        self.assertReply(c.read_reply(), 250, "2.0.0", "%d octets received" % len(a))
        accepted_id(c.read_reply())
        self.assertReply(c.read_reply(), 250, "2.0.0", msg="NOOP after BDAT LAST")

    def test_bdat_without_rcpt_consumes_chunk(self):
        c = self.session()
        chunk = b"QUIT\r\nQUIT\r\nRSET\r\n"
        r = self.bdat(c, chunk)
        self.assertReply(r, 503, "5.5.1", msg="BDAT without MAIL")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0",
                         msg="chunk bytes after a refused BDAT must be skipped, not run")
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        r = self.bdat(c, chunk, last=True)
        self.assertReply(r, 503, "5.5.1", "need RCPT command")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0", msg="chunk skipped after 503")
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)

    def test_bdat_big_chunk_many_writes(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<chunk@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        msg = make_message("big chunk")
        msg += crlf_lines(80000 - len(msg))
        c.send(b"BDAT %d LAST\r\n" % len(msg))
        for i in range(0, len(msg), 997):
            c.send(msg[i:i + 997])
            if i % (997 * 20) == 0:
                time.sleep(0.01)
        mid = accepted_id(c.read_reply())
        self.assertGreaterEqual(int(self.d.spool_msg(mid)["size"]), len(msg))

    def test_bdat_over_limit(self):
        before = self.d.live_count()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<chunk@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        chunk = crlf_lines(60000)
        r1 = self.bdat(c, chunk)
        if r1.code == 250:
            r2 = self.bdat(c, chunk, last=True)
            self.assertReply(r2, 552, "5.3.4", msg="BDAT total over Max_Message_Size")
        else:
            self.assertReply(r1, 552, "5.3.4")
        self.assertReply(c.cmd("NOOP"), 250, msg="session continues after 552")
        self.assertSpoolDelta(self.d, before, 0)

    def test_bdat_then_data(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<chunk@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(self.bdat(c, b"Subject: x\r\n"), 250)
        self.assertReply(c.cmd("DATA"), 503, "5.5.1", msg="DATA after BDAT in one transaction")
        self.assertReply(c.cmd("RSET"), 250)

    def test_bdat_bare_lf_repaired(self):
        # BDAT chunks follow the DATA rules: by default a bare LF is
        # accepted and stored as CRLF (pedantic refusal: test_conformance.py).
        before = self.d.live_count()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<chunk@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        mark = "bdatlf%d" % time.time_ns()
        data = make_message("bdat bare lf", marker=mark) + b"line\nwith bare LF\r\n"
        r = self.bdat(c, data, last=True)
        self.assertReply(r, 250, "2.0.0")
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertSpoolDelta(self.d, before, 1)
        self.assertTrue(self.d.spool_grep(mark + "\r\nline\r\nwith bare LF\r\n"),
                        "the bare LF was not made CRLF in the spool")

    def test_bdat_bad_syntax(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<chunk@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        r = c.cmd("BDAT abc")
        self.assertEqual(r.code, 501, "BDAT with a non-numeric size: %s" % (r,))

    # -- STARTTLS ---------------------------------------------------------------------

    def test_starttls_session(self):
        c = self.session()
        r = c.starttls()
        self.assertReply(r, 220, "2.0.0", "Ready to start TLS")
        self.assertIn(c.sock.version(), ("TLSv1.2", "TLSv1.3"))
        r = c.ehlo()
        self.assertReply(r, 250, msg="EHLO over TLS")
        self.assertNotIn("STARTTLS", r.lines[1:], "STARTTLS offered again after TLS: %s" % (r,))
        self.assertIn("PIPELINING", r.lines[1:])
        mid = accepted_id(c.transaction("tls@client.test", ["b@example.com"],
                                        make_message("over tls")))
        self.assertEqual(self.d.spool_msg(mid)["sender"], "tls@client.test")
        self.assertReply(c.cmd("STARTTLS"), 503, "5.5.1", msg="STARTTLS inside TLS")
        self.assertReply(c.cmd("QUIT"), 221)

    def test_ehlo_required_after_tls(self):
        c = self.session()
        c.starttls()
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 503, "5.5.1",
                         msg="the session starts over after TLS: EHLO first")
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)

    def test_transaction_forgotten_by_starttls(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<before@client.test>"), 250)
        c.starttls()
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 503, "5.5.1",
                         msg="a transaction begun before STARTTLS must not survive it")

    def test_plaintext_injection_after_starttls_discarded(self):
        c = self.session()
        c.send(b"STARTTLS\r\nMAIL FROM:<inject@client.test>\r\nRCPT TO:<v@example.com>\r\n")
        r = c.read_reply()
        self.assertReply(r, 220, "2.0.0", msg="STARTTLS")
        extra = c.pending(0.7)
        self.assertEqual(extra, b"", "server answered plain text pipelined after STARTTLS: %r"
                         % extra)
        try:
            c.handshake()
        except (ssl.SSLError, OSError) as e:
            self.fail("TLS handshake failed after pipelined plain text (the injected bytes were "
                      "probably read as TLS): %r" % e)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("RCPT TO:<v@example.com>"), 503, "5.5.1",
                         msg="injected MAIL must have been discarded")
        self.assertReply(c.cmd("MAIL FROM:<real@client.test>"), 250, "2.1.0",
                         msg="no nested MAIL: the injected one never ran")

    def test_starttls_rset_injection(self):
        c = self.session()
        c.send(b"STARTTLS\r\nRSET\r\n")
        self.assertReply(c.read_reply(), 220)
        self.assertEqual(c.pending(0.5), b"", "exactly one reply (220) to STARTTLS\\r\\nRSET")
        c.handshake()
        self.assertReply(c.ehlo(), 250)
        self.assertEqual(c.pending(0.3), b"", "a late reply to the injected RSET")
        self.assertReply(c.cmd("NOOP"), 250)

    def test_smtplib_starttls(self):
        s = self.smtp()
        s.ehlo()
        self.assertTrue(s.has_extn("starttls"))
        code, _ = s.starttls(context=harness.client_tls_context())
        self.assertEqual(code, 220)
        s.ehlo()
        self.assertFalse(s.has_extn("starttls"))
        refused = s.sendmail("lib@client.test", ["b@example.com"], make_message("smtplib tls"))
        self.assertEqual(refused, {})
        s.quit()

    def test_tls11_refused(self):
        c = self.session()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            try:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            except ssl.SSLError:
                pass
        self.assertReply(c.cmd("STARTTLS"), 220)
        try:
            c.handshake(ctx)
            version = c.sock.version()
        except (ssl.SSLError, OSError):
            version = None
        self.assertIsNone(version, "a TLS 1.1 handshake succeeded (%s); minimum is TLS 1.2"
                          % version)
        # The daemon keeps serving others.
        c2 = self.session()
        c2.starttls()
        self.assertReply(c2.ehlo(), 250)


if __name__ == "__main__":
    harness.main()
