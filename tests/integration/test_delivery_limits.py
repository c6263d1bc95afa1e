"""
test_delivery_limits.py - outbound connection limits, throttles, reuse, suspension, bindings

One daemon for the class; each test has its own domain and its own sink,
so what a sink records belongs to one test:

  conn.test     Max_Outbound_Connections = 2, slow sink (0.1 s per reply),
                suspended until its 40 messages are queued, then resumed by SIGHUP
  wide.test     the same without the limit: shows that a backlog of 40 does
                open more than 2 connections, so the limit above is tested
                (both with Max_Recipients_Per_Batch = 1: the connection goal
                counts batches of recipients, and 40 one-recipient messages
                are less than one batch of the default 100)
  throttle.test Outbound_Throttle_Messages = "5" (per second)
  reuse.test    Max_Deliveries_Per_Connection = 0, Idle_Timeout = 5
  percon.test   Max_Deliveries_Per_Connection = 2
  held.test     Suspend_Delivery = true, lifted by SIGHUP
  bound.test    Assign_Binding = "b1" (Bind_Address 127.0.0.2, EHLO_Hostname b1.test)

Everything is measured at the receiving sink (sink.py): peak concurrent
connections, arrival times, connections per message, peer address, EHLO.
"""

import signal
import time

from harness import DaemonTestCase, main, make_message
from deliverykit import inject, inject_many, wait_records
from sink import Sink

HOSTNAME = "mx.test.example"

DOMAINS = ["conn", "wide", "throttle", "reuse", "percon", "held", "bound"]


def uniq(tag):
    return "%s%d" % (tag, time.time_ns() % 10**12)


class DeliveryLimitsTest(DaemonTestCase):

    @classmethod
    def domain_text(cls):
        s = cls.sinks
        route = lambda name: 'Routes = ( "smtp://127.0.0.1:%d" )' % s[name].port
        held = lambda name: "Suspend_Delivery = %s" % ("true" if name in cls.suspended
                                                        else "false")
        return "\n".join([
            "Retry_Interval = 1",
            "Max_Retry_Interval = 2",
            "Delayed_Queue_Scan_Interval = 1",
            'Gateway = "127.0.0.1:%d"' % s["stray"].port,
            'Binding "b1" { Bind_Address = "127.0.0.2" EHLO_Hostname = "b1.test" }',
            'Domain "conn.test" { %s Max_Outbound_Connections = 2 '
            'Max_Recipients_Per_Batch = 1 %s }' % (route("conn"), held("conn")),
            'Domain "wide.test" { %s Max_Recipients_Per_Batch = 1 %s }'
            % (route("wide"), held("wide")),
            'Domain "throttle.test" { %s Outbound_Throttle_Messages = "5" }' % route("throttle"),
            'Domain "reuse.test" { %s Max_Deliveries_Per_Connection = 0 Idle_Timeout = 5 }'
            % route("reuse"),
            'Domain "percon.test" { %s Max_Deliveries_Per_Connection = 2 Idle_Timeout = 5 }'
            % route("percon"),
            'Domain "held.test" { %s %s }' % (route("held"), held("held")),
            'Domain "bound.test" { %s Assign_Binding = "b1" }' % route("bound"),
        ])

    @classmethod
    def setUpClass(cls):
        cls.sinks = {name: Sink() for name in DOMAINS + ["stray"]}
        cls.sinks["conn"].delay = 0.1
        cls.sinks["wide"].delay = 0.1
        cls.suspended = {"conn", "wide", "held"}
        for s in cls.sinks.values():
            s.start()
        cls.shared = dict(hostname=HOSTNAME, relay_domains=(), relay_hosts=("127.0.0.0/8",),
                          hold_delivery=False, global_text=cls.domain_text())
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

    def tearDown(self):
        self.assertEqual(self.sinks["stray"].messages(), [],
                         "mail went to the Gateway (stray sink) instead of its route")

    def resume(self, name):
        """resume - lift Suspend_Delivery of name.test: rewrite the file, SIGHUP."""
        self.suspended.discard(name)
        self.d.global_text = self.domain_text()
        self.d.write_config()
        self.d.signal(signal.SIGHUP)

    def backlog_peak(self, name, n=40):
        """backlog_peak - queue n messages while name.test is suspended, resume, deliver all."""
        sink = self.sinks[name]
        m = uniq(name)
        self.many(name + ".test", n, m)
        time.sleep(1.5)
        self.assertEqual(sink.connections, 0, "%s.test delivered while suspended" % name)
        self.resume(name)
        sink.wait_for(n, timeout=35)
        wait_records(self.d, "D", None, count=n, pred=lambda r: r["domain"] == name + ".test",
                     what="D lines for %s.test" % name)
        return sink.peak

    def many(self, domain, n, m):
        """many - n one-recipient messages to domain over one session; their ids."""
        return inject_many(self.d, [("s@client.test", ["r%02d-%s@%s" % (i, m, domain)],
                                     make_message(marker="%s-%02d" % (m, i)))
                                    for i in range(n)])

    # -- limits --------------------------------------------------------------

    def test_max_outbound_connections(self):
        """Max_Outbound_Connections = 2, a backlog of 40, slow sink -> peak connections <= 2"""
        peak = self.backlog_peak("conn")
        self.assertGreater(peak, 0)
        self.assertLessEqual(peak, 2, "peak concurrent connections %d > 2 (%d connections)"
                             % (peak, self.sinks["conn"].connections))

    def test_backlog_opens_parallel_connections(self):
        """control: the same backlog without a limit opens more than 2 connections"""
        peak = self.backlog_peak("wide")
        self.assertGreater(peak, 2, "a backlog of 40 messages to one domain used at most %d "
                           "concurrent connection(s) (Max_Outbound_Connections default 32, "
                           "Max_Recipients_Per_Batch = 1): the connection goal never grows, so "
                           "the limit test proves nothing" % peak)

    def test_throttle_messages_per_second(self):
        """Outbound_Throttle_Messages = "5" -> 20 messages take >= (20-2)/5 s at the sink"""
        sink = self.sinks["throttle"]
        m = uniq("thr")
        self.many("throttle.test", 20, m)
        sink.wait_for(20, timeout=30)
        times = sorted(t.time for t in sink.messages())
        span = times[-1] - times[0]
        # One extra token at the start is allowed (a bucket may begin with
        # one); after that at most 5 a second.
        self.assertGreaterEqual(span, (20 - 2) / 5.0,
                                "20 messages arrived within %.2f s: faster than 5/s "
                                "(arrival offsets %r)"
                                % (span, [round(t - times[0], 2) for t in times]))
        # A token bucket may hold up to 5 tokens after a stall (a loaded
        # machine), so one second can see a full bucket plus a second's
        # refill: 10. More than that is no throttle at all.
        for i, t0 in enumerate(times):
            n = sum(1 for t in times[i:] if t - t0 < 1.0)
            self.assertLessEqual(n, 10, "%d messages within one second from offset %.2f "
                                 "(arrival offsets %r)"
                                 % (n, t0 - times[0], [round(t - times[0], 2) for t in times]))

    def test_connection_reuse(self):
        """Max_Deliveries_Per_Connection = 0: 10 messages one after another share connections"""
        sink = self.sinks["reuse"]
        m = uniq("reuse")
        for i in range(10):
            inject(self.d, "s@client.test", ["r%02d-%s@reuse.test" % (i, m)],
                   make_message(marker="%s-%02d" % (m, i)))
            sink.wait_for(i + 1, timeout=20)
        self.assertLess(sink.connections, 10,
                        "every message opened its own connection (%d connections for 10 "
                        "messages, Idle_Timeout = 5)" % sink.connections)
        self.assertEqual(sink.helo_names()[:1], [HOSTNAME],
                         "EHLO name of the default binding should be Hostname")

    def test_max_deliveries_per_connection(self):
        """Max_Deliveries_Per_Connection = 2 -> no connection carries more than 2 messages"""
        sink = self.sinks["percon"]
        m = uniq("percon")
        for i in range(10):
            inject(self.d, "s@client.test", ["r%02d-%s@percon.test" % (i, m)],
                   make_message(marker="%s-%02d" % (m, i)))
            sink.wait_for(i + 1, timeout=20)
        conns = sink.connections_seen()
        self.assertGreaterEqual(len(conns), 5, "10 messages over %d connections: %r"
                                % (len(conns), conns))
        self.assertLessEqual(max(c.messages for c in conns), 2, "a connection carried more "
                             "than 2 messages: %r" % conns)

    # -- suspension and bindings ----------------------------------------------

    def test_suspend_delivery_then_sighup(self):
        """Suspend_Delivery = true holds mail; lifting it by SIGHUP delivers it"""
        sink = self.sinks["held"]
        m = uniq("held")
        ids = self.many("held.test", 3, m)
        time.sleep(4.0)	# several Delayed_Queue_Scan_Interval periods
        self.assertEqual(sink.messages(), [], "delivered despite Suspend_Delivery = true")
        self.assertEqual(sink.connections, 0, "connected despite Suspend_Delivery = true")
        live = {str(x.get("id", "")).upper() for x in self.d.spool_ls()}
        self.assertTrue(set(ids) <= live, "held messages not in the spool: %r vs %r"
                        % (ids, live))
        self.resume("held")
        sink.wait_for(3, timeout=20)
        for mid in ids:
            wait_records(self.d, "D", mid)

    def test_binding_bind_address_and_ehlo(self):
        """Assign_Binding b1 -> source IP 127.0.0.2, EHLO b1.test, binding b1 in the D line"""
        sink = self.sinks["bound"]
        m = uniq("bound")
        mid = inject(self.d, "s@client.test", ["r-%s@bound.test" % m], make_message(marker=m))
        sink.wait_for(1, timeout=20)
        t = sink.messages()[0]
        self.assertEqual(t.peer[0], "127.0.0.2", "source address of binding b1: %r" % (t.peer,))
        self.assertEqual(t.helo, "b1.test", "EHLO name of binding b1")
        d = wait_records(self.d, "D", mid)[0]
        self.assertEqual(d["binding"], "b1", "binding field of the D line: %s" % d["raw"])


if __name__ == "__main__":
    main()
