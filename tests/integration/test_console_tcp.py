"""
test_console_tcp.py - TCP control listeners and `impetus -s ip:port`

Black-box, the real daemon and the real `impetus` (docs/console.md, "TCP
control listeners"):

- `Listen "127.0.0.1:PORT"` and `Listen "[::1]:PORT"` answer `impetus -s
  ADDRESS`, $IMPETUS_CONTROL=ADDRESS and `-c FILE` whose first Listen is
  TCP; a raw TCP client speaks the same protocol;
- an address other than loopback is a config error at file:line:col
  unless Allow_Remote = true (in the Listen or in Control_Listener),
  which then binds it;
- a TCP listener added by a reload answers, and one removed is closed;
- no daemon on the address: exit 1 and a message naming it.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import wait_until  # noqa: E402


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def reload(d):
    n = sum(1 for l in d.paniclog() if "reload configuration=" in l)
    d.signal(signal.SIGHUP)
    wait_until(lambda: sum(1 for l in d.paniclog() if "reload configuration=" in l) > n,
               timeout=15, what="the reload")


class ConsoleTcp(harness.DaemonTestCase):

    def tool(self, *args, env=None, cwd=None):
        e = dict(os.environ)
        e.pop("IMPETUS_CONTROL", None)
        e.update(env or {})
        p = subprocess.run([harness.impetus_path()] + list(args), capture_output=True,
                           text=True, timeout=30, env=e, cwd=cwd)
        return p.returncode, p.stdout, p.stderr

    def daemon(self, control):
        return self.new_daemon(global_text=control)

    def test_tcp_listen_v4_v6_env_config_raw(self):
        p4 = harness.free_port()
        v6 = have_ipv6_loopback()
        p6 = harness.free_port() if v6 else None
        control = 'Control_Listener {\n  Listen "127.0.0.1:%d" { }\n' % p4
        if v6:
            control += '  Listen "[::1]:%d" { }\n' % p6
        d = self.daemon(control + "}")
        pid = "%d\n" % d.proc.pid
        self.assertEqual(self.tool("-s", "127.0.0.1:%d" % p4, "pid"), (0, pid, ""))
        if v6:
            self.assertEqual(self.tool("-s", "[::1]:%d" % p6, "pid"), (0, pid, ""))
        self.assertEqual(self.tool("pid", env={"IMPETUS_CONTROL": "127.0.0.1:%d" % p4}),
                         (0, pid, ""))
        # -c FILE: the first Listen of its Control_Listener is the TCP one.
        self.assertEqual(self.tool("-c", d.conf_path, "pid"), (0, pid, ""))
        rc, out, err = self.tool("-s", "127.0.0.1:%d" % p4, "version", "--json")
        self.assertEqual(rc, 0, err)
        self.assertIn('"version"', out)
        # The protocol over a raw TCP socket.
        with socket.create_connection(("127.0.0.1", p4), timeout=10) as s:
            s.sendall(b"pid\nnosuchcommand\n")
            buf = b""
            while buf.count(b"\n") < 3:
                chunk = s.recv(4096)
                self.assertTrue(chunk, "closed early: %r" % buf)
                buf += chunk
            self.assertTrue(buf.startswith(b"OK %d\n%s" % (len(pid), pid.encode())), buf)
            self.assertIn(b"ERR ", buf)
        # Bound before the logs open: the start-up line is on stderr.
        self.assertIn("control listen address=127.0.0.1:%d" % p4, d.stderr())

    def test_not_loopback_needs_allow_remote(self):
        port = harness.free_port()
        with tempfile.TemporaryDirectory() as t:
            path = os.path.join(t, "c.conf")
            cases = (
                ('Control_Listener {\n  Listen "0.0.0.0:%d" { }\n}' % port, False),
                ('Control_Listener {\n  Listen ":%d" { }\n}' % port, False),
                ('Control_Listener {\n  Listen "[::]:%d" { }\n}' % port, False),
                ('Control_Listener {\n  Listen "0.0.0.0:%d" { Allow_Remote = true }\n}' % port,
                 True),
                ('Control_Listener {\n  Listen "0.0.0.0:%d" { }\n  Allow_Remote = true\n}' % port,
                 True),
                ('Control_Listener {\n  Listen "127.0.0.2:%d" { }\n}' % port, True),
                ('Control_Listener {\n  Listen "[::ffff:127.0.0.1]:%d" { }\n}' % port, True),
                ('Control_Listener {\n  Listen "/tmp/x" { Allow_Remote = maybe }\n}', False),
            )
            for text, good in cases:
                with open(path, "w") as f:
                    f.write(text + "\n")
                p = subprocess.run([harness.impetusd_path(), "-t", "-c", path],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 0 if good else 1, text + "\n" + p.stderr)
                if not good and "maybe" not in text:
                    self.assertRegex(p.stderr, "^" + path + r":2:10: Control_Listener Listen "
                                     r"\S+ is not a loopback address.*Allow_Remote = true", text)
        # Allowed: it binds, and answers on loopback too.
        d = self.daemon('Control_Listener {\n  Allow_Remote = true\n  Listen "0.0.0.0:%d" { }\n}'
                        % port)
        self.assertEqual(self.tool("-s", "127.0.0.1:%d" % port, "pid"),
                         (0, "%d\n" % d.proc.pid, ""))

    def test_reload_adds_and_removes_tcp(self):
        a, b = harness.free_port(), harness.free_port()
        d = self.daemon('Control_Listener {\n  Listen "127.0.0.1:%d" { }\n}' % a)
        pid = "%d\n" % d.proc.pid
        self.assertEqual(self.tool("-s", "127.0.0.1:%d" % a, "pid"), (0, pid, ""))
        d.global_text = 'Control_Listener {\n  Listen "127.0.0.1:%d" { }\n}' % b
        d.write_config()
        reload(d)
        self.assertEqual(self.tool("-s", "127.0.0.1:%d" % b, "pid"), (0, pid, ""))
        rc, out, err = self.tool("-s", "127.0.0.1:%d" % a, "pid")
        self.assertEqual(rc, 1)
        self.assertIn("cannot connect to 127.0.0.1:%d: Connection refused" % a, err)

    def test_no_daemon(self):
        port = harness.free_port()
        rc, out, err = self.tool("-s", "127.0.0.1:%d" % port, "pid")
        self.assertEqual((rc, out), (1, ""))
        self.assertRegex(err, r"^impetus: cannot connect to 127\.0\.0\.1:%d: Connection refused "
                         r"\(is impetusd running\?" % port)


if __name__ == "__main__":
    unittest.main()
