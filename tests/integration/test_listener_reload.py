"""
test_listener_reload.py - a reload (SIGHUP) applies listener changes without a restart

Black-box against the real daemon, real sockets and real TLS handshakes
(Python's ssl), docs/console.md "Reloading listeners":

- ESMTP: a Listen added starts accepting; one removed stops accepting
  while a session that came in on it before the reload finishes its
  transaction; one kept gets changed options (Max_Message_Size seen in
  EHLO) and a changed certificate for the next session, while a TLS
  session opened before keeps working;
- a new certificate file at the same path is read again on reload (the
  handshake after it serves the new one); an unreadable one keeps the
  previous certificate, with a paniclog error;
- an address that cannot be bound (a port someone else holds) is a
  paniclog error and the rest of the reload applies; the next reload,
  once the port is free, binds it;
- Control_Listener: a socket added answers, one removed is gone (file
  unlinked) while a connection opened on it before keeps working,
  File_Mode changes on the socket file, a new Timeout closes idle
  connections sooner.
"""

import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import wait_until  # noqa: E402


def reloads(d):
    """reloads - how many reloads the daemon has finished (paniclog)."""
    return sum(1 for l in d.paniclog() if "reload configuration=" in l)


def reload(d):
    """reload - SIGHUP and wait until the daemon says the reload is done."""
    n = reloads(d)
    d.signal(signal.SIGHUP)
    wait_until(lambda: reloads(d) > n, timeout=15, what="reload #%d" % (n + 1))


def der(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def served_cert(port):
    """served_cert - the DER certificate a fresh STARTTLS on port is served."""
    with harness.RawClient(port) as c:
        r = c.ehlo()
        assert r.code == 250, r
        c.starttls()
        cert = c.sock.getpeercert(binary_form=True)
        assert c.ehlo().code == 250
        assert c.cmd("QUIT").code == 221
        return cert


def refused(port):
    """refused - nothing listens on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def ehlo_size(port):
    with harness.RawClient(port) as c:
        r = c.ehlo()
        return [l for l in r.lines if l.startswith("SIZE")]


class ListenerReload(harness.DaemonTestCase):

    def config(self, d, listens, control=""):
        """config - the daemon's configuration with these Listen stanzas (text, inner options)."""
        text = ('Spoolbase = "%s"\nLog_Directory = "%s"\nHostname = "mx.test.example"\n'
                'Relay_Domains = ( "example.com" )\nGateway = "127.0.0.1:%d"\n'
                % (d.spool_dir, d.log_dir, d.dead_port))
        text += control + "\nESMTP_Listener {\n"
        for addr, inner in listens:
            text += '  Listen "%s" {\n    %s\n  }\n' % (addr, inner)
        return text + "}\n"

    def tls(self, cert, key):
        return 'TLS_Certificate = "%s"\n    TLS_Key = "%s"' % (cert, key)

    def test_listen_added_removed_changed(self):
        tmp = tempfile.mkdtemp(prefix="impetus-lr-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.mkdir(os.path.join(tmp, "a"))
        os.mkdir(os.path.join(tmp, "b"))
        cert_a, key_a = harness.make_cert(os.path.join(tmp, "a"))
        cert_b, key_b = harness.make_cert(os.path.join(tmp, "b"))
        d = self.new_daemon(start=False)
        kept, gone, new = d.port, harness.free_port(), harness.free_port()
        d.write_config(self.config(d, [
            ("127.0.0.1:%d" % kept, self.tls(cert_a, key_a) + "\n    Max_Message_Size = 1M"),
            ("127.0.0.1:%d" % gone, "")]))
        d.start()
        self.assertEqual(served_cert(kept), der(cert_a))
        self.assertEqual(ehlo_size(kept), ["SIZE 1048576"])
        self.assertTrue(refused(new))

        # Sessions opened before the reload: one on the listener that goes,
        # one under TLS with the old certificate on the one that stays.
        old = harness.RawClient(gone)
        self.assertEqual(old.ehlo().code, 250)
        self.assertEqual(old.cmd("MAIL FROM:<a@sender.test>").code, 250)
        old_tls = harness.RawClient(kept)
        old_tls.ehlo()
        old_tls.starttls()
        self.assertEqual(old_tls.sock.getpeercert(binary_form=True), der(cert_a))

        d.write_config(self.config(d, [
            ("127.0.0.1:%d" % new, ""),
            ("127.0.0.1:%d" % kept, self.tls(cert_b, key_b) + "\n    Max_Message_Size = 2M")]))
        reload(d)

        self.assertTrue(refused(gone), "a removed Listen still accepts")
        with harness.RawClient(new) as c:
            self.assertEqual(c.banner.code, 220)
            self.assertEqual(c.ehlo().code, 250)
        self.assertEqual(served_cert(kept), der(cert_b))
        self.assertEqual(ehlo_size(kept), ["SIZE 2097152"])
        # The sessions from before finish normally.
        self.assertEqual(old.cmd("RCPT TO:<x@example.com>").code, 250)
        self.assertEqual(old.cmd("DATA").code, 354)
        old.send(harness.data_payload(harness.make_message(subject="old listener")))
        self.assertEqual(old.read_reply().code, 250)
        self.assertEqual(old.cmd("QUIT").code, 221)
        old.close()
        self.assertEqual(old_tls.ehlo().code, 250)
        r = old_tls.transaction("a@sender.test", ["y@example.com"],
                                harness.make_message(subject="old certificate"))
        self.assertEqual(r.code, 250, r)
        old_tls.close()
        log = "\n".join(d.paniclog())
        self.assertIn("listener address=127.0.0.1:%d removed" % gone, log)
        self.assertIn("listener address=127.0.0.1:%d tls=no added" % new, log)
        self.assertIn("listener address=127.0.0.1:%d kept tls=yes" % kept, log)

    def test_certificate_reread_at_same_path(self):
        d = self.new_daemon(tls=True)
        first = der(d.cert)
        self.assertEqual(served_cert(d.port), first)
        # A renewed certificate written over the same files, as certbot does.
        with tempfile.TemporaryDirectory() as t:
            cert, key = harness.make_cert(t)
            shutil.copy(cert, d.cert + ".new")
            shutil.copy(key, d.key + ".new")
        os.replace(d.key + ".new", d.key)
        os.replace(d.cert + ".new", d.cert)
        renewed = der(d.cert)
        self.assertNotEqual(renewed, first)
        self.assertEqual(served_cert(d.port), first, "re-read before any reload")
        reload(d)
        self.assertEqual(served_cert(d.port), renewed)
        # A broken file: the reload says so and the last good certificate stays.
        with open(d.cert, "w") as f:
            f.write("not a certificate\n")
        reload(d)
        self.assertEqual(served_cert(d.port), renewed)
        d.wait_log("paniclog", "keeping the previous certificate")

    def test_unbindable_address_rest_applies(self):
        d = self.new_daemon(start=False)
        busy, other = harness.free_port(), harness.free_port()
        d.write_config(self.config(d, [("127.0.0.1:%d" % d.port, "Max_Message_Size = 1M")]))
        d.start()
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", busy))
        holder.listen(1)
        d.write_config(self.config(d, [("127.0.0.1:%d" % d.port, "Max_Message_Size = 3M"),
                                       ("127.0.0.1:%d" % busy, ""),
                                       ("127.0.0.1:%d" % other, "")]))
        reload(d)
        d.wait_log("paniclog", "listener address=127.0.0.1:%d error=" % busy)
        self.assertEqual(ehlo_size(d.port), ["SIZE 3145728"])
        with harness.RawClient(other) as c:
            self.assertEqual(c.banner.code, 220)
        # The port is freed; the next reload binds it.
        holder.close()
        reload(d)
        with harness.RawClient(busy) as c:
            self.assertEqual(c.banner.code, 220)
        d.assert_alive()

    def test_control_listener_reload(self):
        d = self.new_daemon(start=False)
        one, two = os.path.join(d.tmp, "one"), os.path.join(d.tmp, "two")

        def control(paths, mode="0600", timeout=60):
            return ('Control_Listener {\n  Timeout = %d\n' % timeout
                    + "".join('  Listen "%s" { File_Mode = %s }\n' % (p, mode) for p in paths)
                    + "}\n")

        listens = [("127.0.0.1:%d" % d.port, "")]
        d.write_config(self.config(d, listens, control([one])))
        d.start()

        def pid(path):
            p = subprocess.run([harness.impetus_path(), "-s", path, "pid"],
                                       capture_output=True, text=True, timeout=30)
            return p.stdout.strip() if p.returncode == 0 else None

        self.assertEqual(pid(one), str(d.proc.pid))
        self.assertFalse(os.path.exists(two))
        held = socket.socket(socket.AF_UNIX)
        held.connect(one)
        idle = socket.socket(socket.AF_UNIX)

        d.write_config(self.config(d, listens, control([two], "0660", timeout=2)))
        reload(d)
        self.assertEqual(pid(two), str(d.proc.pid))
        self.assertEqual(stat.S_IMODE(os.stat(two).st_mode), 0o660)
        self.assertFalse(os.path.exists(one), "a removed control socket's file stays")
        # A connection from before the reload still gets answers (until the new Timeout).
        held.sendall(b"pid\n")
        held.settimeout(5)
        self.assertTrue(held.recv(100).startswith(b"OK "))
        # The new Timeout (2 s) closes an idle connection.
        idle.connect(two)
        idle.settimeout(10)
        t0 = time.monotonic()
        self.assertEqual(idle.recv(10), b"")
        self.assertLess(time.monotonic() - t0, 8)
        held.close()
        idle.close()

        # File_Mode alone changes on the socket that is kept.
        d.write_config(self.config(d, listens, control([two], "0600")))
        reload(d)
        self.assertEqual(stat.S_IMODE(os.stat(two).st_mode), 0o600)
        self.assertEqual(pid(two), str(d.proc.pid))


if __name__ == "__main__":
    unittest.main()
