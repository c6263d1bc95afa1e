"""
test_delivery.py - outbound delivery end to end, against real SMTP sinks

One daemon for the class, with fixed routes to scripted sinks (sink.py):

  relay.test, batch.test, expire.test  -> sink A (replies scripted by the
                                          recipient's local part, below)
  second.test                          -> sink B (accepts everything)
  bounces.test                         -> the bounce sink (senders live
                                          there, so bounces land in it)
  anything else (Gateway)              -> the stray sink (must stay empty)

Sink A's script, by the recipient's local part:
  plain-*      250
  temp-*       450 on the first RCPT of that address, then 250
  perm-*       550 5.1.1
  always450-*  450 every time
  droprcpt-*   the connection is dropped at the first RCPT of that address
  dropdata-*   the connection is dropped after the first body, before the reply

Retry_Interval = 1 and Delayed_Queue_Scan_Interval = 1 keep retries fast.
What is checked comes from shared/REFERENCE.md (log formats, stages,
classification codes) and RFC 3461/3464 (DSN parameters and reports).
"""

import email.utils
import threading
import time

from harness import DaemonTestCase, main, make_message
from deliverykit import (inject, parse_bounce, part_bytes, rcpt_of, received_prefix_ok,
                         records, wait_gone_from_spool, wait_records, wait_until)
from sink import Sink

HOSTNAME = "mx.test.example"


class Script:
    """Script - sink A's per-recipient behaviour (see the module comment)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen_rcpt = set()
        self.seen_data = set()

    def first(self, seen, key):
        with self.lock:
            if key in seen:
                return False
            seen.add(key)
            return True

    def rcpt(self, addr):
        local = addr.split("@", 1)[0].lower()
        if local.startswith("temp-"):
            if self.first(self.seen_rcpt, addr):
                return "450 4.2.0 first attempt refused, try again"
            return "250 2.1.5 OK"
        if local.startswith("perm-"):
            return "550 5.1.1 <%s>: no such user here" % addr
        if local.startswith("always450-"):
            return "450 4.2.1 mailbox busy, try later"
        if local.startswith("droprcpt-"):
            if self.first(self.seen_rcpt, addr):
                return "DROP"
            return "250 2.1.5 OK"
        return "250 2.1.5 OK"

    def data(self, txn):
        for r in txn.rcpts:
            if r.lower().startswith("dropdata-") and self.first(self.seen_data, r):
                return "DROP"
        return "250 2.0.0 queued as sink"


def uniq(tag):
    return "%s%d" % (tag, time.time_ns() % 10**12)


class DeliveryTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.script = Script()
        cls.sink_a = Sink(rcpt_reply=cls.script.rcpt, data_reply=cls.script.data)
        cls.sink_b = Sink()
        cls.bounce_sink = Sink()
        cls.stray = Sink()
        cls.sinks = [cls.sink_a, cls.sink_b, cls.bounce_sink, cls.stray]
        for s in cls.sinks:
            s.start()
        a = "smtp://127.0.0.1:%d" % cls.sink_a.port
        cls.shared = dict(
            hostname=HOSTNAME, relay_domains=(), relay_hosts=("127.0.0.0/8",),
            hold_delivery=False,
            global_text="\n".join([
                "Retry_Interval = 1",
                "Max_Retry_Interval = 2",
                "Delayed_Queue_Scan_Interval = 1",
                'Gateway = "127.0.0.1:%d"' % cls.stray.port,
                'Domain "relay.test" { Routes = ( "%s" ) }' % a,
                'Domain "second.test" { Routes = ( "smtp://127.0.0.1:%d" ) }' % cls.sink_b.port,
                'Domain "batch.test" { Routes = ( "%s" ) Max_Recipients_Per_Batch = 4 }' % a,
                'Domain "expire.test" { Routes = ( "%s" ) Message_Expiration = 3 }' % a,
                'Domain "bounces.test" { Routes = ( "smtp://127.0.0.1:%d" ) }'
                % cls.bounce_sink.port,
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

    def bounces_to(self, addr):
        return [t for t in self.bounce_sink.messages() if addr in t.rcpts]

    def wait_bounce(self, addr, timeout=25.0):
        wait_until(lambda: self.bounces_to(addr), timeout,
                   "a bounce to %s at the bounce sink (mainlog tail:\n%s\npaniclog tail:\n%s)"
                   % (addr, "\n".join(self.d.mainlog()[-15:]),
                      "\n".join(self.d.paniclog()[-10:])))
        got = self.bounces_to(addr)
        self.assertEqual(len(got), 1, "exactly one bounce to %s expected, got %r" % (addr, got))
        return got[0]

    def internal_r_lines(self, rcpt=None):
        return [r for r in records(self.d, "R") if r["protocol"] == "internal"
                and (rcpt is None or "%s@%s" % (r["rcpt_local"], r["rcpt_domain"]) == rcpt)]

    def assertNoStray(self):
        self.assertEqual(self.stray.messages(), [],
                         "mail went to the Gateway (stray sink) instead of its route")

    # -- relay ---------------------------------------------------------------

    def test_relay_end_to_end(self):
        """relay: body intact except one Received header, envelope kept, D line, spool empty"""
        m = uniq("e2e")
        body = make_message(subject="relay " + m, marker=m)
        sender, rcpt = "s-%s@bounces.test" % m, "plain-%s@relay.test" % m
        mid = inject(self.d, sender, [rcpt], body)
        wait_until(lambda: self.sink_a.with_marker(m), 20, "the message at sink A")
        txns = self.sink_a.with_marker(m)
        self.assertEqual(len(txns), 1, "delivered more than once: %r" % txns)
        t = txns[0]
        self.assertEqual(t.mail, sender, "MAIL FROM changed")
        self.assertEqual(t.rcpts, [rcpt], "RCPT TO changed")
        why = received_prefix_ok(t.body, body)
        self.assertIsNone(why, why)
        self.assertIn(HOSTNAME.encode(), t.body[:len(t.body) - len(body)],
                      "the Received header does not name our Hostname")

        d = wait_records(self.d, "D", mid, what="D line after delivery")
        time.sleep(1.5)
        d = records(self.d, "D", mid)
        self.assertEqual(len(d), 1, "one D line per recipient expected: %r"
                         % [r["raw"] for r in d])
        r = d[0]
        self.assertEqual(r["nfields"], 12, "D line has the wrong field count: %s" % r["raw"])
        self.assertEqual(r["domain"], "relay.test", r["raw"])
        self.assertEqual(r["retries"], "0", r["raw"])
        self.assertEqual(r["bgroup"], "default", r["raw"])
        self.assertEqual(r["binding"], "default", r["raw"])
        self.assertTrue(r["size"].isdigit() and int(r["size"]) >= len(body), r["raw"])
        self.assertTrue(r["secs"].lstrip("-").isdigit() and 0 <= int(r["secs"]) < 60, r["raw"])
        self.assertTrue(r["remote"].startswith("127.0.0.1"), "remote IP: %s" % r["raw"])
        self.assertTrue(r["batch"] and r["conn"], "D line lacks batch/connection id: %s" % r["raw"])
        self.assertEqual(records(self.d, "T", mid) + records(self.d, "P", mid), [],
                         "T/P lines for a message delivered at once")
        wait_gone_from_spool(self, self.d, mid)
        self.assertNoStray()

    def test_relay_passes_size_and_body(self):
        """MAIL FROM carries SIZE= and BODY=8BITMIME to a server offering them"""
        m = uniq("size")
        body = make_message(marker=m, extra_body="caf\u00e9 8-bit line\r\n".encode("utf-8"))
        mid = inject(self.d, "s-%s@bounces.test" % m, ["plain-%s@relay.test" % m], body,
                     mail_opts=["SIZE=%d" % len(body), "BODY=8BITMIME"])
        wait_until(lambda: self.sink_a.with_marker(m), 20, "the message at sink A")
        t = self.sink_a.with_marker(m)[0]
        params = {p.split("=", 1)[0].upper(): p.split("=", 1)[1] if "=" in p else ""
                  for p in t.mail_params.split()}
        self.assertIn("SIZE", params, "no SIZE= on MAIL FROM: %r" % t.mail_params)
        self.assertTrue(params["SIZE"].isdigit() and int(params["SIZE"]) >= len(body),
                        "SIZE=%s smaller than the message (%d bytes)" % (params["SIZE"], len(body)))
        self.assertEqual(params.get("BODY", "").upper(), "8BITMIME",
                         "BODY=8BITMIME not passed on: %r" % t.mail_params)
        self.assertIn("caf\u00e9".encode("utf-8"), t.body, "8-bit text damaged")
        wait_records(self.d, "D", mid)

    def test_relay_passes_dsn_parameters(self):
        """ENVID, RET, NOTIFY and ORCPT are passed on to a server offering DSN"""
        m = uniq("dsn")
        body = make_message(marker=m)
        rcpt = "plain-%s@relay.test" % m
        mid = inject(self.d, "s-%s@bounces.test" % m, [rcpt], body,
                     mail_opts=["ENVID=env-%s" % m, "RET=HDRS"],
                     rcpt_opts=["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;orig-%s@relay.test" % m])
        wait_until(lambda: self.sink_a.with_marker(m), 20, "the message at sink A")
        t = self.sink_a.with_marker(m)[0]
        mp = {p.split("=", 1)[0].upper(): p.split("=", 1)[1] if "=" in p else ""
              for p in t.mail_params.split()}
        self.assertEqual(mp.get("ENVID"), "env-%s" % m, "ENVID: %r" % t.mail_params)
        self.assertEqual(mp.get("RET", "").upper(), "HDRS", "RET: %r" % t.mail_params)
        rp = {p.split("=", 1)[0].upper(): p.split("=", 1)[1] if "=" in p else ""
              for p in t.rcpt_params.get(rcpt, "").split()}
        self.assertEqual(set(rp.get("NOTIFY", "").upper().split(",")), {"FAILURE", "DELAY"},
                         "NOTIFY: %r" % t.rcpt_params)
        orcpt = rp.get("ORCPT", "")
        self.assertEqual(orcpt.lower(), ("rfc822;orig-%s@relay.test" % m).lower(),
                         "ORCPT: %r" % t.rcpt_params)
        wait_records(self.d, "D", mid)

    def test_batching_max_recipients_per_batch(self):
        """10 recipients, Max_Recipients_Per_Batch = 4 -> transactions of 4, 4 and 2"""
        m = uniq("batch")
        rcpts = ["plain-%s-%02d@batch.test" % (m, i) for i in range(10)]
        mid = inject(self.d, "s-%s@bounces.test" % m, rcpts, make_message(marker=m))
        wait_until(lambda: sum(len(t.rcpts) for t in self.sink_a.with_marker(m)) >= 10, 25,
                   "10 recipients at sink A")
        time.sleep(1.0)
        txns = self.sink_a.with_marker(m)
        self.assertEqual(sorted(len(t.rcpts) for t in txns), [2, 4, 4],
                         "batch sizes: %r" % [t.rcpts for t in txns])
        self.assertEqual(sorted(r for t in txns for r in t.rcpts), sorted(rcpts),
                         "every recipient exactly once")
        wait_records(self.d, "D", mid, count=10, what="one D line per recipient")
        time.sleep(1.2)
        self.assertEqual(len(records(self.d, "D", mid)), 10, "D lines per recipient")
        wait_gone_from_spool(self, self.d, mid)

    def test_two_domains_two_transactions(self):
        """recipients of two domains -> one transaction at each domain's sink"""
        m = uniq("two")
        ra = ["plain-%s-a1@relay.test" % m, "plain-%s-a2@relay.test" % m]
        rb = ["x-%s-b1@second.test" % m, "x-%s-b2@second.test" % m]
        mid = inject(self.d, "s-%s@bounces.test" % m, [ra[0], rb[0], ra[1], rb[1]],
                     make_message(marker=m))
        wait_until(lambda: self.sink_a.with_marker(m) and self.sink_b.with_marker(m), 20,
                   "the message at both sinks")
        d = wait_records(self.d, "D", mid, count=4)
        time.sleep(0.5)
        ta, tb = self.sink_a.with_marker(m), self.sink_b.with_marker(m)
        self.assertEqual([sorted(t.rcpts) for t in ta], [sorted(ra)], "sink A: %r" % ta)
        self.assertEqual([sorted(t.rcpts) for t in tb], [sorted(rb)], "sink B: %r" % tb)
        self.assertEqual(sorted(r["domain"] for r in d),
                         ["relay.test", "relay.test", "second.test", "second.test"],
                         [r["raw"] for r in d])
        self.assertNoStray()

    # -- failures ------------------------------------------------------------

    def test_retry_then_success(self):
        """450 on the first attempt -> T line (stage 4, the text), then D with retries=1"""
        m = uniq("retry")
        rcpt = "temp-%s@relay.test" % m
        mid = inject(self.d, "s-%s@bounces.test" % m, [rcpt], make_message(marker=m))
        t = wait_records(self.d, "T", mid, what="T line after the 450")[0]
        self.assertEqual(t["nfields"], 14, "T line field count: %s" % t["raw"])
        self.assertEqual(t["domain"], "relay.test", t["raw"])
        self.assertEqual(t["stage"], "4", "a RCPT refusal happens at stage 4 (RCPT sent): %s"
                         % t["raw"])
        self.assertIn("450", t["response"], t["raw"])
        self.assertIn("first attempt refused", t["response"], t["raw"])
        self.assertTrue(t["remote"].startswith("127.0.0.1"), t["raw"])
        d = wait_records(self.d, "D", mid, timeout=25, what="D line after the retry")
        self.assertEqual(d[0]["retries"], "1", "D line retries after one 450: %s" % d[0]["raw"])
        time.sleep(1.5)
        self.assertEqual(len(self.sink_a.with_marker(m)), 1, "delivered exactly once")
        self.assertEqual(len(records(self.d, "D", mid)), 1)
        self.assertEqual(records(self.d, "P", mid), [], "no P line for a retried success")
        self.assertEqual(self.bounces_to("s-%s@bounces.test" % m), [], "no bounce")

    def test_permanent_failure_bounce(self):
        """550 5.1.1 -> P line, B line class 10, RFC 3464 bounce with the report fields"""
        m = uniq("perm")
        sender = "p-%s@bounces.test" % m
        rcpt = "perm-%s@relay.test" % m
        body = make_message(subject="doomed " + m, marker=m)
        mid = inject(self.d, sender, [rcpt], body, mail_opts=["ENVID=envp-%s" % m],
                     rcpt_opts=["ORCPT=rfc822;orig-%s@relay.test" % m])
        p = wait_records(self.d, "P", mid, what="P line after the 550")[0]
        self.assertEqual(p["nfields"], 14, p["raw"])
        self.assertEqual(p["stage"], "4", "RCPT refusal is stage 4: %s" % p["raw"])
        self.assertIn("550", p["response"], p["raw"])
        self.assertIn("5.1.1", p["response"], p["raw"])
        b = wait_records(self.d, "B", mid, what="bouncelog B line")[0]
        self.assertEqual(b["nfields"], 16, "B line field count: %s" % b["raw"])
        self.assertEqual((b["rcpt_local"], b["rcpt_domain"]), ("perm-%s" % m, "relay.test"),
                         b["raw"])
        self.assertEqual((b["sender_local"], b["sender_domain"]), ("p-%s" % m, "bounces.test"),
                         b["raw"])
        self.assertEqual(b["cls"], "10", "550 5.1.1 is an Invalid Recipient (10): %s" % b["raw"])
        self.assertEqual(b["stage"], "4", b["raw"])
        self.assertIn("5.1.1", b["response"], b["raw"])
        self.assertEqual(self.sink_a.with_marker(m), [], "the refused message was delivered?")

        t = self.wait_bounce(sender)
        self.assertEqual(t.mail, "", "a bounce must have the null sender")
        msg, pm, pr, third = parse_bounce(t.body)
        self.assertIn(("MAILER-DAEMON@" + HOSTNAME).lower(), str(msg["From"]).lower(),
                      "From of the bounce: %s" % msg["From"])
        self.assertIn(sender, str(msg["To"]), "To of the bounce: %s" % msg["To"])
        self.assertIsNotNone(msg["Message-ID"], "bounce without Message-ID")
        self.assertIsNotNone(msg["Date"], "bounce without Date")
        self.assertIn(HOSTNAME, pm.get("reporting-mta", ""), "Reporting-MTA: %r" % pm)
        self.assertTrue(pm.get("reporting-mta", "").lower().startswith("dns;"), pm)
        self.assertIsNotNone(email.utils.parsedate_to_datetime(pm["arrival-date"]),
                             "Arrival-Date: %r" % pm)
        self.assertEqual(pm.get("original-envelope-id"), "envp-%s" % m, pm)
        self.assertEqual(len(pr), 1, "one per-recipient block expected: %r" % pr)
        r = rcpt_of(pr, rcpt)
        self.assertTrue(r["final-recipient"].lower().replace(" ", "").startswith("rfc822;"), r)
        self.assertIn("orig-%s@relay.test" % m, r.get("original-recipient", ""),
                      "Original-Recipient from ORCPT: %r" % r)
        self.assertEqual(r.get("action", "").lower(), "failed", r)
        self.assertEqual(r.get("status"), "5.1.1", "Status must match the remote 5.1.1: %r" % r)
        self.assertIn("127.0.0.1", r.get("remote-mta", ""), "Remote-MTA: %r" % r)
        self.assertIn("no such user here", r.get("diagnostic-code", ""), r)
        self.assertIn("550", r.get("diagnostic-code", ""), r)
        self.assertTrue(r.get("diagnostic-code", "").lower().replace(" ", "").startswith("smtp;"),
                        r)
        self.assertIsNotNone(email.utils.parsedate_to_datetime(r["last-attempt-date"]), r)
        self.assertIsNotNone(third, "no third part with the original headers")
        self.assertEqual(third.get_content_type(), "text/rfc822-headers")
        hdrs = part_bytes(third)
        self.assertIn(("doomed " + m).encode(), hdrs, "original Subject not in the third part")
        self.assertNotIn(b"Hello.", hdrs, "headers-only bounce carries the body")

        rl = wait_until(lambda: self.internal_r_lines(sender), 10,
                        "an R line with protocol internal for the bounce")
        self.assertEqual(rl[0]["sender_local"] + rl[0]["sender_domain"], "",
                         "the bounce's R line names a sender: %s" % rl[0]["raw"])
        self.assertNoStray()

    def test_permanent_failure_ret_full(self):
        """RET=FULL -> the bounce carries the whole original as message/rfc822"""
        m = uniq("full")
        sender = "f-%s@bounces.test" % m
        rcpt = "perm-%s@relay.test" % m
        mid = inject(self.d, sender, [rcpt],
                     make_message(subject="full " + m, marker="body-" + m),
                     mail_opts=["RET=FULL"])
        wait_records(self.d, "P", mid)
        t = self.wait_bounce(sender)
        msg, pm, pr, third = parse_bounce(t.body)
        self.assertIsNotNone(third, "no third part")
        self.assertEqual(third.get_content_type(), "message/rfc822",
                         "RET=FULL wants the whole message as message/rfc822")
        whole = part_bytes(third)
        self.assertIn(("full " + m).encode(), whole)
        self.assertIn(("body-" + m).encode(), whole, "the original body is not in the bounce")
        self.assertNotIn("original-envelope-id", pm, "no ENVID was given: %r" % pm)
        rr = rcpt_of(pr, rcpt)
        self.assertNotIn("original-recipient", rr, "no ORCPT was given: %r" % rr)

    def test_expiry(self):
        """Message_Expiration = 3, sink always 450 -> T lines, P line, bounce says expired"""
        m = uniq("exp")
        sender = "x-%s@bounces.test" % m
        rcpt = "always450-%s@expire.test" % m
        mid = inject(self.d, sender, [rcpt], make_message(marker=m))
        wait_records(self.d, "T", mid, what="T line before expiry")
        p = wait_records(self.d, "P", mid, timeout=25, what="P line at expiry")[0]
        self.assertEqual(p["domain"], "expire.test", p["raw"])
        self.assertGreaterEqual(int(p["secs"]), 3, "failed before Message_Expiration: %s"
                                % p["raw"])
        b = wait_records(self.d, "B", mid)[0]
        self.assertEqual((b["rcpt_local"], b["rcpt_domain"]), ("always450-%s" % m, "expire.test"),
                         b["raw"])
        t = self.wait_bounce(sender)
        msg, pm, pr, third = parse_bounce(t.body)
        r = rcpt_of(pr, rcpt)
        self.assertEqual(r.get("action", "").lower(), "failed", r)
        self.assertIn("expire", r.get("diagnostic-code", "").lower(),
                      "Diagnostic-Code should say the message expired: %r" % r)
        self.assertEqual(self.sink_a.with_marker(m), [])

    def test_drop_at_rcpt_then_success(self):
        """connection dropped at RCPT -> T line, later delivered once"""
        m = uniq("drcpt")
        mid = inject(self.d, "s-%s@bounces.test" % m, ["droprcpt-%s@relay.test" % m],
                     make_message(marker=m))
        t = wait_records(self.d, "T", mid, what="T line after the dropped connection")[0]
        self.assertIn(t["stage"], ("4", "5"), "the drop happened after RCPT was sent: %s"
                      % t["raw"])
        d = wait_records(self.d, "D", mid, timeout=25, what="D line after the retry")[0]
        self.assertGreaterEqual(int(d["retries"]), 1, d["raw"])
        time.sleep(1.0)
        self.assertEqual(len(self.sink_a.with_marker(m)), 1, "delivered exactly once")
        self.assertEqual(records(self.d, "P", mid), [])

    def test_drop_at_data_then_success(self):
        """connection dropped after the body, before the reply -> T line, then delivered"""
        m = uniq("ddata")
        mid = inject(self.d, "s-%s@bounces.test" % m, ["dropdata-%s@relay.test" % m],
                     make_message(marker=m))
        t = wait_records(self.d, "T", mid, what="T line after the drop at DATA")[0]
        self.assertEqual(t["stage"], "8", "the drop happened with the body sent (stage 8): %s"
                         % t["raw"])
        d = wait_records(self.d, "D", mid, timeout=25, what="D line after the retry")[0]
        self.assertGreaterEqual(int(d["retries"]), 1, d["raw"])
        time.sleep(1.0)
        self.assertEqual(len(self.sink_a.with_marker(m)), 1, "accepted exactly once")
        self.assertEqual(len(self.sink_a.with_marker(m, all_attempts=True)), 2,
                         "the body was sent twice (once dropped, once accepted)")
        self.assertEqual(records(self.d, "P", mid), [])

    # -- no bounce -----------------------------------------------------------

    def test_null_sender_failure_never_bounces(self):
        """a null-sender message that fails permanently produces no bounce"""
        m = uniq("null")
        before = len(self.internal_r_lines())
        nb = len(self.bounce_sink.messages())
        ns = len(self.stray.messages())
        mid = inject(self.d, "", ["perm-%s@relay.test" % m], make_message(marker=m))
        wait_records(self.d, "P", mid)
        time.sleep(3.0)
        self.assertEqual(len(self.internal_r_lines()), before,
                         "a bounce was generated for a null-sender message: %r"
                         % [r["raw"] for r in self.internal_r_lines()[before:]])
        self.assertEqual(len(self.bounce_sink.messages()), nb)
        self.assertEqual(len(self.stray.messages()), ns, "something was sent to the Gateway")
        wait_gone_from_spool(self, self.d, mid)

    def test_notify_never_and_success_only_no_failure_bounce(self):
        """NOTIFY=NEVER and NOTIFY=SUCCESS: a permanent failure sends no bounce"""
        m = uniq("never")
        s1, s2 = "n1-%s@bounces.test" % m, "n2-%s@bounces.test" % m
        id1 = inject(self.d, s1, ["perm-%s-1@relay.test" % m], make_message(marker=m + "a"),
                     rcpt_opts=["NOTIFY=NEVER"])
        id2 = inject(self.d, s2, ["perm-%s-2@relay.test" % m], make_message(marker=m + "b"),
                     rcpt_opts=["NOTIFY=SUCCESS"])
        wait_records(self.d, "P", id1)
        wait_records(self.d, "P", id2)
        time.sleep(3.0)
        self.assertEqual(self.bounces_to(s1), [], "bounce despite NOTIFY=NEVER")
        self.assertEqual(self.bounces_to(s2), [], "failure bounce despite NOTIFY=SUCCESS only")
        self.assertEqual(self.internal_r_lines(s1) + self.internal_r_lines(s2), [],
                         "a bounce was queued")


if __name__ == "__main__":
    main()
