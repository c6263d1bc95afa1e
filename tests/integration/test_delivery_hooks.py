"""
test_delivery_hooks.py - the delivery-side hooks, seen from outside the real daemon

The module tests/modules/test_delivery_hooks.c subscribes to every
delivery hook, each for one domain, and writes each log event it gets to
a journal file. One daemon for the class; each domain has its own sink:

  goal.test   connection goal 1 (module); wide.test, the same without the
              module's goal, shows the backlog opens several connections
  param.test  RCPT TO gets X-HOOK=<local part length>; MAIL FROM gets
              X-PEER=yes because this sink offers X-SINK-EXT; the module's
              bad parameter (value with a space) never reaches the sink
  magic.test  the sink answers 550 ... module-magic: the module's class 177
  plain.test  the sink answers 550 5.1.1: the built-in rules still decide (10)

The log events the module saw are compared field by field with the lines
impetusd wrote (mainlog, bouncelog, rejectlog).
"""

import os
import smtplib
import tempfile
import time

from harness import DaemonTestCase, main, make_message, modules_dir
from deliverykit import inject, inject_many, records, wait_records, wait_until
from sink import Sink

DOMAINS = ["goal", "wide", "param", "magic", "plain"]


def uniq(tag):
    return "%s%d" % (tag, time.time_ns() % 10**12)


class DeliveryHooksTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.sinks = {name: Sink() for name in DOMAINS}
        cls.sinks["goal"].delay = 0.15
        cls.sinks["wide"].delay = 0.15
        cls.sinks["param"].ehlo_lines = Sink.DEFAULT_EHLO + ["X-SINK-EXT"]
        cls.sinks["magic"].rcpt_reply = lambda a: "550 5.7.1 module-magic says no"
        cls.sinks["plain"].rcpt_reply = lambda a: "550 5.1.1 no such user"
        for s in cls.sinks.values():
            s.start()
        cls.jdir = tempfile.mkdtemp(prefix="impetus-hooks-")
        cls.journal = os.path.join(cls.jdir, "journal")
        route = lambda n: 'Routes = ( "smtp://127.0.0.1:%d" )' % cls.sinks[n].port
        text = "\n".join(
            ['Module_Path = ( "%s" )' % modules_dir(),
             'test_delivery_hooks { journal = "%s" }' % cls.journal,
             "Generate_Bounces = false",
             "Max_Recipients_Per_Batch = 1"] +
            ['Domain "%s.test" { %s }' % (n, route(n)) for n in DOMAINS])
        cls.shared = dict(hostname="mx.test.example", relay_domains=(),
                          relay_hosts=("127.0.0.0/8",), hold_delivery=False, global_text=text)
        try:
            super().setUpClass()
        except BaseException:
            for s in cls.sinks.values():
                s.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            for s in cls.sinks.values():
                s.stop()

    def events(self, etype=None, msg_id=None):
        """events - the journal's log events as dicts."""
        out = []
        try:
            with open(self.journal) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return out
        for l in lines:
            if not l.startswith("ev|"):
                continue
            p = l.split("|", 9)
            ev = dict(type=p[1], id=p[2].upper(), conn=p[3], rcpt=p[4], domain=p[5],
                      code=int(p[6]), cls=int(p[7]), attempts=int(p[8]), line=p[9])
            if etype and ev["type"] != etype:
                continue
            if msg_id and ev["id"] != msg_id.upper():
                continue
            out.append(ev)
        return out

    def burst(self, name, n):
        m = uniq(name)
        return inject_many(self.d, [("s@client.test", ["r%02d-%s@%s.test" % (i, m, name)],
                                     make_message(marker="%s-%02d" % (m, i)))
                                    for i in range(n)])

    def burst_one(self, name, m):
        """burst_one - one message to name.test, delivered."""
        mid = inject(self.d, "s@client.test", ["u-%s@%s.test" % (m, name)], make_message(marker=m))
        wait_records(self.d, "D", mid)
        return mid

    def test_goal(self):
        """the module's goal of 1 holds a backlog to one connection; without it, several"""
        self.burst("goal", 12)
        self.burst("wide", 12)
        self.sinks["goal"].wait_for(12, timeout=60)
        self.sinks["wide"].wait_for(12, timeout=60)
        self.assertGreater(self.sinks["wide"].peak, 1,
                           "the control domain never had two connections: the test shows nothing")
        self.assertEqual(self.sinks["goal"].peak, 1)

    def test_params(self):
        """a module's RCPT and MAIL parameters reach the server; a bad one is refused"""
        m = uniq("p")
        rcpts = ["a-%s@param.test" % m, "longer-%s@param.test" % m]
        inject(self.d, "s@client.test", rcpts, make_message(marker=m))
        mine = lambda: [t for t in self.sinks["param"].messages() if t.rcpts[0] in rcpts]
        wait_until(lambda: len(mine()) >= 2, what="both recipients at the sink")
        txns = mine()
        self.assertEqual(len(txns), 2)	# one recipient per batch
        for t in txns:
            addr = t.rcpts[0]
            self.assertIn("X-HOOK=%d" % len(addr.split("@")[0]), t.rcpt_params[addr].split())
            self.assertIn("X-PEER=yes", t.mail_params.split())
            self.assertIn("SIZE=", t.mail_params)	# impetusd's own are kept
            self.assertNotIn("X-BAD", t.mail_params)
        with open(self.journal) as f:
            self.assertIn("params-refused", f.read().splitlines())
        # A server without X-SINK-EXT gets no X-PEER, and other domains no X-HOOK.
        wide = uniq("w")
        self.burst_one("wide", wide)
        t = [t for t in self.sinks["wide"].messages() if wide in t.rcpts[0]]
        self.assertEqual(len(t), 1)
        self.assertNotIn("X-PEER", t[0].mail_params)
        self.assertNotIn("X-HOOK", t[0].rcpt_params[t[0].rcpts[0]])
        self.assertIn("SIZE=", t[0].mail_params)

    def test_classify(self):
        """the module classifies its replies; the built-in rules classify the rest"""
        m = uniq("c")
        magic = inject(self.d, "s@client.test", ["u-%s@magic.test" % m], make_message(marker=m))
        plain = inject(self.d, "s@client.test", ["u-%s@plain.test" % m], make_message(marker=m))
        self.assertEqual(wait_records(self.d, "B", magic)[0]["cls"], "177")
        self.assertEqual(wait_records(self.d, "B", plain)[0]["cls"], "10")
        # The P event carries the class the B line got.
        wait_until(lambda: self.events("P", magic), what="P event")
        self.assertEqual(self.events("P", magic)[0]["cls"], 177)

    def test_log_events(self):
        """every R, D, P, B and X line is an event with the same line and fields; A precedes D"""
        m = uniq("l")
        rcpts = ["a-%s@param.test" % m, "b-%s@param.test" % m]
        mid = inject(self.d, "s@client.test", rcpts, make_message(marker=m))
        bad = inject(self.d, "s@client.test", ["c-%s@plain.test" % m], make_message(marker=m))
        d_lines = wait_records(self.d, "D", mid, count=2)
        b_lines = wait_records(self.d, "B", bad)
        wait_until(lambda: len(self.events("D", mid)) == 2 and self.events("B", bad),
                   what="D and B events")
        r_lines = records(self.d, "R", mid)
        self.assertEqual(len(r_lines), 2)
        r_ev = self.events("R", mid)
        self.assertEqual(sorted(e["line"] for e in r_ev), sorted(r["raw"] for r in r_lines))
        self.assertEqual(sorted(e["rcpt"] for e in r_ev), sorted(rcpts))
        d_ev = self.events("D", mid)
        self.assertEqual(sorted(e["line"] for e in d_ev), sorted(r["raw"] for r in d_lines))
        for e in d_ev:
            self.assertEqual(e["domain"], "param.test")
            self.assertEqual(e["code"], 250)
            self.assertEqual(e["attempts"], 1)
        # One A per recipient, on the connection the D line names.
        a_ev = self.events("A", mid)
        self.assertEqual(sorted(e["rcpt"] for e in a_ev), sorted(rcpts))
        self.assertEqual(sorted(e["conn"] for e in a_ev), sorted(r["conn"] for r in d_lines))
        self.assertTrue(all(e["line"] == "" for e in a_ev))
        self.assertEqual([e["line"] for e in self.events("B", bad)], [b_lines[0]["raw"]])
        p_ev = self.events("P", bad)
        self.assertEqual([e["line"] for e in p_ev], [r["raw"] for r in records(self.d, "P", bad)])
        self.assertEqual(p_ev[0]["code"], 550)
        self.assertEqual(p_ev[0]["cls"], 10)

        # Refused commands: each X event is its rejectlog line.
        before = len(self.d.log("rejectlog"))
        s = self.smtp()
        s.ehlo("client.test")
        code, _ = s.docmd("MAIL FROM:<no-closing-bracket-%s" % m)
        self.assertGreaterEqual(code, 500)
        code, _ = s.docmd("MAIL FROM:<s@client.test> SIZE=%d" % (10**15))
        self.assertEqual(code, 552)
        s.quit()
        wait_until(lambda: len(self.d.log("rejectlog")) >= before + 2, what="rejectlog lines")
        rej = self.d.log("rejectlog")[before:]
        x_ev = self.events("X")
        self.assertEqual([e["line"] for e in x_ev][-len(rej):], rej)
        self.assertEqual(x_ev[-1]["code"], 552)
        self.assertIn("P=\"mailfrom\"", x_ev[-1]["line"])

if __name__ == "__main__":
    main()
