"""
test_large_message.py - a message's size does not decide the daemon's memory

A large message streams to disk while it arrives (docs/smtp-server.md,
"Large messages"): the session keeps a bounded prefix in memory and writes
the rest in chunks, and the spool copies that file into its segment. So:

  * a 128 MiB DATA and a 96 MiB BDAT transfer raise the daemon's peak
    resident memory (VmHWM) by far less than their size, and the message is
    in the spool whole (`impetus spool ls`, whose replay checks every
    record's CRC, reports its exact size, also after a restart);
  * a streamed message reaches the next hop byte for byte, with the
    Message-ID the daemon adds when the client sent none;
  * a write error while streaming (RLIMIT_FSIZE, as a full disk) answers
    452 4.3.1 at the end of data and the session goes on: the next, small
    message gets its 250;
  * a client that vanishes in the middle of a streamed message costs
    nothing (the sanitizer build checks that nothing leaks);
  * the default configuration announces a size limit (SIZE 52428800).

Peak memory under AddressSanitizer includes its quarantine of freed
blocks, so the daemons here run with a small quarantine; the bound is the
same in both builds.
"""

import os
import re
import resource
import socket
import time

from harness import Daemon, DaemonTestCase, accepted_id, data_payload, main
from deliverykit import inject, wait_records
from sink import Sink

MiB = 1 << 20
# What a streamed message may add to the daemon's peak RSS, whatever its size.
RSS_BOUND = 24 * MiB
LINE = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n"

# Small quarantine, so ASan's freed-block cache does not count as our memory.
os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                              ":quarantine_size_mb=4:thread_local_quarantine_size_kb=256").lstrip(":")


def vm_hwm(pid):
    """vm_hwm - the process's peak resident set, in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM for pid %d" % pid)


def header(marker):
    return ("From: big@client.test\r\nTo: r@example.com\r\nSubject: %s\r\n\r\n"
            % marker).encode()


def send_lines(sock, total):
    """send_lines - total bytes of 78-byte CRLF lines (no dot at a line start)."""
    block = LINE * (MiB // len(LINE))
    sent = 0
    while sent + len(block) <= total:
        sock.sendall(block)
        sent += len(block)
    rest = (total - sent) // len(LINE)
    sock.sendall(LINE * rest)
    return sent + rest * len(LINE)


def spool_size(daemon, mid):
    m = [m for m in daemon.spool_ls() if m["id"].upper() == mid]
    return m[0]["size"] if m else None


class LargeMessageTest(DaemonTestCase):

    # A daemon per test: VmHWM is a peak, one test's must not hide another's.
    def setUp(self):
        self.d = self.new_daemon(global_text="Max_Message_Size = 1G")

    def test_data_streams_to_disk(self):
        d = self.d
        before = vm_hwm(d.proc.pid)
        with self.raw(timeout=120) as c:
            c.ehlo()
            self.assertEqual(c.cmd("MAIL FROM:<big@client.test>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<r@example.com>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            head = header("data-128")
            c.send(head)
            n = send_lines(c.sock, 128 * MiB)
            c.send(b".\r\n")
            r = c.read_reply(timeout=120)
            self.assertEqual(r.code, 250, str(r))
            mid = accepted_id(r)
        grew = vm_hwm(d.proc.pid) - before
        print("DATA 128 MiB: peak RSS +%.1f MiB" % (grew / MiB))
        self.assertLess(grew, RSS_BOUND, "peak RSS grew by %d MiB for a 128 MiB message"
                        % (grew // MiB))
        size = spool_size(d, mid)
        self.assertIsNotNone(size, "the message is not in the spool")
        # Ours: a Received and a Message-ID header in front of the client's bytes.
        self.assertGreater(size, len(head) + n)
        self.assertLess(size, len(head) + n + 1024)
        self.assertTrue(d.spool_grep(b"Subject: data-128"))

    def test_bdat_streams_to_disk(self):
        d = self.d
        before = vm_hwm(d.proc.pid)
        chunk = LINE * (MiB // len(LINE))
        with self.raw(timeout=120) as c:
            c.ehlo()
            self.assertEqual(c.cmd("MAIL FROM:<big@client.test>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<r@example.com>").code, 250)
            head = header("bdat-96")
            c.send(b"BDAT %d\r\n" % len(head) + head)
            self.assertEqual(c.read_reply().code, 250)
            total = len(head)
            for i in range(96):
                last = i == 95
                c.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
                total += len(chunk)
                r = c.read_reply(timeout=120)
                self.assertEqual(r.code, 250, str(r))
            mid = accepted_id(r)
        grew = vm_hwm(d.proc.pid) - before
        print("BDAT 96 MiB: peak RSS +%.1f MiB" % (grew / MiB))
        self.assertLess(grew, RSS_BOUND, "peak RSS grew by %d MiB for a 96 MiB message"
                        % (grew // MiB))
        size = spool_size(d, mid)
        self.assertIsNotNone(size)
        self.assertGreater(size, total)
        self.assertLess(size, total + 1024)

    def test_client_vanishes_mid_stream(self):
        d = self.d
        before = len(d.spool_ls())
        for cut in (3 * MiB, 7 * MiB + 123):
            c = self.raw()
            c.ehlo()
            c.cmd("MAIL FROM:<gone@client.test>")
            c.cmd("RCPT TO:<r@example.com>")
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(header("vanish"))
            send_lines(c.sock, cut)
            c.sock.shutdown(socket.SHUT_RDWR)
            c.close()
        # The daemon goes on; nothing of the half messages was queued.
        mid = d.send_mail()
        self.assertEqual(len(d.spool_ls()), before + 1)
        self.assertIn(mid, {m["id"].upper() for m in d.spool_ls()})


class StreamedDeliveryTest(DaemonTestCase):

    def test_streamed_message_arrives_intact(self):
        with Sink() as sink:
            d = self.new_daemon(
                relay_hosts=("127.0.0.0/8",), hold_delivery=False,
                global_text='Domain "big.test" { Routes = ( "smtp://127.0.0.1:%d" ) }'
                            % sink.port)
            lines = [b"line %07d %s\r\n" % (i, b"x" * (i % 150)) for i in range(40000)]
            body = header("intact") + b"".join(lines)
            self.assertGreater(len(body), 3 * MiB)
            mid = inject(d, "big@client.test", ["x@big.test"], body)
            wait_records(d, "D", mid, timeout=60)
            got = sink.messages()
            self.assertEqual(len(got), 1)
            delivered = got[0].body
            # Our trace fields, Message-ID and Date, then exactly what the client sent.
            self.assertTrue(delivered.endswith(body), "the delivered bytes differ")
            prefix = delivered[:len(delivered) - len(body)].decode()
            self.assertTrue(prefix.startswith("Return-Path: <big@client.test>\r\n"
                                              "Received: from client.test"), prefix)
            self.assertIn("Message-ID: <%s@mx.test.example>\r\n" % mid, prefix)


class StreamWriteErrorTest(DaemonTestCase):

    LIMIT = 24 * MiB

    def test_write_error_while_streaming_answers_452(self):
        d = self.new_daemon(global_text="Max_Message_Size = 1G", start=False)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.LIMIT, hard))
        try:
            d.start()
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        with self.raw(daemon=d, timeout=60) as c:
            c.ehlo()
            c.cmd("MAIL FROM:<big@client.test>")
            c.cmd("RCPT TO:<r@example.com>")
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(header("too-big-for-disk"))
            send_lines(c.sock, 40 * MiB)
            c.send(b".\r\n")
            self.assertReply(c.read_reply(timeout=60), 452, "4.3.1")
            # The session goes on.
            r = c.transaction("s@client.test", ["r@example.com"],
                              header("small") + b"hello\r\n")
            self.assertEqual(r.code, 250, str(r))
        d.wait_log("paniclog", lambda l: "streaming the body" in l)


class DefaultLimitTest(DaemonTestCase):

    def test_default_size_limit_is_announced(self):
        d = self.new_daemon()
        with self.raw(daemon=d) as c:
            r = c.ehlo()
            self.assertIn("SIZE 52428800", r.lines)


if __name__ == "__main__":
    main()
