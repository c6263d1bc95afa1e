"""
test_crash_prealloc.py - kill -9 with a preallocated, partly written segment

impetusd preallocates each spool segment to Spool_Segment_Size (here 8M)
and writes its records in place, with zeros written ahead of them and the
rest of the file allocated but never written (docs/spool.md, "Preallocated
segments"). A crash leaves such a file behind: records, then zeros, then
unwritten space, and recovery must take the zeros as the end of the data.

The daemon relays to a sink that answers 452 for recipients called defer-*
(their domain retries in an hour, so they stay in the spool) and 250 for the
rest. Each round: a few deferred messages (their T lines seen), then a
sender thread that injects deliverable mail until the daemon is killed
with SIGKILL at a random moment while it runs. Then, before any restart,
the newest segment file must still be its full preallocated size, and
`impetus spool ls` over the crashed spool must report no damage; after the
restart:

  * every message that got a 250 reaches the sink at least once (the
    delivery-state records of the last second may be lost in a crash, so
    some may come twice: at-least-once, never zero);
  * every deferred message is listed by `impetus spool ls` exactly once,
    with its recipient still queued and its retry count;
  * the paniclog has no spool damage line (corrupt, torn, bad tail, not
    recovered, duplicate) after the startup line of that run;
  * the segment recovered from the crash was cut back to its records.

Two rounds on one spool, so the second restart reads the segments the first
recovery cut and the one written after it; a clean stop at the end leaves
no segment at its preallocated size.
"""

import os
import random
import threading
import time

from harness import DaemonTestCase, main, make_message
from deliverykit import inject, wait_records, wait_until
from sink import Sink

HOSTNAME = "mx.test.example"
DOMAIN = "prealloc.test"
DEFER_DOMAIN = "defer.prealloc.test"
SEGMENT = 8 << 20
ROUNDS = 2
DEFERRED_PER_ROUND = 3
SETTLE_TIMEOUT = 60.0
DAMAGE = ("corrupt", "torn tail", "bad tail", "not recovered", "duplicate message",
          "write error")


def uniq(tag):
    return "%s%d" % (tag, time.time_ns() % 10**12)


def segment_files(d):
    """segment_files - (name, size) of the spool's segment files, in order."""
    return sorted((f, os.path.getsize(os.path.join(d.spool_dir, f)))
                  for f in os.listdir(d.spool_dir)
                  if f.startswith("seg-") and f.endswith(".log"))


class Injector(threading.Thread):
    """Injector - deliverable messages, one session each, until the daemon dies."""

    def __init__(self, d, marker):
        super().__init__(daemon=True)
        self.d = d
        self.marker = marker
        self.acked = []             # markers of the messages that got a 250
        self.error = None

    def run(self):
        i = 0
        try:
            while True:
                mk = "%s-%d" % (self.marker, i)
                inject(self.d, "s@client.test", ["ok-%d@%s" % (i, DOMAIN)],
                       make_message(marker=mk, size=1500 + 37 * (i % 50)))
                self.acked.append(mk)
                i += 1
        except Exception as e:      # the daemon was killed under us
            self.error = e


class CrashPreallocTest(DaemonTestCase):

    def setUp(self):
        self.sink = Sink(rcpt_reply=lambda addr: ("452 4.2.2 mailbox full, try later"
                                                  if addr.lower().startswith("defer-")
                                                  else "250 2.1.5 OK"))
        self.sink.start()
        self.addCleanup(self.sink.stop)

    def global_text(self):
        return "\n".join([
            "Spool_Segment_Size = %d" % SEGMENT,
            "Retry_Interval = 1",
            "Max_Retry_Interval = 2",
            'Domain "%s" { Routes = ( "smtp://127.0.0.1:%d" ) }' % (DOMAIN, self.sink.port),
            'Domain "%s" { Routes = ( "smtp://127.0.0.1:%d" ) Retry_Interval = 3600'
            ' Max_Retry_Interval = 3600 }' % (DEFER_DOMAIN, self.sink.port),
        ])

    def at_sink(self, mk):
        """at_sink - the sink's transactions carrying marker mk (a whole line)."""
        return self.sink.with_marker(mk + "\r\n")

    def damage_lines(self, d, starts):
        """damage_lines - spool damage lines in the paniclog after the starts-th startup."""
        d.wait_log("paniclog", lambda l: "startup version=" in l, count=starts, timeout=20.0)
        seen = 0
        out = []
        for line in d.paniclog():
            if "startup version=" in line:
                seen += 1
            elif seen >= starts and "spool:" in line and any(w in line for w in DAMAGE):
                out.append(line)
        return out

    def check_deferred(self, d, deferred, when):
        """check_deferred - each deferred id listed once, queued, retries 1."""
        listed = d.spool_ls()
        ids = [str(m.get("id", "")).upper() for m in listed]
        for mid in deferred:
            self.assertEqual(ids.count(mid.upper()), 1, "%s: deferred message %s listed %d"
                             " times; spool: %r" % (when, mid, ids.count(mid.upper()), ids))
        for m in listed:
            if str(m.get("id", "")).upper() not in deferred:
                continue
            rcpts = m.get("recipients", [])
            self.assertEqual([r.get("state") for r in rcpts], ["queued"],
                             "%s: recipient state of %s: %r" % (when, m.get("id"), m))
            self.assertEqual(rcpts[0].get("retries"), 1,
                             "%s: retry count of %s lost: %r" % (when, m.get("id"), m))

    def test_kill9_with_preallocated_tail(self):
        """kill -9 twice with a preallocated, partly written segment: nothing lost or corrupt"""
        d = self.new_daemon(hostname=HOSTNAME, relay_domains=(),
                            relay_hosts=("127.0.0.0/8",), hold_delivery=False,
                            global_text=self.global_text())
        m = uniq("pre")
        deferred = []
        acked = []
        starts = 1
        for rnd in range(ROUNDS):
            for k in range(DEFERRED_PER_ROUND):
                mid = inject(d, "s@client.test",
                             ["defer-%d-%d@%s" % (rnd, k, DEFER_DOMAIN)],
                             make_message(marker="%s-d%d-%d" % (m, rnd, k), size=3000))
                wait_records(d, "T", mid, what="T line for deferred message %s" % mid)
                deferred.append(mid.upper())
            inj = Injector(d, "%s-r%d" % (m, rnd))
            inj.start()
            time.sleep(random.uniform(0.5, 1.5))
            d.kill9()
            inj.join(60)
            self.assertFalse(inj.is_alive(), "the injector hung after the kill")
            self.assertGreater(len(inj.acked), 0, "round %d: nothing accepted before the"
                               " kill: %r" % (rnd, inj.error))
            acked += inj.acked

            # The crash left the newest segment at its preallocated size.
            segs = segment_files(d)
            self.assertEqual(segs[-1][1], SEGMENT, "round %d: newest segment after the"
                             " kill: %r" % (rnd, segs))
            crashed = segs[-1][0]
            # An offline scan of the crashed spool finds everything and no damage.
            self.check_deferred(d, deferred, "round %d, offline after the kill" % rnd)

            d.start()
            starts += 1
            self.assertEqual(self.damage_lines(d, starts), [],
                             "round %d: spool damage reported by recovery" % rnd)
            size = dict(segment_files(d)).get(crashed)
            self.assertTrue(size is None or size < SEGMENT,
                            "round %d: recovered segment %s still %r bytes"
                            % (rnd, crashed, size))
            self.check_deferred(d, deferred, "round %d, after the restart" % rnd)
            for mk in acked:
                wait_until(lambda: self.at_sink(mk), timeout=SETTLE_TIMEOUT,
                           what="round %d: acknowledged message %s at the sink" % (rnd, mk))
        dups = sum(1 for mk in acked if len(self.at_sink(mk)) > 1)
        if dups:
            print("delivered again after a crash (at-least-once): %d of %d"
                  % (dups, len(acked)))

        # New mail after the restarts appends and is delivered; a clean stop
        # then leaves no preallocated tail, and a last start reads it all.
        mk = "%s-after" % m
        inject(d, "s@client.test", ["ok-after@%s" % DOMAIN], make_message(marker=mk))
        wait_until(lambda: self.at_sink(mk), timeout=SETTLE_TIMEOUT,
                   what="mail sent after the restarts at the sink")
        self.assertEqual(d.stop(), 0)
        self.assertTrue(all(size < SEGMENT for _, size in segment_files(d)),
                        "a clean stop left a preallocated segment: %r" % (segment_files(d),))
        d.start()
        starts += 1
        self.assertEqual(self.damage_lines(d, starts), [], "damage after a clean stop")
        self.check_deferred(d, deferred, "after the last start")
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    main()
