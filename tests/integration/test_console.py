"""
test_console.py - the console: Control_Listener, the protocol, `impetus COMMAND`

Black-box, through the real `impetus` tool and the real daemon (docs/console.md):

- help lists the built-ins (help, version, pid) and the opendkim module's
  signing_stats, in text and in JSON; version and pid match the daemon
  (`impetusd -V`, the process id); the socket is found from -s, from
  $IMPETUS_CONTROL and from the configuration (-c FILE), and without any
  of them from the embedded default (./var/control);
- signing_stats after relaying signed mail gives the per-domain counts the
  sink saw (text shaped like Momentum's, and --json read by Python's
  json), and `signing_stats reset` clears them;
- an unknown command, bad arguments: non-zero exit, the error on stderr;
- over a raw socket: a control byte, an empty line, too many words get ERR
  and the connection stays usable; an oversized line gets ERR and is
  closed; an idle client is closed after Timeout; past Max_Connections a
  client gets ERR; the daemon keeps serving the others all along;
- a reload that removes the module removes its command;
- File_Mode is applied to the socket file (0600 by default);
- the loader's errors for Control_Listener carry file:line:col.
"""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import inject, wait_records, wait_until  # noqa: E402
from sink import Sink  # noqa: E402

RCPT_DOMAIN = "sink.test"


_pending = {}	# socket -> bytes read past the previous reply


def read_reply(sock, timeout=10):
    """read_reply - one "OK n\\n" / "ERR n\\n" reply: (status, body bytes), or None on EOF."""
    sock.settimeout(timeout)
    buf = _pending.pop(sock, b"")
    while b"\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            assert buf == b"", "connection closed inside a status line: %r" % buf
            return None
        buf += chunk
    head, rest = buf.split(b"\n", 1)
    m = re.fullmatch(rb"(OK|ERR) (\d+)", head)
    assert m, "malformed status line %r" % head
    n = int(m.group(2))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("reply cut short: %r" % rest)
        rest += chunk
    _pending[sock] = rest[n:]
    return m.group(1).decode(), rest[:n]


def closed(sock, timeout=10):
    """closed - whether the daemon closed the connection (EOF, or a reset: it had unread input)."""
    try:
        return read_reply(sock, timeout) is None
    except ConnectionResetError:
        return True


class Console(harness.DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.keydir = tempfile.mkdtemp(prefix="impetus-console-keys-")
        for dom in ("a.test", "b.test"):
            os.makedirs(os.path.join(cls.keydir, dom))
            subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                            os.path.join(cls.keydir, dom, "sed.key")], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.keydir, ignore_errors=True)
        super().tearDownClass()

    # -- helpers ---------------------------------------------------------------

    def opendkim(self):
        return ('opendkim "opendkim1" {\n'
                '  digest = "ed25519-sha256"\n'
                '  headerlist = ( "From" "To" "Subject" )\n'
                '  key = "%s/%%{d}/%%{s}.key"\n'
                '  dkim_domain "a.test" { selector = "sed" }\n'
                '  dkim_domain "b.test" { selector = "sed" }\n'
                '  dkim_domain "nokey.test" { selector = "nosuch" }\n'
                '}' % self.keydir)

    def daemon(self, control='Control_Listener {\n  Listen "./control" { File_Mode = 0660 }\n}',
               modules=True, sink=None, **kw):
        parts = [control]
        if modules:
            parts += ['Module_Path = ( "%s" )' % harness.modules_dir(), "opendkim_sign = true",
                      self.opendkim()]
        if sink:
            parts.append('Domain "%s" { Routes = ( "smtp://127.0.0.1:%d" ) }'
                         % (RCPT_DOMAIN, sink.port))
        d = self.new_daemon(global_text="\n".join(parts), relay_hosts=("127.0.0.0/8",),
                            relay_domains=(RCPT_DOMAIN,), hold_delivery=sink is None, **kw)
        d.control = os.path.join(d.tmp, "control")
        return d

    def tool(self, d, *args, env=None, sock=True, cwd=None):
        """tool - run `impetus [-s SOCK] args...`: (exit code, stdout, stderr)."""
        cmd = [harness.impetus_path()] + (["-s", d.control] if sock else []) + list(args)
        e = dict(os.environ)
        e.pop("IMPETUS_CONTROL", None)
        if env:
            e.update(env)
        p = subprocess.run(cmd, capture_output=True, env=e, timeout=60, cwd=cwd or d.tmp)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def ok(self, d, *args, **kw):
        rc, out, err = self.tool(d, *args, **kw)
        self.assertEqual(rc, 0, "impetus %s failed: %s" % (" ".join(args), err))
        self.assertEqual(err, "")
        return out

    def raw(self, d):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.control)
        return s

    # -- commands ---------------------------------------------------------------

    def test_help_version_pid(self):
        d = self.daemon()
        out = self.ok(d, "help")
        for name in ("help", "version", "pid"):
            self.assertRegex(out, r"(?m)^  %s +\S" % name)
        self.assertRegex(out, r"(?m)^  signing_stats +DKIM signing statistics.*\[opendkim opendkim1\]$")
        cmds = {c["name"]: c for c in json.loads(self.ok(d, "help", "--json"))["commands"]}
        # The core's own (the queue and operations commands have their own
        # test files) and the module's.
        self.assertLessEqual({"help", "pid", "signing_stats", "version", "summary", "mailq",
                              "config", "threads"}, set(cmds))
        self.assertEqual(sorted(cmds), sorted(set(cmds)))
        self.assertEqual(cmds["signing_stats"]["module"], "opendkim")
        self.assertEqual(cmds["signing_stats"]["instance"], "opendkim1")
        self.assertEqual(cmds["pid"]["module"], "core")
        # help COMMAND: that command only.
        self.assertEqual(len(self.ok(d, "help", "pid").strip().splitlines()), 1)

        daemon_v = subprocess.run([harness.impetusd_path(), "-V"], capture_output=True,
                                  text=True).stdout.split()[-1]
        self.assertRegex(self.ok(d, "version"), r"^impetusd %s \(module API \d+\.\d+\)\n$"
                         % re.escape(daemon_v))
        self.assertEqual(json.loads(self.ok(d, "version", "--json"))["version"], daemon_v)
        self.assertEqual(self.ok(d, "pid"), "%d\n" % d.proc.pid)
        self.assertEqual(json.loads(self.ok(d, "--json", "pid")), {"pid": d.proc.pid})

    def test_socket_from_env_and_config(self):
        d = self.daemon()
        # $IMPETUS_CONTROL, no -s.
        self.assertEqual(self.ok(d, "pid", sock=False, env={"IMPETUS_CONTROL": d.control}),
                         "%d\n" % d.proc.pid)
        # -s wins over $IMPETUS_CONTROL.
        self.assertEqual(self.ok(d, "pid", env={"IMPETUS_CONTROL": "/nonexistent/x"}),
                         "%d\n" % d.proc.pid)
        # -c FILE: the Listen of its Control_Listener (relative to the current directory).
        self.assertEqual(self.ok(d, "-c", d.conf_path, "pid", sock=False), "%d\n" % d.proc.pid)
        # Nothing given: the embedded configuration's ./var/control.
        with tempfile.TemporaryDirectory() as empty:
            rc, out, err = self.tool(d, "pid", sock=False, cwd=empty)
        self.assertEqual(rc, 1)
        self.assertIn("cannot connect to ./var/control", err)

    def test_unknown_command_and_bad_arguments(self):
        d = self.daemon()
        rc, out, err = self.tool(d, "nosuch", "x")
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(err, 'impetus: unknown command "nosuch" (try "help")\n')
        rc, out, err = self.tool(d, "pid", "extra")
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("pid takes no arguments", err)
        rc, out, err = self.tool(d, "signing_stats", "bogus")
        self.assertEqual(rc, 1)
        self.assertIn("usage: signing_stats [reset]", err)
        # An argument the protocol cannot carry is refused by the tool itself.
        rc, out, err = self.tool(d, "help", "two words")
        self.assertEqual(rc, 2)
        self.assertIn("single words", err)
        # No daemon on the socket: a clear error, exit 1.
        rc, out, err = self.tool(d, "-s", os.path.join(d.tmp, "nothere"), "pid", sock=False)
        self.assertEqual(rc, 1)
        self.assertIn("cannot connect to", err)
        d.assert_alive()

    def test_signing_stats_counts_per_domain(self):
        with Sink() as sink:
            d = self.daemon(sink=sink)
            before = json.loads(self.ok(d, "signing_stats", "--json"))
            self.assertEqual(before, {"global": {"signed": 0, "failed": 0, "no_key": 0},
                                      "domains": []})
            sent = {"a.test": 3, "b.test": 1, "nokey.test": 2}
            ids = []
            for dom, n in sent.items():
                for i in range(n):
                    body = ("From: news@%s\r\nTo: r@%s\r\nSubject: s\r\n"
                            "Message-ID: <%s-%d@x>\r\n\r\nbody %s %d\r\n"
                            % (dom, RCPT_DOMAIN, dom, i, dom, i)).encode()
                    ids.append(inject(d, "news@client.test", ["r@" + RCPT_DOMAIN], body))
            for mid in ids:
                wait_records(d, "D", mid)
            got = sum(1 for m in sink.messages() if b"DKIM-Signature:" in m.body)
            self.assertEqual(got, 4, "the sink should have 4 signed messages")

            j = json.loads(self.ok(d, "signing_stats", "--json"))
            self.assertEqual(j["global"], {"signed": 4, "failed": 0, "no_key": 2})
            self.assertEqual(j["domains"], [
                {"domain": "a.test", "signed": 3, "failed": 0, "no_key": 0},
                {"domain": "b.test", "signed": 1, "failed": 0, "no_key": 0},
                {"domain": "nokey.test", "signed": 0, "failed": 0, "no_key": 2},
            ])
            text = self.ok(d, "signing_stats")
            self.assertTrue(text.startswith("Signing Statistics\n\nGlobal\n        DKIM\n"), text)
            self.assertRegex(text, r"Global\n        DKIM\n +TotalMessagesSigned +4\n"
                                   r" +FailedSigningAttempts +0\n +SkippedNoKey +2\nPer Domain\n")
            self.assertRegex(text, r"DomainName  a\.test\n        DKIM\n +TotalMessagesSigned +3\n")
            self.assertRegex(text, r"DomainName  b\.test\n        DKIM\n +TotalMessagesSigned +1\n")
            self.assertRegex(text, r"DomainName  nokey\.test\n        DKIM\n +TotalMessagesSigned +0\n"
                                   r" +FailedSigningAttempts +0\n +SkippedNoKey +2\n")

            self.assertEqual(self.ok(d, "signing_stats", "reset"), "Signing statistics reset.\n")
            j = json.loads(self.ok(d, "signing_stats", "--json"))
            self.assertEqual(j["global"], {"signed": 0, "failed": 0, "no_key": 0})

    # -- protocol ----------------------------------------------------------------

    def test_raw_protocol_errors_keep_serving(self):
        d = self.daemon()
        with self.raw(d) as s:
            s.sendall(b"pid\n")
            self.assertEqual(read_reply(s), ("OK", b"%d\n" % d.proc.pid))
            # Several requests in one write: answered in order.
            s.sendall(b"version --json\r\npid\n")
            st, body = read_reply(s)
            self.assertEqual(st, "OK")
            self.assertIn("version", json.loads(body))
            self.assertEqual(read_reply(s)[0], "OK")
            for bad, why in ((b"\n", b"empty request"), (b"   \t \n", b"empty request"),
                             (b"pid\x00\n", b"control byte 0x00"),
                             (b"help \x1b[2J\n", b"control byte 0x1b"),
                             (b" ".join([b"w"] * 65) + b"\n", b"more than 64 words"),
                             (b"nosuch\n", b'unknown command "nosuch"')):
                s.sendall(bad)
                st, body = read_reply(s)
                self.assertEqual(st, "ERR", bad)
                self.assertIn(why, body)
            # Still usable after all of that.
            s.sendall(b"pid\n")
            self.assertEqual(read_reply(s)[0], "OK")
        # A line over 4096 bytes: ERR, then the daemon closes the connection.
        with self.raw(d) as s:
            s.sendall(b"x" * 5000)
            st, body = read_reply(s)
            self.assertEqual(st, "ERR")
            self.assertIn(b"longer than 4096", body)
            self.assertTrue(closed(s))
        with self.raw(d) as s:
            s.sendall(b"help " + b"y" * 4100 + b"\n")
            self.assertEqual(read_reply(s)[0], "ERR")
        # A client that vanishes mid-request, another that never reads.
        s = self.raw(d)
        s.sendall(b"hel")
        s.close()
        s = self.raw(d)
        s.sendall(b"help\n" * 200)
        self.assertEqual(self.ok(d, "pid"), "%d\n" % d.proc.pid)
        s.close()
        self.assertEqual(self.ok(d, "pid"), "%d\n" % d.proc.pid)
        d.assert_alive()

    def test_timeout_and_connection_limit(self):
        d = self.daemon(control='Control_Listener {\n  Timeout = 2\n  Max_Connections = 3\n'
                                '  Listen "./control" { }\n}')
        idle = [self.raw(d) for _ in range(3)]
        idle[0].sendall(b"pi")	# half a request, then nothing
        time.sleep(0.3)
        with self.raw(d) as s:
            st, body = read_reply(s)
            self.assertEqual(st, "ERR")
            self.assertIn(b"too many console connections (Max_Connections 3)", body)
            self.assertTrue(closed(s))
        # After Timeout the idle ones are closed, and new clients get in.
        t0 = time.monotonic()
        for s in idle:
            self.assertTrue(closed(s))
            s.close()
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(self.ok(d, "pid"), "%d\n" % d.proc.pid)

    # -- life cycle -----------------------------------------------------------

    def test_reload_removes_module_command(self):
        d = self.daemon()
        self.assertIn("signing_stats", self.ok(d, "help"))
        d.global_text = d.global_text.replace(self.opendkim(), "").replace(
            "opendkim_sign = true", "")
        d.write_config()
        d.signal(signal.SIGHUP)
        wait_until(lambda: "reload configuration=" in "\n".join(d.paniclog()), timeout=10,
                   what="the reload")
        out = self.ok(d, "help")
        self.assertNotIn("signing_stats", out)
        self.assertIn("version", out)
        rc, out, err = self.tool(d, "signing_stats")
        self.assertEqual(rc, 1)
        self.assertIn('unknown command "signing_stats"', err)
        # And back: a reload that adds it again brings the command back.
        d.global_text += "\nopendkim_sign = true\n" + self.opendkim()
        d.write_config()
        d.signal(signal.SIGHUP)
        wait_until(lambda: "\n".join(d.paniclog()).count("reload configuration=") >= 2,
                   timeout=10, what="the second reload")
        self.assertIn("signing_stats", self.ok(d, "help"))

    def test_file_mode(self):
        d = self.daemon()
        self.assertEqual(stat.S_IMODE(os.stat(d.control).st_mode), 0o660)
        self.assertTrue(stat.S_ISSOCK(os.stat(d.control).st_mode))
        d.stop()
        self.assertFalse(os.path.exists(d.control), "the socket file is removed at shutdown")
        e = self.daemon(control='Control_Listener {\n  Listen "./control" { }\n}', modules=False)
        self.assertEqual(stat.S_IMODE(os.stat(e.control).st_mode), 0o600)

    def test_stale_socket_replaced_live_one_refused(self):
        d = self.daemon(modules=False)
        # A second daemon on the same socket path: refused, the first keeps it.
        conf = d.render_config().replace('Listen "./control"', 'Listen "%s"' % d.control)
        conf = conf.replace("127.0.0.1:%d" % d.port, "127.0.0.1:%d" % harness.free_port())
        with tempfile.TemporaryDirectory() as t:
            path = os.path.join(t, "x.conf")
            with open(path, "w") as f:
                f.write(conf)
            p = subprocess.run([harness.impetusd_path(), "-c", path], capture_output=True,
                               text=True, timeout=30, cwd=t)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is in use (another impetusd?)", p.stderr)
        self.assertEqual(self.ok(d, "pid"), "%d\n" % d.proc.pid)
        # A socket file left by a killed daemon is replaced on the next start.
        d.kill9(check=False)
        self.assertTrue(os.path.exists(d.control))
        d.start()
        self.assertEqual(self.ok(d, "pid"), "%d\n" % d.proc.pid)

    def test_config_errors(self):
        cases = (
            ('Control_Listener {\n  Listen "/tmp/x" { File_Mode = 0999 }\n}',
             r':2:21: File_Mode "0999" is not an octal file mode'),
            ('Control_Listener {\n  Listen "0.0.0.0:2025" { }\n}',
             r':2:10: Control_Listener Listen "0\.0\.0\.0:2025" is not a loopback address'),
            ('Control_Listener {\n  Listen "[2001:db8::1]:2025" { }\n}',
             r':2:10: Control_Listener Listen "\[2001:db8::1\]:2025" is not a loopback address'),
            ('Control_Listener {\n  Listen "control" { }\n}',
             r':2:10: Control_Listener Listen "control" is neither a Unix socket path'),
            ('Control_Listener {\n  Listen "127.0.0.1:0" { }\n}',
             r':2:10: Control_Listener Listen "127\.0\.0\.1:0" is neither'),
            ('Control_Listener {\n  Listen "127.0.0.1:2025" { }\n  Listen "127.0.0.1:02025" { }\n}',
             r':3:10: duplicate Listen "127\.0\.0\.1:02025"'),
            ('Control_Listener {\n  Timeout = 0\n  Listen "/tmp/x" { }\n}', r':2:\d+: .*Timeout'),
            ('Control_Listener {\n  Listen "/tmp/x" { Relay_Hosts = ( "a" ) }\n}',
             r':2:21: option "Relay_Hosts" is not allowed in Control_Listener Listen scope'),
            ('Control_Listener {\n  Listen "/tmp/x" { }\n  Listen "/tmp/x" { }\n}',
             r':3:10: duplicate Listen "/tmp/x"'),
            ('Control_Listener { }\nControl_Listener { }', r':2:1: duplicate Control_Listener'),
            ('Control_Listener "x" { }', r':1:18: Control_Listener takes no name'),
        )
        with tempfile.TemporaryDirectory() as t:
            for text, want in cases:
                path = os.path.join(t, "c.conf")
                with open(path, "w") as f:
                    f.write(text + "\n")
                p = subprocess.run([harness.impetusd_path(), "-t", "-c", path],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 1, text)
                self.assertRegex(p.stderr, re.escape(path) + want, text)
        # The embedded default configuration has its console socket under ./var.
        p = subprocess.run([harness.impetusd_path(), "-t"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(harness.SOURCE_DIR, "etc", "impetus.conf")) as f:
            self.assertRegex(f.read(), r'(?m)^Control_Listener \{\n  Listen "\./var/control"')


if __name__ == "__main__":
    unittest.main()
