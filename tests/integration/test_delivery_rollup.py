"""
test_delivery_rollup.py - next-hop sharing (MX_Rollup): domains behind one MX share connections

A real DNS server (dnsfixture.DnsServer, dnsmasq) serves the zone "test":

  r1.test r2.test r3.test lim.test optout.test tlsno.test authx.test flip.test
  c1.test c2.test c3.test (looked up by one test only: a cold start)
               MX 10 mx.roll.test                      -> 127.0.0.1
  r4.test      MX 10 mx.roll.test, MX 20 mx2.roll.test -> 127.0.0.1 (another MX set)
  r5.test      MX 10 b.roll.test, MX 10 a.roll.test    -> 127.0.0.1
  r6.test      MX 10 a.roll.test, MX 10 b.roll.test    (the same set as r5.test's)

and every MX host is the one sink (Outbound_SMTP_Port = its port), so
what shares a connection is seen there: the sink numbers its connections
and records each transaction with its recipients. Domain stanzas:

  optout.test  MX_Rollup = false: connections of its own
  tlsno.test   TLS = no: a connection setting that differs, so another next hop
  flip.test    MX_Rollup = false added and removed by a reload (SIGHUP)
  authx.test   outbound AUTH credentials (the sink offers no AUTH: its mail
               is deferred with 4.7.0), so another next hop too

The sink refuses "bad-*" recipients (550) and defers "tmp-*" ones (452),
and accepts at most 6 recipients per transaction ("452 4.5.3 too many
recipients" after that, as Postfix's smtpd_recipient_limit says it).

RollupLimitsTest runs a second daemon against a slow sink (0.05 s per
reply) with Next_Hop_Max_Outbound_Connections = 3 and lim.test's
Max_Outbound_Connections = 1: a backlog to r1.test and lim.test queued
while both are suspended, then resumed, never has more than 3
connections open at the sink, nor two transactions with lim.test
recipients under way at once; and it does open more than one (so the
limits are what held it).
"""

import json
import os
import signal
import subprocess
import time

import harness
from harness import DaemonTestCase, main, make_message
from deliverykit import inject, inject_many, records, wait_records, wait_until
from dnsfixture import DnsServer
from sink import Sink

HOSTNAME = "mx.test.example"
SAME_MX = ("r1.test", "r2.test", "r3.test", "lim.test", "optout.test", "tlsno.test",
           "authx.test", "flip.test", "c1.test", "c2.test", "c3.test")


def uniq(tag):
    return "%s%d" % (tag, time.time_ns() % 10**12)


def domain_of(addr):
    return addr.rsplit("@", 1)[1]


def rcpt_reply(addr):
    if addr.startswith("bad-"):
        return "550 5.1.1 no such user"
    if addr.startswith("tmp-"):
        return "452 4.2.2 mailbox full"
    return "250 2.1.5 OK"


def zone():
    mx = [(d, "mx.roll.test", 10) for d in SAME_MX]
    mx += [("r4.test", "mx.roll.test", 10), ("r4.test", "mx2.roll.test", 20),
           ("r5.test", "b.roll.test", 10), ("r5.test", "a.roll.test", 10),
           ("r6.test", "a.roll.test", 10), ("r6.test", "b.roll.test", 10)]
    return DnsServer(mx=mx, hosts={h: ["127.0.0.1"] for h in (
        "mx.roll.test", "mx2.roll.test", "a.roll.test", "b.roll.test")})


class RollupBase(DaemonTestCase):
    """RollupBase - a daemon delivering by MX to one sink through the fixture's DNS."""

    sink_delay = 0.0
    sink_max_rcpts = 6
    extra = ()

    @classmethod
    def setUpClass(cls):
        cls.sink = Sink(rcpt_reply=rcpt_reply, delay=cls.sink_delay,
                        max_rcpts=cls.sink_max_rcpts)
        cls.bounce_sink = Sink()
        cls.sink.start()
        cls.bounce_sink.start()
        cls.dns = zone()
        cls.dns.start()
        cls.shared = dict(
            hostname=HOSTNAME, relay_domains=(), relay_hosts=("127.0.0.0/8",),
            hold_delivery=False,
            global_text="\n".join([
                'Control_Listener {\n  Listen "./control" { File_Mode = 0600 }\n}',
                'DNS_Servers = ( "%s" )' % cls.dns.servers,
                "Outbound_SMTP_Port = %d" % cls.sink.port,
                "Retry_Interval = 1",
                "Max_Retry_Interval = 2",
                "Delayed_Queue_Scan_Interval = 1",
                'Domain "bounces.test" { Routes = ( "smtp://127.0.0.1:%d" ) }'
                % cls.bounce_sink.port,
            ] + list(cls.extra)))
        try:
            super().setUpClass()
        except BaseException:
            cls.cleanup_peers()
            raise
        cls.d.control = os.path.join(cls.d.tmp, "control")

    @classmethod
    def cleanup_peers(cls):
        cls.sink.stop()
        cls.bounce_sink.stop()
        cls.dns.close()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.cleanup_peers()

    def tool(self, *args):
        """tool - `impetus -s SOCK args...`: (exit code, stdout, stderr)."""
        p = subprocess.run([harness.impetus_path(), "-s", self.d.control] + list(args),
                           capture_output=True, timeout=30)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def ok(self, *args):
        rc, out, err = self.tool(*args)
        self.assertEqual(rc, 0, "impetus %s failed: %s" % (" ".join(args), err))
        return out

    def warm(self, *domains):
        """
        warm - one message to the domains, delivered: their MX answers are
        cached from then on. A domain's first lookup answers on its own, and
        the first message may leave before the other domains' lookups
        answered (its recipients there go in a transaction of their own).
        """
        m = uniq("warm")
        mid = inject(self.d, "s-%s@bounces.test" % m, ["w-%s@%s" % (m, d) for d in domains],
                     make_message(marker=m))
        wait_records(self.d, "D", mid, count=len(domains))

    def txns(self, marker):
        """txns - the sink's transactions (any answer) whose body holds marker."""
        return self.sink.with_marker(marker, all_attempts=True)


class RollupTest(RollupBase):

    extra = ('Domain "optout.test" { MX_Rollup = false }',
             'Domain "tlsno.test" { TLS = no }',
             'Domain "authx.test" { Outbound_SMTP_AUTH_User = "u" '
             'Outbound_SMTP_AUTH_Pass = "secret" Outbound_SMTP_AUTH_Allow_Plaintext = true }')

    def test_shared_connection_multi_domain_transactions(self):
        """6 messages x 3 domains behind one MX: 6 transactions of 3 domains, few connections"""
        self.warm("r1.test", "r2.test", "r3.test")
        m = uniq("share")
        msgs = [("s-%s@bounces.test" % m,
                 ["a%d-%s@r1.test" % (i, m), "b%d-%s@r2.test" % (i, m),
                  "c%d-%s@r3.test" % (i, m), "d%d-%s@r1.test" % (i, m)],
                 make_message(marker="%s-%d" % (m, i))) for i in range(6)]
        ids = inject_many(self.d, msgs)
        for mid in ids:
            wait_records(self.d, "D", mid, count=4)
        txns = self.txns(m)
        self.assertEqual(len(txns), 6, "one transaction per message, not per domain: %r" % txns)
        for t in txns:
            self.assertEqual(sorted({domain_of(r) for r in t.rcpts}),
                             ["r1.test", "r2.test", "r3.test"], t)
            self.assertEqual(len(t.rcpts), 4, t)
        conns = {t.conn_id for t in txns}
        self.assertLess(len(conns), 6, "no connection carried two messages: %r" % txns)
        # Outcomes stay per recipient and per domain.
        for mid in ids:
            recs = wait_records(self.d, "D", mid, count=4)
            self.assertEqual(sorted(r["domain"] for r in recs),
                             ["r1.test", "r1.test", "r2.test", "r3.test"])
            self.assertEqual(len({r["conn"] for r in recs}), 1, recs)
            self.assertEqual(len({r["batch"] for r in recs}), 1, recs)

    def test_cold_start_one_transaction(self):
        """a message to three domains never looked up: their lookups answer apart, one transaction"""
        m = uniq("cold")
        mid = inject(self.d, "s-%s@bounces.test" % m,
                     ["x-%s@c1.test" % m, "y-%s@c2.test" % m, "z-%s@c3.test" % m],
                     make_message(marker=m))
        wait_records(self.d, "D", mid, count=3)
        txns = self.txns(m)
        self.assertEqual(len(txns), 1, txns)
        self.assertEqual(sorted(domain_of(r) for r in txns[0].rcpts),
                         ["c1.test", "c2.test", "c3.test"])

    def test_server_recipient_limit(self):
        """14 recipients, the server takes 6 per transaction: 3 transactions, no deferral"""
        self.warm("r1.test", "r2.test", "r3.test")
        m = uniq("many")
        rcpts = ["%s%02d-%s@%s" % (d[:2], i, m, d) for i in range(5)
                 for d in ("r1.test", "r2.test", "r3.test")][:14]
        mid = inject(self.d, "s-%s@bounces.test" % m, rcpts, make_message(marker=m))
        wait_records(self.d, "D", mid, count=14)
        self.assertEqual(records(self.d, "T", mid), [])
        txns = self.txns(m)
        self.assertEqual(sorted(len(t.rcpts) for t in txns), [2, 6, 6], txns)
        self.assertEqual(sorted(r for t in txns for r in t.rcpts), sorted(rcpts))
        self.assertEqual(len({t.conn_id for t in txns}), 1, "the rest went on the same connection")

    def test_console_domain_shows_next_hop(self):
        """`domain r2.test` names the next hop (MX set and port), the same as r1.test's"""
        self.warm("r1.test", "r2.test")
        m = uniq("con")
        mid = inject(self.d, "s-%s@bounces.test" % m, ["x-%s@r1.test" % m, "y-%s@r2.test" % m],
                     make_message(marker=m))
        wait_records(self.d, "D", mid, count=2)
        # The hop's idle connection keeps the queues (Idle_Timeout 5 s).
        out = self.ok("domain", "r2.test")
        self.assertIn("Next hop: mx:10 mx.roll.test port %d" % self.sink.port, out)
        js = json.loads(self.ok("domain", "r1.test", "--json"))
        [b] = js["bindings"]
        self.assertTrue(b["mx_rollup"])
        self.assertEqual(b["next_hop"]["name"], "mx:10 mx.roll.test port %d" % self.sink.port)
        self.assertGreaterEqual(b["next_hop"]["domains"], 2)
        self.assertGreaterEqual(b["next_hop"]["multi_domain_transactions"], 1)

    def test_per_recipient_outcomes(self):
        """one transaction: 550 and 452 to some RCPTs touch only those recipients"""
        self.warm("r1.test", "r2.test", "r3.test")
        m = uniq("out")
        rcpts = ["ok1-%s@r1.test" % m, "bad-%s@r1.test" % m, "tmp-%s@r2.test" % m,
                 "ok2-%s@r2.test" % m, "ok3-%s@r3.test" % m]
        mid = inject(self.d, "s-%s@bounces.test" % m, rcpts, make_message(marker=m))
        ds = wait_records(self.d, "D", mid, count=3)
        self.assertEqual(sorted((r["domain"]) for r in ds), ["r1.test", "r2.test", "r3.test"])
        [p] = wait_records(self.d, "P", mid)
        self.assertEqual(p["domain"], "r1.test")
        self.assertIn("550 5.1.1", p["response"])
        ts = wait_records(self.d, "T", mid, count=2)   # the first attempt and a retry
        self.assertTrue(all(t["domain"] == "r2.test" and "452" in t["response"] for t in ts), ts)
        [first] = [t for t in self.txns(m) if "ok1-%s@r1.test" % m in t.rcpts]
        self.assertEqual(sorted(first.rcpts), sorted(r for r in rcpts if r[:2] == "ok"))
        self.assertEqual(len(first.refused), 2, first.refused)
        # The bouncelog names the refused recipient only (the DSN itself waits
        # for the deferred recipient to end).
        [bl] = wait_records(self.d, "B", mid)
        self.assertEqual((bl["rcpt_local"], bl["rcpt_domain"]), ("bad-%s" % m, "r1.test"))
        # The deferred recipient is retried alone (refused again: no DATA), and
        # nothing else was sent twice.
        self.assertEqual(self.txns(m), [first])
        self.assertEqual(len(wait_records(self.d, "D", mid, count=3)), 3)

    def test_opt_out(self):
        """MX_Rollup = false: optout.test's recipients travel on connections of their own"""
        self.warm("r1.test", "r2.test", "optout.test")
        m = uniq("opt")
        mid = inject(self.d, "s-%s@bounces.test" % m,
                     ["x-%s@r1.test" % m, "y-%s@optout.test" % m, "z-%s@r2.test" % m],
                     make_message(marker=m))
        wait_records(self.d, "D", mid, count=3)
        txns = self.txns(m)
        self.assertEqual(len(txns), 2, txns)
        [own] = [t for t in txns if any(domain_of(r) == "optout.test" for r in t.rcpts)]
        self.assertEqual(own.rcpts, ["y-%s@optout.test" % m])
        [shared] = [t for t in txns if t is not own]
        self.assertEqual(sorted(domain_of(r) for r in shared.rcpts), ["r1.test", "r2.test"])
        self.assertNotEqual(own.conn_id, shared.conn_id)
        out = self.ok("domain", "optout.test")
        self.assertIn("Next hop: its own connections (MX_Rollup = false)", out)
        [b] = json.loads(self.ok("domain", "optout.test", "--json"))["bindings"]
        self.assertEqual((b["mx_rollup"], b["next_hop"]), (False, None))

    def test_different_next_hops_do_not_share(self):
        """another MX set (r4.test) or another TLS setting (tlsno.test): not shared"""
        m = uniq("diff")
        mid = inject(self.d, "s-%s@bounces.test" % m,
                     ["x-%s@r1.test" % m, "y-%s@r4.test" % m, "z-%s@tlsno.test" % m],
                     make_message(marker=m))
        wait_records(self.d, "D", mid, count=3)
        txns = self.txns(m)
        self.assertEqual(sorted(tuple(domain_of(r) for r in t.rcpts) for t in txns),
                         [("r1.test",), ("r4.test",), ("tlsno.test",)], txns)
        self.assertEqual(len({t.conn_id for t in txns}), 3, txns)
        self.assertIn("Next hop: mx:10 mx.roll.test,20 mx2.roll.test port %d" % self.sink.port,
                      self.ok("domain", "r4.test"))
        hop1 = json.loads(self.ok("domain", "r1.test", "--json"))["bindings"][0]["next_hop"]
        hop2 = json.loads(self.ok("domain", "tlsno.test", "--json"))["bindings"][0]["next_hop"]
        # Same MX set, same name shown; different hops (TLS differs): each has its own count.
        self.assertEqual(hop1["name"], hop2["name"])
        self.assertEqual(hop2["domains"], 1)


    def test_auth_identity_does_not_share(self):
        """a domain with outbound AUTH credentials never rides another domain's connection"""
        m = uniq("auth")
        mid = inject(self.d, "s-%s@bounces.test" % m, ["x-%s@r1.test" % m, "y-%s@authx.test" % m],
                     make_message(marker=m))
        [d] = wait_records(self.d, "D", mid)
        self.assertEqual(d["domain"], "r1.test")
        [t] = wait_records(self.d, "T", mid)[:1]
        self.assertEqual(t["domain"], "authx.test")
        self.assertIn("4.7.0", t["response"])
        self.assertEqual([r for tx in self.txns(m) for r in tx.rcpts], ["x-%s@r1.test" % m])
        out = self.ok("domain", "authx.test")
        self.assertIn("Next hop: mx:10 mx.roll.test port %d (" % self.sink.port, out)
        self.assertIn(", 1 domains,", out)
        self.assertNotIn("secret", out)

    def reload(self, text):
        """reload - the class's configuration plus text, SIGHUP, and wait for the queue to take it."""
        before = sum("queue reload" in l for l in self.d.paniclog())
        self.d.global_text = self.base_text + ("\n" + text if text else "")
        self.d.write_config()
        self.d.signal(signal.SIGHUP)
        wait_until(lambda: sum("queue reload" in l for l in self.d.paniclog()) > before,
                   what="the reload in the paniclog")

    def send_pair(self, tag):
        """send_pair - one message to r1.test and flip.test, delivered: its transactions."""
        m = uniq(tag)
        mid = inject(self.d, "s-%s@bounces.test" % m, ["x-%s@r1.test" % m, "y-%s@flip.test" % m],
                     make_message(marker=m))
        wait_records(self.d, "D", mid, count=2)
        return sorted(sorted(domain_of(r) for r in t.rcpts) for t in self.txns(m))

    def test_reload_turns_rollup_off_and_on(self):
        """MX_Rollup = false by SIGHUP: flip.test leaves the next hop; removed: it joins again"""
        self.base_text = self.d.global_text
        self.warm("r1.test", "flip.test")
        self.assertEqual(self.send_pair("flip1"), [["flip.test", "r1.test"]])
        try:
            self.reload('Domain "flip.test" { MX_Rollup = false }')
            self.assertEqual(self.send_pair("flip2"), [["flip.test"], ["r1.test"]])
            self.assertIn("MX_Rollup = false", self.ok("domain", "flip.test"))
        finally:
            self.reload("")
        self.assertEqual(self.send_pair("flip3"), [["flip.test", "r1.test"]])

    def test_same_mx_set_in_any_order(self):
        """r5.test and r6.test list the same two MX hosts: one next hop, one transaction"""
        self.warm("r5.test", "r6.test")
        m = uniq("set")
        mid = inject(self.d, "s-%s@bounces.test" % m, ["x-%s@r5.test" % m, "y-%s@r6.test" % m],
                     make_message(marker=m))
        wait_records(self.d, "D", mid, count=2)
        [t] = self.txns(m)
        self.assertEqual(len(t.rcpts), 2)
        name = "mx:10 a.roll.test,10 b.roll.test port %d" % self.sink.port
        for d in ("r5.test", "r6.test"):
            self.assertIn("Next hop: %s (" % name, self.ok("domain", d))


class RollupLimitsTest(RollupBase):

    sink_delay = 0.05
    extra = ("Next_Hop_Max_Outbound_Connections = 3",
             'Domain "lim.test" { Max_Outbound_Connections = 1 }')

    def test_limits(self):
        """Next_Hop_Max_Outbound_Connections = 3 and lim.test's limit of 1 hold in a backlog"""
        self.warm("r1.test", "lim.test")
        m = uniq("lim")
        self.ok("suspend", "domain", "r1.test")
        self.ok("suspend", "domain", "lim.test")
        msgs = []
        for i in range(20):
            msgs.append(("s-%s@bounces.test" % m, ["a%02d-%s@r1.test" % (i, m)],
                         make_message(marker="%s-a%02d" % (m, i))))
            msgs.append(("s-%s@bounces.test" % m, ["b%02d-%s@lim.test" % (i, m)],
                         make_message(marker="%s-b%02d" % (m, i))))
        ids = {i.upper() for i in inject_many(self.d, msgs)}
        time.sleep(1.0)
        self.assertEqual(self.txns(m), [], "delivered while suspended")
        self.sink.peak = 0	# the warm-up's connection is not the backlog's
        self.ok("resume", "domain", "r1.test")
        self.ok("resume", "domain", "lim.test")
        # The backlog's own: the warm-up's recipients and D lines would count too.
        wait_until(lambda: len(self.sink.with_marker(m)) >= 40, timeout=60,
                   what="the backlog's 40 messages at the sink")
        wait_records(self.d, "D", None, count=40, pred=lambda r: r["id"] in ids,
                     what="D lines of the backlog")
        self.assertGreater(self.sink.peak, 1, "one connection at a time: the limits prove nothing")
        self.assertLessEqual(self.sink.peak, 3, "peak %d connections > Next_Hop_Max_Outbound_"
                             "Connections 3" % self.sink.peak)
        lim = sorted((t.started, t.time) for t in self.txns(m)
                     if any(domain_of(r) == "lim.test" for r in t.rcpts))
        self.assertEqual(len(lim), 20)
        for (s1, e1), (s2, e2) in zip(lim, lim[1:]):
            self.assertGreaterEqual(s2, e1, "two lim.test transactions at once "
                                    "(Max_Outbound_Connections = 1)")
        r1 = sorted((t.started, t.time) for t in self.txns(m)
                    if any(domain_of(r) == "r1.test" for r in t.rcpts))
        overlap = any(s2 < e1 for (s1, e1), (s2, e2) in zip(r1, r1[1:]))
        self.assertTrue(overlap, "r1.test (no limit of its own) never had two transactions at "
                        "once: the lim.test check proves nothing")


if __name__ == "__main__":
    main()
