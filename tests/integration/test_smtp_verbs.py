"""
test_smtp_verbs.py - every SMTP verb and its replies (docs/smtp-server.md)

One daemon serves the whole file: Relay_Domains example.com, and
Relay_Hosts 127.0.0.2/32 so the same daemon shows both relay denial (a
client on 127.0.0.1) and relaying (a client bound to 127.0.0.2).
"""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import accepted_id, make_message  # noqa: E402

HOST = "mx.test.example"
CAPS = ["PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN",
        "CHUNKING", "HELP"]


class Verbs(harness.DaemonTestCase):
    shared = dict(relay_hosts=("127.0.0.2/32",))

    def session(self, ehlo=True, **kw):
        c = self.raw(**kw)
        if ehlo:
            self.assertReply(c.ehlo(), 250)
        return c

    # -- greeting, HELO, EHLO ---------------------------------------------

    def test_banner(self):
        c = self.raw()
        self.assertEqual(c.banner.code, 220, "banner: %s" % (c.banner,))
        self.assertEqual(c.banner.lines, ["%s ESMTP impetus" % HOST],
                         "banner should be '220 <Hostname> ESMTP impetus': %s" % (c.banner,))

    def test_ehlo_capabilities(self):
        c = self.raw()
        r = c.ehlo("client.test")
        self.assertReply(r, 250)
        self.assertEqual(r.lines[0].split()[0], HOST,
                         "first EHLO line should be the Hostname: %s" % (r,))
        caps = r.lines[1:]
        self.assertEqual(sorted(caps), sorted(CAPS),
                         "EHLO capabilities (default Max_Message_Size, no TLS configured)")
        self.assertEqual(caps, CAPS, "EHLO capability order as in docs/smtp-server.md")
        self.assertNotIn("STARTTLS", caps)

    def test_helo(self):
        c = self.raw()
        r = c.cmd("HELO client.test")
        self.assertReply(r, 250)
        self.assertEqual(len(r.lines), 1, "HELO reply is one line: %s" % (r,))
        self.assertTrue(r.lines[0].startswith(HOST), "HELO reply names the host: %s" % (r,))
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250, "2.1.5")

    def test_helo_ehlo_without_name(self):
        c = self.raw()
        self.assertReply(c.cmd("EHLO"), 501, "5.5.4", msg="EHLO without a name")
        self.assertReply(c.cmd("HELO"), 501, "5.5.4", msg="HELO without a name")
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 503, "5.5.1",
                         msg="a refused EHLO does not count as a greeting")

    def test_ehlo_twice_resets_transaction(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.ehlo(), 250, msg="second EHLO")
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 503, "5.5.1",
                         msg="EHLO resets the transaction (RFC 5321 4.1.4)")
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250, "2.1.0")

    # -- order of commands ----------------------------------------------------

    def test_mail_before_helo(self):
        c = self.raw()
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 503, "5.5.1", "send HELO/EHLO first")

    def test_rcpt_before_mail(self):
        c = self.session()
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 503, "5.5.1", "need MAIL command")

    def test_data_before_rcpt(self):
        c = self.session()
        self.assertReply(c.cmd("DATA"), 503, "5.5.1", msg="DATA before MAIL")
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("DATA"), 503, "5.5.1", "need RCPT command")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0", msg="session continues after 503")

    def test_nested_mail(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 503, "5.5.1", "nested MAIL command")

    def test_data_with_no_valid_recipients(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@not-ours.example.org>"), 550, "5.7.1")
        self.assertReply(c.cmd("DATA"), 554, "5.5.1", "no valid recipients")
        self.assertReply(c.cmd("NOOP"), 250, msg="session continues")

    def test_rset_clears_transaction(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        r = c.cmd("RSET")
        self.assertReply(r, 250, "2.0.0")
        self.assertEqual(r.lines, ["2.0.0 OK"], "RSET reply text: %s" % (r,))
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 503, "5.5.1",
                         msg="RCPT after RSET needs a new MAIL")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1", msg="DATA after RSET")
        self.assertReply(c.cmd("MAIL FROM:<a2@client.test>"), 250, "2.1.0",
                         msg="MAIL after RSET is not nested")
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)

    def test_rset_then_message_has_only_new_envelope(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<old@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<old@example.com>"), 250)
        self.assertReply(c.cmd("RSET"), 250)
        mid = accepted_id(c.transaction("new@client.test", ["new@example.com"], make_message()))
        m = self.d.spool_msg(mid)
        self.assertEqual(m["sender"], "new@client.test")
        self.assertEqual([r["address"] for r in m["recipients"]], ["new@example.com"],
                         "RSET must drop the earlier recipients")

    # -- simple verbs ---------------------------------------------------------

    def test_noop(self):
        c = self.raw()
        r = c.cmd("NOOP")
        self.assertReply(r, 250, "2.0.0")
        self.assertEqual(r.lines, ["2.0.0 OK"])
        self.assertReply(c.cmd("NOOP with an argument"), 250, "2.0.0",
                         msg="NOOP takes an optional string (RFC 5321 4.1.1.9)")

    def test_vrfy(self):
        c = self.session()
        r = c.cmd("VRFY someone")
        self.assertReply(r, 252, "2.5.0", "Cannot VRFY user")

    def test_help(self):
        c = self.raw()
        r = c.cmd("HELP")
        self.assertReply(r, 214, "2.0.0")

    def test_quit(self):
        c = self.session()
        r = c.cmd("QUIT")
        self.assertReply(r, 221, "2.0.0", "Bye")
        self.assertTrue(c.wait_closed(10), "connection not closed after 221")

    def test_quit_inside_transaction_spools_nothing(self):
        before = self.d.live_count()
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<quitter@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertTrue(c.wait_closed(10))
        self.assertSpoolDelta(self.d, before, 0)

    def test_unknown_command(self):
        c = self.raw()
        r = c.cmd("FOOBAR baz")
        self.assertReply(r, 500, "5.5.2", "command not recognized")
        self.assertReply(c.cmd("XYZZY"), 500, "5.5.2")
        self.assertReply(c.cmd(""), 500, "5.5.2", msg="empty line")
        self.assertReply(c.cmd("NOOP"), 250, msg="session continues")

    def test_unimplemented_commands(self):
        c = self.session()
        for line in ("EXPN staff", "AUTH PLAIN AGZvbwBiYXI=", "TURN"):
            self.assertReply(c.cmd(line), 502, "5.5.1", "command not implemented", msg=line)
        self.assertReply(c.cmd("NOOP"), 250)

    def test_starttls_not_configured(self):
        c = self.session()
        self.assertReply(c.cmd("STARTTLS"), 502, "5.5.1")
        self.assertReply(c.cmd("NOOP"), 250)

    def test_case_insensitive(self):
        c = self.raw()
        self.assertReply(c.cmd("ehlo client.test"), 250)
        self.assertReply(c.cmd("NoOp"), 250)
        self.assertReply(c.cmd("mail from:<a@client.test>"), 250, "2.1.0")
        self.assertReply(c.cmd("rcpt to:<b@example.com>"), 250, "2.1.5")
        self.assertReply(c.cmd("Rcpt To:<c@EXAMPLE.COM>"), 250, "2.1.5",
                         msg="domain comparison is case-insensitive")
        self.assertReply(c.cmd("rset"), 250)
        self.assertReply(c.cmd("Mail From:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT to:<b@example.com>"), 250)
        self.assertReply(c.cmd("data"), 354)
        c.send(harness.data_payload(make_message()))
        accepted_id(c.read_reply())
        self.assertReply(c.cmd("vrfy x"), 252)
        self.assertReply(c.cmd("help"), 214)
        self.assertReply(c.cmd("quit"), 221)

    # -- MAIL / RCPT syntax ---------------------------------------------------

    def test_mail_syntax_errors(self):
        c = self.session()
        for line in ("MAIL", "MAIL FROM", "MAIL FROM:", "MAIL FROM:a@client.test",
                     "MAIL FROM:<a@client.test", "MAIL TO:<a@client.test>",
                     "MAIL FROM:<a@client.test> SIZE=abc", "MAIL FROM:<a@client.test> SIZE="):
            r = c.cmd(line)
            self.assertEqual(r.code, 501, "%r: expected 501, got %s" % (line, r))
            self.assertTrue(r.lines[-1].startswith("5."), "%r: enhanced code: %s" % (line, r))
        self.assertReply(c.cmd("MAIL FROM:<a@client.test> FOO=bar"), 555, "5.5.4",
                         "Unsupported parameter")
        self.assertReply(c.cmd("MAIL FROM:<a@client.test> XUNKNOWN"), 555, "5.5.4")
        r = c.cmd("MAIL FROM:<a@@client.test>")
        self.assertIn(r.code, (501, 553), "bad sender address: %s" % (r,))
        self.assertTrue(r.lines[-1].startswith("5.1.7"), "bad sender address -> 5.1.7: %s" % (r,))
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250, "2.1.0",
                         msg="a good MAIL after the errors")

    def test_mail_space_after_colon(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM: <a@client.test>"), 250, "2.1.0",
                         msg="the common 'FROM: <addr>' form")

    def test_rcpt_syntax_errors(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        for line in ("RCPT", "RCPT TO", "RCPT TO:", "RCPT TO:b@example.com",
                     "RCPT TO:<b@example.com", "RCPT FROM:<b@example.com>", "RCPT TO:<>"):
            r = c.cmd(line)
            self.assertEqual(r.code, 501, "%r: expected 501, got %s" % (line, r))
        self.assertReply(c.cmd("RCPT TO:<b@example.com> FOO=bar"), 555, "5.5.4")
        r = c.cmd("RCPT TO:<b@@example.com>")
        self.assertIn(r.code, (501, 553), "bad recipient address: %s" % (r,))
        self.assertTrue(r.lines[-1].startswith("5.1.3"), "bad recipient -> 5.1.3: %s" % (r,))
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250, "2.1.5",
                         msg="a good RCPT after the errors")

    def test_null_sender(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<bounce-target@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(harness.data_payload(make_message("null sender")))
        mid = accepted_id(c.read_reply())
        m = self.d.spool_msg(mid)
        self.assertEqual(m["sender"], "", "null sender stored as empty string: %r" % m)

    def test_postmaster(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<postmaster>"), 250, "2.1.5",
                         msg="RCPT TO:<postmaster> without a domain")
        self.assertReply(c.cmd("RCPT TO:<Postmaster>"), 250, "2.1.5",
                         msg="postmaster is case-insensitive")

    # -- relaying -------------------------------------------------------------

    def test_relay_domain_from_anyone(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250, "2.1.5")

    def test_relay_subdomain_not_implied(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@sub.example.com>"), 550, "5.7.1",
                         msg="Relay_Domains 'example.com' does not cover subdomains")

    def test_relay_denied_and_logged(self):
        c = self.session()
        local_port = c.sock.getsockname()[1]
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        r = c.cmd("RCPT TO:<victim@elsewhere.example.org>")
        self.assertReply(r, 550, "5.7.1", "Relaying denied")
        self.assertReply(c.cmd("RCPT TO:<b@example.com>"), 250,
                         msg="a refused RCPT leaves the transaction open")
        tag = 'R="127.0.0.1:%d"' % local_port
        lines = self.d.wait_log("rejectlog", tag)
        self.assertTrue(any("E=550" in l for l in lines),
                        "rejectlog line for the relay denial lacks E=550: %r" % lines)

    def test_ipv6_client_logged_bracketed(self):
        # An IPv6 client's address is logged "[ip]:port", the form Listen
        # takes, so the port cannot pass for one more group of the address
        # (the server used to write "::1:port").
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
                port6 = s.getsockname()[1]
        except OSError as e:
            self.skipTest("no IPv6 loopback: %s" % e)
        d = self.new_daemon(listener_text='Listen "[::1]:%d" { }' % port6)
        c = harness.RawClient(port6, host="::1")
        self.addCleanup(c.close)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<victim@elsewhere.example.org>"), 550, "5.7.1")
        tag = 'R="[::1]:%d" L="[::1]:%d"' % (c.sock.getsockname()[1], port6)
        lines = d.wait_log("rejectlog", tag)
        self.assertTrue(any("E=550" in l for l in lines), lines)

    def test_relay_host_may_relay(self):
        c = self.session(source="127.0.0.2")
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@elsewhere.example.org>"), 250, "2.1.5",
                         msg="client in Relay_Hosts relays to any domain")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(harness.data_payload(make_message("relayed")))
        mid = accepted_id(c.read_reply())
        m = self.d.spool_msg(mid)
        self.assertEqual(m.get("client_ip"), "127.0.0.2")
        self.assertEqual([r["address"] for r in m["recipients"]], ["b@elsewhere.example.org"])

    def test_relay_wildcard_domain_and_plain_host(self):
        # Relay_Domains "*.d" matches subdomains; Relay_Hosts takes plain
        # addresses as well as CIDR blocks.
        d = self.new_daemon(relay_domains=("example.com", "*.wild.example"),
                            relay_hosts=("127.0.0.3",))
        c = self.raw(d)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<x@a.wild.example>"), 250, "2.1.5",
                         msg="'*.wild.example' covers a.wild.example")
        self.assertReply(c.cmd("RCPT TO:<x@wild.example.org>"), 550, "5.7.1")
        self.assertReply(c.cmd("RCPT TO:<x@notwild.example>"), 550, "5.7.1")
        c = self.raw(d, source="127.0.0.3")
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<x@anywhere.example.org>"), 250,
                         msg="Relay_Hosts entry without a prefix length")
        c = self.raw(d, source="127.0.0.4")
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<x@anywhere.example.org>"), 550, "5.7.1",
                         msg="127.0.0.4 is not 127.0.0.3")

    # -- a whole message -------------------------------------------------------

    def test_message_spooled_and_logged(self):
        body = make_message("spool check", marker="verbs-spool-check", size=3000)
        s = self.smtp()
        code, _ = s.ehlo()
        self.assertEqual(code, 250)
        self.assertEqual(s.mail("Alice.Sender@client.test")[0], 250)
        self.assertEqual(s.rcpt("one@example.com")[0], 250)
        self.assertEqual(s.rcpt("two@Example.com")[0], 250)
        code, resp = s.data(body)
        mid = accepted_id((code, resp))
        s.quit()

        m = self.d.spool_msg(mid)
        self.assertEqual(m["sender"], "Alice.Sender@client.test", "sender as given, case kept")
        addrs = [r["address"] for r in m["recipients"]]
        self.assertEqual([a.lower() for a in addrs], ["one@example.com", "two@example.com"])
        size = int(m["size"])
        # At least the body; headers the daemon adds (Received) make it larger.
        self.assertGreaterEqual(size, len(body), "spooled size %d < body %d" % (size, len(body)))
        self.assertLess(size, len(body) + 4096, "spooled size %d implausible for body %d"
                        % (size, len(body)))
        self.assertEqual(m.get("client_ip"), "127.0.0.1")
        self.assertEqual(str(m.get("protocol", "")).lower(), "esmtp")
        for r in m["recipients"]:
            self.assertIn("state", r)
            self.assertIn("retries", r)

        rl = self.d.r_lines(mid, count=2)
        self.assertEqual(len(rl), 2, "one R line per recipient: %r" % rl)
        got = sorted((f[5].lower(), f[6].lower()) for f in rl)
        self.assertEqual(got, [("one", "example.com"), ("two", "example.com")])
        for f in rl:
            self.assertGreaterEqual(len(f), 12, "R line too short: %r" % "@".join(f))
            self.assertEqual(f[4], "R")
            self.assertEqual((f[7], f[8]), ("Alice.Sender", "client.test"),
                             "sender local part and domain: %r" % "@".join(f))
            self.assertEqual(f[9], "127.0.0.1")
            self.assertEqual(int(f[10]), size, "R size equals the spooled size")
            self.assertEqual(f[11], "esmtp")
            self.assertTrue(f[0].isdigit(), "time field: %r" % f[0])
            self.assertNotEqual(f[3], "", "connection id field is empty")

    def test_two_messages_one_session(self):
        c = self.session()
        a = accepted_id(c.transaction("a@client.test", ["x@example.com"], make_message("1")))
        b = accepted_id(c.transaction("b@client.test", ["y@example.com"], make_message("2")))
        self.assertNotEqual(a, b)
        self.assertLess(a, b, "ids are time-sortable")
        self.assertEqual(self.d.spool_msg(a)["sender"], "a@client.test")
        self.assertEqual(self.d.spool_msg(b)["sender"], "b@client.test")
        rl = self.d.r_lines(b)
        self.assertEqual(rl[0][7:9], ["b", "client.test"])

    def test_null_sender_r_line(self):
        mid = self.d.send_mail(sender="", rcpts=["n@example.com"])
        f = self.d.r_lines(mid)[0]
        self.assertEqual((f[5], f[6], f[7], f[8]), ("n", "example.com", "", ""),
                         "R line of a null-sender message: %r" % "@".join(f))


if __name__ == "__main__":
    harness.main()
