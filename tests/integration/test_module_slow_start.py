"""
test_module_slow_start.py - the slow_start module (modules/slow_start) against the real daemon

Each test starts its own daemon and sink: 50 one-recipient messages to
slow.test are queued while its delivery is suspended, then delivery is
resumed (SIGHUP) and the sink (sink.py, 0.05 s per reply so connections
overlap) records every connection's open and close times.

  * control, no module: the backlog opens several connections at once,
    so the cap below is what the module does, not the destination;
  * slow_start initial = 1, interval 10 minutes: never more than one
    connection at a time, all 50 delivered over it;
  * slow_start initial = 1 step = 3 interval = 4 s: one connection during
    the first interval, more after it (the ramp grows).

Concurrency is computed from the sink's own records (peak, and the
overlap of [opened, closed) intervals within a time window).
"""

import signal
import time

import harness
from harness import DaemonTestCase, main, make_message
from deliverykit import inject_many, wait_records
from sink import Sink

HOSTNAME = "mx.test.example"
N = 50


def overlap_peak(conns, until=None):
    """overlap_peak - most connections open at one instant (before `until`, if given)."""
    events = []
    for c in conns:
        if until is not None and c.opened >= until:
            continue
        closed = c.closed if c.closed is not None else float("inf")
        if until is not None:
            closed = min(closed, until)
        events.append((c.opened, 1))
        events.append((closed, -1))
    peak = cur = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        cur += delta
        peak = max(peak, cur)
    return peak


class SlowStartTest(DaemonTestCase):

    def backlog(self, stanza, sink_delay=0.05):
        """backlog - queue N messages to slow.test while suspended, resume; (daemon, sink)."""
        sink = Sink()
        sink.delay = sink_delay
        sink.start()
        self.addCleanup(sink.stop)
        d = self.new_daemon(hostname=HOSTNAME, relay_domains=("slow.test",),
                            hold_delivery=False, start=False)

        def conf(suspend):
            return "\n".join([
                "Retry_Interval = 1",
                "Delayed_Queue_Scan_Interval = 1",
                'Gateway = "127.0.0.1:%d"' % d.dead_port,
                'Module_Path = ( "%s" )' % harness.modules_dir(),
                stanza,
                'Domain "slow.test" { Routes = ( "smtp://127.0.0.1:%d" ) '
                "Max_Recipients_Per_Batch = 1 Max_Outbound_Connections = 20 "
                "Suspend_Delivery = %s }" % (sink.port, "true" if suspend else "false"),
            ])
        d.global_text = conf(True)
        d.write_config()
        d.start()
        m = "ss%d" % (time.time_ns() % 10**9)
        inject_many(d, [("s@client.test", ["r%02d-%s@slow.test" % (i, m)],
                         make_message(marker="%s-%02d" % (m, i))) for i in range(N)])
        time.sleep(1.0)
        self.assertEqual(sink.connections, 0, "slow.test delivered while suspended")
        d.global_text = conf(False)
        d.write_config()
        d.signal(signal.SIGHUP)
        return d, sink

    def finish(self, d, sink, timeout=60):
        sink.wait_for(N, timeout=timeout)
        wait_records(d, "D", None, count=N, pred=lambda r: r["domain"] == "slow.test",
                     what="D lines for slow.test")

    def test_control_without_module(self):
        """without slow_start the backlog opens several connections at once"""
        d, sink = self.backlog("")
        self.finish(d, sink)
        self.assertGreater(sink.peak, 1, "a backlog of %d messages used at most %d connection(s) "
                           "without slow_start: the tests below would prove nothing"
                           % (N, sink.peak))

    def test_initial_one_caps_the_backlog(self):
        """slow_start initial = 1 (interval 10 min): one connection at a time, for all 50"""
        d, sink = self.backlog('slow_start { initial = 1 interval = 10m debug_level = 1 }')
        self.finish(d, sink)
        self.assertEqual(sink.peak, 1, "peak %d concurrent connections with slow_start "
                         "initial = 1 (%d connections)" % (sink.peak, sink.connections))
        self.assertEqual(overlap_peak(sink.connections_seen()), 1)
        panic = "\n".join(d.paniclog())
        self.assertIn("slow_start: new destination domain=slow.test binding=default cap=1",
                      panic)

    def test_ramp_grows_after_the_interval(self):
        """initial = 1 step = 3 interval = 4 s: one connection first, more after 4 s"""
        d, sink = self.backlog("slow_start { initial = 1 step = 3 interval = 4 }",
                               sink_delay=0.1)
        self.finish(d, sink, timeout=90)
        conns = sink.connections_seen()
        start = min(c.opened for c in conns)
        # Within the first interval (less a margin for the scheduler's clock): one.
        self.assertEqual(overlap_peak(conns, until=start + 3.5), 1,
                         "more than one connection during the first interval: %r" % conns)
        # After it the cap is 4: the backlog (50 messages, 0.1 s per reply) is not done
        # in 4 s over one connection, so more connections open.
        self.assertGreater(sink.peak, 1, "the cap never grew past initial: %r" % conns)
        # And never more than the ramp allows: 4 in the second interval.
        self.assertLessEqual(overlap_peak(conns, until=start + 7.5), 4,
                             "beyond the ramp in the second interval: %r" % conns)


if __name__ == "__main__":
    main()
