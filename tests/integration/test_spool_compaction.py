"""
test_spool_compaction.py - one deferred message must not keep the spool big

impetusd runs with small segments (Spool_Segment_Size = 256K) against a
sink that answers 452 for the recipients called defer-*, 250 for the rest.
The deferred mail goes to its own domain with an hour's Retry_Interval, so
it stays put while the test runs; the rest is tried again after a second
if a loaded machine makes an attempt fail, so a transient failure is not
mistaken for lost mail (a message that is never tried again still fails
the test).

  * test_deferred_message_does_not_pin_segments: one message is deferred
    (T line), then enough other mail to fill several segments is
    delivered. Within a bounded wait the spool directory must hold fewer
    than 2 segment files (compaction moved the deferred message to the
    head and the old segments were removed), `impetus spool ls --json`
    must list the deferred message exactly once with its retry count
    intact, the paniclog must have a "spool: compacted segment=" line, and
    all of that must hold after a restart too.
    Without compaction the segments stay (checked: this test fails with
    Spool_Compaction_Threshold = 0, which is what the code before
    compaction did).

  * test_kill9_during_compaction: the spool is filled with compaction
    off (one deferred message per segment, the rest delivered), then the
    daemon is started with compaction on and killed with SIGKILL as soon
    as the first old segment disappears (compaction is running), ten
    times. After every kill: each deferred message is listed exactly
    once with retries 1, no delivered message came back, and the sink got
    nothing new. A last start finishes the compaction.
"""

import os
import subprocess
import sys
import time

from harness import DaemonTestCase, impetusd_path, main, make_message
from deliverykit import inject, inject_many, wait_records, wait_until
from sink import Sink

HOSTNAME = "mx.test.example"
DOMAIN = "compact.test"
DEFER_DOMAIN = "defer.compact.test"
SEGMENT = "256K"
BODY_SIZE = 8000            # about 30 messages per 256 KiB segment
PER_SEGMENT = 30
SETTLE_TIMEOUT = 30.0


def uniq(tag):
    return "%s%d" % (tag, time.time_ns() % 10**12)


def segment_files(d):
    """segment_files - names of the spool's segment files (seg-*.log)."""
    return sorted(f for f in os.listdir(d.spool_dir)
                  if f.startswith("seg-") and f.endswith(".log"))


class SpoolCompactionTest(DaemonTestCase):

    def setUp(self):
        self.sink = Sink(rcpt_reply=lambda addr: ("452 4.2.2 mailbox full, try later"
                                                  if addr.lower().startswith("defer-")
                                                  else "250 2.1.5 OK"))
        self.sink.start()
        self.addCleanup(self.sink.stop)

    def daemon(self, threshold=25, start=True):
        return self.new_daemon(
            hostname=HOSTNAME, relay_domains=(), relay_hosts=("127.0.0.0/8",),
            hold_delivery=False, start=start,
            global_text=self.global_text(threshold))

    def global_text(self, threshold):
        return "\n".join([
            "Spool_Segment_Size = %s" % SEGMENT,
            "Spool_Compaction_Threshold = %d" % threshold,
            # Mail the sink accepts but that hit a transient failure on a
            # loaded machine is tried again soon ...
            "Retry_Interval = 1",
            "Max_Retry_Interval = 2",
            'Domain "%s" { Routes = ( "smtp://127.0.0.1:%d" ) }' % (DOMAIN, self.sink.port),
            # ... while the deferred mail is not tried again during the test.
            'Domain "%s" { Routes = ( "smtp://127.0.0.1:%d" ) Retry_Interval = 3600'
            ' Max_Retry_Interval = 3600 }' % (DEFER_DOMAIN, self.sink.port),
        ])

    def fill(self, d, marker, n):
        """fill - n messages that the sink accepts; returns their ids."""
        msgs = [("s@client.test", ["ok-%s-%d@%s" % (marker, i, DOMAIN)],
                 make_message(marker="%s-%d" % (marker, i), size=BODY_SIZE))
                for i in range(n)]
        return inject_many(d, msgs)

    def defer_one(self, d, marker):
        """defer_one - a message the sink answers 452; waits for its T line."""
        mid = inject(d, "s@client.test", ["defer-%s@%s" % (marker, DEFER_DOMAIN)],
                     make_message(marker=marker, size=BODY_SIZE))
        wait_records(d, "T", mid, what="T line for the deferred message")
        return mid

    def check_spool(self, d, deferred, when):
        """check_spool - the spool lists exactly the deferred ids, once each, retries 1."""
        listed = d.spool_ls()
        ids = [str(m.get("id", "")).upper() for m in listed]
        for mid in deferred:
            self.assertEqual(ids.count(mid.upper()), 1,
                             "%s: deferred message %s listed %d times; spool: %r"
                             % (when, mid, ids.count(mid.upper()), ids))
        extra = sorted(set(ids) - set(m.upper() for m in deferred))
        self.assertEqual(extra, [], "%s: finished messages came back: %r" % (when, extra))
        for m in listed:
            rcpts = m.get("recipients", [])
            self.assertEqual([r.get("state") for r in rcpts], ["queued"],
                             "%s: recipient state of %s: %r" % (when, m.get("id"), m))
            self.assertEqual(rcpts[0].get("retries"), 1,
                             "%s: retry count of %s lost: %r" % (when, m.get("id"), m))

    def test_deferred_message_does_not_pin_segments(self):
        """one 452 among many 250s: the spool ends with < 2 segment files"""
        d = self.daemon()
        m = uniq("pin")
        deferred = self.defer_one(d, m)
        n = 7 * PER_SEGMENT
        self.fill(d, m, n)
        self.sink.wait_for(n, timeout=SETTLE_TIMEOUT)
        wait_until(lambda: len(segment_files(d)) < 2, timeout=SETTLE_TIMEOUT,
                   what="fewer than 2 segment files (have %r)" % (segment_files(d),))
        # The delivery-state records of the last messages ride with the next
        # batch or the spool's flush timer (1 s): finished soon, not at once.
        wait_until(lambda: [str(x.get("id", "")).upper() for x in d.spool_ls()]
                   == [deferred.upper()], timeout=SETTLE_TIMEOUT,
                   what="only the deferred message left in the spool")
        self.check_spool(d, [deferred], "after compaction")
        d.wait_log("paniclog", lambda line: "spool: compacted segment=" in line,
                   timeout=5.0)
        self.assertEqual(d.stop(), 0, "daemon exit status on SIGTERM")
        d.start()
        self.check_spool(d, [deferred], "after a restart")
        self.assertLess(len(segment_files(d)), 3, "segments after a restart: %r"
                        % (segment_files(d),))
        self.assertEqual(len(self.sink.with_marker(m + "-0")), 1,
                         "a delivered message was delivered again")

    def start_nowait(self, d):
        """start_nowait - run impetusd without waiting for its banner (harness.start does)."""
        out = open(d.stdout_path, "ab")
        err = open(d.stderr_path, "ab")
        try:
            d.proc = subprocess.Popen([impetusd_path(), "-c", d.conf_path], stdout=out,
                                      stderr=err, stdin=subprocess.DEVNULL,
                                      env=dict(os.environ), cwd=d.tmp)
        finally:
            out.close()
            err.close()
        d.returncode = None

    def test_kill9_during_compaction(self):
        """kill -9 while compaction runs, ten times: nothing lost, nothing duplicated"""
        rounds = 16
        d = self.daemon(threshold=0)
        m = uniq("crash")
        deferred = []
        for r in range(rounds):
            deferred.append(self.defer_one(d, "%s-d%d" % (m, r)))
            self.fill(d, "%s-r%d" % (m, r), PER_SEGMENT)
        self.sink.wait_for(rounds * PER_SEGMENT, timeout=SETTLE_TIMEOUT)
        self.assertEqual(d.stop(), 0, "daemon exit status on SIGTERM")
        before = segment_files(d)
        self.assertGreaterEqual(len(before), rounds // 2,
                                "the spool should have grown: %r" % (before,))
        self.check_spool(d, deferred, "before compaction")
        delivered = len(self.sink.messages())

        d.global_text = self.global_text(90)
        d.write_config()
        mid_compaction = 0
        for i in range(10):
            old = set(segment_files(d))
            self.start_nowait(d)
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and d.proc.poll() is None:
                if not old <= set(segment_files(d)):
                    break
                time.sleep(0.0005)
            left = set(segment_files(d))
            if not old <= left and len(left & old) > 1:
                mid_compaction += 1
            d.kill9(check=False)
            self.check_spool(d, deferred, "after kill -9 number %d" % (i + 1))
        sys.stderr.write("kill -9 landed mid-compaction %d of 10 times; %d old segments\n"
                         % (mid_compaction, len(before)))
        self.assertGreater(mid_compaction, 0, "no kill landed while old segments were"
                           " being removed")
        # A last, clean run finishes the job.
        d.start()
        wait_until(lambda: len(set(segment_files(d)) & set(before)) == 0,
                   timeout=SETTLE_TIMEOUT,
                   what="every old segment removed (have %r)" % (segment_files(d),))
        self.check_spool(d, deferred, "after the last start")
        self.assertEqual(len(self.sink.messages()), delivered,
                         "the sink got mail again after the crashes")


if __name__ == "__main__":
    main()
