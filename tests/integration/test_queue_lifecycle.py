"""
test_queue_lifecycle.py - destination queues are freed when unused, and
follow a reloaded configuration

Every (binding, domain) pair gets a queue. One that is empty and has no
connection (nor a DNS lookup, a starved slot or an empty throttle bucket)
is freed, so a stream of domains seen once does not pile up in memory and
in the maintainer's scan. The daemon says how many queues it holds in the
paniclog line it writes on every reload:

    queue reload destinations=N messages=M recipients=R

Each queue caches the settings it needs and refreshes them when a reload
(SIGHUP) brings a new configuration generation: the second test changes
two settings of a queue that holds mail and checks both take effect.
"""

import re
import signal

from harness import DaemonTestCase, main, make_message
from deliverykit import inject, inject_many, wait_records, wait_until
from sink import Sink

RELOAD_RE = re.compile(r"queue reload destinations=(\d+) messages=(\d+) recipients=(\d+)")


def reload_counts(test, d):
    """reload_counts - SIGHUP, then (destinations, messages, recipients) of the new reload line."""
    before = len([l for l in d.paniclog() if RELOAD_RE.search(l)])
    d.signal(signal.SIGHUP)
    lines = d.wait_log("paniclog", lambda l: RELOAD_RE.search(l) is not None, count=before + 1)
    return tuple(int(x) for x in RELOAD_RE.search(lines[-1]).groups())


class QueueLifecycleTest(DaemonTestCase):

    def test_one_off_domains_do_not_accumulate(self):
        """150 domains seen once: after delivery and Idle_Timeout only the held queue is left"""
        n = 150
        with Sink() as sink:
            d = self.new_daemon(
                relay_hosts=("127.0.0.0/8",), hold_delivery=False,
                global_text="\n".join([
                    'Gateway = "127.0.0.1:%d"' % sink.port,
                    "Idle_Timeout = 1",
                    "Delayed_Queue_Scan_Interval = 1",
                    # A queue with mail in it is never freed: held.test stays.
                    'Domain "held.test" { Suspend_Delivery = true }',
                ]))
            held = inject(d, "s@client.test", ["r@held.test"], make_message(marker="held"))
            ids = inject_many(d, [("s@client.test", ["r@oneoff%03d.test" % i],
                                   make_message(marker="oneoff-%03d" % i)) for i in range(n)])
            sink.wait_for(n, timeout=60)
            wait_records(d, "D", None, count=n, timeout=30,
                         pred=lambda r: r["domain"].startswith("oneoff"),
                         what="D lines of the one-off domains")
            self.assertEqual(len(set(ids)), n)
            # Idle connections close after Idle_Timeout; their queues go with them.
            last = []

            def only_held_left():
                last[:] = [reload_counts(self, d)]
                return last[0][0] == 1

            try:
                wait_until(only_held_left, timeout=30, what="destinations=1", interval=0.5)
            except AssertionError:
                self.fail("after delivering to %d one-off domains the daemon still holds "
                          "destinations=%d messages=%d recipients=%d (want 1: held.test)"
                          % ((n,) + last[0]))
            self.assertEqual(last[0][1:], (1, 1), "the held message is still queued")
            self.assertEqual(sink.with_marker("held"), [], "held.test was delivered")
            # A freed queue is created again when its domain comes back.
            again = inject(d, "s@client.test", ["r@oneoff000.test"], make_message(marker="again"))
            wait_records(d, "D", again, timeout=30)
            d.spool_msg(held)
            d.assert_alive()

    def test_reload_refreshes_cached_settings(self):
        """a queue holding mail picks up Suspend_Delivery and Max_Recipients_Per_Batch on SIGHUP"""
        with Sink() as sink:
            def text(suspended, batch):
                return "\n".join([
                    "Delayed_Queue_Scan_Interval = 1",
                    'Domain "batch.test" { Routes = ( "smtp://127.0.0.1:%d" ) '
                    "Suspend_Delivery = %s Max_Recipients_Per_Batch = %d }"
                    % (sink.port, "true" if suspended else "false", batch),
                ])
            d = self.new_daemon(relay_hosts=("127.0.0.0/8",), hold_delivery=False,
                                global_text=text(True, 1))
            rcpts = ["r%d@batch.test" % i for i in range(4)]
            mid = inject(d, "s@client.test", rcpts, make_message(marker="batch"))
            # The queue exists and has read its settings (held, one recipient per batch).
            self.assertEqual(reload_counts(self, d), (1, 1, 4))
            self.assertEqual(sink.messages(), [], "delivered while suspended")
            d.global_text = text(False, 4)
            d.write_config()
            d.signal(signal.SIGHUP)
            wait_records(d, "D", mid, count=4, timeout=30)
            txns = sink.with_marker("batch")
            self.assertEqual(len(txns), 1, "4 recipients, Max_Recipients_Per_Batch = 4 after "
                             "the reload: one transaction expected, got %r" % txns)
            self.assertEqual(sorted(txns[0].rcpts), sorted(rcpts))


if __name__ == "__main__":
    main()
