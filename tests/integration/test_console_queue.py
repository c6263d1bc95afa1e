"""
test_console_queue.py - the queue and message console commands, end to end

Black-box, through the real `impetus` tool, the real daemon and real
SMTP sinks (docs/console.md, "Queue and message commands"). One daemon
is shared by the class (the CI budget); each test uses its own domains,
so they do not see each other's mail:

- summary / summary reset: every field, text and JSON; delivered and
  received counts follow real deliveries; reset zeroes them; it answers fast;
- suspend domain: nothing reaches the sink while the daemon delivers other
  mail; domain/mailq/showqueue/message details show it queued and
  suspended; resume: it arrives. suspend/resume binding the same way;
- a sink answering 452 makes delayed mail: domain and showqueue show it
  delayed with its attempts; flush domain after the sink recovers: it
  arrives at once (Retry_Interval is an hour); message retry: a new
  attempt now;
- fail domain: P and B lines, a bounce to the sender at the sink, nothing
  for the recipients; quiet: no bounce; message fail ID quiet likewise;
  after a restart the spool holds none of it; a `message fail` followed
  at once by kill -9 is not undone (the spool commits an operator's
  change at once, not with the next message);
- reroute queue: mail for a dead destination goes to another domain's
  route and arrives;
- rebind domain: after a reload changes Assign_Binding, the queued message
  moves from a suspended binding to the new one and arrives;
- bad input (unknown domain, bad id, missing arguments, unknown binding):
  exit 1 with the error, and the daemon keeps serving.
"""

import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import inject, records, wait_records, wait_until  # noqa: E402
from sink import Sink  # noqa: E402

SENDER = "alice@ret.test"	# bounces come back to the good sink
DOMAINS = ("ok.test", "ret.test", "held.test", "bound.test", "slow.test", "failq.test",
           "failm.test", "lost.test", "rb.test", "crash.test")


class ConsoleQueue(harness.DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.good = Sink()
        cls.good.start()
        cls.slow_reply = ["452 4.2.2 mailbox full"]
        cls.slow = Sink(rcpt_reply=lambda addr: cls.slow_reply[0])
        cls.slow.start()
        cls.full = Sink(rcpt_reply=lambda addr: "452 4.2.2 try later")
        cls.full.start()
        cls.dead = harness.free_port()
        cls.conf = cls.config_text("b1")
        try:
            cls.d = harness.Daemon(global_text=cls.conf, relay_hosts=("127.0.0.0/8",),
                                   relay_domains=DOMAINS, hold_delivery=False)
        except BaseException:
            for s in (cls.good, cls.slow, cls.full):
                s.stop()
            raise
        cls.d.control = os.path.join(cls.d.tmp, "control")

    @classmethod
    def tearDownClass(cls):
        for s in (cls.good, cls.slow, cls.full):
            s.stop()
        super().tearDownClass()

    @classmethod
    def config_text(cls, rb_binding):
        route = 'Domain "%s" { Routes = ( "smtp://127.0.0.1:%d" ) %s}'
        return "\n".join([
            'Control_Listener {\n  Listen "./control" { File_Mode = 0600 }\n}',
            "Retry_Interval = 3600",
            'Binding "b1" { }',
            'Binding "b2" { }',
            route % ("ok.test", cls.good.port, ""),
            route % ("ret.test", cls.good.port, ""),
            route % ("held.test", cls.good.port, ""),
            route % ("bound.test", cls.good.port, 'Assign_Binding = "b1" '),
            route % ("rb.test", cls.good.port, 'Assign_Binding = "%s" ' % rb_binding),
            route % ("slow.test", cls.slow.port, ""),
            route % ("failq.test", cls.full.port, ""),
            route % ("failm.test", cls.full.port, ""),
            route % ("crash.test", cls.full.port, ""),
            route % ("lost.test", cls.dead, ""),
        ])

    def setUp(self):
        super().setUp()
        self.addCleanup(self._dump_if_failed, self.d)

    # -- helpers ---------------------------------------------------------------

    def tool(self, *args):
        """tool - `impetus -s SOCK args...`: (exit code, stdout, stderr)."""
        p = subprocess.run([harness.impetus_path(), "-s", self.d.control] + list(args),
                           capture_output=True, timeout=30)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def ok(self, *args):
        rc, out, err = self.tool(*args)
        self.assertEqual(rc, 0, "impetus %s failed: %s" % (" ".join(args), err))
        return out

    def js(self, *args):
        return json.loads(self.ok(*args, "--json"))

    def bad(self, *args, expect):
        rc, out, err = self.tool(*args)
        self.assertEqual((rc, out), (1, ""), "impetus %s should fail" % " ".join(args))
        self.assertIn(expect, err)

    def send(self, rcpt, marker):
        return inject(self.d, SENDER, [rcpt], harness.make_message(marker=marker))

    def arrived(self, marker, timeout=20):
        wait_until(lambda: self.good.with_marker(marker), timeout=timeout,
                   what="%s at the sink" % marker)

    def control_marker(self, name):
        """control_marker - a message to ok.test delivered: later than what was queued before it."""
        self.send("x@ok.test", name)
        self.arrived(name)

    # -- summary ---------------------------------------------------------------

    def test_summary(self):
        before = self.js("summary")["delivered"]
        self.send("s1@ok.test", "sum-1")
        self.arrived("sum-1")
        wait_until(lambda: self.js("summary")["delivered"] >= before + 1, what="delivered count")
        s = self.js("summary")
        for k in ("outbound_concurrency", "inbound_concurrency", "active_domains", "active_queue",
                  "delayed_queue", "total_queue", "dns_queries", "dns_pending", "delivered",
                  "failed", "rejected", "received", "delivery_rate_10s", "delivery_rate_60s",
                  "reception_rate_10s", "reception_rate_60s", "since_reset", "uptime"):
            self.assertIn(k, s)
        self.assertGreaterEqual(s["received"], 1)
        self.assertGreater(s["delivery_rate_60s"], 0)
        self.assertGreaterEqual(s["uptime"], s["since_reset"])
        text = self.ok("summary")
        for label in ("Summary Statistics", "Outbound Concurrency:", "Inbound Concurrency:",
                      "Active Domains:", "Active Queue Size:", "Delayed Queue Size:",
                      "Total Queue Size:", "DNS Queries:", "Successfully Delivered Messages:",
                      "Failed Messages:", "Rejected Messages:", "Received Messages:",
                      "Delivery Rate:", "Reception Rate:", "Statistics Last Reset:", "Uptime:"):
            self.assertIn(label, text)
        # A refused recipient is a rejection.
        rejected = self.js("summary")["rejected"]
        with self.d.smtp() as c:
            c.ehlo("client.test")
            c.mail("a@ok.test")
            code, _ = c.docmd("RCPT TO:<no address here>")
            self.assertGreaterEqual(code, 500)
        wait_until(lambda: self.js("summary")["rejected"] > rejected, what="rejected count")
        # reset: the counts start again.
        self.assertEqual(self.ok("summary", "reset"), "Statistics reset\n")
        s = self.js("summary")
        self.assertEqual((s["delivered"], s["received"], s["rejected"]), (0, 0, 0))
        self.assertLessEqual(s["since_reset"], 2)
        # How fast is a benchmark's question (bench/console.sh), not a test's.
        self.ok("summary")
        self.bad("summary", "bogus", expect="usage: summary [reset]")

    # -- suspend / resume --------------------------------------------------------

    def test_suspend_resume_domain(self):
        self.assertEqual(self.ok("suspend", "domain", "held.test"), "Domain held.test suspended\n")
        mid = self.send("h1@held.test", "held-1")
        wait_records(self.d, "R", mid)
        self.control_marker("held-ctl")
        self.assertEqual(self.good.with_marker("held-1"), [])
        dom = self.js("domain", "held.test")
        self.assertTrue(dom["suspended"])
        [b] = dom["bindings"]
        self.assertEqual((b["binding"], b["active"], b["delayed"], b["suspended"]),
                         ("default", 1, 0, True))
        self.assertIn("Domain 'held.test' (suspended)", self.ok("domain", "held.test"))
        self.assertIn("suspended (console)", self.ok("domain", "held.test"))
        # mailq: its row, text and JSON.
        row = [r for r in self.js("mailq")["queues"] if r["domain"] == "held.test"]
        self.assertEqual([(r["binding"], r["active"], r["delayed"]) for r in row],
                         [("default", 1, 0)])
        self.assertRegex(self.ok("mailq"), r"(?m)^default/default +held\.test +1 +0$")
        # showqueue and message details.
        sq = self.js("showqueue", "held.test")
        self.assertEqual(sq["total"], 1)
        [m] = sq["messages"]
        self.assertEqual((m["id"], m["queue"], m["sender"], m["recipient"]),
                         (mid, "active", SENDER, "h1@held.test"))
        text = self.ok("showqueue", "held.test")
        self.assertIn("[active/default] %s Created:" % mid, text)
        self.assertIn("From: <%s> To: <h1@held.test>" % SENDER, text)
        det = self.js("message", "details", mid)
        self.assertEqual((det["id"], det["sender"], det["binding"]), (mid, SENDER, "default"))
        self.assertEqual(det["recipients"][0]["state"], "active")
        self.assertIn("<h1@held.test> active attempts=0", self.ok("message", "details", mid))
        # Suspending twice says so; resume delivers.
        self.assertIn("already", self.ok("suspend", "domain", "held.test"))
        self.assertEqual(self.js("resume", "domain", "held.test"),
                         {"domain": "held.test", "suspended": False, "changed": True})
        self.arrived("held-1")

    def test_suspend_resume_binding(self):
        self.assertEqual(self.js("suspend", "binding", "b1"),
                         {"binding": "b1", "suspended": True, "changed": True})
        mid = self.send("b@bound.test", "bound-1")
        wait_records(self.d, "R", mid)
        self.control_marker("bound-ctl")
        self.assertEqual(self.good.with_marker("bound-1"), [])
        [b] = self.js("domain", "bound.test")["bindings"]
        self.assertEqual((b["binding"], b["active"], b["suspended"]), ("b1", 1, True))
        bs = {r["binding"]: r for r in self.js("binding", "summary")["bindings"]}
        self.assertTrue(bs["b1"]["suspended"])
        self.assertGreaterEqual(bs["b1"]["active"], 1)
        self.assertRegex(self.ok("binding", "summary"), r"(?m)^b1 +default +\d+ +\d+ .* yes$")
        self.assertEqual(self.ok("resume", "binding", "b1"), "Binding b1 resumed\n")
        self.arrived("bound-1")
        self.bad("suspend", "binding", "nosuch", expect='unknown binding "nosuch"')
        self.bad("suspend", "queue", "x", expect="usage: suspend domain DOMAIN")

    # -- delayed mail: flush, retry ------------------------------------------------

    def test_flush_and_retry(self):
        mid = self.send("s@slow.test", "slow-1")
        wait_records(self.d, "T", mid)
        [b] = self.js("domain", "slow.test")["bindings"]
        self.assertEqual((b["active"], b["delayed"], b["deferred"]), (0, 1, 1))
        [m] = self.js("showqueue", "slow.test")["messages"]
        self.assertEqual((m["queue"], m["attempts"]), ("delayed", 1))
        self.assertGreater(m["next_attempt"], time.time() + 3000)
        self.assertRegex(self.ok("showqueue", "slow.test"),
                         r"\[delayed/default\] %s Created: \d+ Attempts: 1 Next: \d+ \(in \d+ s\)"
                         % mid)
        # message retry: due now, a second attempt (still 452).
        self.assertEqual(self.ok("message", "retry", mid),
                         "Message %s: 1 recipient due now\n" % mid)
        wait_records(self.d, "T", mid, count=2)
        self.assertEqual(self.js("message", "details", mid)["recipients"][0]["attempts"], 2)
        # The sink recovers; flush: it arrives now, not in an hour.
        self.slow_reply[0] = "250 2.1.5 OK"
        try:
            self.assertEqual(self.js("flush", "domain", "slow.test"),
                             {"action": "flush", "domain": "slow.test", "recipients": 1})
            wait_until(lambda: self.slow.with_marker("slow-1"), what="flushed mail at the sink")
            wait_records(self.d, "D", mid)
        finally:
            self.slow_reply[0] = "452 4.2.2 mailbox full"
        self.assertIn("0 recipients due now", self.ok("flush", "domain", "SLOW.test"))

    # -- fail ----------------------------------------------------------------------

    def test_fail_domain_and_message(self):
        loud = self.send("f1@failq.test", "fail-loud")
        quiet = self.send("f2@failm.test", "fail-quiet")
        single = self.send("f3@failm.test", "fail-single")
        for mid in (loud, quiet, single):
            wait_records(self.d, "T", mid)
        self.assertEqual(self.ok("fail", "domain", "failq.test"),
                         "failq.test: 1 recipient failed\n")
        [p] = wait_records(self.d, "P", loud)
        self.assertIn("554 5.0.0 failed by the administrator", p["response"])
        wait_records(self.d, "B", loud)
        # The bounce goes to the sender (at the good sink) and names the recipient.
        bounce = wait_until(lambda: [t for t in self.good.transactions
                                     if SENDER in t.rcpts and b"f1@failq.test" in t.body],
                            what="bounce at the sender's sink")
        self.assertTrue(bounce)
        # message fail ID quiet: P line, no bounce; then fail domain quiet for the rest.
        self.assertEqual(self.js("message", "fail", single, "quiet"),
                         {"id": single, "action": "fail", "recipients": 1, "quiet": True})
        wait_records(self.d, "P", single)
        self.assertEqual(self.js("fail", "domain", "failm.test", "quiet"),
                         {"action": "fail quiet", "domain": "failm.test", "recipients": 1})
        wait_records(self.d, "P", quiet)
        self.control_marker("fail-ctl")
        for addr in (b"f2@failm.test", b"f3@failm.test"):
            self.assertEqual([t for t in self.good.transactions if addr in t.body], [])
        self.assertEqual(self.full.with_marker("fail-loud"), [])
        self.bad("message", "details", quiet, expect="is not queued")
        self.assertEqual(self.js("fail", "domain", "failq.test")["recipients"], 0)
        # Durable: after a restart the spool holds none of them.
        self.d.stop()
        self.d.start()
        live = {str(m.get("id", "")).upper() for m in self.d.spool_ls()}
        self.assertFalse(live & {loud, quiet, single}, live)

    def test_operator_change_survives_a_crash_at_once(self):
        gone = self.send("c1@crash.test", "crash-fail")
        kept = self.send("c2@crash.test", "crash-kept")
        for mid in (gone, kept):
            wait_records(self.d, "T", mid)
        self.assertEqual(self.js("message", "fail", gone, "quiet")["recipients"], 1)
        # At once: the records would otherwise wait up to a second for company.
        self.d.kill9()
        self.d.start()
        live = {str(m.get("id", "")).upper() for m in self.d.spool_ls()}
        self.assertNotIn(gone, live, "the failed message came back after the crash")
        self.assertIn(kept, live)

    # -- reroute --------------------------------------------------------------------

    def test_reroute(self):
        mid = self.send("r@lost.test", "lost-1")
        wait_records(self.d, "T", mid)	# connection refused: delayed for an hour
        self.assertEqual(self.ok("reroute", "queue", "lost.test", "ok.test"),
                         "lost.test: 1 recipient rerouted to ok.test\n")
        dom = self.js("domain", "lost.test")
        self.assertEqual(dom["rerouted_to"], "ok.test")
        # Delayed entries keep their time: flush the new queue to send it now.
        self.assertEqual(self.js("flush", "domain", "ok.test")["recipients"], 1)
        self.arrived("lost-1")
        [dl] = wait_records(self.d, "D", mid)
        self.assertEqual(self.good.with_marker("lost-1")[0].rcpts, ["r@lost.test"])
        # New mail for lost.test follows the rule.
        self.send("r2@lost.test", "lost-2")
        self.arrived("lost-2")
        self.bad("reroute", "queue", "ok.test", "lost.test", expect="already goes to")
        self.bad("reroute", "queue", "a.test", expect="usage: reroute queue")

    # -- rebind ---------------------------------------------------------------------

    def test_rebind_after_reload(self):
        self.ok("suspend", "binding", "b1")
        try:
            mid = self.send("rb@rb.test", "rb-1")
            wait_records(self.d, "R", mid)
            self.assertEqual(self.js("message", "details", mid)["binding"], "b1")
            # Nothing to change yet.
            self.assertEqual(self.js("rebind", "domain", "rb.test"),
                             {"action": "rebind", "domain": "rb.test", "messages": 1, "moved": 0})
            self.d.write_config(self.d.render_config().replace(
                self.conf, self.config_text("b2")))
            n = len([l for l in self.d.paniclog() if "reload configuration=" in l])
            self.d.signal(signal.SIGHUP)
            wait_until(lambda: len([l for l in self.d.paniclog()
                                    if "reload configuration=" in l]) > n, what="reload")
            self.assertEqual(self.ok("rebind", "domain", "rb.test"),
                             "rb.test: 1 message examined, 1 moved to another binding\n")
            self.arrived("rb-1")
            [dl] = wait_records(self.d, "D", mid)
            self.assertEqual(dl["binding"], "b2")
            self.assertIn("moved", self.ok("rebind", "all"))
        finally:
            self.ok("resume", "binding", "b1")
            self.d.write_config(self.d.render_config())

    # -- bad input -------------------------------------------------------------------

    def test_bad_input(self):
        self.bad("domain", "nosuch.test", expect='no queue for domain "nosuch.test"')
        self.bad("domain", expect="usage: domain DOMAIN")
        self.bad("domain", "a@b", expect='bad domain "a@b"')
        self.bad("showqueue", "nosuch.test", expect="no queue for domain")
        for arg in ("x,y", "0", "-1", "5,", "1,2,3", "1,99999999999999999999"):
            self.bad("showqueue", "ok.test", arg, expect="bad LIMIT")
        self.bad("message", "details", "zzz", expect='bad message id "zzz"')
        self.bad("message", "details", "0000000000000001", expect="is not queued")
        self.bad("message", "explode", "0000000000000001", expect="unknown action")
        self.bad("message", "retry", expect="usage: message")
        self.bad("flush", "domain", expect="usage: flush domain DOMAIN")
        self.bad("flush", "domain", "nosuch.test", expect="no queue for domain")
        self.bad("fail", "domain", "ok.test", "loudly", expect="usage: fail domain")
        self.bad("rebind", "domain", "nosuch.test", expect="no queue for domain")
        self.bad("binding", "list", expect="usage: binding summary")
        self.bad("mailq", "x", expect="mailq takes no arguments")
        # The daemon keeps serving.
        self.assertIn("Summary Statistics", self.ok("summary"))
        self.assertIn("mailq", self.ok("help"))


if __name__ == "__main__":
    unittest.main()
