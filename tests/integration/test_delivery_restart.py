"""
test_delivery_restart.py - delivery across restarts and crashes

  * deferred mail survives a clean restart: the sink says 450 (T line),
    the daemon stops, the sink starts saying 250, the daemon starts again
    on the same spool and delivers, with retries >= 1 in the D line;
  * no duplicate after a crash: 20 messages are delivered (20 D lines),
    the daemon is killed with SIGKILL, restarted, and after a few seconds
    the sink still holds each message exactly once.

The at-least-once window: a delivery is final for the sink when it
answers 250, but the daemon's "done" record for the recipient reaches the
disk with the spool's next message batch, or at most a second later by
its flush timer (docs/spool.md). A crash between the two replays the
message and delivers it again; that duplicate is allowed by design (the
alternative would lose mail). The test waits until `impetus spool ls` no
longer lists any of the 20 (their done records are written: a SIGKILL
keeps what was written) before kill -9, and then allows no duplicate at
all.
"""

import time

from harness import DaemonTestCase, main, make_message
from deliverykit import inject, inject_many, records, wait_gone_from_spool, wait_records
from sink import Sink

HOSTNAME = "mx.test.example"


def uniq(tag):
    return "%s%d" % (tag, time.time_ns() % 10**12)


class DeliveryRestartTest(DaemonTestCase):

    def setUp(self):
        self.mode = {"reply": "250 2.1.5 OK"}
        self.sink = Sink(rcpt_reply=lambda addr: self.mode["reply"])
        self.sink.start()
        self.addCleanup(self.sink.stop)
        self.stray = Sink()
        self.stray.start()
        self.addCleanup(self.stray.stop)

    def daemon(self):
        return self.new_daemon(
            hostname=HOSTNAME, relay_domains=(), relay_hosts=("127.0.0.0/8",),
            hold_delivery=False,
            global_text="\n".join([
                "Retry_Interval = 1",
                "Max_Retry_Interval = 2",
                "Delayed_Queue_Scan_Interval = 1",
                'Gateway = "127.0.0.1:%d"' % self.stray.port,
                'Domain "restart.test" { Routes = ( "smtp://127.0.0.1:%d" ) }' % self.sink.port,
            ]))

    def test_deferred_mail_delivered_after_restart(self):
        """450 -> T line; stop; sink says 250; start -> delivered with retries >= 1"""
        self.mode["reply"] = "450 4.3.0 not now"
        d = self.daemon()
        m = uniq("defer")
        mid = inject(d, "s@client.test", ["r-%s@restart.test" % m], make_message(marker=m))
        wait_records(d, "T", mid, what="T line while the sink says 450")
        self.assertEqual(d.stop(), 0, "daemon exit status on SIGTERM")
        self.mode["reply"] = "250 2.1.5 OK"
        self.assertEqual(records(d, "D", mid), [], "delivered while the sink said 450?")
        entry = d.spool_msg(mid)
        self.assertEqual([r.get("state") for r in entry.get("recipients", [])], ["queued"],
                         "spool state of the deferred recipient: %r" % entry)
        self.assertGreaterEqual(entry["recipients"][0].get("retries", 0), 1,
                                "the spool did not record the failed attempt: %r" % entry)
        d.start()
        rec = wait_records(d, "D", mid, timeout=25, what="D line after the restart")[0]
        self.assertGreaterEqual(int(rec["retries"]), 1, "retries in the D line: %s" % rec["raw"])
        self.sink.wait_for(1, timeout=10)
        time.sleep(1.0)
        self.assertEqual(len(self.sink.with_marker(m)), 1, "delivered exactly once")
        wait_gone_from_spool(self, d, mid)

    def test_no_duplicate_after_kill9(self):
        """20 delivered messages, kill -9, restart: each was received exactly once"""
        d = self.daemon()
        m = uniq("crash")
        ids = inject_many(d, [("s@client.test", ["r%02d-%s@restart.test" % (i, m)],
                               make_message(marker="%s-%02d-end" % (m, i)))
                              for i in range(20)])
        self.sink.wait_for(20, timeout=30)
        for mid in ids:
            wait_records(d, "D", mid, what="D line before the crash")
        # The window described in the module comment: the last done
        # records are written once the spool no longer lists the messages.
        for mid in ids:
            wait_gone_from_spool(self, d, mid)
        d.kill9()
        d.start()
        time.sleep(4.0)
        d.assert_alive()
        for i in range(20):
            got = self.sink.with_marker("%s-%02d-end" % (m, i))
            self.assertEqual(len(got), 1, "message %d received %d times after the crash"
                             % (i, len(got)))
        after = [r for r in records(d, "D") if r["id"] in ids]
        self.assertEqual(len(after), 20, "D lines after restart: %d (duplicates: %r)"
                         % (len(after), [r["raw"] for r in after]))
        live = {str(x.get("id", "")).upper() for x in d.spool_ls()}
        self.assertEqual(live & set(ids), set(), "delivered messages still live after restart")


if __name__ == "__main__":
    main()
