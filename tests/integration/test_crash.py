"""
test_crash.py - kill -9 under load: every 250 survives, exactly once

Many concurrent senders push messages while the daemon is killed with
SIGKILL at a random moment. After a restart on the same spool:

  * every message that got "250 2.0.0 OK <id>" is in the spool, once;
  * no id appears twice;
  * a spooled message that never got its 250 must be one that was in
    flight (its data was sent and the reply had not arrived when the
    daemon died) - identified by its unique size, since each message the
    senders write has a different length;
  * the restarted daemon accepts new mail and lists old and new together.

Rounds: CRASH_ROUNDS (default 3) kill/restart cycles on one spool, so
recovery also runs over segments that an earlier recovery left behind.
"""

import os
import random
import socket
import threading
import time
import unittest

from harness import (Daemon, DaemonTestCase, RawClient, accepted_id, data_payload,
                     main)

SENDERS = 16
ROUNDS = int(os.environ.get("CRASH_ROUNDS", "3"))


class Sender(threading.Thread):
    """Sender - one client connection sending messages until the daemon dies."""

    def __init__(self, port, index, sizes, lock):
        super().__init__(daemon=True)
        self.port = port
        self.index = index
        self.sizes = sizes          # shared: next unique size
        self.lock = lock
        self.acked = {}             # id -> body size
        self.in_flight = set()      # body sizes sent without a final reply
        self.error = None

    def next_size(self):
        with self.lock:
            self.sizes[0] += 1
            return self.sizes[0]

    def run(self):
        try:
            c = RawClient(self.port, timeout=30)
            c.ehlo("sender%02d.test" % self.index)
            while True:
                size = self.next_size()
                head = ("From: s%d@client.test\r\nTo: r@example.com\r\n"
                        "Subject: crash test\r\nMessage-ID: <%d.%d@client.test>\r\n\r\n"
                        % (self.index, self.index, size)).encode()
                # Lines of at most 78 characters, the last one padded so
                # the total is exactly `size`.
                body = head
                while size - len(body) > 82:
                    body += b"y" * 78 + b"\r\n"
                body += b"z" * (size - len(body) - 2) + b"\r\n"
                assert len(body) == size
                r = c.cmd("MAIL FROM:<s%02d@client.test>" % self.index)
                if r.code != 250:
                    raise AssertionError("MAIL refused: %s" % (r,))
                r = c.cmd("RCPT TO:<r%02d@example.com>" % self.index)
                if r.code != 250:
                    raise AssertionError("RCPT refused: %s" % (r,))
                r = c.cmd("DATA")
                if r.code != 354:
                    raise AssertionError("DATA refused: %s" % (r,))
                self.in_flight.add(size)
                c.send(data_payload(body, dot_stuff=False))
                r = c.read_reply()
                self.in_flight.discard(size)
                self.acked[accepted_id(r)] = size
        except (OSError, AssertionError) as e:
            # The expected end: the daemon was killed under us. A refusal
            # while it was alive is a real error, kept for the test to see.
            self.error = e


class CrashTest(DaemonTestCase):

    def test_kill9_under_load_keeps_every_acknowledged_message_once(self):
        d = self.new_daemon()
        expected = {}               # id -> client body size, over all rounds
        lock = threading.Lock()
        sizes = [2000]
        for rnd in range(ROUNDS):
            senders = [Sender(d.port, i, sizes, lock) for i in range(SENDERS)]
            for s in senders:
                s.start()
            time.sleep(random.uniform(1.0, 2.5))
            d.kill9()
            for s in senders:
                s.join(60)
                self.assertFalse(s.is_alive(), "a sender hung after the kill")
            acked = {}
            in_flight = set()
            for s in senders:
                acked.update(s.acked)
                in_flight |= s.in_flight
            self.assertGreater(len(acked), 0, "round %d: no message was accepted before "
                               "the kill; errors: %r" % (rnd, [s.error for s in senders]))
            expected.update(acked)

            d.start()
            msgs = d.spool_ls()
            ids = [m["id"].upper() for m in msgs]
            self.assertEqual(len(ids), len(set(ids)), "round %d: duplicate ids in the spool"
                             % rnd)
            by_id = {m["id"].upper(): m for m in msgs}
            missing = [i for i in expected if i not in by_id]
            self.assertEqual(missing, [], "round %d: acknowledged messages lost" % rnd)

            # Everything we add to a message (Return-Path, Received, Message-ID,
            # Date) has the same length here (senders and recipients are all
            # as long), so spool size - client size is one constant.
            overhead = {by_id[i]["size"] - expected[i] for i in expected}
            self.assertEqual(len(overhead), 1, "inconsistent size overhead %r" % overhead)
            extra = overhead.pop()
            for m in msgs:
                mid = m["id"].upper()
                if mid in expected:
                    continue
                size = m["size"] - extra
                self.assertIn(size, in_flight,
                              "round %d: message %s (client size %d) is in the spool but "
                              "was neither acknowledged nor in flight" % (rnd, mid, size))
                # It is durable: from now on it must stay, like an acked one.
                expected[mid] = size
                in_flight.discard(size)

        # The daemon that recovered everything still takes mail.
        new_id = d.send_mail(body=b"Subject: after\r\n\r\nafter the crashes\r\n")
        ids = {m["id"].upper() for m in d.spool_ls()}
        self.assertIn(new_id, ids)
        self.assertTrue(set(expected) <= ids)
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    main()
