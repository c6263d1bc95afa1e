"""
test_listen_loops.py - every I/O loop accepts on its own socket; the limits hold across them

Black-box against the real daemon and real sockets (src/smtp/smtp_listen.c:
one SO_REUSEPORT socket per Listen stanza and I/O loop, admission under
one lock):

- with three I/O loops, Concurrency and Max_Connections_Per_IP are exact
  over all of them: N sessions get their banner, the next gets 421, and a
  closed one frees its slot at once;
- there is one listening socket per I/O loop, and all of them serve;
- a second daemon on the same Listen address does not start ("cannot
  listen ... Address already in use"), and the first one keeps serving;
- once a graceful shutdown begins the port is closed (connection
  refused), while a transaction in flight still finishes;
- a reload that moves a port from one Listen to another (0.0.0.0:P to
  127.0.0.1:P) binds it, also after the daemon dropped root for User:
  the sockets of the removed Listen were made by root, SO_REUSEPORT does
  not share a port between users, so the new one is bound once the loops
  have closed the old ones.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import wait_until  # noqa: E402


def banner(port):
    """banner - a fresh connection and its first reply (the client is returned open)."""
    c = harness.RawClient(port)
    return c, c.banner


class LimitsAcrossLoops(unittest.TestCase):
    def test_concurrency_is_exact_over_three_loops(self):
        with harness.Daemon(global_text="Event_Loops = 3",
                            listener_text="Concurrency = 12") as d:
            held = []
            try:
                for i in range(12):
                    c, r = banner(d.port)
                    held.append(c)
                    self.assertEqual(r.code, 220, "session %d: %s" % (i, r))
                c, r = banner(d.port)
                c.close()
                self.assertEqual(r.code, 421, "the 13th connection: %s" % (r,))
                self.assertIn("too many connections", r.text)
                # One quits: once it saw the close, its slot is free for the very
                # next client, whatever loop accepts that one.
                for rounds in range(20):
                    q = held.pop(0)
                    self.assertEqual(q.cmd("QUIT").code, 221)
                    self.assertTrue(q.wait_closed(10))
                    q.close()
                    c, r = banner(d.port)
                    self.assertEqual(r.code, 220, "round %d after a close: %s" % (rounds, r))
                    held.append(c)
                c, r = banner(d.port)
                c.close()
                self.assertEqual(r.code, 421, "still full: %s" % (r,))
            finally:
                for c in held:
                    c.close()
            d.wait_log("rejectlog", lambda l: "too many connections" in l, count=2)

    def test_per_ip_limit_over_three_loops(self):
        with harness.Daemon(global_text="Event_Loops = 3",
                            listener_text="Max_Connections_Per_IP = 5") as d:
            held = []
            try:
                for i in range(5):
                    c, r = banner(d.port)
                    held.append(c)
                    self.assertEqual(r.code, 220, "session %d: %s" % (i, r))
                c, r = banner(d.port)
                held.append(c)
                self.assertEqual(r.code, 421, "the 6th from one address: %s" % (r,))
                self.assertIn("too many connections from your address", r.text)
                # Another address has its own count.
                other = harness.RawClient(d.port, source="127.0.0.2")
                held.append(other)
                self.assertEqual(other.banner.code, 220)
            finally:
                for c in held:
                    c.close()

    def test_a_socket_per_loop(self):
        with harness.Daemon(global_text="Event_Loops = 3") as d:
            self.assertEqual(listening_sockets(d.port), 3)
            # Every one of them serves: 30 connections, each with its banner.
            for i in range(30):
                c, r = banner(d.port)
                c.close()
                self.assertEqual(r.code, 220, "connection %d: %s" % (i, r))
        with harness.Daemon(global_text="Event_Loops = 1") as d:
            self.assertEqual(listening_sockets(d.port), 1)


def listening_sockets(port, addr="0100007F"):
    """listening_sockets - how many TCP sockets listen on addr:port (/proc/net/tcp; 127.0.0.1)."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "0A" and local == "%s:%04X" % (addr, port):
                n += 1
    return n


class PortOwnership(unittest.TestCase):
    def test_second_daemon_on_the_same_address_does_not_start(self):
        with harness.Daemon() as first:
            second = harness.Daemon(start=False)
            try:
                second.port = first.port
                second.write_config()
                # The first daemon would answer a banner probe: run the second by hand.
                with open(second.stderr_path, "wb") as err:
                    proc = subprocess.run([harness.impetusd_path(), "-c", second.conf_path],
                                          stdout=subprocess.DEVNULL, stderr=err,
                                          stdin=subprocess.DEVNULL, timeout=30)
                self.assertNotEqual(proc.returncode, 0, second.stderr())
                self.assertIn("cannot listen on 127.0.0.1:%d: Address already in use" % first.port,
                              second.stderr())
            finally:
                second.cleanup(check=False)
            c, r = banner(first.port)
            c.close()
            self.assertEqual(r.code, 220, "the first daemon after the second failed: %s" % (r,))

    def test_port_closes_when_shutdown_begins(self):
        with harness.Daemon(global_text="Shutdown_Grace = 20") as d:
            c = harness.RawClient(d.port)
            self.assertEqual(c.banner.code, 220)
            c.ehlo()
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<b@example.com>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(b"Subject: in flight\r\n\r\nhalf of it\r\n")
            d.signal(signal.SIGTERM)

            def refused():
                s = socket.socket()
                try:
                    s.settimeout(2)
                    s.connect(("127.0.0.1", d.port))
                    return False
                except ConnectionRefusedError:
                    return True
                finally:
                    s.close()
            wait_until(refused, timeout=10, what="the port closed after SIGTERM")
            c.send(b"the rest\r\n.\r\n")
            r = c.read_reply(timeout=20)
            self.assertEqual(r.code, 250, "the transaction in flight: %s" % (r,))
            c.close()
            d.stop()



class MovedAddress(unittest.TestCase):
    def moved(self, user):
        d = harness.Daemon(start=False, global_text='User = "%s"' % user if user else "")
        try:
            port = d.port
            if user:
                # The unprivileged daemon must reach its spool and logs.
                for root, dirs, files in os.walk(d.tmp):
                    for name in dirs + files:
                        os.chmod(os.path.join(root, name), 0o777)
                os.chmod(d.tmp, 0o777)
            d.write_config(d.render_config().replace('"127.0.0.1:%d"' % port, '"0.0.0.0:%d"' % port))
            d.start()
            n = sum(1 for l in d.paniclog() if "reload configuration=" in l)
            d.write_config(d.render_config())	# back to 127.0.0.1:port
            d.signal(signal.SIGHUP)
            wait_until(lambda: sum(1 for l in d.paniclog() if "reload configuration=" in l) > n,
                       timeout=15, what="the reload")
            wait_until(lambda: any("listener address=127.0.0.1:%d tls=no added" % port in l
                                   for l in d.paniclog()),
                       timeout=10, what="the moved listener bound")
            c, r = banner(port)
            c.close()
            self.assertEqual(r.code, 220, "after the move: %s" % (r,))
            self.assertEqual(listening_sockets(port), 1)
            wait_until(lambda: listening_sockets(port, "00000000") == 0, timeout=10,
                       what="the removed 0.0.0.0 socket closed")
            self.assertFalse([l for l in d.paniclog() if "not listening on it" in l])
            if os.environ.get("TEST_VERBOSE"):
                sys.stderr.write("\n".join(d.paniclog()) + "\n")
            d.stop()
        finally:
            d.cleanup(check=False)

    def test_moved_address_same_user(self):
        self.moved(None)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to drop privileges")
    def test_moved_address_after_dropping_root(self):
        self.moved("nobody")


if __name__ == "__main__":
    unittest.main()
