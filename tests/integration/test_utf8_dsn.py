"""
test_utf8_dsn.py - SMTPUTF8, 8-bit and DSN completeness against receivers
that lack SMTPUTF8, 8BITMIME or DSN

One daemon, fixed routes to scripted sinks (sink.py) that offer less than
a modern server:

  full.test     -> sink FULL: everything (SMTPUTF8, 8BITMIME, DSN);
                   "perm-*" recipients get 550 5.1.1
  noutf8.test   -> sink NOUTF8: 8BITMIME and DSN, no SMTPUTF8
  plain7.test   -> sink PLAIN7: no 8BITMIME, no DSN, no SMTPUTF8; senders
                   at plain7.test get their bounces there
  small7.test   -> sink SMALL7: no 8BITMIME, SIZE 600
  bounces.test  -> the bounce sink (everything offered)
  slow.test     -> sink FULL, with Generate_Delay_DSN on, delay notices
                   every 2 s doubling, Message_Expiration 12 s
                   ("always450-*" recipients are deferred until they expire)

Every delivered message and every bounce is parsed with Python's email
package (policy.default): report types, Action, address types, and the
quoted-printable conversion decoding back to the original bytes.
"""

import email
import email.policy
import os
import quopri
import subprocess
import tempfile
import time

from harness import DaemonTestCase, client_tls_context, main, make_message
from deliverykit import wait_until, inject
from sink import Sink

HOSTNAME = "mx.test.example"
NO_UTF8_EHLO = ["PIPELINING", "SIZE 100000000", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN"]
PLAIN7_EHLO = ["PIPELINING", "SIZE 100000000", "ENHANCEDSTATUSCODES"]


def uniq(tag):
    return "%s%d" % (tag, time.time_ns() % 10**12)


def full_rcpt(addr):
    local = addr.split("@", 1)[0].lower()
    if local.startswith("perm-"):
        return "550 5.1.1 <%s>: no such user here" % addr
    if local.startswith("always450-"):
        return "450 4.2.1 mailbox busy, try later"
    return "250 2.1.5 OK"


def params_of(s):
    """params_of - {KEY: value} of an ESMTP parameter string."""
    out = {}
    for p in s.split():
        k, _, v = p.partition("=")
        out[k.upper()] = v
    return out


def after_received(body):
    """after_received - the delivered bytes without the Return-Path: and
    Received: fields impetus puts on top (RFC2822_Trace_Headers)."""
    if body.startswith(b"Return-Path: "):
        body = body[body.index(b"\r\n") + 2:]
    assert body.startswith(b"Received: "), body[:200]
    i = 0
    while True:
        j = body.index(b"\r\n", i)
        i = j + 2
        if body[i:i + 1] not in (b" ", b"\t"):
            break
    # RFC2822_Date_Header / _Messageid_Header add the fields make_message
    # leaves out (it starts with From:), right after Received:.
    rest = body[i:]
    while rest.startswith((b"Date: ", b"Message-ID: ")):
        rest = rest[rest.index(b"\r\n") + 2:]
    return rest


def global_blocks(part):
    """global_blocks - the header blocks of a message/global-delivery-status part."""
    pl = part.get_payload()
    if isinstance(pl, list):   # Python parses every message/* as an enclosure
        raw = "".join(m.as_string(policy=email.policy.SMTPUTF8) for m in pl)
    else:
        raw = part.get_payload()
    raw = raw.replace("\r\n", "\n").strip("\n")
    return [{k.lower(): str(v) for k, v in
             email.message_from_string(b + "\n", policy=email.policy.default).items()}
            for b in raw.split("\n\n")]


SISIMAI = r"""
use Sisimai;
my $v = Sisimai->make($ARGV[0]);
for my $e (@{$v || []}) {
    printf "%s|%s|%s|%s|%s\n", $e->recipient->address, $e->action,
        $e->deliverystatus, $e->reason, $e->addresser->address;
}
"""


def sisimai(body):
    """
    sisimai - what Sisimai (Debian libsisimai-perl) reads from a bounce:
    a list of (recipient, action, status, reason, addresser). Sisimai
    missing is a failure, never a skip (scripts/install-deps.sh installs it).
    """
    if subprocess.run(["perl", "-MSisimai", "-e", "1"], capture_output=True).returncode != 0:
        raise AssertionError("Sisimai missing: install libsisimai-perl (scripts/install-deps.sh)")
    with tempfile.NamedTemporaryFile(suffix=".mbox", delete=False) as f:
        f.write(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n" + body.replace(b"\r\n", b"\n"))
        path = f.name
    try:
        out = subprocess.run(["perl", "-e", SISIMAI, path], capture_output=True, timeout=60)
    finally:
        os.unlink(path)
    return [tuple(l.split("|")) for l in out.stdout.decode("utf-8", "replace").splitlines()]


def report_of(body):
    """
    report_of - (msg, report_type, per_message, per_rcpt, parts) of a
    multipart/report bounce, delivery-status or global-delivery-status.
    """
    # A global report is UTF-8 through and through (RFC 6532): read it as
    # text, so its UTF-8 header fields come out as characters.
    msg = email.message_from_string(body.decode("utf-8"), policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    rtype = (msg.get_param("report-type") or "").lower()
    parts = list(msg.iter_parts())
    ct = parts[1].get_content_type()
    if ct == "message/delivery-status":
        blocks = [{k.lower(): str(v) for k, v in b.items()} for b in parts[1].get_payload()]
    elif ct == "message/global-delivery-status":
        blocks = global_blocks(parts[1])
    else:
        raise AssertionError("second part is %s" % ct)
    return msg, rtype, blocks[0], blocks[1:], parts


class Utf8DsnTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.full = Sink(rcpt_reply=full_rcpt)
        cls.noutf8 = Sink(ehlo_lines=NO_UTF8_EHLO)
        cls.plain7 = Sink(ehlo_lines=PLAIN7_EHLO)
        cls.small7 = Sink(ehlo_lines=["PIPELINING", "SIZE 600", "ENHANCEDSTATUSCODES"])
        cls.bounce_sink = Sink()
        cls.stray = Sink()
        cls.sinks = [cls.full, cls.noutf8, cls.plain7, cls.small7, cls.bounce_sink, cls.stray]
        for s in cls.sinks:
            s.start()
        route = 'Domain "%s" { Routes = ( "smtp://127.0.0.1:%d" ) }'
        cls.shared = dict(
            hostname=HOSTNAME, relay_domains=(), relay_hosts=("127.0.0.0/8",),
            hold_delivery=False, tls=True,
            global_text="\n".join([
                "Retry_Interval = 1",
                "Max_Retry_Interval = 2",
                "Delayed_Queue_Scan_Interval = 1",
                'Gateway = "127.0.0.1:%d"' % cls.stray.port,
                route % ("full.test", cls.full.port),
                route % ("noutf8.test", cls.noutf8.port),
                route % ("plain7.test", cls.plain7.port),
                route % ("small7.test", cls.small7.port),
                route % ("bounces.test", cls.bounce_sink.port),
                'Domain "slow.test" { Routes = ( "smtp://127.0.0.1:%d" ) '
                'Generate_Delay_DSN = true Delay_DSN_Retry_Interval = 2 '
                'Delay_DSN_Max_Retry_Interval = 1000 Message_Expiration = 12 }' % cls.full.port,
            ]))
        try:
            super().setUpClass()
        except BaseException:
            for s in cls.sinks:
                s.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            for s in cls.sinks:
                s.stop()

    # -- helpers ------------------------------------------------------------

    def logs(self):
        return "mainlog tail:\n%s\npaniclog tail:\n%s" % (
            "\n".join(self.d.mainlog()[-15:]), "\n".join(self.d.paniclog()[-10:]))

    def wait_at(self, sink, rcpt, timeout=25.0):
        """wait_at - the one transaction at sink with recipient rcpt."""
        wait_until(lambda: [t for t in sink.messages() if rcpt in t.rcpts], timeout,
                   "a message to %s (%s)" % (rcpt, self.logs()))
        got = [t for t in sink.messages() if rcpt in t.rcpts]
        self.assertEqual(len(got), 1, "exactly one message to %s expected: %r" % (rcpt, got))
        return got[0]

    def assert_7bit_body(self, raw):
        """No 8-bit byte after the header section."""
        body = raw[raw.index(b"\r\n\r\n") + 4:]
        bad = [i for i, c in enumerate(body) if c >= 0x80]
        self.assertEqual(bad, [], "8-bit bytes in the body sent to a server without "
                         "8BITMIME: %r" % body[:400])

    # -- 1. bounces to SMTPUTF8 senders ---------------------------------------

    def test_bounce_to_utf8_sender(self):
        """a bounce to an SMTPUTF8 sender: SMTPUTF8 on MAIL, RFC 6533 global report, utf-8 addresses"""
        m = uniq("u8b")
        sender = "\u00e5lice-%s@bounces.test" % m
        rcpt = "perm-\u00fc%s@full.test" % m
        body = ("From: \u00c5lice <%s>\r\nTo: %s\r\nSubject: R\u00e4ksm\u00f6rg\u00e5s %s\r\n"
                "Message-ID: <%s@client.test>\r\n\r\nHej!\r\n" % (sender, rcpt, m, m)).encode()
        inject(self.d, sender, [rcpt], body, mail_opts=["SMTPUTF8", "BODY=8BITMIME"],
               rcpt_opts=["ORCPT=rfc822;perm-+C3+BC%s@full.test" % m])
        t = self.wait_at(self.bounce_sink, sender)
        self.assertEqual(t.mail, "", "bounce not from the null sender")
        self.assertIn("SMTPUTF8", params_of(t.mail_params),
                      "bounce to a UTF-8 address sent without SMTPUTF8: %r" % t.mail_params)
        msg, rtype, per_msg, per_rcpt, parts = report_of(t.body)
        self.assertEqual(rtype, "global-delivery-status")
        self.assertEqual(parts[1].get_content_type(), "message/global-delivery-status")
        self.assertEqual(len(per_rcpt), 1, per_rcpt)
        r = per_rcpt[0]
        self.assertEqual(r["final-recipient"], "utf-8; %s" % rcpt)
        self.assertEqual(r["original-recipient"], "utf-8; %s" % rcpt)
        self.assertEqual(r["action"], "failed")
        self.assertEqual(r["status"], "5.1.1")
        self.assertNotIn(b"+C3+", t.body, "xtext left in the global report")
        self.assertEqual(msg["To"].addresses[0].addr_spec, sender)
        self.assertEqual(parts[2].get_content_type(), "message/global-headers")
        self.assertIn("R\u00e4ksm\u00f6rg\u00e5s".encode(), t.body)

    def test_bounce_ascii_stays_classic(self):
        """an all-ASCII bounce stays message/delivery-status with rfc822 addresses"""
        m = uniq("asb")
        sender, rcpt = "s-%s@bounces.test" % m, "perm-%s@full.test" % m
        inject(self.d, sender, [rcpt], make_message(marker=m))
        t = self.wait_at(self.bounce_sink, sender)
        self.assertNotIn("SMTPUTF8", params_of(t.mail_params))
        _, rtype, _, per_rcpt, parts = report_of(t.body)
        self.assertEqual(rtype, "delivery-status")
        self.assertEqual(per_rcpt[0]["final-recipient"], "rfc822; %s" % rcpt)
        got = sisimai(t.body)   # its addresser is the original's From:
        self.assertEqual(got, [(rcpt, "failed", "5.1.1", "userunknown", "sender@client.test")])

    def test_global_report_read_by_sisimai(self):
        """a global report (SMTPUTF8 original, ASCII addresses) as Sisimai reads it"""
        m = uniq("gsi")
        sender, rcpt = "s-%s@bounces.test" % m, "perm-%s@full.test" % m
        body = ("From: <%s>\r\nTo: <%s>\r\nSubject: gr\u00fc\u00dfe %s\r\n\r\nhi\r\n"
                % (sender, rcpt, m)).encode()
        inject(self.d, sender, [rcpt], body, mail_opts=["SMTPUTF8", "BODY=8BITMIME"])
        t = self.wait_at(self.bounce_sink, sender)
        self.assertIn("SMTPUTF8", params_of(t.mail_params))
        _, rtype, _, per_rcpt, parts = report_of(t.body)
        self.assertEqual(rtype, "global-delivery-status")
        self.assertEqual(per_rcpt[0]["final-recipient"], "rfc822; %s" % rcpt)
        got = sisimai(t.body)
        # Sisimai 4.25 drops every record whose address is not ASCII, so
        # only a global report with ASCII addresses can be checked with it
        self.assertEqual(got, [(rcpt, "failed", "5.1.1", "userunknown", sender)])

    # -- 2. SMTPUTF8 downgrade ------------------------------------------------

    def test_smtputf8_ascii_downgraded(self):
        """an all-ASCII message flagged SMTPUTF8 reaches a server without SMTPUTF8, no parameter"""
        m = uniq("u8d")
        rcpt = "r-%s@noutf8.test" % m
        body = make_message(marker=m)
        inject(self.d, "s-%s@bounces.test" % m, [rcpt], body, mail_opts=["SMTPUTF8"])
        t = self.wait_at(self.noutf8, rcpt)
        self.assertNotIn("SMTPUTF8", params_of(t.mail_params), t.mail_params)
        self.assertEqual(after_received(t.body), body)

    def test_smtputf8_needed_header(self):
        """UTF-8 in a header to a server without SMTPUTF8: 5.6.7 bounce, nothing delivered"""
        m = uniq("u8h")
        sender, rcpt = "s-%s@bounces.test" % m, "r-%s@noutf8.test" % m
        body = ("Subject: gr\u00fc\u00dfe %s\r\n\r\nhello\r\n" % m).encode()
        inject(self.d, sender, [rcpt], body, mail_opts=["SMTPUTF8", "BODY=8BITMIME"])
        t = self.wait_at(self.bounce_sink, sender)
        _, _, _, per_rcpt, _ = report_of(t.body)
        self.assertEqual(per_rcpt[0]["status"], "5.6.7")
        self.assertEqual(per_rcpt[0]["action"], "failed")
        self.assertIn("SMTPUTF8", per_rcpt[0]["diagnostic-code"])
        self.assertEqual([x for x in self.noutf8.messages() if rcpt in x.rcpts], [])

    def test_smtputf8_needed_address(self):
        """a UTF-8 recipient to a server without SMTPUTF8: 5.6.7, in a global report"""
        m = uniq("u8a")
        sender, rcpt = "s-%s@bounces.test" % m, "\u00fc-%s@noutf8.test" % m
        inject(self.d, sender, [rcpt], make_message(marker=m), mail_opts=["SMTPUTF8"])
        t = self.wait_at(self.bounce_sink, sender)
        _, rtype, _, per_rcpt, _ = report_of(t.body)
        self.assertEqual(rtype, "global-delivery-status")
        self.assertEqual(per_rcpt[0]["status"], "5.6.7")
        self.assertEqual(per_rcpt[0]["final-recipient"], "utf-8; %s" % rcpt)

    # -- 3. 8-bit to a server without 8BITMIME --------------------------------

    def check_qp_delivery(self, mail_opts):
        m = uniq("q8")
        rcpt = "r-%s@plain7.test" % m
        text = "na\u00efve caf\u00e9 = \u20ac5 \r\n%s trailing space \r\n" % m
        body = ("From: s@client.test\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n" % m).encode() + text.encode()
        inject(self.d, "s-%s@bounces.test" % m, [rcpt], body, mail_opts=mail_opts)
        t = self.wait_at(self.plain7, rcpt)
        self.assertNotIn("BODY", params_of(t.mail_params), t.mail_params)
        self.assertEqual(int(params_of(t.mail_params)["SIZE"]), len(t.body),
                         "SIZE= is not the length of the converted message")
        self.assert_7bit_body(t.body)
        msg = email.message_from_bytes(t.body, policy=email.policy.default)
        self.assertEqual(msg["Content-Transfer-Encoding"], "quoted-printable")
        self.assertEqual(msg.get_payload(decode=True), text.encode())
        self.assertEqual(msg.get_content(), text)
        return t

    def test_8bit_declared_to_7bit_server(self):
        """BODY=8BITMIME to a server without 8BITMIME: converted to quoted-printable"""
        self.check_qp_delivery(["BODY=8BITMIME"])

    def test_8bit_undeclared_to_7bit_server(self):
        """undeclared 8-bit to a server without 8BITMIME: converted the same way"""
        self.check_qp_delivery([])

    def test_8bit_conversion_over_size(self):
        """a body that outgrows the server's SIZE by the conversion: 5.3.4, not sent"""
        m = uniq("sz")
        sender, rcpt = "s-%s@bounces.test" % m, "r-%s@small7.test" % m
        body = ("Subject: %s\r\n\r\n" % m).encode() + ("\u00e9" * 120).encode() + b"\r\n"
        self.assertLess(len(body) + 250, 600)   # our Received: included
        inject(self.d, sender, [rcpt], body, mail_opts=["BODY=8BITMIME"])
        t = self.wait_at(self.bounce_sink, sender)
        _, _, _, per_rcpt, _ = report_of(t.body)
        self.assertEqual(per_rcpt[0]["status"], "5.3.4")
        self.assertIn("after conversion", per_rcpt[0]["diagnostic-code"])
        self.assertEqual(self.small7.messages(), [])

    def test_8bit_multipart_to_7bit_server(self):
        """multipart: the 8-bit text part converted, the base64 part byte for byte"""
        m = uniq("mp8")
        rcpt = "r-%s@plain7.test" % m
        text = "Gr\u00fc\u00dfe aus K\u00f6ln %s\r\n" % m
        b64 = "AAECAwQFBgcICQ==\r\n"
        body = ("From: s@client.test\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
                "Content-Type: multipart/mixed; boundary=\"=-b%s\"\r\n\r\n"
                "--=-b%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s"
                "--=-b%s\r\nContent-Type: application/octet-stream\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n%s"
                "--=-b%s--\r\n" % (m, m, m, text, m, b64, m)).encode()
        inject(self.d, "s-%s@bounces.test" % m, [rcpt], body, mail_opts=["BODY=8BITMIME"])
        t = self.wait_at(self.plain7, rcpt)
        self.assert_7bit_body(t.body)
        msg = email.message_from_bytes(t.body, policy=email.policy.default)
        parts = list(msg.iter_parts())
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "application/octet-stream"])
        self.assertEqual(parts[0]["Content-Transfer-Encoding"], "quoted-printable")
        # the part's content ends before the CRLF that belongs to the delimiter
        self.assertEqual(parts[0].get_payload(decode=True), text.encode()[:-2])
        self.assertEqual(parts[1].get_payload(decode=True), bytes(range(10)))
        self.assertIn(b64[:-2].encode(), t.body, "base64 part re-encoded")
        for p in parts:
            self.assertEqual(p.defects, [], "MIME defects: %r" % p.defects)

    def test_8bit_bounce_to_7bit_server(self):
        """our own bounce of an 8-bit message to a server without 8BITMIME: converted too"""
        m = uniq("b8")
        sender, rcpt = "s-%s@plain7.test" % m, "perm-%s@full.test" % m
        text = "caf\u00e9 cr\u00e8me %s\r\n" % m
        body = ("From: s@client.test\r\nSubject: %s\r\n\r\n" % m).encode() + text.encode()
        inject(self.d, sender, [rcpt], body, mail_opts=["BODY=8BITMIME", "RET=FULL"])
        t = self.wait_at(self.plain7, sender)
        self.assertEqual(t.mail, "")
        self.assert_7bit_body(t.body)
        msg, rtype, _, per_rcpt, parts = report_of(t.body)
        self.assertEqual(rtype, "delivery-status")
        self.assertEqual(per_rcpt[0]["action"], "failed")
        self.assertEqual(parts[2].get_content_type(), "message/rfc822")
        inner = parts[2].get_payload()[0]
        self.assertEqual(inner["Subject"], m)
        self.assertEqual(inner["Content-Transfer-Encoding"], "quoted-printable")
        self.assertEqual(inner.get_payload(decode=True), text.encode())

    def test_global_bounce_to_plain_server(self):
        """a global report (SMTPUTF8 original) to a server with neither SMTPUTF8 nor 8BITMIME: 7-bit, readable"""
        m = uniq("g7")
        sender, rcpt = "s-%s@plain7.test" % m, "perm-%s@full.test" % m
        subject = "R\u00e4ksm\u00f6rg\u00e5s %s" % m
        body = ("From: s@client.test\r\nSubject: %s\r\n\r\nhej\r\n" % subject).encode()
        inject(self.d, sender, [rcpt], body, mail_opts=["SMTPUTF8", "BODY=8BITMIME"])
        t = self.wait_at(self.plain7, sender)
        self.assertNotIn("SMTPUTF8", params_of(t.mail_params), "SMTPUTF8 to a server without it")
        self.assertFalse(any(c >= 0x80 for c in t.body), "8-bit bytes sent: %r" % t.body[:600])
        msg = email.message_from_bytes(t.body, policy=email.policy.default)
        self.assertEqual(msg.get_param("report-type"), "global-delivery-status")
        parts = list(msg.iter_parts())
        self.assertEqual(parts[2].get_content_type(), "message/global-headers")
        self.assertEqual(parts[2]["Content-Transfer-Encoding"], "quoted-printable")
        # Python parses every message/* type as an enclosure: decode by hand
        raw = t.body.split(b"Content-Type: message/global-headers\r\n", 1)[1]
        raw = raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]
        hdrs = email.message_from_string(quopri.decodestring(raw).decode("utf-8"),
                                         policy=email.policy.default)
        self.assertEqual(hdrs["Subject"], subject)

    def test_8bit_to_8bitmime_server_untouched(self):
        """8-bit content to a server with 8BITMIME goes as it is (BODY=8BITMIME passed on)"""
        m = uniq("k8")
        rcpt = "r-%s@noutf8.test" % m
        body = make_message(marker=m, extra_body="caf\u00e9\r\n".encode())
        inject(self.d, "s-%s@bounces.test" % m, [rcpt], body, mail_opts=["BODY=8BITMIME"])
        t = self.wait_at(self.noutf8, rcpt)
        self.assertEqual(params_of(t.mail_params).get("BODY"), "8BITMIME")
        self.assertEqual(after_received(t.body), body)


    # -- 4. NOTIFY=SUCCESS and NOTIFY=DELAY ----------------------------------

    def dsns_to(self, sender):
        return [t for t in self.bounce_sink.messages() if sender in t.rcpts]

    def test_notify_success_relayed(self):
        """NOTIFY=SUCCESS to a server without DSN: a "relayed" DSN, parsed"""
        m = uniq("rel")
        sender, rcpt = "s-%s@bounces.test" % m, "r-%s@plain7.test" % m
        inject(self.d, sender, [rcpt], make_message(marker=m), mail_opts=["ENVID=E%s" % m],
               rcpt_opts=["NOTIFY=SUCCESS", "ORCPT=rfc822;o-%s@plain7.test" % m])
        t = self.wait_at(self.plain7, rcpt)
        self.assertNotIn("NOTIFY", t.rcpt_params.get(rcpt, ""), "NOTIFY to a server without DSN")
        d = self.wait_at(self.bounce_sink, sender)
        msg, rtype, per_msg, per_rcpt, parts = report_of(d.body)
        self.assertEqual(rtype, "delivery-status")
        self.assertEqual(len(per_rcpt), 1, per_rcpt)
        r = per_rcpt[0]
        self.assertEqual(r["action"], "relayed")
        self.assertEqual(r["status"], "2.0.0")
        self.assertEqual(r["final-recipient"], "rfc822; %s" % rcpt)
        self.assertEqual(r["original-recipient"], "rfc822;o-%s@plain7.test" % m)
        self.assertEqual(per_msg["original-envelope-id"], "E%s" % m)
        self.assertEqual(msg["Subject"], "Successful Mail Delivery Report")

    def test_failed_and_relayed_in_one_report(self):
        """one message, a failure and a relayed success: one report listing both"""
        m = uniq("mix")
        sender = "s-%s@bounces.test" % m
        bad, good = "perm-%s@full.test" % m, "r-%s@plain7.test" % m
        inject(self.d, sender, [bad, good], make_message(marker=m),
               rcpt_opts={bad: ["NOTIFY=FAILURE"], good: ["NOTIFY=SUCCESS"]})
        t = self.wait_at(self.bounce_sink, sender)
        msg, _, _, per_rcpt, _ = report_of(t.body)
        got = sorted((r["final-recipient"], r["action"], r["status"]) for r in per_rcpt)
        self.assertEqual(got, sorted([("rfc822; %s" % bad, "failed", "5.1.1"),
                                      ("rfc822; %s" % good, "relayed", "2.0.0")]))
        self.assertEqual(msg["Subject"], "Undelivered Mail Returned to Sender")

    def test_notify_success_passed_on(self):
        """NOTIFY=SUCCESS to a server with DSN: NOTIFY/ORCPT/RET/ENVID passed on, no DSN from us"""
        m = uniq("pas")
        sender, rcpt = "s-%s@bounces.test" % m, "r-%s@full.test" % m
        inject(self.d, sender, [rcpt], make_message(marker=m),
               mail_opts=["RET=HDRS", "ENVID=E%s" % m],
               rcpt_opts=["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;o-%s@full.test" % m])
        t = self.wait_at(self.full, rcpt)
        mp, rp = params_of(t.mail_params), params_of(t.rcpt_params[rcpt])
        self.assertEqual(mp.get("RET"), "HDRS", t.mail_params)
        self.assertEqual(mp.get("ENVID"), "E%s" % m, t.mail_params)
        self.assertEqual(rp.get("NOTIFY"), "SUCCESS,DELAY", t.rcpt_params)
        self.assertEqual(rp.get("ORCPT"), "rfc822;o-%s@full.test" % m, t.rcpt_params)
        # positive marker on the same path: a second message from the same
        # sender to a server without DSN gets its relayed notice; by then a
        # notice for the first would have been sent too
        rcpt2 = "r2-%s@plain7.test" % m
        inject(self.d, sender, [rcpt2], make_message(marker=m + "b"),
               rcpt_opts=["NOTIFY=SUCCESS"])
        wait_until(lambda: self.dsns_to(sender), 25, "the relayed notice for %s" % rcpt2)
        time.sleep(1.0)
        got = self.dsns_to(sender)
        self.assertEqual(len(got), 1, "a DSN for a delivery to a DSN server: %r" % got)
        _, _, _, per_rcpt, _ = report_of(got[0].body)
        self.assertEqual([r["final-recipient"] for r in per_rcpt], ["rfc822; %s" % rcpt2])

    def test_notify_delay(self):
        """NOTIFY=DELAY: delay notices on the configured schedule, then the failure; none without DELAY"""
        m = uniq("dly")
        s_delay, r_delay = "s-%s@bounces.test" % m, "always450-%s@slow.test" % m
        s_fail, r_fail = "f-%s@bounces.test" % m, "always450-f%s@slow.test" % m
        t0 = time.monotonic()
        inject(self.d, s_delay, [r_delay], make_message(marker=m),
               rcpt_opts=["NOTIFY=DELAY,FAILURE"])
        inject(self.d, s_fail, [r_fail], make_message(marker=m + "f"),
               rcpt_opts=["NOTIFY=FAILURE"])

        def actions(sender):
            out = []
            for t in self.dsns_to(sender):
                _, _, _, per_rcpt, _ = report_of(t.body)
                out.append(per_rcpt[0]["action"])
            return out

        wait_until(lambda: actions(s_delay), 15, "the first delay notice (%s)" % self.logs())
        first = time.monotonic() - t0
        self.assertGreaterEqual(first, 1.5, "delay notice before Delay_DSN_Retry_Interval")
        d = self.dsns_to(s_delay)[0]
        msg, rtype, _, per_rcpt, parts = report_of(d.body)
        r = per_rcpt[0]
        self.assertEqual(r["action"], "delayed")
        self.assertTrue(r["status"].startswith("4."), r)
        self.assertIn("will-retry-until", r)
        self.assertIn("450", r.get("diagnostic-code", ""))
        self.assertEqual(msg["Subject"], "Delayed Mail (still being retried)")
        self.assertEqual(len(parts), 2, "a delay notice carries no original")

        # both expire at 12 s: the failure reports are the positive markers
        wait_until(lambda: "failed" in actions(s_delay) and actions(s_fail), 30,
                   "the failure reports after expiry (%s)" % self.logs())
        time.sleep(0.5)
        # due at 2 s and 6 s after reception; the next (14 s) is past expiry
        self.assertEqual(sorted(actions(s_delay)), ["delayed", "delayed", "failed"],
                         "delay notices not on the 2 s, 6 s schedule")
        self.assertEqual(actions(s_fail), ["failed"], "delay notice without NOTIFY=DELAY")


    # -- 5. Received: with UTF8SMTP / UTF8SMTPS --------------------------------

    def received_with(self, tls, utf8):
        m = uniq("rw")
        rcpt = "r-%s@full.test" % m
        s = self.smtp()
        s.ehlo("client.test")
        if tls:
            s.starttls(context=client_tls_context())
            s.ehlo("client.test")
        s.sendmail("s-%s@bounces.test" % m, [rcpt], make_message(marker=m),
                   mail_options=["SMTPUTF8"] if utf8 else [])
        s.quit()
        t = self.wait_at(self.full, rcpt)
        msg = email.message_from_bytes(t.body, policy=email.policy.default)
        first = " ".join(str(msg.get_all("Received")[0]).split())
        return first.split(" with ", 1)[1].split()[0]

    def test_received_with(self):
        """Received: says ESMTP, UTF8SMTP (SMTPUTF8), UTF8SMTPS (SMTPUTF8 over TLS), ESMTPS"""
        self.assertEqual(self.received_with(False, False), "ESMTP")
        self.assertEqual(self.received_with(False, True), "UTF8SMTP")
        self.assertEqual(self.received_with(True, True), "UTF8SMTPS")
        self.assertEqual(self.received_with(True, False), "ESMTPS")


if __name__ == "__main__":
    main()
